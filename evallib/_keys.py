"""Cache keys: what each stage's outputs are made from, so that a change redoes exactly what it affects.

============================  ===========================================================  ==================
key                           made from (a change to any of these invalidates it)           reuses
============================  ===========================================================  ==================
:func:`predictions_key`       the model file's content (sha256), the data folder, each      ``predictions.npz``
                              listed file's name and content hash, the labels, the class
                              names, ``preprocess``, ``outputs``, and
                              :data:`PREDICTIONS_KEY_VERSION`
:func:`metrics_key`           the predictions key, every setting but ``runtime``            ``metrics.json``,
                              (:meth:`~evallib.params.Params.settings`), evallib's code,    ``metrics.npz``
                              the content of the pair list, protocol files and label
                              corrections (:func:`metrics_files_digest`)
:func:`report_key`            the params, the metrics key, evallib's code, ``show_code``,   ``report.html``
                              and the headline metrics of the other models on the same
                              data (:func:`peers_digest`)
:func:`index_key`             evallib's code, the primary metric, ``show_code``, each       ``index.html``
                              model's status, error, data and ``metrics.json``
:func:`data_fingerprint`      each evaluated image's content hash with its label name       (which models are
                                                                                           compared)
============================  ===========================================================  ==================

A file's content hash (:func:`content_hash`, BLAKE2b of its bytes) is what counts, not its name,
size or time: an image replaced by another of the same size and modification time (``cp -p``,
``rsync -t``, a restored backup) changes the key. Hashing every image on every run would cost a
read of the whole data set, so :func:`hash_listing` first compares each file's stat fields (size,
modification and change times in nanoseconds, inode) with those recorded when it was last hashed
(:class:`FileIndex`, kept in ``predictions.npz``), and hashes only the files whose fields differ, as
git's index does. The change time cannot be set back by a user, so a file written again is hashed
again even when its size and modification time were restored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data import Dataset
    from .params import Params

PREDICTIONS_KEY_VERSION = 5  # 5: content hashes instead of sizes and times; typed params sections

_HASH_BYTES = 16
_CHUNK = 1 << 20


def content_hash(data: bytes) -> str:
    """The content hash of a file's bytes: BLAKE2b with a 16-byte digest, 32 hexadecimal digits."""
    return hashlib.blake2b(data, digest_size=_HASH_BYTES).hexdigest()


def file_content_hash(path: str | Path) -> str:
    """:func:`content_hash` of a file's bytes, read in chunks."""
    h = hashlib.blake2b(digest_size=_HASH_BYTES)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def file_stat(path: str | Path) -> tuple[int, int, int, int]:
    """``(size, mtime_ns, ctime_ns, inode)``: the stat fields that say a file may have changed."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


@dataclass(frozen=True)
class FileIndex:
    """Each listed file's stat fields when it was hashed, and its content hash.

    Attributes
    ----------
    paths : tuple of str
        Relative to the data folder.
    stats : ndarray of shape (n_files, 4)
        ``(size, mtime_ns, ctime_ns, inode)`` of each file (:func:`file_stat`), int64.
    hashes : tuple of str
        :func:`content_hash` of each file, or ``"unreadable: <reason>"``.
    """

    paths: tuple
    stats: np.ndarray
    hashes: tuple

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as arrays (``index_paths``, ``index_stats``, ``index_hashes``) for ``predictions.npz``."""
        return {"index_paths": np.array(list(self.paths), dtype=str),
                "index_stats": np.asarray(self.stats, dtype=np.int64).reshape(-1, 4),
                "index_hashes": np.array(list(self.hashes), dtype=str)}

    @classmethod
    def from_arrays(cls, z: Mapping[str, Any]) -> FileIndex | None:
        """The index from :meth:`to_arrays`' arrays, or None when they are not there."""
        if "index_paths" not in z:
            return None
        return cls(tuple(np.asarray(z["index_paths"]).tolist()), np.asarray(z["index_stats"], dtype=np.int64),
                   tuple(np.asarray(z["index_hashes"]).tolist()))


def hash_listing(root: str | Path, paths: Sequence[str], index: FileIndex | None = None
                 ) -> tuple[list[str], FileIndex, int]:
    """The content hash of each file, hashing only those whose stat fields differ from ``index``.

    Parameters
    ----------
    root : str or Path
    paths : sequence of str
        Relative to ``root``.
    index : FileIndex, optional
        What an earlier call returned.

    Returns
    -------
    hashes : list of str
        One per path; a file that cannot be read gets ``"unreadable: <reason>"``.
    index : FileIndex
        The index of these files now.
    hashed : int
        How many files were read and hashed.
    """
    root = Path(root)
    known = {}
    if index is not None:
        known = {p: (tuple(int(v) for v in s), h) for p, s, h in zip(index.paths, index.stats, index.hashes)}
    hashes, stats, hashed = [], np.zeros((len(paths), 4), dtype=np.int64), 0
    for k, p in enumerate(paths):
        try:
            st = file_stat(root / p)
        except OSError as exc:
            hashes.append(f"unreadable: {exc.strerror or exc}")
            continue
        stats[k] = st
        old = known.get(p)
        if old is not None and old[0] == st and not old[1].startswith("unreadable"):
            hashes.append(old[1])
            continue
        try:
            hashes.append(file_content_hash(root / p))
        except OSError as exc:
            hashes.append(f"unreadable: {exc.strerror or exc}")
        hashed += 1
    return hashes, FileIndex(tuple(paths), stats, tuple(hashes)), hashed


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def predictions_key_of(model_sha256: str, dataset: Dataset, params: Params, hashes: Sequence[str]) -> str:
    """The predictions key of a model file's hash, a listing with the content hash of each file, and the params.

    Parameters
    ----------
    model_sha256 : str
    dataset : Dataset
    params : Params
    hashes : sequence of str
        :func:`content_hash` of each file of ``dataset``, in its order.

    Returns
    -------
    str
        64 hexadecimal digits (sha256).
    """
    if len(hashes) != len(dataset.paths):
        raise ValueError(f"hashes: expected one per file of the dataset ({len(dataset.paths)}); got {len(hashes)}")
    return _digest({
        "v": PREDICTIONS_KEY_VERSION, "model": model_sha256, "root": str(dataset.root),
        "listing": [list(pair) for pair in zip(dataset.paths, hashes)], "labels": dataset.labels.tolist(),
        "classes": dataset.classes, "pre": params.preprocess.to_dict(), "outputs": params.outputs.to_dict(),
    })


