"""Verification metrics for embedding models: every pair of samples, block by block.

The score of a pair is the cosine similarity of its two embeddings, computed exactly.
Embeddings are L2-normalized and each component is rounded to a multiple of ``2**-24``
(float32 holds these exactly). A product of two components is then a multiple of ``2**-48``,
and every partial sum of a dot product is at most ``sum |a_k b_k| <= |a| |b|``, about 1: under
``2**49`` of those units, within float64's 53 bits. Float64 adds them without rounding, in any
order, with or without FMA. So the score of a pair, and everything derived from the scores
(thresholds, counts, AUC, EER, policies), is the same number on every backend, block size and
thread count.

Scores of all ``N (N - 1) / 2`` pairs are computed in blocks of rows and columns; no ``N x N``
matrix and no list of all pairs is ever held. Genuine (same label) and impostor scores are
counted into fine histograms over [-1, 1] whose bin width is a power of two, so bin membership
and the edges are exact. While the number of pairs is at most ``exact_limit`` the scores are
also kept and the sweep is exact. Above it the sweep is binned; TAR@FAR and the threshold table
are then made exact by collecting the raw scores of only the few bins that hold the thresholds
asked for. On the NumPy backend the blocks are shared among ``threads`` threads, each with its
own partial histograms (integer counts: their sum does not depend on the order). With a Dask
client, groups of blocks run as tasks on the workers through the same block function, and the client
merges their counts and kept scores in block order: the same result again.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ..errors import EvallibError
from .bootstrap import bootstrap_verification
from .sweep import ThresholdSweep, _warn, check_scores, sweep_from_histograms

FAR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
TABLE_THRESHOLDS = tuple(np.round(np.arange(0.0, 1.0001, 0.1), 10))
GRID_BITS = 24  # normalized components are multiples of 2**-24
BIN_BITS = 21  # 2**21 bins over [-1, 1]: width 2**-20, about 9.5e-7
_NB = 1 << BIN_BITS
_HALF = 1 << (BIN_BITS - 1)
# block sizing from free memory: bytes per pair of a block (float64 score, int64 bin, masks and
# temporaries), the share of free memory the blocks in flight may take, and the limits
_BYTES_PER_PAIR = 40
_MEMORY_SHARE = 0.25
_BLOCK_MIN = 256
_BLOCK_CAP = {"numpy": 2048, "cupy": 4096}
_TASKS_PER_THREAD = 4  # Dask tasks per worker thread: balance, and little to redo when a worker is lost


def get_backend(backend="auto"):
    """``(xp, name)``: CuPy when asked or when installed with a GPU present (``auto``), else NumPy."""
    if backend not in ("auto", "numpy", "cupy"):
        raise EvallibError(f"backend: expected one of auto, numpy, cupy; got {backend!r}")
    if backend == "numpy":
        return np, "numpy"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy, "cupy"
    except Exception:  # noqa: BLE001 -- no CuPy, no driver or no device all mean NumPy
        if backend == "cupy":
            raise EvallibError("backend: 'cupy' was asked for but CuPy or a GPU is not available") from None
    if backend == "cupy":
        raise EvallibError("backend: 'cupy' was asked for but no GPU device was found")
    return np, "numpy"


def _np(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def normalize_embeddings(embeddings, name="embeddings"):
    """L2-normalized embeddings, each component rounded to a multiple of ``2**-24`` (ties to even).

    Returns an ndarray of shape (n_samples, dim), float32 (which holds these values exactly).
    """
    e = check_scores(name, embeddings, ndim=2)
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    if (norm == 0).any():
        raise EvallibError(f"{name}: expected non-zero vectors; got {int((norm == 0).sum())} all-zero rows "
                           f"(first at row {int(np.nonzero(norm[:, 0] == 0)[0][0])})")
    scale = float(1 << GRID_BITS)
    return (np.round(e / norm * scale) / scale).astype(np.float32)


def _scores(xp, a, b):
    """Scores of every row of ``a`` against every row of ``b``: ndarray of shape (len(a), len(b)).

    ``a`` and ``b`` hold normalized embeddings; the float64 product is exact (module notes), so
    its value does not depend on how the library splits or orders the sums.
    """
    return a.astype(xp.float64) @ b.astype(xp.float64).T


def _bins(xp, s):
    """Bin of each score: ``floor(s * 2**20) + 2**20``, clipped to ``[0, 2**21)``; int64.

    Scores are multiples of ``2**-48`` within about 1e-5 of [-1, 1], so ``s * 2**20 + 2**20`` is exact
    and truncating it equals the floor wherever it is not clipped.
    """
    b = (s * float(_HALF) + float(_HALF)).astype(xp.int64)
    xp.clip(b, 0, _NB - 1, out=b)
    return b


def _edges():
    return (np.arange(_NB, dtype=np.float64) - _HALF) / float(_HALF)


def _bin_of(values):
    """Bin of arbitrary float64 values (thresholds): ``floor(v * 2**20) + 2**20``, clipped."""
    v = np.asarray(values, dtype=np.float64)
    return np.clip(np.floor(v * float(_HALF)).astype(np.int64) + _HALF, 0, _NB - 1)


def _workers(threads):
    """Threads for the pass over pairs: ``threads``, or one per core for 0."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise EvallibError(f"threads: expected an integer >= 0 (0 = one per core); got {threads!r}")
    return int(threads) or (os.cpu_count() or 1)


