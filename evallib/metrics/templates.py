"""Templates: image features pooled per media, then per template, as in the IJB-B and IJB-C protocols.

A template is a set of images and video frames of one subject. Pooling follows insightface's IJB
evaluation (``recognition/_evaluation_/ijb/ijb_11.py`` and ``ijb_1n.py``, Deng et al., ArcFace, CVPR
2019), vectorised:

1. optionally, each image feature is L2-normalised (the scripts' ``use_norm_score=False``; by default
   the feature norm is kept as a quality weight, their ``use_norm_score=True``);
2. optionally, each image feature is multiplied by a weight such as its detector (faceness) score
   (their ``use_detector_score``);
3. the features of one media (one still, or the frames of one video) are averaged;
4. the media features of one template are summed;
5. the sum is L2-normalised.

Template scores are then the verification scores of :mod:`.verification`: the exact float64 cosine
of :func:`~.verification.normalize_embeddings` of the pooled features. 1:1 template verification over
a pair list (IJB-B/C ``template_pair_label``) is a :class:`~.verification.VerificationResult` with
TAR at FAR 1e-6 ... 1e-1, and 1:N identification with templates is
:func:`~.identification.evaluate_identification` on gallery and probe templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..errors import EvallibError
from .bootstrap import bootstrap_verification
from .identification import evaluate_identification
from .sweep import check_labels, check_scores, threshold_sweep
from .verification import TABLE_THRESHOLDS, _result, _tar_exact, normalize_embeddings

TEMPLATE_FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
_PAIR_CHUNK = 1024  # pairs scored at once: two float32 blocks of 1024 x dim fit in cache


@dataclass(frozen=True)
class TemplateFeatures:
    """Pooled template features.

    Attributes
    ----------
    templates : ndarray of shape (n_templates,)
        Template ids, ascending.
    features : ndarray of shape (n_templates, dim)
        L2-normalised pooled features (float64), one row per template id.
    n_media, n_images : ndarray of shape (n_templates,) of int64
        Media and images pooled into each template.
    """

    templates: np.ndarray
    features: np.ndarray
    n_media: np.ndarray
    n_images: np.ndarray

    def rows(self, template_ids, name="template_ids"):
        """Row of each template id in :attr:`features`; an unknown id is an error naming ``name``."""
        t = np.asarray(template_ids)
        if t.ndim != 1:
            raise EvallibError(f"{name}: expected a 1-d array of template ids; got shape {t.shape}")
        try:
            k = np.searchsorted(self.templates, t)
        except TypeError:
            raise EvallibError(f"{name}: expected template ids like {self.templates.dtype}; got {t.dtype}") from None
        k = np.minimum(k, len(self.templates) - 1)
        bad = self.templates[k] != t
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EvallibError(f"{name}: expected template ids that were pooled; got {int(bad.sum())} unknown "
                               f"(first: {t[i].item()!r} at index {i})")
        return k

    def to_dict(self):
        return {"n_templates": int(len(self.templates)), "dim": int(self.features.shape[1]),
                "n_media": int(self.n_media.sum()), "n_images": int(self.n_images.sum())}


def pool_templates(features, templates, media=None, *, weights=None, normalize_images=False):
    """Pool image features into template features: mean per media, sum per template, L2-normalised.

    Parameters
    ----------
    features : array-like of shape (n_images, dim)
        Image features (embeddings), as the model gives them.
    templates : array-like of shape (n_images,)
        Template id of each image (``face_tid_mid`` column 2). An image may appear in several
        templates by being listed once per template.
    media : array-like of shape (n_images,), optional
        Media id of each image (column 3): frames of one video share it. ``None``: every image is
        its own media.
    weights : array-like of shape (n_images,), optional
        Per-image weight multiplied into the feature before pooling, such as the detector score.
    normalize_images : bool
        L2-normalise each image feature first (insightface ``use_norm_score=False``). By default the
        norm is kept, as the insightface scripts do.

    Returns
    -------
    TemplateFeatures

    Examples
    --------
    >>> t = pool_templates([[1.0, 0.0], [0.0, 1.0], [0.0, 3.0]], [7, 7, 7], [1, 2, 2])
    >>> t.templates.tolist(), t.n_media.tolist(), t.features.round(4).tolist()
    ([7], [2], [[0.4472, 0.8944]])
    """
    x = check_scores("features", features, ndim=2)
    n = len(x)
    t = check_labels("templates", templates, n, per="image")
    m = np.zeros(n, dtype=np.int64) if media is None else check_labels("media", media, n, per="image")
    if n == 0:
        raise EvallibError("features: expected at least one image; got none")
    if normalize_images:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        if (norm == 0).any():
            raise EvallibError(f"features: expected non-zero vectors to normalise; got {int((norm == 0).sum())} "
                               f"all-zero rows (first at row {int(np.flatnonzero(norm[:, 0] == 0)[0])})")
        x = x / norm
    if weights is not None:
        w = check_scores("weights", weights)
        if len(w) != n:
            raise EvallibError(f"weights: expected {n} values, one per image; got {len(w)}")
        if x.flags.owndata and x is not features:  # a copy made above (converted or normalised): scale in place
            x *= w[:, None]
        else:
            x = x * w[:, None]
    t_ids, t_inv = np.unique(t, return_inverse=True)
    t_inv = t_inv.ravel()
    m_inv = np.arange(n) if media is None else np.unique(m, return_inverse=True)[1].ravel()
    n_m = int(m_inv.max()) + 1
    key = t_inv.astype(np.int64) * n_m + m_inv  # one key per (template, media)
    media_key, media_of, media_size = np.unique(key, return_inverse=True, return_counts=True)
    media_of = media_of.ravel()
    # template = sum over its media of the media's mean = sum over its images of x / (images in that media):
    # one sparse product, which adds each template's images in row order
    pool = sparse.csr_matrix((1.0 / media_size[media_of], (t_inv, np.arange(n))), shape=(len(t_ids), n))
    pooled = np.asarray(pool @ x)
    n_media = np.bincount(media_key // n_m, minlength=len(t_ids))
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    if (norm == 0).any():
        i = int(np.flatnonzero(norm[:, 0] == 0)[0])
        raise EvallibError(f"features: expected every template to pool to a non-zero vector; template "
                           f"{t_ids[i].item()!r} pools to zero (all-zero features or weights)")
    return TemplateFeatures(templates=t_ids, features=pooled / norm, n_media=n_media.astype(np.int64),
                            n_images=np.bincount(t_inv, minlength=len(t_ids)).astype(np.int64))


def template_pair_scores(templates, t1, t2):
    """Scores of the template pairs ``(t1[k], t2[k])``: exact float64 cosines, in chunks.

    Parameters
    ----------
    templates : TemplateFeatures
    t1, t2 : array-like of shape (n_pairs,)
        Template ids.

    Returns
    -------
    ndarray of shape (n_pairs,)
    """
    return _rows_and_scores(templates, t1, t2)[2]


def _rows_and_scores(templates, t1, t2):
    """Rows of ``t1`` and ``t2`` in ``templates.features``, and the pairs' scores."""
    a = templates.rows(t1, "t1")
    b = templates.rows(t2, "t2")
    if len(a) != len(b):
        raise EvallibError(f"t2: expected {len(a)} template ids like t1; got {len(b)}")
    return a, b, _pair_scores(normalize_embeddings(templates.features, "template features"), a, b)


