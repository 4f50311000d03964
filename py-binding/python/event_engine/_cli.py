"""Entry point of the ``event-engine`` console script installed with the wheel."""

from __future__ import annotations

import signal
import sys

from ._native import _cli_main


def main() -> None:
    """Runs ``event-engine`` with this process's arguments and exits with its status."""
    # The command line handles Ctrl-C itself where it runs until interrupted (watch, tail,
    # publish); elsewhere the default action applies, as for the Rust binary.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_cli_main(["event-engine", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
