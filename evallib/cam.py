"""The former home of :mod:`evallib.explain.cam`: the same module under its old name,
so that existing imports keep working.
"""

import sys

from .explain import cam as _module

sys.modules[__name__] = _module
