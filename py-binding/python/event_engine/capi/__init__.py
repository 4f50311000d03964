"""The reference's ``event_engine.capi`` import path: the same objects as ``event_engine``."""

from .. import *  # noqa: F403
from .. import __all__ as __all__  # noqa: F401
