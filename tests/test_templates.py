"""Template pooling equals a re-implementation of insightface's IJB procedure; template TAR@FAR equals
scikit-learn's ROC; 1:N with templates equals identification on the pooled features and insightface's top-k."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.preprocessing import normalize

from evallib.errors import EvallibError
from evallib.metrics.identification import evaluate_identification
from evallib.metrics.templates import (
    TEMPLATE_FAR_TARGETS,
    evaluate_template_identification,
    evaluate_template_verification,
    pool_templates,
    template_pair_scores,
)


def insightface_pooling(img_feats, faceness, templates, medias, *, use_norm_score=True, use_detector_score=True):
    """The steps of insightface ``recognition/_evaluation_/ijb/ijb_11.py`` (image2template_feature), as loops."""
    x = img_feats
    if not use_norm_score:
        x = x / np.sqrt(np.sum(x ** 2, -1, keepdims=True))
    if use_detector_score:
        x = x * faceness[:, np.newaxis]
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), x.shape[1]))
    for count_template, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_norm_feats = x[ind_t]
        face_medias = medias[ind_t]
        unique_medias, unique_media_counts = np.unique(face_medias, return_counts=True)
        media_norm_feats = []
        for u, ct in zip(unique_medias, unique_media_counts):
            (ind_m,) = np.where(face_medias == u)
            if ct == 1:
                media_norm_feats += [face_norm_feats[ind_m]]
            else:
                media_norm_feats += [np.mean(face_norm_feats[ind_m], axis=0, keepdims=True)]
        template_feats[count_template] = np.sum(np.array(media_norm_feats), axis=0)
    return normalize(template_feats), unique_templates


def ijb_like(seed, *, n_subjects=30, templates_per=3, dim=16, noise=1.0):
    """Images with template and media ids (media shared by a few frames), subjects, and detector scores."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_subjects, dim))
    rows_t, rows_m, subj_of = [], [], {}
    tid, mid = 100, 5000
    for s in range(n_subjects):
        for _ in range(templates_per):
            subj_of[tid] = s
            for _ in range(rng.integers(1, 4)):  # media per template
                for _ in range(rng.integers(1, 4)):  # frames per media
                    rows_t.append(tid)
                    rows_m.append(mid)
                mid += 1
            tid += 7  # ids are not contiguous
    t, m = np.array(rows_t), np.array(rows_m)
    subjects = np.array([subj_of[x] for x in t])
    feats = centers[subjects] * 3 + noise * rng.normal(size=(len(t), dim)) * rng.uniform(0.5, 2, (len(t), 1))
    score = rng.uniform(0.3, 1.0, len(t))
    perm = rng.permutation(len(t))  # the list is not grouped
    return feats[perm], t[perm], m[perm], score[perm], subj_of


@pytest.mark.parametrize("norm_score", [True, False])
@pytest.mark.parametrize("detector", [True, False])
def test_pooling_matches_insightface(norm_score, detector):
    feats, t, m, score, _ = ijb_like(0)
    ref, ids = insightface_pooling(feats, score, t, m, use_norm_score=norm_score, use_detector_score=detector)
    got = pool_templates(feats, t, m, weights=score if detector else None, normalize_images=not norm_score)
    np.testing.assert_array_equal(got.templates, ids)
    np.testing.assert_allclose(got.features, ref, rtol=0, atol=1e-13)
    assert got.n_images.sum() == len(t) and (got.n_media >= 1).all()
    assert got.n_media.tolist() == [len(np.unique(m[t == x])) for x in ids]


def test_pooling_invariances():
    feats, t, m, score, _ = ijb_like(1)
    a = pool_templates(feats, t, m, weights=score)
    perm = np.random.default_rng(0).permutation(len(t))
    b = pool_templates(feats[perm], t[perm], m[perm], weights=score[perm])
    np.testing.assert_allclose(a.features, b.features, rtol=0, atol=1e-14)
    # media=None: every image is its own media, so the template is the plain sum
    c = pool_templates(feats, t, None)
    sums = np.stack([feats[t == x].sum(axis=0) for x in c.templates])
    np.testing.assert_allclose(c.features, sums / np.linalg.norm(sums, axis=1, keepdims=True), atol=1e-14)
    # a media of one video weighs as much as a single still, whatever its number of frames
    d = pool_templates([[1.0, 0.0]] * 5 + [[0.0, 1.0]], [1] * 6, [1] * 5 + [2])
    np.testing.assert_allclose(d.features, [[np.sqrt(0.5), np.sqrt(0.5)]], atol=1e-15)


