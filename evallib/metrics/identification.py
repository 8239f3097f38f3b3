"""1:N identification: a probe searched against a gallery of enrolled identities.

The score of a probe and a gallery sample is the verification score (:mod:`.verification`): the
cosine of the two embeddings after :func:`~.verification.normalize_embeddings`, computed in float64,
which is exact. The score of a probe and a gallery *identity* is the highest score over that
identity's gallery samples (max fusion); with one gallery sample (or one pooled template) per
identity it is simply that sample's score.

Closed set (mated searches only)
    The rank of a mated search is one plus the number of other gallery identities scoring higher
    than the mate; with ``ties="pessimistic"`` (the default) a non-mate scoring exactly as high as the
    mate also counts, with ``"optimistic"`` it does not. Rank-k accuracy is the share of mated
    searches with rank <= k; the CMC curve is rank-k accuracy for k = 1, 2, ...

Open set (NIST FRVT 1:N, NISTIR 8271, Grother, Ngan and Hanaoka 2019)
    ``FNIR(T) = #{mated searches whose mate is not at rank <= R with score >= T} / #mated``;
    ``FPIR(T) = #{non-mated searches with any candidate scoring >= T} / #non-mated`` (the top
    candidate decides). FNIR at an FPIR target ``f`` is read at the lowest threshold whose FPIR is at
    most ``f``, as TAR@FAR is in verification: the sweep here is the verification threshold sweep with
    "positives" the mated searches (scored by their mate, or never accepted when its rank exceeds R)
    and "negatives" the non-mated searches (scored by their top candidate). FPIR is its FAR and FNIR
    its FNR, and the DET curve is its ``det()``.

The search is blocked: probes in row blocks, the gallery in column blocks whose edges fall between
identities (so each identity's maximum is taken within one block), and no probe x gallery matrix is
held. Every count is a count of exact float64 comparisons, so the ranks, the candidate lists and every
figure derived from them are the same on NumPy threads, CuPy and a Dask client, and for any block size.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import EvallibError
from .bootstrap import _interval, _weights
from .sweep import ThresholdSweep, check_labels
from .verification import (
    _check_block_size,
    _check_client,
    _free_memory,
    _np,
    _workers,
    get_backend,
    normalize_embeddings,
    sweep_from_sorted_scores,
)

RANKS = (1, 5, 10)
FPIR_TARGETS = (1e-3, 1e-2, 1e-1)
TIES = ("pessimistic", "optimistic")
_BLOCK_CAP = {"numpy": 2048, "cupy": 8192}
_BLOCK_MIN = 256
_BYTES_PER_SCORE = 24  # a float64 score and its comparison masks and temporaries
_PAIR_CHUNK = 1 << 16  # probe-mate pairs scored at once when the mate scores are computed
_TASKS_PER_THREAD = 2
_SPARSE_SHARE = 0.05  # a block whose counted scores are at most this share of it is read sparsely


@dataclass(frozen=True)
class IdentificationResult:
    """Closed- and open-set identification metrics of one probe set against one gallery.

    Attributes
    ----------
    n_probes, n_mated, n_nonmated : int
        Searches, and those whose identity is (is not) enrolled in the gallery.
    n_gallery, n_gallery_identities : int
        Gallery samples (or templates) and enrolled identities.
    rank_accuracy : dict
        ``{k: share of mated searches with rank <= k}`` for each requested k (NaN without mated searches).
    cmc : ndarray of shape (max_rank,)
        ``cmc[k - 1]`` is rank-k accuracy.
    fnir_at_fpir : dict
        ``{f: {"fnir", "threshold", "supported"}}`` for each FPIR target ``f``; NaN and
        ``supported: False`` when ``f * n_nonmated < 1`` or a search kind is missing.
    sweep : ThresholdSweep
        Positives are the mated searches, negatives the non-mated ones: ``sweep.far`` is FPIR,
        ``sweep.fnr`` is FNIR at each threshold (see :meth:`det`).
    fnir_rank : int
        R of FNIR(T) = a mated search is a miss when its mate is not at rank <= R with score >= T.
    ranks : ndarray of shape (n_probes,)
        Rank of each search's mate (0 for non-mated searches).
    mate_scores : ndarray of shape (n_probes,)
        Score of each search's mate identity (NaN for non-mated searches).
    mate_index : ndarray of shape (n_probes,)
        Row in ``gallery`` of the mate's best-scoring sample (the first of equal ones; -1 for non-mated searches).
    candidate_scores : ndarray of shape (n_probes, n_candidates)
        Each search's top gallery identities' scores, highest first (ties: lower identity first);
        ``-inf`` where the gallery has fewer identities.
    candidate_labels : ndarray of shape (n_probes, n_candidates)
        Their labels (as given in ``gallery_labels``).
    candidate_index : ndarray of shape (n_probes, n_candidates)
        Row in ``gallery`` of each candidate's best-scoring sample (-1 where there is none).
    probe_mated : ndarray of shape (n_probes,) of bool
    ties : str
    backend : str
    intervals : dict
        Identity-level bootstrap intervals (empty unless asked for).
    notes : list of str
    """

    n_probes: int
    n_mated: int
    n_nonmated: int
    n_gallery: int
    n_gallery_identities: int
    rank_accuracy: dict
    cmc: np.ndarray
    fnir_at_fpir: dict
    sweep: ThresholdSweep
    fnir_rank: int
    ranks: np.ndarray
    mate_scores: np.ndarray
    mate_index: np.ndarray
    candidate_scores: np.ndarray
    candidate_labels: np.ndarray
    candidate_index: np.ndarray
    probe_mated: np.ndarray
    ties: str = "pessimistic"
    backend: str = "numpy"
    intervals: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def det(self):
        """The DET curve: ``(fpir, fnir, thresholds)``, thresholds descending."""
        return self.sweep.far, self.sweep.fnr, self.sweep.thresholds

    def fnir_at(self, thresholds):
        """``(fpir, fnir)`` at arbitrary thresholds (exact lookups in the sweep)."""
        c = self.sweep.counts_at(thresholds)
        with np.errstate(invalid="ignore", divide="ignore"):
            fpir = c["fp"] / self.n_nonmated if self.n_nonmated else np.full(len(c["fp"]), np.nan)
            fnir = c["fn"] / self.n_mated if self.n_mated else np.full(len(c["fn"]), np.nan)
        return fpir, fnir

    def hardest_misses(self, k=8):
        """The ``k`` mated searches missed at rank 1 by the widest margin, worst first.

        Returns
        -------
        list of dict
            ``probe`` (row in ``probes``), ``wrong`` (gallery row of the first candidate), ``wrong_label``,
            ``wrong_score``, ``mate`` (gallery row of the mate's best sample), ``mate_score`` and ``rank``.
        """
        miss = np.flatnonzero(self.ranks > 1)
        # the first candidate that is not the mate (with pessimistic ties the mate may come first)
        other = self.candidate_index[miss] != self.mate_index[miss, None]
        j = np.argmax(other, axis=1)
        ok = other[np.arange(len(miss)), j]
        miss, j = miss[ok], j[ok]
        margin = self.candidate_scores[miss, j] - self.mate_scores[miss]
        o = np.lexsort((miss, -margin))[:k]
        return [{"probe": int(i), "wrong": int(self.candidate_index[i, c]),
                 "wrong_label": self.candidate_labels[i, c].item(), "wrong_score": float(self.candidate_scores[i, c]),
                 "mate": int(self.mate_index[i]), "mate_score": float(self.mate_scores[i]), "rank": int(self.ranks[i])}
                for i, c in zip(miss[o], j[o])]

    def to_dict(self):
        return {
            "n_probes": self.n_probes, "n_mated": self.n_mated, "n_nonmated": self.n_nonmated,
            "n_gallery": self.n_gallery, "n_gallery_identities": self.n_gallery_identities,
            "rank_accuracy": {str(k): v for k, v in self.rank_accuracy.items()},
            "cmc": np.asarray(self.cmc).tolist(),
            "fnir_at_fpir": {f"{k:g}": v for k, v in self.fnir_at_fpir.items()},
            "fnir_rank": self.fnir_rank, "ties": self.ties, "backend": self.backend,
            "intervals": self.intervals, "notes": list(self.notes),
        }


# -- the gallery and the probes, prepared once
@dataclass(frozen=True)
class _Prepared:
    probes: np.ndarray  # (n_probes, dim) normalized, float32
    gallery: np.ndarray  # (n_gallery, dim) normalized, sorted by identity
    order: np.ndarray  # gallery row of each sorted sample
    gid: np.ndarray  # identity index of each sorted sample
    starts: np.ndarray  # first sorted sample of each identity, and n_gallery at the end
    identities: np.ndarray  # gallery labels, one per identity index
    mate: np.ndarray  # identity index of each probe's mate, -1 when none
    probe_ident: np.ndarray  # a code of each probe's label, shared by probes of one identity


def _prepare(probes, probe_labels, gallery, gallery_labels):
    g = normalize_embeddings(gallery, "gallery")
    p = normalize_embeddings(probes, "probes")
    for name, x in (("gallery", g), ("probes", p)):
        if len(x) == 0:
            raise EvallibError(f"{name}: expected at least one embedding; got none")
    if p.shape[1] != g.shape[1]:
        raise EvallibError(f"probes: expected dimension {g.shape[1]} like gallery; got {p.shape[1]}")
    gl = check_labels("gallery_labels", gallery_labels, len(g), per="gallery sample")
    pl = check_labels("probe_labels", probe_labels, len(p), per="probe")
    try:
        codes, inv = np.unique(np.concatenate([gl, pl]), return_inverse=True)
    except TypeError:
        raise EvallibError(f"probe_labels: expected labels comparable with gallery_labels ({gl.dtype}); "
                           f"got {pl.dtype}") from None
    g_code, p_code = inv[:len(gl)], inv[len(gl):]
    g_codes, gid = np.unique(g_code, return_inverse=True)  # identity index: rank among the gallery's codes
    order = np.argsort(gid, kind="stable")
    gid = gid[order]
    starts = np.r_[np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]]), len(gid)]
    k = np.searchsorted(g_codes, p_code)
    found = (k < len(g_codes)) & (g_codes[np.minimum(k, len(g_codes) - 1)] == p_code)
    mate = np.where(found, k, -1).astype(np.int64)
    identities = gl[order][starts[:-1]]
    return _Prepared(p, g[order], order, gid.astype(np.int64), starts.astype(np.int64), identities, mate,
                     p_code.astype(np.int64))


def _mate_scores(pre):
    """Score of each probe against its mate identity (max over the identity's samples), and the gallery
    row of the sample that gives it (the first of equal ones); NaN and -1 when there is no mate.

    The products are the exact float64 dot products the search computes, so each equals the
    corresponding entry of the search's score blocks bit for bit.
    """
    out = np.full(len(pre.mate), np.nan)
    where = np.full(len(pre.mate), -1, dtype=np.int64)
    rows = np.flatnonzero(pre.mate >= 0)
    if len(rows) == 0:
        return out, where
    m = pre.mate[rows]
    size = pre.starts[m + 1] - pre.starts[m]
    r = np.repeat(rows, size)
    first = np.cumsum(size) - size
    c = np.repeat(pre.starts[m], size) + (np.arange(len(r)) - np.repeat(first, size))
    s = np.empty(len(r))
    for a in range(0, len(r), _PAIR_CHUNK):
        sl = slice(a, a + _PAIR_CHUNK)
        s[sl] = np.einsum("nd,nd->n", pre.probes[r[sl]].astype(np.float64), pre.gallery[c[sl]].astype(np.float64))
    best = np.maximum.reduceat(s, first)
    out[rows] = best
    hit = np.flatnonzero(s == np.repeat(best, size))
    _, k = np.unique(np.repeat(np.arange(len(rows)), size)[hit], return_index=True)
    where[rows] = pre.order[c[hit[k]]]
    return out, where


def _column_blocks(gid, starts, b):
    """Edges of the gallery column blocks: about ``b`` samples each, never splitting an identity."""
    n = len(gid)
    cuts = starts[gid[np.arange(b, n, b)]] if n > b else np.zeros(0, np.int64)
    return np.unique(np.r_[0, cuts, n]).astype(np.int64)


def _segment_max(xp, s, local_starts):
    """Row-wise maximum of ``s`` over column segments starting at ``local_starts``."""
    if xp is np:
        return np.maximum.reduceat(s, local_starts, axis=1)
    return _segment_max_at(xp, s, local_starts)  # CuPy has no ufunc.reduceat


def _segment_max_at(xp, s, local_starts):
    """:func:`_segment_max` by ``maximum.at`` (NumPy and CuPy both have it)."""
    seg = xp.zeros(s.shape[1], dtype=xp.int64)
    seg[xp.asarray(local_starts[1:])] = 1
    seg = xp.cumsum(seg)
    out = xp.full((s.shape[0], len(local_starts)), -xp.inf)
    rows = xp.broadcast_to(xp.arange(s.shape[0])[:, None], s.shape)
    xp.maximum.at(out, (rows, xp.broadcast_to(seg[None, :], s.shape)), s)
    return out


def _merge(top_s, top_i, rr, ids, vals, n_cand):
    """Keep each row's ``n_cand`` best of its current list and the new ``(rr, ids, vals)`` entries.

    Best means highest score, then lowest identity index. Only rows with new entries are touched;
    ``top_s`` and ``top_i`` are updated in place.
    """
    if len(rr) == 0:
        return
    rows = np.unique(rr)
    cur_s, cur_i = top_s[rows], top_i[rows]
    have = cur_i >= 0
    local = np.searchsorted(rows, rr)
    rows_all = np.r_[np.nonzero(have)[0], local]
    s = np.r_[cur_s[have], vals]
    i = np.r_[cur_i[have], ids]
    o = np.lexsort((i, -s, rows_all))
    rows_all, s, i = rows_all[o], s[o], i[o]
    first = np.r_[0, np.flatnonzero(rows_all[1:] != rows_all[:-1]) + 1]
    pos = np.arange(len(rows_all)) - np.repeat(first, np.diff(np.r_[first, len(rows_all)]))
    keep = pos < n_cand
    cur_s[rows_all[keep], pos[keep]] = s[keep]
    cur_i[rows_all[keep], pos[keep]] = i[keep]
    top_s[rows], top_i[rows] = cur_s, cur_i


def _count_rows(xp, mask):
    return np.count_nonzero(mask, axis=1) if xp is np else mask.sum(axis=1)


def _search_rows(xp, p, g, gid, starts, cuts, mate, mate_score, n_cand, pessimistic):
    """Search probe rows ``p`` through the gallery, column block by column block.

    Parameters
    ----------
    xp : module
        NumPy or CuPy; ``g`` is on that module's device (float64 or float32).
    p : ndarray of shape (n_rows, dim)
        Normalized probes (NumPy).
    g : ndarray of shape (n_gallery, dim)
        Normalized gallery, sorted by identity.
    gid, starts : ndarray
        Identity index of each gallery sample, and the first sample of each identity (then n_gallery).
    cuts : ndarray
        Column block edges (between identities).
    mate, mate_score : ndarray of shape (n_rows,)
        Mate identity index (-1: none) and mate score (NaN: none) of each row.
    n_cand : int
        Length of the candidate lists.
    pessimistic : bool
        Count non-mates scoring exactly as high as the mate as ranked ahead of it.

    Returns
    -------
    ahead : ndarray of shape (n_rows,) of int64
        Non-mate identities ranked ahead of the mate (0 for rows without one): the rank is ``1 + ahead``.
    top_s : ndarray of shape (n_rows, n_cand)
    top_i : ndarray of shape (n_rows, n_cand) of int64
        The candidate lists: scores and identity indices.

    A pure function of its arguments (NumPy results): a thread, a GPU or a Dask worker gives the same.
    """
    r = len(p)
    pf = xp.asarray(p).astype(xp.float64)
    ms = xp.asarray(np.where(mate >= 0, mate_score, np.inf))[:, None]
    ahead = xp.zeros(r, dtype=xp.int64)
    top_s = np.full((r, n_cand), -np.inf)
    top_i = np.full((r, n_cand), -1, dtype=np.int64)
    multi = len(starts) - 1 < len(gid)
    pending, n_pending = [], 0  # candidates above a list's last entry, merged in batches
    for c0, c1 in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        s = pf @ g[c0:c1].astype(xp.float64, copy=False).T
        off = int(gid[c0])
        if multi:
            i1 = int(gid[c1 - 1]) + 1
            if i1 - off < c1 - c0:
                s = _segment_max(xp, s, starts[off:i1] - c0)
        kth = top_s[:, -1]
        first = s.shape[1] > n_cand and np.isneginf(kth).all()
        if first:  # the first wide block: its own n_cand best (ties at the n_cand-th included)
            floor = xp.partition(s, s.shape[1] - n_cand, axis=1)[:, s.shape[1] - n_cand]
        else:  # later blocks hold higher identities, which lose ties: strictly above the current last
            floor = xp.asarray(kth)
        # one pass finds every score that counts: at or above the mate's (the rank) or the list's floor
        low = xp.minimum(ms[:, 0], floor)
        mask = s >= low[:, None]
        n_hit = int(xp.count_nonzero(mask))
        if n_hit <= _SPARSE_SHARE * mask.size:
            flat = xp.flatnonzero(mask)  # flat indices: much faster than a 2-d nonzero
            rr, cc = flat // s.shape[1], flat % s.shape[1]
            vals = s.reshape(-1)[flat]
            # the mate's own score equals ms exactly (both are exact): >= counts it once, > never
            at = (vals >= ms[rr, 0]) if pessimistic else (vals > ms[rr, 0])
            ahead += xp.bincount(rr[at], minlength=r)
            keep = (vals >= floor[rr]) if first else (vals > floor[rr])
            rr, cc, vals = rr[keep], cc[keep], vals[keep]
        else:  # a weak model or an empty list: most scores count, two dense passes are cheaper
            ahead += _count_rows(xp, (s >= ms) if pessimistic else (s > ms))
            if first:
                flat = xp.flatnonzero(s >= floor[:, None])
                rr, cc = flat // s.shape[1], flat % s.shape[1]
            else:
                hot = xp.flatnonzero(s.max(axis=1) > floor)
                if 4 * len(hot) > r:
                    flat = xp.flatnonzero(s > floor[:, None])
                    rr, cc = flat // s.shape[1], flat % s.shape[1]
                else:  # few rows have new candidates
                    flat = xp.flatnonzero(s[hot] > floor[hot][:, None])
                    rr, cc = hot[flat // s.shape[1]], flat % s.shape[1]
            vals = s[rr, cc]
        pending.append((_np(rr), _np(cc) + off, _np(vals)))
        n_pending += len(pending[-1][0])
        # until a merge the lists' last entries are stale, lower than they will be: more entries pass, none is lost
        if first or n_pending >= r * n_cand:
            _merge(top_s, top_i, *(np.concatenate(x) for x in zip(*pending)), n_cand)
            pending, n_pending = [], 0
    if pending:
        _merge(top_s, top_i, *(np.concatenate(x) for x in zip(*pending)), n_cand)
    ahead = _np(ahead) - (pessimistic & (mate >= 0))
    return ahead, top_s, top_i


def _search_tasks(p, g, gid, starts, cuts, mate, mate_score, n_cand, pessimistic, row_blocks):
    """One Dask task: :func:`_search_rows` over row blocks ``[(r0, r1), ...]`` of ``p`` on NumPy."""
    parts = [_search_rows(np, p[r0:r1], g, gid, starts, cuts, mate[r0:r1], mate_score[r0:r1], n_cand, pessimistic)
             for r0, r1 in row_blocks]
    return [np.concatenate([x[k] for x in parts]) for k in range(3)]


def _auto_block(free_bytes, *, backend, workers):
    """Rows and columns per block: ``workers`` blocks of ``b x b`` scores within a quarter of free memory.

    A multiple of 256, at least 256 and at most 2048 (NumPy) or 8192 (CuPy).
    """
    per = 0.25 * free_bytes / max(1, workers)
    b = int(math.sqrt(max(per, 0) / _BYTES_PER_SCORE)) // _BLOCK_MIN * _BLOCK_MIN
    return int(min(_BLOCK_CAP[backend], max(_BLOCK_MIN, b)))


def _search(pre, mate_score, *, n_cand, pessimistic, block, workers, xp, client):
    """Identities ranked ahead of each probe's mate, and the candidate lists: ``(ahead, top_s, top_i)``."""
    n = len(pre.probes)
    cuts = _column_blocks(pre.gid, pre.starts, block)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, n_cand)), np.zeros((0, n_cand), np.int64)
    if client is not None:
        threads = max(1, sum(client.nthreads().values()))
        rows = max(1, min(block, -(-n // (_TASKS_PER_THREAD * threads))))
        edges = list(range(0, n, rows)) + [n]
        row_blocks = list(zip(edges[:-1], edges[1:]))
        groups = np.array_split(np.arange(len(row_blocks)), min(len(row_blocks), _TASKS_PER_THREAD * threads))
        # hash=False: a fresh key per call, so releasing an earlier call's copy of the same data loses nothing
        g, gid, starts = (client.scatter(x, broadcast=True, hash=False) for x in (pre.gallery, pre.gid, pre.starts))
        futures = []
        for grp in groups:
            r0, r1 = row_blocks[grp[0]][0], row_blocks[grp[-1]][1]
            futures.append(client.submit(
                _search_tasks, pre.probes[r0:r1], g, gid, starts, cuts, pre.mate[r0:r1], mate_score[r0:r1], n_cand,
                pessimistic,
                [(a - r0, b - r0) for a, b in (row_blocks[i] for i in grp)], pure=False))
        parts = client.gather(futures)
        return tuple(np.concatenate([x[k] for x in parts]) for k in range(3))
    if xp is not np:
        g = xp.asarray(pre.gallery)
        parts = [_search_rows(xp, pre.probes[r0:r0 + block], g, pre.gid, pre.starts, cuts,
                              pre.mate[r0:r0 + block], mate_score[r0:r0 + block], n_cand, pessimistic)
                 for r0 in range(0, n, block)]
    else:
        # float64 once when it fits, else per block: the same numbers either way
        g = pre.gallery.astype(np.float64) if pre.gallery.nbytes * 2 < 0.25 * _free_memory(np) else pre.gallery
        rows = max(1, min(block, -(-n // workers)))
        row_starts = list(range(0, n, rows))
        threads = max(1, min(workers, len(row_starts)))

        def one(r0):
            return _search_rows(np, pre.probes[r0:r0 + rows], g, pre.gid, pre.starts, cuts,
                                pre.mate[r0:r0 + rows], mate_score[r0:r0 + rows], n_cand, pessimistic)

        with threadpool_limits(limits=max(1, workers // threads), user_api="blas"):
            if threads == 1:
                parts = [one(r0) for r0 in row_starts]
            else:
                with ThreadPoolExecutor(threads) as pool:
                    parts = list(pool.map(one, row_starts))
    return tuple(np.concatenate([x[k] for x in parts]) for k in range(3))


def _candidate_index(pre, top_s, top_i):
    """Gallery row of each candidate's best-scoring sample (the first of equal ones); -1 for none."""
    out = np.full(top_i.shape, -1, dtype=np.int64)
    r, c = np.nonzero(top_i >= 0)
    if len(r) == 0:
        return out
    ident = top_i[r, c]
    size = pre.starts[ident + 1] - pre.starts[ident]
    if (size == 1).all():
        out[r, c] = pre.order[pre.starts[ident]]
        return out
    rr = np.repeat(r, size)
    first = np.repeat(np.cumsum(size) - size, size)
    col = np.repeat(pre.starts[ident], size) + (np.arange(len(rr)) - first)
    s = np.empty(len(rr))
    for a in range(0, len(rr), _PAIR_CHUNK):
        sl = slice(a, a + _PAIR_CHUNK)
        s[sl] = np.einsum("nd,nd->n", pre.probes[rr[sl]].astype(np.float64), pre.gallery[col[sl]].astype(np.float64))
    hit = np.flatnonzero(np.repeat(top_s[r, c], size) == s)
    seg = np.repeat(np.arange(len(r)), size)[hit]
    # the first matching sample in sorted order (the stable sort kept the gallery order within an identity)
    _, first = np.unique(seg, return_index=True)
    out[r, c] = pre.order[col[hit[first]]]
    return out


def _check_ks(name, ks):
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise EvallibError(f"{name}: expected positive integers; got {ks!r}")
    return tuple(int(k) for k in ks)


def _check_positive(name, k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise EvallibError(f"{name}: expected an integer >= 1; got {k!r}")
    return int(k)


def _open_set_sweep(hit_scores, nonmated_top, n_mated):
    """The sweep of mated searches (scored when a hit is possible) against non-mated searches' top scores."""
    sweep = sweep_from_sorted_scores(np.sort(hit_scores), np.sort(nonmated_top))
    return replace(sweep, n_pos=int(n_mated))


def _fnir_table(sweep, fpir_targets):
    out = {}
    for f in fpir_targets:
        if sweep.n_pos == 0 or sweep.n_neg == 0 or f * sweep.n_neg < 1:
            out[f] = {"fnir": float("nan"), "threshold": float("nan"), "supported": False}
            continue
        tpir, thr = sweep.tar_at_far(f)
        out[f] = {"fnir": 1.0 - tpir, "threshold": thr, "supported": True}
    return out


ROLES = ("gallery", "probe")


def split_by_role(roles, name="role"):
    """Indices of the probe and gallery samples from a role column (``gallery`` or ``probe`` per sample).

    Returns
    -------
    probe_index, gallery_index : ndarray of int64
        Rows whose role is ``probe`` and ``gallery``, ascending.

    Examples
    --------
    >>> split_by_role(["gallery", "probe", "probe"])
    (array([1, 2]), array([0]))
    """
    r = np.asarray(roles).astype(str)
    if r.ndim != 1:
        raise EvallibError(f"{name}: expected a 1-d column of gallery/probe; got shape {r.shape}")
    bad = ~np.isin(r, ROLES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EvallibError(f"{name}: expected one of gallery, probe; got {str(r[i])!r} at row {i} "
                           f"({int(bad.sum())} such rows)")
    for role in ROLES:
        if not (r == role).any():
            raise EvallibError(f"{name}: expected at least one {role} sample; got none")
    return np.flatnonzero(r == "probe"), np.flatnonzero(r == "gallery")


def evaluate_identification(probes, probe_labels, gallery, gallery_labels, *, ranks=RANKS, max_rank=100,
                            fpir_targets=FPIR_TARGETS, fnir_rank=1, ties="pessimistic", n_candidates=10,
                            block_size=None, threads=0, backend="auto", client=None, n_bootstrap=0, seed=0):
    """Closed- and open-set 1:N identification metrics from probe and gallery embeddings.

    Parameters
    ----------
    probes : array-like of shape (n_probes, dim)
    probe_labels : array-like of shape (n_probes,)
        Identity of each probe. A probe whose identity has no gallery sample is a non-mated search.
    gallery : array-like of shape (n_gallery, dim)
    gallery_labels : array-like of shape (n_gallery,)
        Identity of each gallery sample; an identity may have several (its score is their maximum).
    ranks : sequence of int
        The k of the rank-k accuracies reported.
    max_rank : int
        Length of the CMC curve (at most the number of gallery identities).
    fpir_targets : sequence of float
        FPIR values at which FNIR is read.
    fnir_rank : int
        R in FNIR(T): a mated search counts as a hit when its mate is at rank <= R with score >= T.
    ties : {"pessimistic", "optimistic"}
        Whether a non-mate scoring exactly as high as the mate is ranked ahead of it.
    n_candidates : int
        Length of each search's candidate list kept in the result.
    block_size : int or None
        Probe rows and gallery columns per score block; ``None`` sizes it from free memory. The
        results do not depend on it.
    threads : int
        Threads of the search on the NumPy backend (0: one per core). The results do not depend on it.
    backend : {"auto", "numpy", "cupy"}
    client : dask.distributed.Client or None
        Run the row blocks as tasks on the client's workers (NumPy there; the gallery is scattered once).
        The results equal the local ones exactly.
    n_bootstrap : int
        Resamples for identity-level intervals of rank-k accuracy and FNIR at FPIR (0: none).
    seed : int

    Returns
    -------
    IdentificationResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(50, 16))
    >>> res = evaluate_identification(centers + 0.3 * rng.normal(size=(50, 16)), np.arange(50),
    ...                               centers, np.arange(50), threads=1)
    >>> res.rank_accuracy[1]
    1.0
    """
    ks = _check_ks("ranks", ranks)
    for name, k in (("max_rank", max_rank), ("fnir_rank", fnir_rank), ("n_candidates", n_candidates)):
        _check_positive(name, k)
    if ties not in TIES:
        raise EvallibError(f"ties: expected one of {', '.join(TIES)}; got {ties!r}")
    for f in fpir_targets:
        if not 0 < f < 1:
            raise EvallibError(f"fpir_targets: expected values in (0, 1); got {f!r}")
    _check_block_size(block_size)
    workers = _workers(threads)
    client = _check_client(client)
    if client is not None and backend not in ("auto", "numpy"):
        raise EvallibError(f"backend: expected auto or numpy with a client (the workers search on NumPy); "
                           f"got {backend!r}")
    xp, backend_name = get_backend("numpy" if client is not None else backend)
    pre = _prepare(probes, probe_labels, gallery, gallery_labels)
    n_ids = len(pre.starts) - 1
    mate_score, mate_index = _mate_scores(pre)
    if block_size:
        block = int(block_size)
    else:
        block = _auto_block(_free_memory(xp) if client is None else _free_memory(np), backend=backend_name,
                            workers=workers if xp is np else 1)
    ahead, top_s, top_i = _search(pre, mate_score, n_cand=min(int(n_candidates), n_ids),
                                  pessimistic=ties == "pessimistic", block=block, workers=workers, xp=xp, client=client)
    mated = pre.mate >= 0
    rank = np.where(mated, 1 + ahead, 0).astype(np.int64)
    n_mated, n_non = int(mated.sum()), int((~mated).sum())
    notes = []
    max_rank = min(int(max_rank), n_ids)
    if n_mated:
        hist = np.bincount(rank[mated], minlength=max_rank + 1)[1:max_rank + 1]
        cmc = np.cumsum(hist) / n_mated
        rank_acc = {k: float(np.sum(rank[mated] <= k) / n_mated) for k in ks}
    else:
        cmc = np.full(max_rank, np.nan)
        rank_acc = {k: float("nan") for k in ks}
        notes.append("no probe has a mate in the gallery: rank-k accuracy and FNIR are undefined (NaN)")
    if n_non == 0:
        notes.append("every probe has a mate in the gallery (closed set): FPIR and FNIR at FPIR are undefined (NaN)")
    hit = mated & (rank <= int(fnir_rank))
    sweep = _open_set_sweep(mate_score[hit], top_s[~mated, 0], n_mated)
    fnir = _fnir_table(sweep, tuple(fpir_targets))
    short = [f"{f:g}" for f, v in fnir.items() if not v["supported"] and n_non]
    if short:
        notes.append(f"FNIR at FPIR {', '.join(short)} is not supported by {n_non} non-mated searches (NaN)")
    intervals = {}
    if n_bootstrap:
        intervals = bootstrap_identification(rank, pre.probe_ident, mate_score, top_s[:, 0], ks=ks,
                                             fpir_targets=tuple(fpir_targets), fnir_rank=int(fnir_rank),
                                             n_boot=int(n_bootstrap), seed=seed)
    return IdentificationResult(
        n_probes=len(rank), n_mated=n_mated, n_nonmated=n_non, n_gallery=len(pre.gallery), n_gallery_identities=n_ids,
        rank_accuracy=rank_acc, cmc=cmc, fnir_at_fpir=fnir, sweep=sweep, fnir_rank=int(fnir_rank), ranks=rank,
        mate_scores=mate_score, mate_index=mate_index, candidate_scores=top_s, candidate_labels=pre.identities[top_i],
        candidate_index=_candidate_index(pre, top_s, top_i), probe_mated=mated, ties=ties, backend=backend_name,
        intervals=intervals, notes=notes)


def bootstrap_identification(ranks, probe_identities, mate_scores, top_scores, *, ks=RANKS,
                             fpir_targets=FPIR_TARGETS, fnir_rank=1, n_boot=1000, seed=0, confidence=0.95):
    """Identity-level percentile-bootstrap intervals for rank-k accuracy and FNIR at FPIR.

    Probe identities are resampled with replacement, not probes: every search of a drawn identity
    enters the resample as often as the identity is drawn. Identities with a gallery mate and those
    without are resampled separately, so each group keeps its number of identities. A resample's
    FNIR at FPIR ``f`` is read at its own threshold: the lowest whose weighted FPIR is at most ``f``.

    Parameters
    ----------
    ranks : ndarray of shape (n_probes,)
        Rank of each search's mate; 0 for non-mated searches.
    probe_identities : ndarray of shape (n_probes,)
        Identity of each search (any labels).
    mate_scores : ndarray of shape (n_probes,)
        Score of each search's mate (not read for non-mated searches).
    top_scores : ndarray of shape (n_probes,)
        Score of each search's top candidate (read for non-mated searches).
    ks : sequence of int
        The k of the rank-k accuracies.

    Returns
    -------
    dict
        ``rank_{k}`` and ``fnir_at_fpir_{f}``: ``[low, high]``; ``n_boot``, ``seed``, ``method``, and a
        ``note`` naming the FPIR targets without an interval (``f * n_nonmated < 10``).
    """
    ks = _check_ks("ks", ks)
    r = np.asarray(ranks, dtype=np.int64)
    n = len(r)
    ident = check_labels("probe_identities", probe_identities, n, per="rank")
    mate_scores = np.asarray(mate_scores, dtype=np.float64)
    top_scores = np.asarray(top_scores, dtype=np.float64)
    ident = np.unique(ident, return_inverse=True)[1].ravel()
    mated = r > 0
    _, m_inv = np.unique(ident[mated], return_inverse=True)
    _, n_inv = np.unique(ident[~mated], return_inverse=True)
    n_m, n_n = int(m_inv.max(initial=-1)) + 1, int(n_inv.max(initial=-1)) + 1
    per_m = np.bincount(m_inv, minlength=n_m).astype(np.float64)
    hits = {k: np.bincount(m_inv, weights=(r[mated] <= k), minlength=n_m) for k in ks}
    neg = top_scores[~mated]
    order = np.argsort(-neg, kind="stable")
    neg_desc, neg_id = neg[order], n_inv[order]
    hit = r[mated] <= fnir_rank
    hs, h_id = mate_scores[mated][hit], m_inv[hit]
    h_order = np.argsort(hs, kind="stable")
    hs, h_id = hs[h_order], h_id[h_order]
    fs = [f for f in fpir_targets if n_m and n_n and f * len(neg) >= 10]
    rng = np.random.default_rng(seed)
    reps = {f"rank_{k}": [] for k in ks if n_m} | {f"fnir_at_fpir_{f:g}": [] for f in fs}
    step = max(1, 20_000_000 // max(1, n))
    for start in range(0, int(n_boot), step):
        b = min(step, int(n_boot) - start)
        wm = _weights(rng, n_m, b).astype(np.float64) if n_m else np.zeros((b, 0))
        wn = _weights(rng, n_n, b).astype(np.float64) if n_n else np.zeros((b, 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            den = wm @ per_m
            if n_m:
                for k in ks:
                    reps[f"rank_{k}"].append(wm @ hits[k] / den)
            if fs:
                cum = np.cumsum(wn[:, neg_id], axis=1)  # weighted non-mated searches at or above each score
                hw = np.cumsum(wm[:, h_id][:, ::-1], axis=1)[:, ::-1]  # weighted hits at or above each hit score
                hw = np.c_[hw, np.zeros(b)]
                for f in fs:
                    # the first non-mated score whose weight from the top exceeds f * W is rejected, and
                    # every hit scoring strictly above it is accepted
                    v = neg_desc[np.argmax(cum > f * cum[:, -1:], axis=1)]
                    above = hw[np.arange(b), np.searchsorted(hs, v, side="right")]
                    reps[f"fnir_at_fpir_{f:g}"].append(1.0 - above / den)
    out = {k: _interval(np.concatenate(v), confidence) for k, v in reps.items()}
    out["n_boot"], out["seed"] = int(n_boot), seed
    out["method"] = (f"percentile bootstrap over identities: {n_m} with a gallery mate and {n_n} without, "
                     "resampled separately")
    skipped = [f for f in fpir_targets if f not in fs]
    if skipped:
        out["note"] = (f"no interval for FNIR at FPIR {', '.join(f'{f:g}' for f in skipped)}: too few "
                       "non-mated searches or identities")
    return out
