"""1:1 template verification on an IJB-C-shaped protocol, against insightface's IJB procedure, in the same run.

The protocol is synthetic and shaped like IJB-C's 1:1 (Maze et al., IJB-C, ICB 2018), sized to a
million template pairs: 150,000 image features (d = 512, float32, their norm kept as a quality weight)
with detector scores, 20,000 templates of 1 to 30 images each, spread over media (stills, and videos
whose frames share a media id and a media-level offset), 1,333 subjects with several templates each,
and 1,000,000 template pairs, a tenth of them genuine (IJB-C's are 19,557 of 15.6 million; ``--genuine``
sets the share). With 900,000 impostor pairs, TAR at FAR 1e-6 is not supported (NaN): it needs at
least a million.

Timed on the same inputs:

- evallib, pooling and scores: ``pool_templates`` (detector-score weights) and ``template_pair_scores``;
- evallib, full: ``pool_templates`` and ``evaluate_template_verification``: the exact sweep, TAR at
  FAR 1e-6 ... 1e-1, the threshold table, score histograms, and intervals from the project's default
  of 1,000 bootstrap resamples of subjects (``report.bootstrap``);
- the reference: insightface ``recognition/_evaluation_/ijb/ijb_11.py`` (Deng et al., ArcFace, CVPR
  2019) as the script writes it, re-implemented here: ``image2template_feature`` (a Python loop over
  templates and, within each, over media), ``verification`` (pairs in batches of 100,000,
  ``np.sum(feat1 * feat2, -1)``), then ``sklearn.metrics.roc_curve`` on every pair's score and TAR read
  at the FPR nearest each target, as the script reads it. It has no intervals.

The template pair scores of both are compared: evallib's are the exact float64 cosines of features
rounded to multiples of 2**-24 (``normalize_embeddings``, so that a score does not depend on the order of
its sums), insightface's those of the unrounded float64 features, so they agree to within 2**-25 times
the sum of the two features' L1 norms, at most 2**-24 sqrt(d) = 1.35e-6 at d = 512. evallib's TAR@FAR
is also checked against scikit-learn's ROC of the same scores, read exactly (the largest TPR at FPR <= target).

Budget:

1. evallib's pooling and scores take no longer than the reference's: the ratio of their median wall
   times, timed in turn in this process, is at most 1.0;
2. evallib's full evaluation, intervals included, takes at most 60 s on this 2-core machine. The
   machine is shared: while its 1-minute load average exceeds its cores, a wall time counts the wait
   for a core, and this target is judged on the process's CPU time (all threads) instead; both are
   reported, with the load and the basis used.

    python bench/bench_templates.py                       # 1,000,000 pairs (3 to 8 minutes)
    python bench/bench_templates.py --pairs 100000 --templates 4000 --images 30000   # small
"""

import argparse
import os
import time

import numpy as np
import sklearn.metrics
import sklearn.preprocessing

from _util import max_rss_mb, report
from evallib.metrics.templates import (
    TEMPLATE_FAR_TARGETS,
    evaluate_template_verification,
    pool_templates,
    template_pair_scores,
)

BUDGET_S = 60.0
D = 512
SCORE_TOLERANCE = 2.0 ** -24 * np.sqrt(D)  # the 2**-24 grid of normalize_embeddings (module notes)
MAX_IMAGES = 30  # images per template