def pairs_for(subj_of, rng, n_pairs=4000):
    tids = np.array(sorted(subj_of))
    subj = np.array([subj_of[x] for x in tids])
    a = rng.integers(0, len(tids), n_pairs)
    b = rng.integers(0, len(tids), n_pairs)
    keep = a != b
    a, b = a[keep], b[keep]
    return tids[a], tids[b], (subj[a] == subj[b]).astype(int), subj


def test_template_verification_matches_sklearn_roc():
    feats, t, m, score, subj_of = ijb_like(2, n_subjects=60, noise=3.0)
    tf = pool_templates(feats, t, m, weights=score)
    t1, t2, same, subj = pairs_for(subj_of, np.random.default_rng(2), n_pairs=20000)
    res = evaluate_template_verification(tf, t1, t2, same, subjects=subj, n_bootstrap=50)
    # insightface's scores: dot products of the normalised template features
    ref_feats, ids = insightface_pooling(feats, score, t, m)
    row = {x: i for i, x in enumerate(ids)}
    ref_scores = np.sum(ref_feats[[row[x] for x in t1]] * ref_feats[[row[x] for x in t2]], -1)
    s = template_pair_scores(tf, t1, t2)
    np.testing.assert_allclose(s, ref_scores, rtol=0, atol=1e-6)
    fpr, tpr, thr = roc_curve(same, s, drop_intermediate=False)
    n_neg = int((same == 0).sum())
    assert res.n_genuine == same.sum() and res.n_impostor == n_neg and res.protocol == "template pairs"
    assert set(res.tar_at_far) == set(TEMPLATE_FAR_TARGETS)
    for f in TEMPLATE_FAR_TARGETS:
        if f * n_neg < 1:
            assert np.isnan(res.tar_at_far[f]["tar"]) and not res.tar_at_far[f]["supported"]
            continue
        ok = fpr <= f * (1 + 1e-12)
        assert res.tar_at_far[f]["tar"] == tpr[ok].max()
        assert res.tar_at_far[f]["threshold"] == thr[ok].min()  # the lowest threshold with FAR <= f
    assert res.auc == pytest.approx(roc_auc_score(same, s), abs=1e-12)
    assert any(res.tar_at_far[f]["supported"] for f in (1e-4, 1e-3)) and 0 < res.tar_at_far[1e-2]["tar"] < 1
    assert res.n_identities == 60 and "auc" in res.intervals
    lo, hi = res.intervals["auc"]
    assert lo <= res.auc <= hi


def test_template_identification_matches_insightface_topk():
    feats, t, m, score, subj_of = ijb_like(3, n_subjects=40, templates_per=3, noise=4.0)
    tf = pool_templates(feats, t, m, weights=score)
    tids = np.array(sorted(subj_of))
    subj = np.array([subj_of[x] for x in tids])
    # gallery: the first template of each subject; probes: the rest (closed set, as ijb_1n's mask requires)
    first = np.r_[True, subj[1:] != subj[:-1]]
    res = evaluate_template_identification(tf, gallery_templates=tids[first], gallery_subjects=subj[first],
                                           probe_templates=tids[~first], probe_subjects=subj[~first], threads=1)
    g, p = tf.features[first], tf.features[~first]
    top = np.argsort(-(p @ g.T), axis=1)  # ijb_1n.evaluation
    mask = np.array([np.flatnonzero(subj[first] == x)[0] for x in subj[~first]])
    for k in (1, 5, 10):
        expected = np.mean([mask[i] in top[i, :k] for i in range(len(mask))])
        assert res.rank_accuracy[k] == expected
    assert 0.2 < res.rank_accuracy[1] < 1
    direct = evaluate_identification(p, subj[~first], g, subj[first], threads=1)
    np.testing.assert_array_equal(res.ranks, direct.ranks)
    np.testing.assert_array_equal(res.candidate_index, direct.candidate_index)


