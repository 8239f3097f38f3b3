"""Verification metrics for embedding models: every pair of samples, block by block.

Cosine similarities of all ``N (N - 1) / 2`` pairs are computed in blocks of rows and
columns; no ``N x N`` matrix and no list of all pairs is ever held. Genuine (same label) and
impostor scores are counted into fine histograms over [-1, 1] whose bin width is a power of
two, so bin membership and the edges are exact in floating point. While the number of pairs
is at most ``exact_limit`` the scores are also kept and the sweep is exact. Above it the sweep
is binned; TAR@FAR and the threshold table are then made exact by a second pass that
collects the raw scores of only the few bins that hold the thresholds asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EvallibError
from .bootstrap import bootstrap_verification
from .sweep import ThresholdSweep, _warn, check_scores, sweep_from_histograms, sweep_from_sorted

FAR_TARGETS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
TABLE_THRESHOLDS = tuple(np.round(np.arange(0.0, 1.0001, 0.1), 10))
BIN_BITS = 21  # 2**21 bins over [-1, 1]: width 2**-20, about 9.5e-7


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
    e = check_scores(name, embeddings, ndim=2)
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    if (norm == 0).any():
        raise EvallibError(f"{name}: expected non-zero vectors; got {int((norm == 0).sum())} all-zero rows "
                           f"(first at row {int(np.nonzero(norm[:, 0] == 0)[0][0])})")
    return (e / norm).astype(np.float32)


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


def _bin_index(xp, s, bits):
    """Bin of each float32 score: exact, since the bin width is a power of two."""
    b = xp.floor((s.astype(xp.float64) + 1.0) * float(2 ** (bits - 1))).astype(xp.int64)
    return xp.clip(b, 0, 2 ** bits - 1)


class VerificationMetrics:
    """All-pairs verification metrics, fed embeddings batch by batch.

    Each ``update`` scores the new samples against every sample seen so far and against each
    other, so ``compute`` is cheap and the pairs are the same for any split of the data.

    Parameters
    ----------
    exact_limit : int
        Keep every score (exact sweep) while the number of pairs is at most this.
    block_size : int
        Rows and columns per similarity block.
    backend : {"auto", "numpy", "cupy"}
    far_targets : sequence of float
    table_thresholds : sequence of float
    """

    def __init__(self, *, exact_limit=20_000_000, block_size=2048, backend="auto", far_targets=FAR_TARGETS,
                 table_thresholds=TABLE_THRESHOLDS, bins_bits=BIN_BITS, bootstrap_pairs=100_000, seed=0,
                 policy_far=1e-3):
        self.xp, self.backend = get_backend(backend)
        self.policy_far = policy_far
        self.exact_limit = int(exact_limit)
        self.block = int(block_size)
        self.far_targets = tuple(far_targets)
        self.table_thresholds = np.asarray(table_thresholds, dtype=np.float64)
        self.bits = bins_bits
        self.bootstrap_pairs = int(bootstrap_pairs)
        self.rng = np.random.default_rng(seed)
        self._emb, self._lab = [], []
        self.n = 0
        self.n_genuine = self.n_impostor = 0
        self.hist_gen = self.xp.zeros(2 ** bins_bits, dtype=self.xp.int64)
        self.hist_all = self.xp.zeros(2 ** bins_bits, dtype=self.xp.int64)
        self._gen, self._imp = [], []  # exact scores while the pair count allows
        self._gen_ids = []
        self._imp_sample = []  # (score, id_a, id_b) impostor pairs for the bootstrap
        self._imp_rate = 1.0
        self.exact = True

    # -- the pass over pairs
    def _pairs(self, ea, la, eb, lb, diag, visit):
        xp = self.xp
        s = ea @ eb.T
        same = la[:, None] == lb[None, :]
        if diag:
            tri = xp.triu(xp.ones(s.shape, dtype=bool), 1)
            gen_mask, valid = same & tri, tri
        else:
            gen_mask, valid = same, None
        visit(s, same, gen_mask, valid, la, lb)

    def _each_block(self, e_new, l_new, visit):
        """Visit every pair (old, new) and (new, new with i < j) block by block."""
        old_e = self._emb
        old_l = self._lab
        for c0 in range(0, len(e_new), self.block):
            eb, lb = e_new[c0:c0 + self.block], l_new[c0:c0 + self.block]
            for ea, la in zip(old_e, old_l):
                for r0 in range(0, len(ea), self.block):
                    self._pairs(ea[r0:r0 + self.block], la[r0:r0 + self.block], eb, lb, False, visit)
            for r0 in range(0, c0, self.block):
                self._pairs(e_new[r0:r0 + self.block], l_new[r0:r0 + self.block], eb, lb, False, visit)
            self._pairs(eb, lb, eb, lb, True, visit)

    def _count(self, s, same, gen_mask, valid, la, lb):
        xp = self.xp
        bins = _bin_index(xp, s, self.bits)
        allb = bins[valid] if valid is not None else bins.ravel()
        n_all = int(allb.size)
        self.hist_all += xp.bincount(allb, minlength=2 ** self.bits)
        gsel = bins[gen_mask]
        self.hist_gen += xp.bincount(gsel, minlength=2 ** self.bits)
        n_gen = int(gsel.size)
        self.n_genuine += n_gen
        self.n_impostor += n_all - n_gen
        gs = _np(s[gen_mask]).astype(np.float64)
        self._gen.append(gs)
        rows = _np(xp.nonzero(gen_mask)[0])
        self._gen_ids.append(_np(la)[rows])
        if self.exact:
            imp_mask = ~same & valid if valid is not None else ~same
            self._imp.append(_np(s[imp_mask]).astype(np.float64))
            if self.n_genuine + self.n_impostor > self.exact_limit:
                self.exact = False
                self._imp = []
        self._sample_impostors(s, same, valid, la, lb, n_all - n_gen)

    def _sample_impostors(self, s, same, valid, la, lb, n_imp):
        """Keep a uniform random sample of impostor pairs (rate halves when it overflows)."""
        if n_imp == 0:
            return
        r, q = s.shape
        k = self.rng.binomial(r * q, self._imp_rate) if self._imp_rate < 1 else r * q
        if k == 0:
            return
        if k == r * q:
            ii, jj = np.divmod(np.arange(r * q), q)
        else:
            flat = np.unique(self.rng.integers(0, r * q, size=k))
            ii, jj = np.divmod(flat, q)
        la_np, lb_np = _np(la), _np(lb)
        keep = la_np[ii] != lb_np[jj]
        if valid is not None:
            keep &= jj > ii
        ii, jj = ii[keep], jj[keep]
        if len(ii):
            vals = _np(s[self.xp.asarray(ii), self.xp.asarray(jj)]).astype(np.float64)
            self._imp_sample.append(np.stack([vals, la_np[ii], lb_np[jj]], axis=1))
        total = sum(len(a) for a in self._imp_sample)
        while total > 2 * self.bootstrap_pairs:
            allp = np.concatenate(self._imp_sample)
            allp = allp[self.rng.random(len(allp)) < 0.5]
            self._imp_sample, self._imp_rate, total = [allp], self._imp_rate / 2, len(allp)

    def update(self, embeddings, labels):
        """Add a batch: ``embeddings`` of shape (n, dim), ``labels`` of shape (n,) (identity of each)."""
        e = normalize_embeddings(embeddings)
        lab = np.asarray(labels)
        if lab.ndim != 1 or len(lab) != len(e):
            raise EvallibError(f"labels: expected shape ({len(e)},), one per embedding; got shape {lab.shape}")
        if self._emb and e.shape[1] != self._emb[0].shape[1]:
            raise EvallibError(f"embeddings: expected dimension {self._emb[0].shape[1]} as in earlier batches; "
                               f"got {e.shape[1]}")
        if not np.issubdtype(lab.dtype, np.integer):
            _, lab = np.unique(lab.astype(str), return_inverse=True)
            if self._lab:
                raise EvallibError("labels: expected integer identities when fed in several batches; got strings")
        xe, xl = self.xp.asarray(e), self.xp.asarray(lab.astype(np.int64))
        self._each_block(xe, xl, self._count)
        self._emb.append(xe)
        self._lab.append(xl)
        self.n += len(e)

    # -- results
    def _refine(self, bins):
        """Second pass: raw scores of the given bins, split into genuine and impostor, sorted."""
        xp = self.xp
        want = xp.asarray(np.asarray(sorted(bins), dtype=np.int64))
        found = {"gen": [], "imp": [], "gbin": [], "ibin": []}

        def visit(s, same, gen_mask, valid, la, lb):
            b = _bin_index(xp, s, self.bits)
            hit = xp.isin(b, want)
            if valid is not None:
                hit &= valid
            g, i = hit & same, hit & ~same
            found["gen"].append(_np(s[g]).astype(np.float64))
            found["gbin"].append(_np(b[g]))
            found["imp"].append(_np(s[i]).astype(np.float64))
            found["ibin"].append(_np(b[i]))

        emb, lab = self._emb, self._lab
        self._emb, self._lab = [], []
        for e, lb_ in zip(emb, lab):
            self._each_block(e, lb_, visit)
            self._emb.append(e)
            self._lab.append(lb_)
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in found.items()}

    def compute(self, *, pairs_note=None):
        if self.n_genuine == 0 or self.n_impostor == 0:
            missing = "genuine" if self.n_genuine == 0 else "impostor"
            _warn(f"verification metrics are undefined: there are no {missing} pairs "
                  f"({self.n} samples); they are NaN")
        hist_all, hist_gen = _np(self.hist_all), _np(self.hist_gen)
        hist_imp = hist_all - hist_gen
        gen = np.sort(np.concatenate(self._gen)) if self._gen else np.zeros(0)
        notes = []
        if self.exact:
            imp = np.sort(np.concatenate(self._imp)) if self._imp else np.zeros(0)
            sweep = sweep_from_sorted(gen, imp)
            tar, table = self._tar_exact(sweep), sweep.table(self.table_thresholds)
        else:
            edges = -1.0 + np.arange(2 ** self.bits) * 2.0 ** (1 - self.bits)
            sweep = sweep_from_histograms(hist_gen, hist_imp, edges)
            tar, table = self._tar_and_table_refined(sweep, gen, hist_imp, edges)
            notes.append(f"{self.n_genuine + self.n_impostor:,} pairs: curves are binned at width "
                         f"{2.0 ** (1 - self.bits):.2g}; AUC is within {sweep.auc_bound:.2g} of the exact value; "
                         f"TAR@FAR and the threshold table are exact")
        return self._result(sweep, tar, table, hist_gen, hist_imp, notes)

    def _tar_exact(self, sweep):
        out = {}
        for f in self.far_targets:
            t, thr = sweep.tar_at_far(f) if sweep.n_pos and sweep.n_neg else (float("nan"), float("nan"))
            out[f] = {"tar": t, "threshold": thr,
                      "supported": bool(sweep.n_neg and f * sweep.n_neg >= 1)}
        return out

    def _tar_and_table_refined(self, sweep, gen, hist_imp, edges):
        n_imp = int(hist_imp.sum())
        above = np.cumsum(hist_imp[::-1])[::-1]  # impostors in this bin or higher
        need = {}
        for f in self.far_targets:
            k = int(np.floor(f * n_imp * (1 + 1e-12)))
            if k < 1 or k >= n_imp:
                continue
            # bin holding the (k+1)-th highest impostor score
            b = int(np.nonzero(above >= k + 1)[0][-1])
            need[f] = (k, b)
        tb = np.clip(np.floor((self.table_thresholds + 1.0) * 2 ** (self.bits - 1)).astype(np.int64), 0,
                     2 ** self.bits - 1)
        found = self._refine({b for _, b in need.values()} | set(tb.tolist()))
        out = {}
        for f in self.far_targets:
            if f not in need:
                out[f] = {"tar": float("nan"), "threshold": float("nan"), "supported": False}
                continue
            k, b = need[f]
            higher = int(above[b + 1]) if b + 1 < len(above) else 0
            inbin = np.sort(found["imp"][found["ibin"] == b])[::-1]
            v = inbin[k - higher]  # the (k+1)-th highest impostor score
            thr = float(np.nextafter(np.float32(v), np.float32(np.inf)))
            out[f] = {"tar": float(np.sum(gen > v) / len(gen)) if len(gen) else float("nan"),
                      "threshold": thr, "supported": True}
        hist_gen = _np(self.hist_gen)
        tp, fp = [], []
        gen_above = np.cumsum(hist_gen[::-1])[::-1]
        for t, b in zip(self.table_thresholds, tb):
            nxt = b + 1
            g_hi = int(gen_above[nxt]) if nxt < len(gen_above) else 0
            i_hi = int(above[nxt]) if nxt < len(above) else 0
            tp.append(g_hi + int(np.sum(found["gen"][found["gbin"] == b] >= t)))
            fp.append(i_hi + int(np.sum(found["imp"][found["ibin"] == b] >= t)))
        exact_sweep = ThresholdSweep(self.table_thresholds[::-1], np.array(tp[::-1], float), np.array(fp[::-1], float),
                                     sweep.n_pos, sweep.n_neg)
        return out, exact_sweep.table(self.table_thresholds)

    def _result(self, sweep, tar, table, hist_gen, hist_imp, notes):
        from .sweep import POLICIES

        ok = sweep.n_pos > 0 and sweep.n_neg > 0
        auc = sweep.auc() if ok else float("nan")
        eer, eer_t = sweep.eer() if ok else (float("nan"), float("nan"))
        policies = {p: sweep.choose(p, far_target=self.policy_far) for p in POLICIES} if ok else {}
        coarse = 200
        g = hist_gen.reshape(coarse, -1).sum(axis=1) if len(hist_gen) % coarse == 0 else _coarsen(hist_gen, coarse)
        i = hist_imp.reshape(coarse, -1).sum(axis=1) if len(hist_imp) % coarse == 0 else _coarsen(hist_imp, coarse)
        labels = np.concatenate([_np(x) for x in self._lab]) if self._lab else np.zeros(0)
        return VerificationResult(
            n_samples=self.n, n_identities=int(len(np.unique(labels))), n_genuine=int(self.n_genuine),
            n_impostor=int(self.n_impostor), protocol="all pairs", sweep=sweep, auc=auc,
            auc_bound=sweep.auc_bound, eer=eer, eer_threshold=eer_t, tar_at_far=tar, table=table,
            policies=policies, histogram={"edges": np.linspace(-1, 1, coarse + 1).tolist(), "genuine": g.tolist(),
                                          "impostor": i.tolist()},
            backend=self.backend, notes=notes)

    def bootstrap_sample(self):
        """Genuine ``(score, id)`` and sampled impostor ``(score, id_a, id_b)`` pairs with the impostor rate."""
        gen = np.concatenate(self._gen) if self._gen else np.zeros(0)
        gid = np.concatenate(self._gen_ids) if self._gen_ids else np.zeros(0, np.int64)
        imp = np.concatenate(self._imp_sample) if self._imp_sample else np.zeros((0, 3))
        return gen, gid, imp


def _coarsen(hist, n):
    edges = np.linspace(0, len(hist), n + 1).astype(int)
    return np.add.reduceat(hist, edges[:-1])


def pair_scores(embeddings, i, j):
    """Cosine similarity of the listed pairs ``(i[k], j[k])``."""
    e = normalize_embeddings(embeddings)
    return np.einsum("nd,nd->n", e[i].astype(np.float64), e[j].astype(np.float64)).astype(np.float32).astype(np.float64)


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


def evaluate_verification(embeddings, labels, *, pairs=None, exact_limit=20_000_000, block_size=2048,
                          backend="auto", far_targets=FAR_TARGETS, table_thresholds=TABLE_THRESHOLDS,
                          policy_far=1e-3, n_bootstrap=0, seed=0):
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
    n_bootstrap : int
        Resamples of identities for the AUC and TAR@FAR intervals (0: none).

    Returns
    -------
    VerificationResult
    """
    if pairs is None:
        m = VerificationMetrics(exact_limit=exact_limit, block_size=block_size, backend=backend,
                                far_targets=far_targets, table_thresholds=table_thresholds, policy_far=policy_far)
        m.update(embeddings, labels)
        res = m.compute()
        if n_bootstrap:
            res.intervals.update(bootstrap_verification(*m.bootstrap_sample(), n_boot=n_bootstrap, seed=seed,
                                                        far_targets=(policy_far,)))
        return res
    if len(pairs) not in (3, 4):
        raise EvallibError(f"pairs: expected (i, j, same) or (i, j, same, fold); got {len(pairs)} items")
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
    m = VerificationMetrics(backend="numpy", far_targets=far_targets, table_thresholds=table_thresholds,
                            bins_bits=12, policy_far=policy_far)
    tar = m._tar_exact(sweep)
    table = sweep.table(m.table_thresholds)
    hg, _ = np.histogram(s[same], bins=np.linspace(-1, 1, 2 ** 12 + 1))
    hi, _ = np.histogram(s[~same], bins=np.linspace(-1, 1, 2 ** 12 + 1))
    m.n, m.n_genuine, m.n_impostor = n, int(same.sum()), int((~same).sum())
    m._lab = [np.asarray(labels)]
    res = m._result(sweep, tar, table, hg, hi, [])
    lfw = lfw_accuracy(s, same, pairs[3]) if len(pairs) == 4 else None
    intervals = {}
    if n_bootstrap:
        ids = np.asarray(labels)
        if not np.issubdtype(ids.dtype, np.integer):
            ids = np.unique(ids.astype(str), return_inverse=True)[1]
        imp = np.stack([s[~same], ids[i[~same]], ids[j[~same]]], axis=1)
        intervals = bootstrap_verification(s[same], ids[i[same]], imp, n_boot=n_bootstrap, seed=seed,
                                           far_targets=(policy_far,))
    return VerificationResult(**{**res.__dict__, "protocol": "pair list", "lfw": lfw, "intervals": intervals})


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
            s = e[r0:r0 + block_size] @ e[c0:c0 + block_size].T
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
