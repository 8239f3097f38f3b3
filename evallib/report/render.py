"""Execute a parameterized notebook with papermill and render it to one self-contained HTML file.

The notebooks (``report.ipynb``, ``compare.ipynb``) and the HTML template ship inside the package;
:func:`copy_notebooks` puts copies where JupyterLab can open them.
"""

from __future__ import annotations

import shutil
import threading
import warnings
import weakref
from contextlib import contextmanager
from pathlib import Path

from .._io import atomic_path, write_text
from .._package import NOTEBOOKS, notebook_dir  # noqa: F401  (imported from here by run and the CLI)

TEMPLATES = Path(__file__).parent / "templates"

# the kernel logs a warning on every start (plain TCP on localhost) and an error when it is stopped
# mid-shutdown; a kernel that dies still fails the notebook
_QUIET_KERNEL = ["--IPKernelApp.log_level=CRITICAL"]
_JUPYTER_MODULES = r"(jupyter_client|jupyter_core|zmq|papermill|nbclient|nbformat|nbconvert|traitlets|ipykernel)"


def copy_notebooks(dest, *, overwrite=False):
    """Copy the packaged notebooks into ``dest`` to open them in JupyterLab.

    Parameters
    ----------
    dest : str or Path
        Folder for the copies (created if missing). Their default parameters expect it beside
        ``params/`` and ``outputs/``, as ``notebooks/`` is in the repository.
    overwrite : bool, default False
        Replace copies that differ from the packaged notebooks (an edited copy is kept otherwise).

    Returns
    -------
    list of (Path, str)
        Each copy and what happened to it: ``"written"``, ``"up to date"`` or ``"kept (edited)"``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for name in NOTEBOOKS:
        src, dst = notebook_dir() / name, dest / name
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            done.append((dst, "up to date"))
        elif dst.exists() and not overwrite:
            done.append((dst, "kept (edited)"))
        else:
            write_text(dst, src.read_text(encoding="utf-8"))
            done.append((dst, "written"))
    return done


# what a report kernel imports ahead of its first notebook (Grad-CAM's torch and onnx2torch when installed)
WARM_REPORT = """
import importlib.util
import evallib.report, evallib.evaluation, matplotlib.figure
for _m in ("torch", "onnx2torch", "pytorch_grad_cam"):
    if importlib.util.find_spec(_m):
        importlib.import_module(_m)
"""


_WARMING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # kernel manager -> the thread running its warm-up


def _run_quietly(km, code, timeout=600):
    """Run ``code`` in ``km``'s kernel and wait for its reply (in a thread of its own: the caller goes on)."""
    kc = km.client()
    try:
        kc.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        kc.execute(code, silent=True, store_history=False)
        kc.get_shell_msg(timeout=timeout)
    except Exception:  # noqa: BLE001 -- a warm-up that fails costs time only: the notebook imports again
        pass
    finally:
        kc.stop_channels()


@contextmanager
def shared_kernel(*, cwd=None, verbose=False, warm=None):
    """A Python kernel that several notebooks run in, one after another: imports are paid once.

    Pass it to :func:`execute` as ``km``; it is shut down when the block ends (Ctrl-C included).
    A notebook reuses the names the previous one left only by assigning them again, so the
    report notebook starts from its parameters and ``evallib.load`` alone. ``warm``: code the kernel
    runs at once, while the caller goes on (imports, e.g. :data:`WARM_REPORT`); :func:`execute`
    waits for it to finish before a notebook connects (one client at a time).
    """
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(cwd) if cwd else None, extra_arguments=[] if verbose else list(_QUIET_KERNEL))
    try:
        if warm:
            _WARMING[km] = threading.Thread(target=_run_quietly, args=(km, warm), daemon=True,
                                            name="evallib-warm-kernel")
            _WARMING[km].start()
        yield km
    finally:
        km.shutdown_kernel(now=True)


def execute(notebook, output, parameters, *, cwd=None, timeout=1800, verbose=False, km=None):
    """Run ``notebook`` with ``parameters`` into ``output`` (written atomically, also on failure).

    Unless ``verbose``, the kernel's log messages below ERROR and the Jupyter libraries' Python
    warnings are silenced (cell outputs are kept in the notebook either way). ``km``: a running
    kernel to use (:func:`shared_kernel`); by default a new one is started and shut down.
    """
    import papermill as pm

    output = Path(output)
    if km is None:  # a kernel of our own, shut down however the run ends (Ctrl-C included)
        with shared_kernel(cwd=cwd, verbose=verbose) as own:
            return execute(notebook, output, parameters, cwd=cwd, timeout=timeout, verbose=verbose, km=own)
    warming = _WARMING.pop(km, None)
    if warming is not None:
        warming.join()
    if not km.is_alive():
        km.restart_kernel(now=True)
    with atomic_path(output) as tmp, warnings.catch_warnings():
        if not verbose:
            warnings.filterwarnings("ignore", module=_JUPYTER_MODULES)
        try:
            pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, cwd=str(cwd) if cwd else None,
                                progress_bar=False, request_save_on_cell_execute=False, execution_timeout=timeout,
                                start_timeout=600,  # a shared kernel answers once its warm-up imports are done
                                kernel_name="python3", log_output=False,
                                extra_arguments=[] if verbose else list(_QUIET_KERNEL),
                                **({"km": km} if km is not None else {}))
        except Exception:
            # the partial notebook shows where it stopped; the last good report stays in place
            if tmp.exists():
                shutil.copyfile(tmp, output.with_name(output.stem + ".failed.ipynb"))
            raise


def to_html(notebook, html_path, *, show_code=False, title=None, metrics_key=None):
    """Render an executed notebook to self-contained HTML (images embedded, nothing fetched).

    ``metrics_key`` (the metrics a report shows) goes into the page's head as
    ``<meta name="evallib-metrics-key">``: a page can be matched with the metrics it came from.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata.pop("widgets", None)
    if title:
        nb.metadata["title"] = title
    if metrics_key:
        nb.metadata["evallib"] = {"metrics_key": metrics_key}
    exporter = HTMLExporter(template_name="evallib", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=not show_code, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    write_text(html_path, body)
    return Path(html_path)
