"""The former home of :mod:`evallib.explain.onnx_convert`: the same module under its old name,
so that existing imports keep working.
"""

import sys

from .explain import onnx_convert as _module

sys.modules[__name__] = _module
