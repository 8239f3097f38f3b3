"""The former home of :mod:`evallib.report.render`: the same module under its old name,
so that existing imports keep working.
"""

import sys

from .report import render as _module

sys.modules[__name__] = _module
