"""Execute a parameterized notebook with papermill and render it to one self-contained HTML file."""

from __future__ import annotations

import shutil
from pathlib import Path

from ._io import atomic_path, write_text

TEMPLATES = Path(__file__).parent / "templates"


def notebook_dir():
    """The repo's ``notebooks/`` folder (evallib is installed from its checkout)."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    if (here / "report.ipynb").exists():
        return here
    raise FileNotFoundError(f"notebooks: expected report.ipynb and compare.ipynb in {here}; got none "
                            f"(install evallib from its repository checkout: pip install -e .)")


def execute(notebook, output, parameters, *, cwd=None, timeout=1800):
    """Run ``notebook`` with ``parameters`` into ``output`` (written atomically, also on failure)."""
    import papermill as pm

    output = Path(output)
    with atomic_path(output) as tmp:
        try:
            pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, cwd=str(cwd) if cwd else None,
                                progress_bar=False, request_save_on_cell_execute=False, execution_timeout=timeout,
                                kernel_name="python3", log_output=False)
        except Exception:
            # the partial notebook shows where it stopped; the last good report stays in place
            if tmp.exists():
                shutil.copyfile(tmp, output.with_name(output.stem + ".failed.ipynb"))
            raise


def to_html(notebook, html_path, *, show_code=False, title=None):
    """Render an executed notebook to self-contained HTML (images embedded, nothing fetched)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.pop("widgets", None)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="evallib", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=not show_code, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    write_text(html_path, body)
    return Path(html_path)
