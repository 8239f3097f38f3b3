"""The former home of :mod:`evallib.report.summary`: the same module under its old name,
so that existing imports keep working.
"""

import sys

from .report import summary as _module

sys.modules[__name__] = _module
