"""The reference's ``event_engine.capi`` import path: the same objects as ``event_engine``."""

from .. import *
from .. import __all__ as __all__