def test_errors_name_the_argument():
    tf = pool_templates(np.eye(3), [1, 2, 3])
    with pytest.raises(EvallibError,
                       match=r"t2: expected template ids that were pooled; got 1 unknown \(first: 9 at index 1\)"):
        template_pair_scores(tf, [1, 2], [3, 9])
    with pytest.raises(EvallibError, match=r"same: expected 0/1 or bool; got values \[0, 2\]"):
        evaluate_template_verification(tf, [1, 2], [2, 3], [0, 2])
    with pytest.raises(EvallibError, match="same: expected 2 labels, one per pair; got 3"):
        evaluate_template_verification(tf, [1, 2], [2, 3], [0, 1, 1])
    with pytest.raises(EvallibError, match="weights: expected 3 values, one per image; got 2"):
        pool_templates(np.eye(3), [1, 2, 3], weights=[1.0, 1.0])
    with pytest.raises(EvallibError, match="media: expected 3 labels, one per image; got 1"):
        pool_templates(np.eye(3), [1, 2, 3], [1])
    with pytest.raises(EvallibError, match="template 2 pools to zero"):
        pool_templates(np.eye(3), [1, 2, 3], weights=[1.0, 0.0, 1.0])
    with pytest.raises(EvallibError, match="features: expected finite values"):
        pool_templates([[np.nan, 1.0]], [1])
    with pytest.raises(EvallibError, match="gallery_templates: expected template ids that were pooled"):
        evaluate_template_identification(tf, gallery_templates=[1, 5], gallery_subjects=[0, 1], probe_templates=[3],
                                         probe_subjects=[0])


# -- protocol files
from evallib.data import protocols  # noqa: E402
from evallib.errors import DataError  # noqa: E402


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_ijb_files_round_trip_into_template_verification(tmp_path):
    feats, t, m, score, subj_of = ijb_like(4, n_subjects=20, noise=4.0)
    names = [f"img/{k}.jpg" for k in range(len(t))]
    meta = write(tmp_path, "ijbc_face_tid_mid.txt", "".join(f"{n} {a} {b}\n" for n, a, b in zip(names, t, m)))
    t1, t2, same, subj = pairs_for(subj_of, np.random.default_rng(4), n_pairs=500)
    pairs = write(tmp_path, "ijbc_template_pair_label.txt", "".join(f"{a} {b} {c}\n" for a, b, c in zip(t1, t2, same)))
    lm = np.random.default_rng(0).uniform(0, 112, (len(t), 10))
    dets = write(tmp_path, "ijbc_name_5pts_score.txt",
                 "".join(f"{n} {' '.join(f'{v:.3f}' for v in row)} {float(s)!r}\n"
                         for n, row, s in zip(names, lm, score)))
    tm = protocols.read_face_tid_mid(meta)
    assert tm.images.tolist() == names and tm.templates.tolist() == t.tolist() and tm.media.tolist() == m.tolist()
    tp = protocols.read_template_pair_label(pairs)
    assert tp.t1.tolist() == t1.tolist() and tp.same.tolist() == same.astype(bool).tolist()
    fd = protocols.read_name_5pts_score(dets)
    assert fd.scores.tolist() == score.tolist() and fd.landmarks.shape == (len(t), 5, 2)
    np.testing.assert_allclose(fd.landmarks.reshape(-1, 10), lm, atol=5e-4)
    tf = pool_templates(feats, tm.templates, tm.media, weights=fd.scores)
    res = evaluate_template_verification(tf, tp.t1, tp.t2, tp.same)
    direct = evaluate_template_verification(pool_templates(feats, t, m, weights=score), t1, t2, same)
    assert 0.5 < res.auc == direct.auc < 1
    np.testing.assert_equal(res.tar_at_far, direct.tar_at_far)
    np.testing.assert_array_equal(res.sweep.thresholds, direct.sweep.thresholds)


def test_1n_csv(tmp_path):
    p = write(tmp_path, "ijbc_1N_gallery_G1.csv",
              "TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID\n11,3,img/1.jpg,1\n5,2,img/2.jpg,2\n11,3,frames/4.png,9\n\n")
    ts = protocols.read_template_subjects(p)
    assert ts.templates.tolist() == [5, 11] and ts.subjects.tolist() == [2, 3]


def test_lfw_pairs(tmp_path):
    text = "2\t2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nCy\t4\tAnn\t2\n" \
           "Dee\t1\t2\nDee\t2\t3\nCy\t1\tDee\t1\nBob\t2\tCy\t3\n"
    pl = protocols.read_lfw_pairs(write(tmp_path, "pairs.txt", text))
    assert pl.same.tolist() == [True, True, False, False] * 2 and pl.fold.tolist() == [0] * 4 + [1] * 4
    assert pl.first[0] == "Ann/Ann_0001.jpg" and pl.second[0] == "Ann/Ann_0002.jpg"
    assert pl.first[3] == "Cy/Cy_0004.jpg" and pl.second[3] == "Ann/Ann_0002.jpg"