def _pair_scores(e, a, b):
    """``e[a[k]] . e[b[k]]`` for every k, in float64 (exact: the products of the float32 grid values
    and their sums are exact, :mod:`.verification`), so the order of the sums does not matter.

    Pairs are taken in the order of their first template, so that its row stays in cache and only the
    second template's row is read from memory; rows are gathered as float32 (half the bytes) and
    multiplied in float64, a chunk small enough for the cache at a time.
    """
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    sorted_scores = np.empty(len(a))
    for s in range(0, len(a), _PAIR_CHUNK):
        sl = slice(s, s + _PAIR_CHUNK)
        sorted_scores[sl] = np.einsum("nd,nd->n", e[a[sl]], e[b[sl]], dtype=np.float64)
    out = np.empty(len(a))
    out[order] = sorted_scores
    return out


def evaluate_template_verification(templates, t1, t2, same, *, subjects=None, far_targets=TEMPLATE_FAR_TARGETS,
                                   table_thresholds=TABLE_THRESHOLDS, policy_far=1e-3, n_bootstrap=0, seed=0):
    """1:1 template verification over a pair list (IJB-B/C ``template_pair_label``).

    Parameters
    ----------
    templates : TemplateFeatures
        From :func:`pool_templates`.
    t1, t2 : array-like of shape (n_pairs,)
        Template ids of each pair.
    same : array-like of shape (n_pairs,)
        1 (or True) for a genuine pair, 0 for an impostor pair.
    subjects : array-like of shape (n_templates,), optional
        Subject of each template in ``templates.templates`` order: the bootstrap resamples subjects,
        and ``n_identities`` counts them. Without it each template stands for itself.
    far_targets : sequence of float
        FAR values at which TAR is read (exactly, from every pair's score).
    n_bootstrap : int
        Resamples of subjects for the AUC and TAR@FAR intervals (0: none).

    Returns
    -------
    VerificationResult
        With ``protocol="template pairs"``; its sweep gives the ROC and the threshold slider.
    """
    y = check_labels("same", same, len(np.asarray(t1)), per="pair")
    if y.dtype != bool and not np.isin(np.unique(y), [0, 1]).all():
        raise EvallibError(f"same: expected 0/1 or bool; got values {np.unique(y)[:5].tolist()}")
    y = y.astype(bool)
    ra, rb, s = _rows_and_scores(templates, t1, t2)
    sweep = threshold_sweep(y, s)
    edges = np.linspace(-1, 1, 4097)
    hg, _ = np.histogram(s[y], bins=edges)
    hi, _ = np.histogram(s[~y], bins=edges)
    if subjects is None:
        ids = np.arange(len(templates.templates))
    else:
        subj = check_labels("subjects", subjects, len(templates.templates), per="template")
        ids = np.unique(subj, return_inverse=True)[1].ravel()
    intervals = {}
    if n_bootstrap:
        a, b = ids[ra], ids[rb]
        intervals = bootstrap_verification(s[y], a[y], np.stack([s[~y], a[~y], b[~y]], axis=1), n_boot=n_bootstrap,
                                           seed=seed, far_targets=(policy_far,))
    in_pairs = np.bincount(np.r_[ra, rb], minlength=len(templates.templates)) > 0  # rows are ids one to one
    return _result(sweep, _tar_exact(sweep, tuple(far_targets)),
                   sweep.table(np.asarray(table_thresholds, dtype=np.float64)), hg, hi,
                   n=int(in_pairs.sum()), n_ids=len(np.unique(ids[in_pairs])), policy_far=policy_far,
                   protocol="template pairs", intervals=intervals)


def evaluate_template_identification(templates, *, gallery_templates, gallery_subjects, probe_templates,
                                     probe_subjects, **kwargs):
    """1:N identification with templates (IJB-B/C gallery S1/S2 or G1/G2, and probe lists).

    Parameters
    ----------
    templates : TemplateFeatures
        Pooled features of every gallery and probe template.
    gallery_templates, gallery_subjects : array-like of shape (n_gallery,)
        Gallery template ids and their subjects.
    probe_templates, probe_subjects : array-like of shape (n_probes,)
        Probe template ids and their subjects; a subject absent from the gallery makes a
        non-mated search (open set).
    **kwargs
        Options of :func:`~.identification.evaluate_identification`.

    Returns
    -------
    IdentificationResult
        Its ``candidate_index`` indexes ``gallery_templates``.
    """
    g = templates.rows(gallery_templates, "gallery_templates")
    p = templates.rows(probe_templates, "probe_templates")
    return evaluate_identification(templates.features[p], check_labels("probe_subjects", probe_subjects, len(p),
                                                                       per="probe template"),
                                   templates.features[g], check_labels("gallery_subjects", gallery_subjects, len(g),
                                                                       per="gallery template"), **kwargs)
