"""The former home of :mod:`evallib.explain.tsne`: the same module under its old name,
so that existing imports keep working.
"""

import sys

from .explain import tsne as _module

sys.modules[__name__] = _module