def protocol(n_images, n_templates, n_pairs, *, n_subjects=None, d=D, genuine=0.1, media_noise=1.7,
             image_noise=2.5, seed=0):
    """Image features, detector scores, template and media ids, subjects, and a template pair list.

    Returns ``feats (n_images, d) float32, faceness (n_images,), tids (n_images,), mids (n_images,),
    template_ids (n_templates,) ascending, subject (n_templates,), p1, p2, label (n_pairs,)``.
    """
    if not n_templates <= n_images <= MAX_IMAGES * n_templates:
        raise ValueError(f"--images: expected between {n_templates} and {MAX_IMAGES * n_templates} "
                         f"for {n_templates} templates of 1 to {MAX_IMAGES} images; got {n_images}")
    rng = np.random.default_rng(seed)
    n_subjects = n_subjects or max(2, n_templates // 15)
    if not 2 <= 2 * n_subjects <= n_templates:
        raise ValueError(f"--subjects: expected 1 to {n_templates // 2} for {n_templates} templates, at least two "
                         f"per subject; got {n_subjects}")
    # template ids: sparse and ascending, as IJB-C's; every subject gets at least two templates
    template_ids = np.sort(rng.choice(10 * n_templates, n_templates, replace=False)) + 1
    subject = rng.permutation(np.r_[np.arange(n_subjects), np.arange(n_subjects),
                                    rng.integers(0, n_subjects, n_templates - 2 * n_subjects)])
    # images per template: 1..30, skewed (most templates are small), summing to n_images
    w = rng.lognormal(0.0, 1.0, n_templates)
    sizes = np.ones(n_templates, np.int64)
    left = n_images - n_templates
    while left > 0:
        room = MAX_IMAGES - sizes
        p = w * (room > 0)
        add = np.minimum(rng.multinomial(left, p / p.sum()), room)
        sizes += add
        left -= int(add.sum())
    t_of = np.repeat(np.arange(n_templates), sizes)
    first = np.r_[True, t_of[1:] != t_of[:-1]]
    # media: a new media starts at each template's first image and, after that, with probability 0.45;
    # runs of images on one media are the frames of one video
    starts = first | (rng.random(n_images) < 0.45)
    m_of = np.cumsum(starts) - 1
    n_media = int(m_of[-1]) + 1
    centers = rng.standard_normal((n_subjects, d), dtype=np.float32) / np.sqrt(d)
    feats = centers[subject[t_of]]
    feats += media_noise / np.sqrt(d) * rng.standard_normal((n_media, d), dtype=np.float32)[m_of]
    feats += image_noise / np.sqrt(d) * rng.standard_normal((n_images, d), dtype=np.float32)
    feats *= rng.uniform(10, 30, (n_images, 1)).astype(np.float32)  # feature norms, kept as quality
    faceness = rng.uniform(0.3, 1.0, n_images)
    media_ids = rng.permutation(n_media)[m_of] + 1  # media ids in no particular order
    perm = rng.permutation(n_images)  # the face list is not grouped by template
    feats, faceness, tids, mids = feats[perm], faceness[perm], template_ids[t_of][perm], media_ids[perm]

    # genuine pairs: a sample of all same-subject template pairs; impostors: random distinct-subject pairs
    n_gen = int(round(genuine * n_pairs))
    by_subject = np.argsort(subject, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(subject, minlength=n_subjects))]
    gen = []
    for s in range(n_subjects):
        members = by_subject[bounds[s]:bounds[s + 1]]
        i, j = np.triu_indices(len(members), 1)
        gen.append(np.stack([members[i], members[j]], axis=1))
    gen = np.concatenate(gen)
    gen = gen[rng.choice(len(gen), n_gen, replace=n_gen > len(gen))]
    imp = np.empty((0, 2), np.int64)
    while len(imp) < n_pairs - n_gen:
        a, b = rng.integers(0, n_templates, (2, 2 * (n_pairs - n_gen)))
        keep = subject[a] != subject[b]
        lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        key = np.unique(np.r_[imp[:, 0] * n_templates + imp[:, 1], lo * n_templates + hi])
        imp = np.stack([key // n_templates, key % n_templates], axis=1)
    imp = imp[rng.choice(len(imp), n_pairs - n_gen, replace=False)]
    pairs = np.concatenate([gen, imp])
    label = np.r_[np.ones(n_gen, np.int64), np.zeros(len(imp), np.int64)]
    order = rng.permutation(n_pairs)
    pairs, label = pairs[order], label[order]
    return (feats, faceness, tids, mids, template_ids, subject, template_ids[pairs[:, 0]],
            template_ids[pairs[:, 1]], label)


def timed(fn, repeat):
    """``(median wall seconds, median CPU seconds of the process, last result)`` over ``repeat`` calls."""
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu)), out


# --- insightface recognition/_evaluation_/ijb/ijb_11.py, as written there (progress prints left out) ---

def image2template_feature(img_feats=None, templates=None, medias=None):
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), img_feats.shape[1]))
    for count_template, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_norm_feats = img_feats[ind_t]
        face_medias = medias[ind_t]
        unique_medias, unique_media_counts = np.unique(face_medias, return_counts=True)
        media_norm_feats = []
        for u, ct in zip(unique_medias, unique_media_counts):
            (ind_m,) = np.where(face_medias == u)
            if ct == 1:
                media_norm_feats += [face_norm_feats[ind_m]]
            else:  # image features from the same video will be aggregated into one feature
                media_norm_feats += [np.mean(face_norm_feats[ind_m], axis=0, keepdims=True)]
        media_norm_feats = np.array(media_norm_feats)
        template_feats[count_template] = np.sum(media_norm_feats, axis=0)
    template_norm_feats = sklearn.preprocessing.normalize(template_feats)
    return template_norm_feats, unique_templates


def verification(template_norm_feats=None, unique_templates=None, p1=None, p2=None):
    template2id = np.zeros((max(unique_templates) + 1, 1), dtype=int)
    for count_template, uqt in enumerate(unique_templates):
        template2id[uqt] = count_template
    score = np.zeros((len(p1),))
    total_pairs = np.array(range(len(p1)))
    batchsize = 100000
    sublists = [total_pairs[i:i + batchsize] for i in range(0, len(p1), batchsize)]
    for s in sublists:  # the script enumerates them for its progress print
        feat1 = template_norm_feats[template2id[p1[s]]]
        feat2 = template_norm_feats[template2id[p2[s]]]
        similarity_score = np.sum(feat1 * feat2, -1)
        score[s] = similarity_score.flatten()
    return score


def reference_scores(img_feats, faceness, templates, medias, p1, p2):
    """The script's defaults: use_norm_score=True (norms kept), use_detector_score=True."""
    img_input_feats = img_feats * faceness[:, np.newaxis]
    template_norm_feats, unique_templates = image2template_feature(img_input_feats, templates, medias)
    return verification(template_norm_feats, unique_templates, p1, p2)


