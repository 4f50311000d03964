"""The Python side of ``event_engine.Loan``: a context manager and ``release()``.

A loan is writable memory in the bus, from ``EventEngine.loan(nbytes)``; fill it in place and
``put`` it (or an array over it) to publish it without a copy. Leaving its ``with`` block, or
``release()``, gives back a loan that was not published.
"""

from __future__ import annotations

from typing import Any

from . import _native


def _enter(self: Any) -> Any:
    return self


def _exit(self: Any, *exc: object) -> None:
    _native.release_loan(self)


def _release(self: Any) -> None:
    """Gives the loan back unpublished: no put can publish it any more, and its block returns to
    the bus once this object and every view of it are gone."""
    _native.release_loan(self)


def _nbytes(self: Any) -> int:
    """How many bytes the loan holds."""
    return memoryview(self).nbytes


setattr(_native.Loan, "__enter__", _enter)  # noqa: B010 (a type made in Rust)
setattr(_native.Loan, "__exit__", _exit)  # noqa: B010
setattr(_native.Loan, "release", _release)  # noqa: B010
setattr(_native.Loan, "nbytes", property(_nbytes))  # noqa: B010