def test_cfp_pairs(tmp_path):
    for side, kind in (("F", "frontal"), ("P", "profile")):
        write(tmp_path, f"Protocol/Pair_list_{side}.txt",
              f"1 ../Data/Images/001/{kind}/01.jpg\n2 ../Data/Images/002/{kind}/01.jpg\n")
    for k in ("01", "02"):
        write(tmp_path, f"Protocol/Split/FP/{k}/same.txt", "1,1\n2,2\n")
        write(tmp_path, f"Protocol/Split/FP/{k}/diff.txt", "1,2\n")
    pl = protocols.read_cfp_pairs(tmp_path, "FP")
    assert pl.same.tolist() == [True, True, False] * 2 and pl.fold.tolist() == [0, 0, 0, 1, 1, 1]
    assert pl.first[2].endswith("001/frontal/01.jpg") and pl.second[2].endswith("002/profile/01.jpg")


@pytest.mark.parametrize("reader, name, text, match", [
    ("read_face_tid_mid", "m.txt", "1.jpg 1 5\n2.jpg 1\n",
     r"m.txt:2: expected 3 fields \(image_name template_id media_id\); got 2"),
    ("read_face_tid_mid", "m.txt", "1.jpg 1 5\n\n2.jpg one 5\n",
     r"m.txt:3: template_id: expected an integer; got 'one'"),
    ("read_face_tid_mid", "m.txt", "\n\n",
     "m.txt: expected rows of image_name template_id media_id; got an empty file"),
    ("read_template_pair_label", "p.txt", "1 2 1\n3 4 2\n", "p.txt:2: label: expected 0 or 1; got 2"),
    ("read_template_pair_label", "p.txt", "1 2 1\n3 4\n5 6 7 8\n", r"p.txt:2: expected 3 fields"),
    ("read_template_pair_label", "p.txt", "1 2 1\n3 4.5 0\n", "p.txt:2: template_id_2: expected an integer; got '4.5'"),
    ("read_name_5pts_score", "d.txt", "a.jpg " + "1 " * 10 + "nan\n",
     "d.txt:1: detector_score: expected a finite number"),
    ("read_name_5pts_score", "d.txt", "a.jpg " + "1 " * 10 + "0.9\nb.jpg 1 2\n", r"d.txt:2: expected 12 fields"),
    ("read_template_subjects", "g.csv", "1,2,a.jpg\n", "g.csv:1: expected a header naming TEMPLATE_ID and SUBJECT_ID"),
    ("read_template_subjects", "g.csv", "TEMPLATE_ID,SUBJECT_ID\n1,2\n1,3\n",
     "g.csv:3: template 1: expected subject 2 as on line 2; got 3"),
    ("read_template_subjects", "g.csv", "TEMPLATE_ID,SUBJECT_ID\n1,2\nx,3\n",
     "g.csv:3: TEMPLATE_ID: expected an integer; got 'x'"),
    ("read_template_subjects", "g.csv", "TEMPLATE_ID,SUBJECT_ID\n1\n",
     "g.csv:2: expected at least 2 comma-separated fields; got 1"),
    ("read_lfw_pairs", "pairs.txt", "1\t1\nAnn\t1\t2\nAnn\t1\n",
     r"pairs.txt:3: expected a mismatched pair 'name1 n1 name2 n2'"),
    ("read_lfw_pairs", "pairs.txt", "1\t1\nAnn\t1\tx\nAnn\t1\tBob\t1\n",
     "pairs.txt:2: n2: expected an integer; got 'x'"),
    ("read_lfw_pairs", "pairs.txt", "2\t1\nAnn\t1\t2\nAnn\t1\tBob\t1\n",
     r"pairs.txt: expected 4 pair lines after the header \(2 folds of 1 matched and 1 mismatched\); got 2"),
])
def test_bad_protocol_files_name_file_and_line(tmp_path, reader, name, text, match):
    p = write(tmp_path, name, text)
    with pytest.raises(DataError, match=match):
        getattr(protocols, reader)(p)


def test_missing_files_and_bad_cfp_rows(tmp_path):
    with pytest.raises(DataError, match="nope.txt: file not found"):
        protocols.read_template_pair_label(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="expected a file; got a directory"):
        protocols.read_face_tid_mid(tmp_path)
    write(tmp_path, "Protocol/Pair_list_F.txt", "1 a.jpg\n")
    write(tmp_path, "Protocol/Split/FF/01/same.txt", "1,1\n")
    write(tmp_path, "Protocol/Split/FF/01/diff.txt", "1,7\n")
    with pytest.raises(DataError, match=r"diff.txt:1: j: expected an index of Pair_list_F.txt; got 7"):
        protocols.read_cfp_pairs(tmp_path, "FF")
    with pytest.raises(DataError, match="protocol: expected FP or FF; got 'PF'"):
        protocols.read_cfp_pairs(tmp_path, "PF")