def _check_block_size(block_size):
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer))
                                   or block_size < 1):
        raise EvallibError(f"block_size: expected None (sized from free memory) or an integer >= 1; "
                           f"got {block_size!r}")


def _free_memory(xp):
    """Bytes free for the blocks: available host memory (NumPy), or free GPU memory (CuPy)."""
    if xp is np:
        import psutil

        return int(psutil.virtual_memory().available)
    return int(xp.cuda.runtime.memGetInfo()[0] + xp.get_default_memory_pool().free_bytes())


def _auto_block_size(free_bytes, *, backend="numpy", workers=1):
    """Rows (and columns) per block for ``workers`` blocks in flight within a quarter of ``free_bytes``.

    A block of ``b x b`` pairs takes about ``40 b**2`` bytes plus three histograms of ``2**21``
    counts. The result is a multiple of 256, at least 256 and at most 2048 (NumPy) or 4096 (CuPy).
    """
    per_worker = _MEMORY_SHARE * free_bytes / max(1, workers) - 3 * 8 * _NB
    b = int(np.sqrt(max(per_worker, 0) / _BYTES_PER_PAIR)) // _BLOCK_MIN * _BLOCK_MIN
    return int(min(_BLOCK_CAP[backend], max(_BLOCK_MIN, b)))


@dataclass(frozen=True)
class VerificationResult:
    """Verification metrics from genuine and impostor similarity scores.

    ``tar_at_far`` maps each FAR target to ``{"tar", "threshold"}`` (NaN where the number of
    impostor pairs cannot support the target). ``table`` is the threshold table (lists per
    column). ``policies`` maps each threshold policy to its :class:`ThresholdChoice`.
    """

    n_samples: int
    n_identities: int
    n_genuine: int
    n_impostor: int
    protocol: str
    sweep: ThresholdSweep
    auc: float
    auc_bound: float
    eer: float
    eer_threshold: float
    tar_at_far: dict
    table: dict
    policies: dict
    histogram: dict
    lfw: dict | None = None
    backend: str = "numpy"
    notes: list = field(default_factory=list)
    intervals: dict = field(default_factory=dict)

    @property
    def exact(self):
        return self.sweep.exact

    def to_dict(self):
        return {
            "n_samples": self.n_samples, "n_identities": self.n_identities, "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor, "protocol": self.protocol, "exact": self.exact, "auc": self.auc,
            "auc_bound": self.auc_bound, "eer": self.eer, "eer_threshold": self.eer_threshold,
            "tar_at_far": {f"{k:g}": v for k, v in self.tar_at_far.items()},
            "table": {k: np.asarray(v).tolist() for k, v in self.table.items()},
            "policies": {k: v.to_dict() for k, v in self.policies.items()},
            "histogram": self.histogram, "lfw": self.lfw, "backend": self.backend, "notes": self.notes,
            "intervals": self.intervals,
        }


def sweep_from_sorted_scores(gen_sorted, imp_sorted):
    """Exact sweep from genuine and impostor scores, each sorted ascending (no re-sort of the pairs)."""
    allv = np.concatenate([gen_sorted, imp_sorted])
    allv.sort()
    if len(allv) == 0:
        return ThresholdSweep(np.zeros(0), np.zeros(0), np.zeros(0), 0, 0)
    thr = allv[np.r_[np.nonzero(np.diff(allv))[0], len(allv) - 1]]  # distinct, ascending
    tp = len(gen_sorted) - np.searchsorted(gen_sorted, thr, side="left")
    fp = len(imp_sorted) - np.searchsorted(imp_sorted, thr, side="left")
    return ThresholdSweep(thr[::-1].astype(np.float64), tp[::-1].astype(np.float64), fp[::-1].astype(np.float64),
                          len(gen_sorted), len(imp_sorted))


def _blocks(n, b):
    """The blocks of pairs ``i < j`` of ``n`` samples: ``(r0, c0)`` of each, row by row, ``c0 >= r0``."""
    return [(r0, c0) for r0 in range(0, n, b) for c0 in range(r0, n, b)]


