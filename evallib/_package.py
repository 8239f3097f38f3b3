"""Where the package's own files are: the notebooks `evallib run` executes."""

from __future__ import annotations

from pathlib import Path

NOTEBOOKS = ("report.ipynb", "compare.ipynb")


def notebook_dir() -> Path:
    """The folder of the notebooks, ``report.ipynb`` and ``compare.ipynb``.

    An installed wheel carries them inside the package (``evallib/notebooks``); a source checkout
    has the one copy at the top of the repository (``notebooks/``).
    """
    package = Path(__file__).resolve().parent
    inside = package / "notebooks"
    return inside if inside.is_dir() else package.parent / "notebooks"