def predictions_key(params: Params, *, model_dir: str | Path | None = None) -> str:
    """The key that predictions made from ``params`` now would carry (the model file, the data and the settings).

    ``model_dir``: a model's output folder whose file index spares hashing the files that have not
    changed (:func:`hash_listing`); without it every file is read.
    """
    from .outputs import read_file_index
    from .run import _prepare

    index = read_file_index(model_dir) if model_dir is not None else None
    return _prepare(params, index=index).key


_CODE_DIGEST: str | None = None


def code_digest() -> str:
    """A digest of evallib's own source and templates and of the notebooks: a change recomputes metrics and
    re-renders reports."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        from ._package import notebook_dir

        h = hashlib.sha256()
        here = Path(__file__).parent
        files = sorted([*here.rglob("*.py"), *here.rglob("*.j2"), *here.rglob("*.json"),
                        *notebook_dir().glob("*.ipynb")])
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


def metrics_key(params: Params, predictions_key: str) -> str:
    """What a model's metrics are computed from: its predictions, every setting but ``runtime``, and evallib's code."""
    return _digest({"predictions": predictions_key, "params": params.settings(), "code": code_digest(),
                    "files": metrics_files_digest(params)})


def metrics_files_digest(params: Params) -> dict[str, str]:
    """The content hash of each file the metrics step reads besides the predictions: the pair list, the
    metadata file of the slices, the label corrections, the identification protocol files and, with a role
    column, the manifest (a missing file counts as such)."""
    d = params.data
    keys = ("pairs", "metadata", "label_overrides", *d._PROTOCOL_FILES) + (("csv",) if d.role_column else ())
    out = {}
    for key in keys:
        path = getattr(d, key)
        if path is not None:
            try:
                out[key] = file_content_hash(path)
            except OSError as exc:
                out[key] = f"unreadable: {exc.strerror}"
    return out


def peers_digest(out_root: str | Path, facts: Mapping[str, Any], name: str) -> str:
    """What a report's ranking depends on: the headline metrics of the other models on the same data."""
    from .outputs import data_key
    from .peers import load_peers

    h = hashlib.sha256()
    mine = data_key(facts)
    for other, m in sorted(load_peers(out_root).items()):  # one read of the run's table (evallib.peers)
        if other != name and m["status"] == "ok" and m["data_key"] == mine and m["metrics_key"] is not None:
            h.update(json.dumps([other, m["headline"]], sort_keys=True).encode())
    return h.hexdigest()


def report_key(params: Params, facts: Mapping[str, Any], show_code: bool, peers: str) -> str:
    """What a model's ``report.html`` is drawn from (:func:`peers_digest` gives ``peers``)."""
    return _digest({"params": params.to_dict(), "metrics": facts.get("metrics_key"), "code": code_digest(),
                    "show_code": show_code, "peers": peers})


def index_key(out_root: str | Path, *, primary_metric: str | None, show_code: bool) -> str:
    """What ``index.html`` shows: each run's status, error and data, its metrics, the version comparisons and
    the label reviews."""
    from .outputs import LABELS, LABELS_SUMMARY, METRICS, scan, scan_comparisons

    h = hashlib.sha256(json.dumps([code_digest(), primary_metric, show_code]).encode())
    for m in scan(out_root):
        h.update(json.dumps([m.path.name, m.status, m.run.get("error"), m.run.get("data_fingerprint"),
                             m.run.get("dataset", {}).get("root")]).encode())
        if (m.path / METRICS).exists():
            h.update((m.path / METRICS).read_bytes())
    for f in sorted(Path(out_root).glob(f"{LABELS}/*/{LABELS_SUMMARY}")):  # the label reviews it links
        h.update(f.read_bytes())
    for folder, summary in scan_comparisons(out_root):  # the version comparisons the index links
        h.update(json.dumps([folder.name, (summary.get("regression") or {}).get("overall")],
                            sort_keys=True).encode())
    return h.hexdigest()


def data_fingerprint(file_hashes: Sequence[str], label_names: Sequence[str]) -> str:
    """A hash of the evaluated images: each image's content hash with its label name, in any order.

    Two models evaluated on the same images with the same labels share it, whatever the folder,
    the file names, the layout (class folders, ``label_xxx.png``, a csv) or the order of
    ``classes``; an image added, removed or relabelled changes it.

    Parameters
    ----------
    file_hashes : list of str
        The content hash of each evaluated image (:attr:`Predictions.file_hashes`).
    label_names : list of str
        The label of each image, by name.

    Returns
    -------
    str
        64 hexadecimal digits (sha256).
    """
    if len(file_hashes) != len(label_names):
        raise ValueError(f"label_names: expected one per file hash ({len(file_hashes)}); got {len(label_names)}")
    rows = sorted(zip(map(str, file_hashes), map(str, label_names)))
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