def _count_block(xp, e, lab, r0, c0, b, hist, *, exact, xlut, rate, seed):
    """Score the block of rows ``r0:r0 + b`` by columns ``c0:c0 + b`` (pairs i < j only), count it into ``hist``.

    Parameters
    ----------
    xp : module
        The array module (NumPy or CuPy) of ``e``, ``xlut`` and ``hist``.
    e : ndarray of shape (n_samples, dim)
        Normalized embeddings, sorted by label.
    lab : ndarray of shape (n_samples,)
        Their label indices (NumPy, ascending).
    hist : dict
        ``"all"`` and ``"gen"``: int64 arrays of shape (2**21,) that the block's counts are added to.
    xlut : ndarray of shape (2**21,) or None
        Bins whose raw impostor scores are kept (binned path).
    rate : float
        Probability with which each impostor pair joins the bootstrap sample.
    seed : int
        With ``r0, c0``, the seed of the block's own random stream.

    Returns
    -------
    dict
        The block's raw scores that the pass keeps, as NumPy arrays: genuine scores and identities, every
        impostor score (``exact``) or those in the bins flagged by ``xlut`` with their bins, and the
        impostor sample (rows ``(score, id_a, id_b)``). A pure function of its arguments: a thread or a
        Dask worker, on a first run or a rerun, gives the same result.
    """
    lr, lc = lab[r0:r0 + b], lab[c0:c0 + b]
    s = _scores(xp, e[r0:r0 + b], e[c0:c0 + b])
    bins = _bins(xp, s)
    # labels are sorted: genuine pairs only where the two label ranges meet
    same = (xp.asarray(lr)[:, None] == xp.asarray(lc)[None, :]) if lr[0] <= lc[-1] and lc[0] <= lr[-1] else None
    valid = (xp.arange(len(lr))[:, None] < xp.arange(len(lc))[None, :]) if c0 == r0 else None
    out = {}
    if valid is None and same is None:  # the common block: all impostors, all valid
        hist["all"] += xp.bincount(bins.ravel(), minlength=_NB)
        imp_mask = None
    else:
        vmask = valid if valid is not None else xp.ones(s.shape, dtype=bool)
        hist["all"] += xp.bincount(bins[vmask], minlength=_NB)
        if same is not None:
            gmask = same & vmask
            hist["gen"] += xp.bincount(bins[gmask], minlength=_NB)
            out["gen"] = _np(s[gmask])
            out["gen_ids"] = lr[_np(xp.nonzero(gmask)[0])]
            imp_mask = vmask & ~same
        else:
            imp_mask = vmask
    if exact:
        out["imp"] = _np(s[imp_mask] if imp_mask is not None else s.ravel())
    elif xlut is not None:
        flag = xlut[bins]
        if imp_mask is not None:
            flag &= imp_mask
        out["kept"] = _np(s[flag])
        out["kept_bins"] = _np(bins[flag])
    rng = np.random.default_rng([seed, r0, c0])  # one stream per block: any thread, worker or order
    out["sample"] = _sample_impostors(xp, rng, rate, s, lr, lc, valid is not None)
    return out


def _sample_impostors(xp, rng, rate, s, lr, lc, diag):
    """A uniform random sample of a block's impostor pairs: ``(score, id_a, id_b)`` rows."""
    r, q = s.shape
    k = rng.binomial(r * q, rate) if rate < 1 else r * q
    if k == 0:
        return np.zeros((0, 3))
    if k == r * q:
        flat = np.arange(r * q)
    else:  # distinct positions, sorted (np.unique's result, without its hashing)
        flat = np.sort(rng.integers(0, r * q, size=k))
        flat = flat[np.r_[True, flat[1:] != flat[:-1]]]
    ii, jj = np.divmod(flat, q)
    keep = lr[ii] != lc[jj]
    if diag:
        keep &= jj > ii
    ii, jj = ii[keep], jj[keep]
    vals = _np(s[xp.asarray(ii), xp.asarray(jj)]).astype(np.float64)
    return np.stack([vals, lr[ii], lc[jj]], axis=1)


def _count_blocks(e, lab, blocks, b, lut, *, exact, rate, seed):
    """One Dask task of the pass: :func:`_count_block` over ``blocks`` (``(r0, c0)`` pairs), on NumPy.

    Returns the per-block results in the order of ``blocks``, and the task's histograms as
    ``{"all": (bins, counts), "gen": (bins, counts)}`` over their nonzero bins only (int64 arrays).
    """
    hist = {"all": np.zeros(_NB, dtype=np.int64), "gen": np.zeros(_NB, dtype=np.int64)}
    parts = [_count_block(np, e, lab, r0, c0, b, hist, exact=exact, xlut=lut, rate=rate, seed=seed)
             for r0, c0 in blocks]
    nonzero = {k: np.flatnonzero(h) for k, h in hist.items()}
    return parts, {k: (i, hist[k][i]) for k, i in nonzero.items()}


def _check_client(client):
    """``client`` if it is None or a synchronous ``dask.distributed.Client``; distributed is imported only then."""
    if client is None:
        return None
    try:
        from distributed import Client
    except ImportError:
        raise TypeError(f"client: expected a dask.distributed.Client or None; got {type(client).__name__} "
                        "(and dask.distributed is not installed: pip install 'evallib[dask]')") from None
    if not isinstance(client, Client):
        raise TypeError(f"client: expected a dask.distributed.Client or None; got {type(client).__name__}")
    if client.asynchronous:
        raise TypeError("client: expected a synchronous dask.distributed.Client; got an asynchronous one")
    return client