def reference_tar(label, score):
    """sklearn's ROC on every pair, TAR at the FPR nearest each target (ijb_11.py's table)."""
    fpr, tpr, _ = sklearn.metrics.roc_curve(label, score)
    return {f: float(tpr[np.argmin(np.abs(fpr - f))]) for f in TEMPLATE_FAR_TARGETS}, (fpr, tpr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--templates", type=int, default=20_000)
    ap.add_argument("--images", type=int, default=150_000)
    ap.add_argument("--subjects", type=int, default=None, help="default: templates // 15")
    ap.add_argument("--genuine", type=float, default=0.1, help="share of genuine pairs")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of pooling and scores, evallib's and the reference's")
    ap.add_argument("--full-repeat", type=int, default=1, help="runs of evallib's full evaluation")
    args = ap.parse_args()
    t0 = time.perf_counter()
    feats, faceness, tids, mids, template_ids, subject, p1, p2, label = protocol(
        args.images, args.templates, args.pairs, n_subjects=args.subjects, genuine=args.genuine)
    print(f"protocol built in {time.perf_counter() - t0:.1f} s: {len(feats):,} images, {len(template_ids):,} "
          f"templates, {len(np.unique(mids)):,} media, {len(np.unique(subject)):,} subjects, {len(label):,} pairs "
          f"({int(label.sum()):,} genuine); load average {os.getloadavg()[0]:.2f}", flush=True)

    def scores():
        return template_pair_scores(pool_templates(feats, tids, mids, weights=faceness), p1, p2)

    def full():
        tf = pool_templates(feats, tids, mids, weights=faceness)
        return evaluate_template_verification(tf, p1, p2, label, subjects=subject, n_bootstrap=args.bootstrap)

    def ref_scores():
        return reference_scores(feats, faceness, tids, mids, p1, p2)

    def ref_full():
        s = ref_scores()
        return s, reference_tar(label, s)

    # in turn on the same inputs, so that the machine's load falls on both
    t_scores, c_scores, s = timed(scores, args.repeat)
    t_ref_scores, c_ref_scores, s_ref = timed(ref_scores, args.repeat)
    t_pool, c_pool, _ = timed(lambda: pool_templates(feats, tids, mids, weights=faceness), args.repeat)
    load = os.getloadavg()[0]
    t_full, c_full, res = timed(full, args.full_repeat)
    t_ref_full, c_ref_full, (_, (tar_ref, (fpr, tpr))) = timed(ref_full, 1)
    load = max(load, os.getloadavg()[0])
    max_diff = float(np.abs(s - s_ref).max())
    # evallib's exact TAR@FAR equals sklearn's ROC read as the largest TPR at FPR <= target
    tar_exact_ok = all(
        np.isnan(res.tar_at_far[f]["tar"]) if not res.tar_at_far[f]["supported"]
        else res.tar_at_far[f]["tar"] == tpr[fpr <= f * (1 + 1e-12)].max() for f in TEMPLATE_FAR_TARGETS)
    ratio = t_scores / t_ref_scores
    cores = os.cpu_count()
    basis = "wall" if load <= cores else f"cpu (load average {load:.1f} on {cores} cores)"
    full_s = t_full if basis == "wall" else c_full
    met = ratio <= 1.0 and full_s <= BUDGET_S and max_diff <= SCORE_TOLERANCE and tar_exact_ok
    iv = res.intervals
    report(f"22t. template verification {args.pairs:,} pairs ({args.templates:,} templates, {args.images:,} "
           f"images, d=512)", met=met,
           evallib_pool_and_scores_s=t_scores, reference_pool_and_scores_s=t_ref_scores,
           ratio_to_reference=ratio, evallib_pool_and_scores_cpu_s=c_scores,
           reference_pool_and_scores_cpu_s=c_ref_scores, evallib_pool_s=t_pool, evallib_pool_cpu_s=c_pool,
           evallib_full_s=t_full, evallib_full_cpu_s=c_full, full_budget_s=BUDGET_S, full_budget_basis=basis,
           reference_full_s=t_ref_full, reference_full_cpu_s=c_ref_full,
           bootstrap_resamples=args.bootstrap, n_images=len(feats), n_templates=res.n_samples,
           n_media=len(np.unique(mids)), n_subjects=res.n_identities, n_genuine=res.n_genuine,
           n_impostor=res.n_impostor, score_max_abs_diff=max_diff, score_tolerance=SCORE_TOLERANCE,
           tar_equals_sklearn_roc=tar_exact_ok, auc=res.auc,
           auc_interval=[round(v, 5) for v in iv.get("auc", (np.nan,) * 2)],
           tar_at_far={f"{f:g}": round(res.tar_at_far[f]["tar"], 4) for f in TEMPLATE_FAR_TARGETS},
           **{"tar_at_far_1e-3_interval": [round(v, 4) for v in iv.get("tar_at_far_0.001", (np.nan,) * 2)]},
           reference_tar_at_far={f"{f:g}": round(v, 4) for f, v in tar_ref.items()},
           load_average_1min=round(load, 2), max_rss_MiB=max_rss_mb())


if __name__ == "__main__":
    main()
