from .. import *
from .. import __all__ as __all__