class VerificationMetrics:
    """All-pairs verification metrics, fed embeddings batch by batch.

    Pairs span batches, so ``update`` keeps the (normalized) embeddings and ``compute`` scores
    every pair once, block by block: the result is the same for any split of the data, any
    block size, any number of threads and either backend.

    Parameters
    ----------
    exact_limit : int
        Keep every score (exact sweep) while the number of pairs is at most this.
    block_size : int or None
        Rows and columns per similarity block. ``None`` sizes the blocks from free memory at
        ``compute`` (host memory for NumPy, GPU memory for CuPy; see ``docs/metrics.md``).
    threads : int
        Threads sharing the blocks on the NumPy backend, each with a single-threaded BLAS;
        0 means one per core. The GPU backend runs the blocks one after another.
    backend : {"auto", "numpy", "cupy"}
    far_targets : sequence of float
    table_thresholds : sequence of float
    presample : int
        Random impostor pairs scored first to find the score bins that hold each FAR target's
        threshold; their raw scores are collected during the pass (a second pass runs only
        if a threshold falls outside them). 0: no presample; the first pass keeps the table's
        bins only and a second pass collects the bins of every FAR target.
    memory_limit : int or None
        Bytes of memory the pass may plan its blocks for when ``block_size`` is None (default:
        the memory free now; on a GPU, its free memory).
    client : dask.distributed.Client or None
        Score the pairs on the client's workers: the normalized embeddings and labels are
        scattered to every worker once, each task counts a group of blocks on NumPy and
        returns its partial histograms and kept scores, and the client merges them. The
        result equals the local one exactly. ``threads`` and ``backend`` (``"auto"`` or
        ``"numpy"``) are then not used; ``block_size=None`` sizes the blocks from the
        workers' memory limits and threads. ``None`` (default): this process does it all.

    Attributes
    ----------
    block : int or None
        Rows per block of the last ``compute``.
    passes : int
        Passes over all pairs so far.
    last_pass : dict
        How the last local pass ran: ``threads`` (how many counted blocks), ``blocks_per_thread``
        and ``blas_threads`` (the BLAS thread counts those threads saw), to check that the
        threads share the work and do not oversubscribe the cores.
    """

    def __init__(self, *, exact_limit=20_000_000, block_size=None, threads=0, backend="auto",
                 far_targets=FAR_TARGETS, table_thresholds=TABLE_THRESHOLDS, bootstrap_pairs=100_000, seed=0,
                 policy_far=1e-3, presample=1_000_000, memory_limit=None, client=None):
        _check_block_size(block_size)
        self.workers = _workers(threads)
        self.client = _check_client(client)
        if self.client is not None and backend not in ("auto", "numpy"):
            raise EvallibError(f"backend: expected auto or numpy with a client (the workers score on NumPy); "
                               f"got {backend!r}")
        self.xp, self.backend = get_backend("numpy" if self.client is not None else backend)
        self.policy_far = policy_far
        self.exact_limit = int(exact_limit)
        self.block_size = None if block_size is None else int(block_size)
        self.block = self.block_size
        self.far_targets = tuple(far_targets)
        self.table_thresholds = np.asarray(table_thresholds, dtype=np.float64)
        self.bootstrap_pairs = int(bootstrap_pairs)
        self.presample = int(presample)
        if self.presample < 0:
            raise EvallibError(f"presample: expected a count >= 0; got {presample!r}")
        self.memory_limit = None if memory_limit is None else int(memory_limit)
        self.last_pass = {}
        self.seed = seed
        self._emb, self._lab = [], []
        self._names = {}
        self._scattered = None  # the embeddings and labels on the workers, during compute
        self.passes = 0

    def update(self, embeddings, labels):
        """Add a batch: ``embeddings`` of shape (n, dim), ``labels`` of shape (n,) (identity of each)."""
        e = normalize_embeddings(embeddings)
        lab = np.asarray(labels)
        if lab.ndim != 1 or len(lab) != len(e):
            raise EvallibError(f"labels: expected shape ({len(e)},), one per embedding; got shape {lab.shape}")
        if self._emb and e.shape[1] != self._emb[0].shape[1]:
            raise EvallibError(f"embeddings: expected dimension {self._emb[0].shape[1]} as in earlier batches; "
                               f"got {e.shape[1]}")
        ids = np.fromiter((self._names.setdefault(v, len(self._names)) for v in lab.tolist()), np.int64, len(lab))
        self._emb.append(e)
        self._lab.append(ids)

    @property
    def n(self):
        return sum(len(x) for x in self._lab)

    # -- the pass over pairs
    def _count_block(self, e, lab, r0, c0, hist, *, exact, xlut, rate):
        """The module's :func:`_count_block` on this metric's array module, block size and seed."""
        return _count_block(self.xp, e, lab, r0, c0, self.block, hist, exact=exact, xlut=xlut, rate=rate,
                            seed=self.seed)

    def _run_blocks(self, count, n):
        """``count(r0, c0, hist)`` over the blocks of pairs i < j, shared among the threads.

        Returns the per-block results in block order and the summed histograms.
        """
        xp, b = self.xp, self.block
        blocks = _blocks(n, b)
        workers = 1 if xp is not np else max(1, min(self.workers, len(blocks)))
        free = queue.SimpleQueue()  # one pair of partial histograms per thread
        hists = [{"all": xp.zeros(_NB, dtype=xp.int64), "gen": xp.zeros(_NB, dtype=xp.int64)} for _ in range(workers)]
        for h in hists:
            free.put(h)

        used, blas, lock = {}, set(), threading.Lock()

        def one(block):
            ident = threading.get_ident()
            with lock:
                first = ident not in used
                used[ident] = used.get(ident, 0) + 1
            if first and xp is np:
                blas.update(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
            h = free.get()
            try:
                return count(*block, h)
            finally:
                free.put(h)

        if xp is not np:
            parts = [one(block) for block in blocks]
        else:
            # the threads are the parallelism; with fewer blocks than threads, BLAS takes the rest
            with threadpool_limits(limits=max(1, self.workers // workers), user_api="blas"):
                if workers == 1:
                    parts = [one(block) for block in blocks]
                else:
                    with ThreadPoolExecutor(workers) as pool:
                        parts = list(pool.map(one, blocks))
        total = {k: _np(sum(h[k] for h in hists)) for k in ("all", "gen")}
        self.last_pass = {"threads": len(used), "blocks_per_thread": sorted(used.values()),
                          "blas_threads": sorted(blas)}
        return parts, total

    def _run_tasks(self, n, *, exact, lut, rate):
        """The blocks of pairs i < j as Dask tasks on ``self.client``, groups of blocks in block order.

        The embeddings and labels were scattered to every worker by ``compute``. Returns the per-block
        results in block order and the summed histograms, as :meth:`_run_blocks` does.
        """
        from distributed import as_completed

        client, blocks = self.client, _blocks(n, self.block)
        threads = sum(client.nthreads().values())
        groups = np.array_split(np.arange(len(blocks)), max(1, min(len(blocks), _TASKS_PER_THREAD * max(1, threads))))
        e, lab = self._scattered
        # hash=False: a fresh key per call, so releasing an earlier call's copy of the same data loses nothing
        lut = client.scatter(lut, broadcast=True, hash=False) if lut is not None else None
        futures = [client.submit(_count_blocks, e, lab, [blocks[i] for i in g], self.block, lut, exact=exact,
                                 rate=rate, seed=self.seed, pure=True) for g in groups]
        where = {f.key: k for k, f in enumerate(futures)}
        results = [None] * len(futures)
        hist = {"all": np.zeros(_NB, dtype=np.int64), "gen": np.zeros(_NB, dtype=np.int64)}
        for future, (parts, nonzero) in as_completed(futures, with_results=True):
            k = where[future.key]
            results[k], futures[k] = parts, None  # the worker may drop the result now
            for name, (bins, counts) in nonzero.items():
                hist[name][bins] += counts  # integer counts: the sum does not depend on the order
        return [part for parts in results for part in parts], hist

    def _cluster_block_size(self):
        """Rows per block for the client's workers: the smallest of their sizes from memory and threads.

        A worker with no memory limit, or a cluster with no workers yet, is sized from this machine's
        available memory.
        """
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        sizes = [_auto_block_size(w.get("memory_limit") or _free_memory(np), workers=w["nthreads"]) for w in workers]
        return min(sizes) if sizes else _auto_block_size(_free_memory(np))

    def _presample(self, e, lab, n_imp):
        """Scores of random impostor pairs (for the bins to collect)."""
        if self.presample == 0:
            return np.zeros(0)
        rng = np.random.default_rng(self.seed + 1)
        side = int(min(len(e), np.ceil(np.sqrt(self.presample))))
        rows = rng.choice(len(e), side, replace=False)
        cols = rng.choice(len(e), side, replace=False)
        s = _scores(np, e[rows], e[cols])  # one small GEMM instead of gathering pairs row by row
        keep = (lab[rows][:, None] != lab[cols][None, :]) & (rows[:, None] != cols[None, :])
        return np.sort(s[keep])[::-1]

    def _lut(self, sample):
        """Bins whose raw scores the pass keeps: around each FAR target's likely threshold, and the table's."""
        lut = np.zeros(_NB, dtype=bool)
        lut[_bin_of(self.table_thresholds)] = True
        m = len(sample)
        for f in self.far_targets if m else ():
            kk = f * m
            z = 6.0 * np.sqrt(kk) + 20  # generous: the sample's pairs share rows
            top = int(max(0, np.floor(kk - z)))
            bottom = int(min(m - 1, np.ceil(kk + z)))
            hi = 1.0 if top == 0 else sample[top]
            lut[_bin_of(sample[bottom]):_bin_of(hi) + 1] = True
        return lut

    def _pass(self, e, lab, *, exact, lut):
        """One pass over all pairs: histograms, genuine scores, kept impostor scores and the sample."""
        xp = self.xp
        n_pairs = len(e) * (len(e) - 1) // 2
        rate = min(1.0, 4.0 * self.bootstrap_pairs / max(n_pairs, 1))
        self.passes += 1
        if self.client is None:
            xlut = xp.asarray(lut) if lut is not None else None
            ed = xp.asarray(e)
            parts, hist = self._run_blocks(
                lambda r0, c0, h: self._count_block(ed, lab, r0, c0, h, exact=exact, xlut=xlut, rate=rate), len(e))
        else:
            parts, hist = self._run_tasks(len(e), exact=exact, lut=lut, rate=rate)

        def cat(key, dtype):
            xs = [p[key] for p in parts if key in p]
            return np.concatenate(xs) if xs else np.zeros(0, dtype)

        sample = [p["sample"] for p in parts if len(p["sample"])]
        return {"hist_all": hist["all"], "hist_gen": hist["gen"], "gen": cat("gen", np.float64),
                "gen_ids": cat("gen_ids", np.int64), "imp": cat("imp", np.float64) if exact else None,
                "kept": cat("kept", np.float64), "kept_bins": cat("kept_bins", np.int64),
                "sample": np.concatenate(sample) if sample else np.zeros((0, 3))}

    def _refine(self, e, lab, bins):
        """A second pass for bins the first one did not keep: their raw impostor scores."""
        lut = np.zeros(_NB, dtype=bool)
        lut[list(bins)] = True
        got = self._pass(e, lab, exact=False, lut=lut)
        return got["kept"], got["kept_bins"]

    # -- results
    def compute(self):
        if not self._emb:
            raise EvallibError("embeddings: expected at least one batch; got none (call update() first)")
        e = np.concatenate(self._emb)
        lab = np.concatenate(self._lab)
        order = np.argsort(lab, kind="stable")
        e, lab = e[order], lab[order]
        counts = np.bincount(lab)
        n_gen = int(np.sum(counts * (counts - 1) // 2))
        n_all = len(lab) * (len(lab) - 1) // 2
        n_imp = n_all - n_gen
        if n_gen == 0 or n_imp == 0:
            missing = "genuine" if n_gen == 0 else "impostor"
            _warn(f"verification metrics are undefined: there are no {missing} pairs "
                  f"({len(lab)} samples); they are NaN")
        exact = n_all <= self.exact_limit
        if self.block_size:
            self.block = self.block_size
        elif self.client is not None:
            self.block = self._cluster_block_size()
        else:
            free = self.memory_limit if self.memory_limit is not None else _free_memory(self.xp)
            self.block = _auto_block_size(free, backend=self.backend,
                                          workers=self.workers if self.xp is np else 1)
        lut = None if exact or n_imp == 0 else self._lut(self._presample(e, lab, n_imp))
        # on a cluster, every worker gets the embeddings and labels once, for both passes
        # (under fresh keys: a second compute of the same data never shares the copy an earlier one releases)
        self._scattered = None if self.client is None else (self.client.scatter(e, broadcast=True, hash=False),
                                                            self.client.scatter(lab, broadcast=True, hash=False))
        try:
            got = self._pass(e, lab, exact=exact, lut=lut)
            self._sample = (got["gen"], got["gen_ids"], got["sample"])
            hist_gen = got["hist_gen"]
            hist_imp = got["hist_all"] - hist_gen
            gen = np.sort(got["gen"])
            if exact:
                sweep = sweep_from_sorted_scores(gen, np.sort(got["imp"]))
                tar, table = _tar_exact(sweep, self.far_targets), sweep.table(self.table_thresholds)
            else:
                sweep = sweep_from_histograms(hist_gen, hist_imp, _edges())
                tar, table = self._tar_and_table_binned(sweep, gen, hist_gen, hist_imp, got, e, lab, lut)
        finally:
            self._scattered = None  # the workers may drop them
        notes = []
        if not exact:
            notes.append(f"{n_all:,} pairs: curves are binned at width {2.0 ** -20:.2g}; AUC is within "
                         f"{sweep.auc_bound:.2g} of the exact value; TAR@FAR and the threshold table are exact")
        return _result(sweep, tar, table, hist_gen, hist_imp, n=len(lab), n_ids=len(counts),
                       policy_far=self.policy_far, backend=self.backend, notes=notes)

    def _tar_and_table_binned(self, sweep, gen, hist_gen, hist_imp, got, e, lab, lut):
        n_imp = int(hist_imp.sum())
        above = np.r_[np.cumsum(hist_imp[::-1])[::-1], 0]  # impostors in bin b or higher; above[-1] = 0
        kept, kept_bins = got["kept"], got["kept_bins"]
        need = {}
        for f in self.far_targets:
            k = int(np.floor(f * n_imp * (1 + 1e-12)))
            if 1 <= k < n_imp:
                need[f] = (k, int(np.nonzero(above[:-1] >= k + 1)[0][-1]))  # bin of the (k+1)-th highest
        missing = {b for _, b in need.values() if not lut[b]}
        if missing:  # the pre-sample missed: collect those bins in a second pass
            more, more_bins = self._refine(e, lab, missing)
            kept, kept_bins = np.r_[kept, more], np.r_[kept_bins, more_bins]
        out = {}
        for f in self.far_targets:
            if f not in need:
                out[f] = {"tar": float("nan"), "threshold": float("nan"), "supported": False}
                continue
            k, b = need[f]
            inbin = np.sort(kept[kept_bins == b])[::-1]
            v = inbin[k - int(above[b + 1])]  # the (k+1)-th highest impostor score
            thr = float(np.nextafter(v, np.inf))  # the lowest threshold that rejects it
            out[f] = {"tar": float(len(gen) - np.searchsorted(gen, v, side="right")) / len(gen) if len(gen)
                      else float("nan"), "threshold": thr, "supported": True}
        tp, fp = [], []
        for t, b in zip(self.table_thresholds, _bin_of(self.table_thresholds)):
            tp.append(len(gen) - int(np.searchsorted(gen, t, side="left")))  # genuine scores are all kept
            fp.append(int(above[b + 1]) + int(np.sum(kept[kept_bins == b] >= t)))
        exact_sweep = ThresholdSweep(self.table_thresholds[::-1], np.array(tp[::-1], float),
                                     np.array(fp[::-1], float), sweep.n_pos, sweep.n_neg)
        return out, exact_sweep.table(self.table_thresholds)

    def bootstrap_sample(self):
        """Genuine scores and identities, and sampled impostor ``(score, id_a, id_b)`` rows (after compute)."""
        gen, gid, imp = self._sample
        return gen, gid, imp


def _tar_exact(sweep, far_targets):
    """TAR at each FAR target read off an exact sweep."""
    out = {}
    for f in far_targets:
        t, thr = sweep.tar_at_far(f) if sweep.n_pos and sweep.n_neg else (float("nan"), float("nan"))
        out[f] = {"tar": t, "threshold": thr, "supported": bool(sweep.n_neg and f * sweep.n_neg >= 1)}
    return out


def _result(sweep, tar, table, hist_gen, hist_imp, *, n, n_ids, policy_far, protocol="all pairs",
            backend="numpy", notes=(), lfw=None, intervals=None):
    """The :class:`VerificationResult` of a sweep, its TAR@FAR, table and score histograms."""
    from .sweep import POLICIES

    ok = sweep.n_pos > 0 and sweep.n_neg > 0
    auc = sweep.auc() if ok else float("nan")
    eer, eer_t = sweep.eer() if ok else (float("nan"), float("nan"))
    policies = {p: sweep.choose(p, far_target=policy_far) for p in POLICIES} if ok else {}
    coarse = 200
    return VerificationResult(
        n_samples=n, n_identities=n_ids, n_genuine=int(sweep.n_pos), n_impostor=int(sweep.n_neg),
        protocol=protocol, sweep=sweep, auc=auc, auc_bound=sweep.auc_bound, eer=eer, eer_threshold=eer_t,
        tar_at_far=tar, table=table, policies=policies,
        histogram={"edges": np.linspace(-1, 1, coarse + 1).tolist(), "genuine": _coarsen(hist_gen, coarse).tolist(),
                   "impostor": _coarsen(hist_imp, coarse).tolist()},
        lfw=lfw, backend=backend, notes=list(notes), intervals=intervals or {})


def _coarsen(hist, n):
    edges = np.linspace(0, len(hist), n + 1).astype(int)
    return np.add.reduceat(hist, edges[:-1])


def pair_scores(embeddings, i, j):
    """Cosine similarity of the listed pairs ``(i[k], j[k])``."""
    e = normalize_embeddings(embeddings)
    return np.einsum("nd,nd->n", e[i].astype(np.float64), e[j].astype(np.float64))  # exact, as _scores


def lfw_accuracy(scores, same, fold):
    """LFW protocol: per fold, the max-accuracy threshold on the other folds, accuracy on this one.

    Returns ``{"mean", "std", "accuracies", "thresholds"}`` (std with ``ddof=0``).
    """
    from .sweep import threshold_sweep

    scores, same, fold = np.asarray(scores, float), np.asarray(same, bool), np.asarray(fold)
    accs, thrs = [], []
    for f in np.unique(fold):
        train, test = fold != f, fold == f
        t = threshold_sweep(same[train], scores[train]).choose("max_accuracy").threshold
        accs.append(float(np.mean((scores[test] >= t) == same[test])))
        thrs.append(float(t))
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "accuracies": accs, "thresholds": thrs}


def evaluate_verification(embeddings, labels, *, pairs=None, exact_limit=20_000_000, block_size=None, threads=0,
                          backend="auto", far_targets=FAR_TARGETS, table_thresholds=TABLE_THRESHOLDS,
                          policy_far=1e-3, n_bootstrap=0, seed=0, client=None):
    """Verification metrics from embeddings.

    Parameters
    ----------
    embeddings : array-like of shape (n_samples, dim)
    labels : array-like of shape (n_samples,)
        Identity of each sample. With ``pairs=None`` every pair of samples is scored and pairs
        with the same label are genuine.
    pairs : tuple ``(i, j, same)`` or ``(i, j, same, fold)``, optional
        An explicit pair list (index arrays into ``embeddings`` and the same/different flag);
        with ``fold`` the LFW 10-fold accuracy is reported too.
    block_size : int or None
        Rows and columns per similarity block of the all-pairs pass; ``None`` sizes them from
        free memory. The results do not depend on it.
    threads : int
        Threads of the all-pairs pass on the NumPy backend (0: one per core). The results do not
        depend on it.
    n_bootstrap : int
        Resamples of identities for the AUC and TAR@FAR intervals (0: none).
    client : dask.distributed.Client or None
        Score the pairs of the all-pairs pass on the client's workers (see
        :class:`VerificationMetrics`); the results, intervals included, equal the local ones
        exactly. Not used with ``pairs``. ``None`` (default): all in this process.

    Returns
    -------
    VerificationResult
    """
    if pairs is None:
        m = VerificationMetrics(exact_limit=exact_limit, block_size=block_size, threads=threads, backend=backend,
                                far_targets=far_targets, table_thresholds=table_thresholds, policy_far=policy_far,
                                client=client)
        m.update(embeddings, labels)
        res = m.compute()
        if n_bootstrap:
            res.intervals.update(bootstrap_verification(*m.bootstrap_sample(), n_boot=n_bootstrap, seed=seed,
                                                        far_targets=(policy_far,)))
        return res
    if len(pairs) not in (3, 4):
        raise EvallibError(f"pairs: expected (i, j, same) or (i, j, same, fold); got {len(pairs)} items")
    _check_block_size(block_size)  # unused for a pair list, but checked alike
    _workers(threads)
    _check_client(client)
    i, j, same = (np.asarray(p) for p in pairs[:3])
    n = len(np.asarray(embeddings))
    for name, idx in (("pairs i", i), ("pairs j", j)):
        if idx.ndim != 1 or len(idx) != len(same):
            raise EvallibError(f"{name}: expected shape ({len(same)},) like same; got {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise EvallibError(f"{name}: expected indices 0..{n - 1} into embeddings; got {int(idx.max())}")
    s = pair_scores(embeddings, i, j)
    same = same.astype(bool)
    from .sweep import threshold_sweep

    sweep = threshold_sweep(same, s)
    edges = np.linspace(-1, 1, 4097)
    hg, _ = np.histogram(s[same], bins=edges)
    hi, _ = np.histogram(s[~same], bins=edges)
    lfw = lfw_accuracy(s, same, pairs[3]) if len(pairs) == 4 else None
    intervals = {}
    if n_bootstrap:
        ids = np.asarray(labels)
        if not np.issubdtype(ids.dtype, np.integer):
            ids = np.unique(ids.astype(str), return_inverse=True)[1]
        imp = np.stack([s[~same], ids[i[~same]], ids[j[~same]]], axis=1)
        intervals = bootstrap_verification(s[same], ids[i[same]], imp, n_boot=n_bootstrap, seed=seed,
                                           far_targets=(policy_far,))
    return _result(sweep, _tar_exact(sweep, far_targets), sweep.table(np.asarray(table_thresholds, dtype=np.float64)),
                   hg, hi, n=n, n_ids=len(np.unique(np.asarray(labels))), policy_far=policy_far,
                   protocol="pair list", lfw=lfw, intervals=intervals)


def extreme_pairs(embeddings, labels, k=4, *, block_size=2048):
    """The ``k`` genuine pairs with the lowest similarity (worst false rejects) and the ``k``
    impostor pairs with the highest (worst false accepts), found block by block.

    Returns two lists of ``(i, j, similarity)``, worst first.
    """
    e = normalize_embeddings(embeddings)
    lab = np.asarray(labels)
    low, high = [], []
    n = len(e)
    for r0 in range(0, n, block_size):
        for c0 in range(r0, n, block_size):
            s = _scores(np, e[r0:r0 + block_size], e[c0:c0 + block_size])
            ii, jj = np.indices(s.shape)
            ii, jj = ii + r0, jj + c0
            valid = jj > ii
            same = lab[ii] == lab[jj]
            for mask, bucket, sign in ((valid & same, low, 1.0), (valid & ~same, high, -1.0)):
                vals = s[mask]
                if len(vals) == 0:
                    continue
                top = np.argsort(sign * vals, kind="stable")[:k]
                bucket += [(int(ii[mask][t]), int(jj[mask][t]), float(vals[t])) for t in top]
            low.sort(key=lambda t: t[2])
            high.sort(key=lambda t: -t[2])
            del low[k:], high[k:]
    return low, high
