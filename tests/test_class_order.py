"""Class order and score type: numeric label sort, class names from model metadata, the permutation check,
score-type inference, and the t-SNE source, down to the orientation classifier that was reported at 25%."""

import itertools
import json

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from scipy.special import softmax
from sklearn.metrics import log_loss

import evallib.tsne
from evallib.cli import main
from evallib.data import classes_from_metadata, describe_class_order, list_images, sort_labels
from evallib.errors import DataError, EvallibError
from evallib.inference import open_session, predict, score_type_warning
from evallib.metrics import class_order_check, evaluate_classification, infer_score_type
from evallib.metrics.class_order import MIN_GAIN, MIN_PER_CLASS, MIN_RATIO, MIN_SAMPLES, MIN_Z
from evallib.run import _class_order_warning, load_predictions, run_model

ANGLES = ["0", "90", "180", "270"]
LEVELS = {"0": 40, "90": 100, "180": 160, "270": 220}  # mean brightness of each folder's images
SIZE = 8


def brightness_model(path, names, *, metadata=None, embedding=False):
    """An ONNX classifier whose score column j is high when the image's mean brightness is LEVELS[names[j]].

    Outputs ``logits`` and ``probs`` (their Softmax), and ``embedding`` (distances to the levels) when asked.
    """
    centers = np.array([[LEVELS[n] / 255.0 for n in names]], dtype=np.float32)
    inits = [numpy_helper.from_array(centers, "centers"), numpy_helper.from_array(np.array([-1, 1]), "shape"),
             numpy_helper.from_array(np.array(-200.0, dtype=np.float32), "scale")]
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["m2"]),
             helper.make_node("Sub", ["m2", "centers"], ["d"]),
             helper.make_node("Mul", ["d", "d"], ["d2"]),
             helper.make_node("Mul", ["d2", "scale"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    k = len(names)
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k]),
               helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", k])]
    if embedding:
        nodes.append(helper.make_node("Identity", ["d"], ["embedding"]))
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", k]))
    graph = helper.make_graph(nodes, "brightness", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return path


def write_angles(root, classes=ANGLES, per_class=20, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(LEVELS[c] - 12, LEVELS[c] + 13, size=(SIZE, SIZE)).astype(np.uint8)
            Image.fromarray(arr, "L").save(root / c / f"{c}_{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def angles(tmp_path_factory):
    return write_angles(tmp_path_factory.mktemp("orientation") / "data")


def params_for(tmp_path, model, root, name="m", **over):
    """A params file for the brightness model on images under ``root``; ``over`` updates its sections."""
    raw = {"name": name, "model": str(model), "task": "classification", "data": {"root": str(root)},
           "preprocess": {"mode": "grayscale"}, "outputs": {"scores": "logits", "embedding": None},
           "report": {"bootstrap": 20, "tsne_thumbnails": 5}}
    for key, value in over.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# --- sorting label names -----------------------------------------------------------------------

def test_numeric_labels_sort_as_numbers(tmp_path):
    names, kind = sort_labels(["270", "0", "180", "90", "10", "2"])
    assert names == sorted(names, key=float) == ["0", "2", "10", "90", "180", "270"] and kind == "numeric"
    assert sort_labels(["-1", "2.5", "0", "1e1", "10"]) == (["-1", "0", "2.5", "10", "1e1"], "numeric")
    # numeric names first in numeric order, the rest in plain text order (as torchvision's ImageFolder)
    assert sort_labels(["b", "10", "class10", "2", "class2", "A"]) == \
        (["2", "10", "A", "b", "class10", "class2"], "numeric, then text")
    assert sort_labels(["dog", "cat"]) == (["cat", "dog"], "text")
    d = list_images(write_angles(tmp_path / "d", per_class=1))
    assert d.classes == ANGLES and d.class_order == "sorted folder names (numeric)"
    assert [d.classes[k] for k in d.labels] == [p.split("/")[0] for p in d.paths]


# --- class names from model metadata -------------------------------------------------------------

FORMATS = {
    "json list": '["0", "90", "180", "270"]',
    "json list of numbers": "[0, 90, 180, 270]",
    "json dict": '{"1": "90", "0": "0", "3": "270", "2": "180"}',
    "python dict": "{0: '0', 1: '90', 2: '180', 3: '270'}",
    "comma": "0,90,180,270",
    "comma and spaces": "0, 90, 180, 270",
    "space": "0 90 180 270",
    "newline": "0\n90\n180\n270\n",
    "name to index": '{"90": 1, "0": 0, "270": 3, "180": 2}',
}


@pytest.mark.parametrize("key", ["classes", "labels", "names", "class_names", "character"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_classes_from_metadata_formats(key, fmt):
    assert classes_from_metadata({"author": "someone", key: FORMATS[fmt]}) == (key, ANGLES)


def test_classes_from_metadata_edge_cases():
    assert classes_from_metadata({}) is None
    assert classes_from_metadata({"author": "a", "description": "0,1"}) is None
    assert classes_from_metadata({"labels": "imagenet"}) is None  # one name: not a class list
    # ultralytics writes names as a Python dict; read without evaluating anything
    names = "{0: 'person', 1: 'bicycle', 2: 'traffic light'}"
    assert classes_from_metadata({"stride": "32", "names": names}) == ("names", ["person", "bicycle", "traffic light"])
    assert classes_from_metadata({"names": "{0: __import__('os').getcwd(), 1: 'b'}"}) is None
    assert classes_from_metadata({"names": "{0: 'a', 2: 'b'}"}) is None  # not one name per column
    assert classes_from_metadata({"classes": "traffic light, stop sign"}) == ("classes", ["traffic light", "stop sign"])
    assert classes_from_metadata({"names": "a,b", "classes": "x,y"}) == ("classes", ["x", "y"])
    assert classes_from_metadata({"Labels": "x\ny"}) == ("Labels", ["x", "y"])


def test_describe_class_order_shows_ten_names_and_a_count():
    assert describe_class_order(ANGLES, "model metadata key 'character'") == \
        "model metadata key 'character': 0, 90, 180, 270"
    many = [f"n{i:04d}" for i in range(1000)]
    assert describe_class_order(many, "params data.classes") == \
        "params data.classes: " + ", ".join(many[:10]) + ", ... (1,000 classes)"


# --- the orientation classifier, end to end ------------------------------------------------------

@pytest.mark.parametrize("order", [ANGLES, ["270", "180", "90", "0"]])
def test_orientation_classifier_uses_the_metadata_order(tmp_path, angles, order, capsys):
    model = brightness_model(tmp_path / "orient.onnx", order, metadata={"character": ",".join(order)})
    run = run_model(params_for(tmp_path, model, angles), tmp_path / "out", progress=False)
    assert run["dataset"]["classes"] == order
    assert run["dataset"]["class_order"] == "model metadata key 'character'"
    assert run["warnings"] == []
    p = load_predictions(tmp_path / "out" / "m")
    assert p["classes"] == order
    truth = [path.split("/")[0] for path in p["paths"]]
    assert [order[k] for k in p["scores"].argmax(1)] == truth
    assert evaluate_classification(np.asarray(order)[p["labels"]], p["scores"], classes=order,
                                   scores_are=p["scores_are"]).accuracy == 1.0
    # the command line prints the order it used
    assert main(["run", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "out"), "--quiet", "--no-report"]) == 0
    printed = capsys.readouterr()
    assert f"class order: model metadata key 'character': {', '.join(order)}" in printed.out
    assert "WARNING" not in printed.err


def test_params_classes_override_the_metadata(tmp_path, angles):
    model = brightness_model(tmp_path / "orient.onnx", ANGLES, metadata={"classes": "90,0,270,180"})
    params = params_for(tmp_path, model, angles, data={"classes": ANGLES})
    run = run_model(params, tmp_path / "out", progress=False)
    assert run["dataset"]["classes"] == ANGLES and run["dataset"]["class_order"] == "params data.classes"
    assert run["warnings"] == []


def test_metadata_errors_name_the_key(tmp_path, angles):
    model = brightness_model(tmp_path / "orient.onnx", ANGLES, metadata={"character": "0,90,180,45"})
    with pytest.raises(DataError, match=r"^model metadata key 'character': expected every label in the data to be "
                                        r"one of the 4 classes; got unknown labels \['270'\] \(set data\.classes"):
        run_model(params_for(tmp_path, model, angles), tmp_path / "out", progress=False)
    model = brightness_model(tmp_path / "orient.onnx", ANGLES, metadata={"labels": '["0", "90", "180"]'})
    with pytest.raises(DataError, match=r"^model metadata key 'labels': expected one class name per column of output "
                                        r"'logits' \(4 columns\); got 3 names"):
        run_model(params_for(tmp_path, model, angles), tmp_path / "out", progress=False)


def test_metadata_may_name_classes_the_data_lacks(tmp_path):
    data = write_angles(tmp_path / "data", classes=["0", "90", "180"])
    model = brightness_model(tmp_path / "orient.onnx", ANGLES, metadata={"names": json.dumps(ANGLES)})
    run = run_model(params_for(tmp_path, model, data), tmp_path / "out", progress=False)
    assert run["dataset"]["classes"] == ANGLES and run["dataset"]["counts"]["270"] == 0
    assert run["dataset"]["class_order"] == "model metadata key 'names'"


def test_metadata_is_ignored_for_verification_only(tmp_path, angles):
    model = brightness_model(tmp_path / "orient.onnx", ANGLES, metadata={"classes": "x,y,z,w"}, embedding=True)
    params = params_for(tmp_path, model, angles, task="verification", outputs={"embedding": "embedding"})
    run = run_model(params, tmp_path / "out", progress=False)
    assert run["dataset"]["classes"] == ANGLES and run["dataset"]["class_order"] == "sorted folder names (numeric)"


# --- the permutation check ---------------------------------------------------------------------

def brute_force_check(y, p, k):
    """Every permutation of the columns; the same rule as class_order_check, spelled out."""
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y, p), 1)
    n, acc = len(y), np.trace(cm) / len(y)
    # best trace; among equals, fewest columns moved
    best = max(itertools.permutations(range(k)),
               key=lambda perm: (sum(cm[perm[j], j] for j in range(k)), sum(perm[j] == j for j in range(k))))
    assigned = sum(cm[best[j], j] for j in range(k)) / n
    moved = [j for j in range(k) if best[j] != j]
    gained = sum(cm[best[j], j] - cm[j, j] for j in moved)
    z = gained / max(np.sqrt(sum(cm[best[j], j] + cm[j, j] for j in moved)), 1.0)
    present = len(set(y.tolist()))
    flagged = (n >= max(MIN_SAMPLES, MIN_PER_CLASS * present) and assigned >= acc + MIN_GAIN
               and assigned >= MIN_RATIO * acc and z >= MIN_Z)
    return flagged, acc, assigned, list(best)


def scenario(rng, n, k, *, perm, signal):
    """Labels, and predictions that are right with probability ``signal`` under the column order ``perm``."""
    y = rng.integers(0, k, n)
    right = rng.random(n) < signal
    col_of_class = np.argsort(perm)  # perm[j] is the class of column j
    p = np.where(right, col_of_class[y], rng.integers(0, k, n))
    return y, p


CASES = [(n, perm, signal, seed) for seed in range(3)
         for n, perm, signal in [(120, (0, 1, 2, 3), 0.9), (120, (0, 3, 1, 2), 0.9), (120, (1, 0, 2, 3), 0.6),
                                 (120, (1, 0, 3, 2), 0.3), (60, (3, 2, 1, 0), 1.0), (200, (0, 1, 2, 3), 0.0),
                                 (200, (2, 3, 0, 1), 0.45), (90, (1, 2, 3, 0), 0.8)]]


@pytest.mark.parametrize("n,perm,signal,seed", CASES)
def test_class_order_check_matches_brute_force(n, perm, signal, seed):
    rng = np.random.default_rng(seed)
    y, p = scenario(rng, n, 4, perm=perm, signal=signal)
    names = ["a", "b", "c", "d"]
    flagged, acc, assigned, best = brute_force_check(y, p, 4)
    r = class_order_check(y, p, names)
    assert (r is not None) == flagged
    if r is not None:
        assert r.accuracy == pytest.approx(acc) and r.assigned_accuracy == pytest.approx(assigned)
        assert r.likely_order == [names[c] for c in best] and list(r.columns) == best


def test_class_order_check_positive_and_negative():
    # text-sorted orientation folders, a model that is always right in its own order 0, 90, 180, 270
    named = ["0", "180", "270", "90"]
    y = np.repeat(np.arange(4), 25)
    col = {name: ANGLES.index(name) for name in named}  # the model's column of each class
    p = np.array([col[named[c]] for c in y])
    r = class_order_check(y, p, named)
    assert r.accuracy == 0.25 and r.assigned_accuracy == 1.0 and r.likely_order == ANGLES
    assert r.moved() == [(1, "180", "90"), (2, "270", "180"), (3, "90", "270")]
    assert class_order_check(y, y, named) is None  # right order
    assert class_order_check(y[::4], p[::4], named) is None  # 25 images: too few for 4 classes
    rng = np.random.default_rng(3)
    assert class_order_check(y, rng.integers(0, 4, len(y)), named) is None  # chance
    # a weak model with one swapped pair: gains less than 0.2, not flagged
    y2, p2 = scenario(rng, 400, 10, perm=(1, 0, 2, 3, 4, 5, 6, 7, 8, 9), signal=0.9)
    assert class_order_check(y2, p2, list("abcdefghij")) is None
    with pytest.raises(EvallibError, match=r"y_pred: expected class indices 0\.\.3 \(one per class name\); got values"
                                           r" from 0 to 4"):
        class_order_check([0, 1], [0, 4], named)


def test_class_order_check_with_many_classes():
    rng = np.random.default_rng(0)
    k = 300
    y = np.repeat(np.arange(k), 20)
    p = (y + 1) % k  # every column one place off
    names = [f"c{i}" for i in range(k)]
    r = class_order_check(y, p, names)
    assert r.accuracy == 0 and r.assigned_accuracy == 1.0
    assert r.likely_order == [names[(j - 1) % k] for j in range(k)] and len(r.moved()) == k
    msg = _class_order_warning(r.to_dict(), "params data.classes")  # names ten columns, then a count
    assert msg.startswith("class order: accuracy is 0.000 with the score columns named from params data.classes, "
                          "but would be 1.000 with column 0 (c0) as c299; column 1 (c1) as c0; ")
    assert msg.count(" as c") == 10 and "; and 290 more columns renamed;" in msg
    noise = rng.integers(0, k, len(y))
    assert class_order_check(y, noise, names) is None


def test_permutation_warning_end_to_end(tmp_path, angles, capsys):
    # no metadata, model columns in the order 270, 180, 90, 0: the numeric folder order is wrong
    model = brightness_model(tmp_path / "rev.onnx", ["270", "180", "90", "0"])
    run = run_model(params_for(tmp_path, model, angles, name="rev"), tmp_path / "out", progress=False)
    assert run["dataset"]["class_order"] == "sorted folder names (numeric)"
    check = run["class_order_check"]
    assert check["accuracy"] == 0.0 and check["assigned_accuracy"] == 1.0
    assert check["likely_order"] == ["270", "180", "90", "0"]
    assert run["warnings"] == [
        "class order: accuracy is 0.000 with the score columns named from sorted folder names (numeric), but would "
        "be 1.000 in the order 270, 180, 90, 0; the model's classes are likely in that order (give it in "
        "data.classes)"]
    assert main(["run", str(tmp_path / "rev.yaml"), "--out", str(tmp_path / "out"), "--quiet", "--no-report"]) == 0
    printed = capsys.readouterr()
    assert "WARNING rev: class order: accuracy is 0.000" in printed.err
    assert "class order: sorted folder names (numeric): 0, 90, 180, 270" in printed.out
    # the report shows the warning first and the order in the run table
    rep = evallib.load(tmp_path / "out" / "rev")
    page = rep.summary._repr_html_() + rep.header._repr_html_()  # the top of the page, then the model facts
    assert page.index("<b>Warning:</b> class order: accuracy is 0.000") < page.index("model file")
    assert "<td>class order</td><td>sorted folder names (numeric): 0, 90, 180, 270</td>" in page


# --- score type ----------------------------------------------------------------------------------

def test_infer_score_type_on_known_and_adversarial_scores(rng):
    logits = rng.normal(0, 3, size=(200, 10))
    probs = softmax(logits, axis=1)
    assert infer_score_type(probs)[0] == "probabilities"
    kind, evidence = infer_score_type(logits)
    assert kind == "logits" and evidence.startswith("values from") and "outside [0, 1]" in evidence
    one_hot = np.eye(10)[rng.integers(0, 10, 50)]
    assert infer_score_type(one_hot) == ("probabilities",
                                         "every row is in [0, 1] and sums to 1 (row sums 1.0000–1.0000)")
    small = rng.uniform(0, 1, size=(100, 5))  # logits that happen to lie in [0, 1]
    kind, evidence = infer_score_type(small)
    assert kind == "logits" and "within [0, 1], but rows do not sum to 1 (row sums" in evidence
    assert evidence.startswith("values from ")
    sigmoid = 1 / (1 + np.exp(-logits))
    assert infer_score_type(sigmoid)[0] == "logits"
    # float16 rounding of a softmax over many classes: still probabilities
    p16 = softmax(rng.normal(0, 2, size=(50, 1000)), axis=1).astype(np.float16).astype(np.float64)
    assert np.abs(p16.sum(1) - 1).max() > 1e-5 and infer_score_type(p16)[0] == "probabilities"
    # every row must sum to 1: one row off decides
    off = probs.copy()
    off[7] *= 0.9
    assert infer_score_type(off)[0] == "logits"
    binary = np.c_[rng.random(30), np.zeros(30)]
    binary[:, 1] = 1 - binary[:, 0]
    assert infer_score_type(binary)[0] == "probabilities"
    with pytest.raises(EvallibError, match=r"scores: expected a 2-d array .*; got shape \(0, 3\)"):
        infer_score_type(np.zeros((0, 3)))


def test_score_type_warning_text():
    st = {"declared": "logits", "detected": "probabilities", "used": "logits",
          "evidence": "every row is in [0, 1] and sums to 1 (row sums 0.9999–1.0001)"}
    assert score_type_warning(st) == (
        "outputs.scores_are: declared 'logits' but every row is in [0, 1] and sums to 1 (row sums 0.9999–1.0001): "
        "these look like probabilities (a Softmax output); log loss and ECE would be wrong; set outputs.scores_are "
        "to 'probabilities' or 'auto'")
    assert score_type_warning({**st, "declared": "auto"}) is None
    assert score_type_warning({**st, "declared": "probabilities"}) is None
    assert score_type_warning({**st, "declared": "probabilities", "detected": "logits"}).startswith(
        "outputs.scores_are: declared 'probabilities' but every row")


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")  # float32 softmax, as the model gives it
def test_softmax_output_declared_as_logits_warns_and_auto_is_right(tmp_path, angles):
    model = brightness_model(tmp_path / "orient.onnx", ANGLES)
    wrong = run_model(params_for(tmp_path, model, angles, name="declared",
                                 outputs={"scores": "probs", "scores_are": "logits"}), tmp_path / "out", progress=False)
    assert wrong["score_type"]["used"] == "logits" and wrong["score_type"]["detected"] == "probabilities"
    assert len(wrong["warnings"]) == 1
    assert wrong["warnings"][0].startswith("outputs.scores_are: declared 'logits' but every row is in [0, 1] and sums "
                                           "to 1 (row sums ")
    auto = run_model(params_for(tmp_path, model, angles, name="auto", outputs={"scores": "probs"}),
                     tmp_path / "out", progress=False)
    assert auto["warnings"] == [] and auto["score_type"]["declared"] == "auto"
    assert auto["score_type"]["used"] == "probabilities"
    p = load_predictions(tmp_path / "out" / "auto")
    assert p["scores_are"] == "probabilities"
    ours = evaluate_classification(p["labels"], p["scores"], scores_are=p["scores_are"])
    assert ours.log_loss == pytest.approx(log_loss(p["labels"], p["scores"], labels=range(4)), rel=1e-6, abs=1e-9)
    q = load_predictions(tmp_path / "out" / "declared")
    bad = evaluate_classification(q["labels"], q["scores"], scores_are=q["scores_are"])
    assert bad.log_loss > 0.5 > 10 * ours.log_loss  # softmax of probabilities: the reported symptom
    # the logits output is detected as logits
    logit_run = run_model(params_for(tmp_path, model, angles, name="logit"), tmp_path / "out", progress=False)
    assert logit_run["score_type"]["used"] == "logits" and logit_run["warnings"] == []
    # logits declared as probabilities cannot be used as such: evaluated as logits, with the warning
    lied = run_model(params_for(tmp_path, model, angles, name="lied",
                                outputs={"scores": "logits", "scores_are": "probabilities"}), tmp_path / "out",
                     progress=False)
    assert lied["score_type"]["used"] == "logits" and len(lied["warnings"]) == 1
    assert "so they were evaluated as logits" in lied["warnings"][0]
    r = load_predictions(tmp_path / "out" / "lied")
    assert r["scores_are"] == "logits"
    got = evaluate_classification(r["labels"], r["scores"], scores_are=r["scores_are"])  # no error
    ref = evaluate_classification(r["labels"], r["scores"], scores_are="logits")
    assert got.accuracy == ref.accuracy and got.log_loss == ref.log_loss


@pytest.mark.parametrize("output", ["probs", "logits"])
def test_auto_resolves_before_views_are_averaged(tmp_path, angles, output):
    from evallib.data import load_views

    model = brightness_model(tmp_path / "orient.onnx", ANGLES)
    d = list_images(angles)
    files = [d.file(i) for i in range(0, len(d), 7)]
    pre = {"resize": None, "crop": None, "mean": [0.0], "std": [1.0], "mode": "grayscale", "tta": "flip"}
    sess = open_session(model, threads=1)
    pred = predict(sess, files, pre, {"scores": output, "scores_are": "auto"}, progress=False)
    assert pred.raw_scores_are == ("probabilities" if output == "probs" else "logits")
    assert pred.scores_are == "probabilities"
    for i, f in enumerate(files):
        x = load_views(f, pre)[0].astype(np.float32)
        raw = sess.run([output], {"input": x})[0].astype(np.float64)
        want = (raw if output == "probs" else softmax(raw, axis=1)).mean(0)
        np.testing.assert_allclose(pred.scores[i], want, atol=1e-6)


# --- t-SNE source ---------------------------------------------------------------------------------

def test_tsne_is_skipped_for_three_scores_without_embedding(tmp_path, evaluated):
    data = write_angles(tmp_path / "data", classes=["0", "90", "180"], per_class=4)
    model = brightness_model(tmp_path / "three.onnx", ["0", "90", "180"])
    params = params_for(tmp_path, model, data, name="three")
    rep = evaluated(params, tmp_path / "out")
    note = rep.tsne_map._repr_html_()
    assert "No t-SNE map: the model has no embedding output, and a map of its 3 class scores would show nothing" in note
    assert rep.metrics["tsne"]["skipped"].startswith("No t-SNE map")


def test_tsne_caption_names_the_output(tmp_path, evaluated):
    data = write_angles(tmp_path / "data", per_class=5)
    model = brightness_model(tmp_path / "emb.onnx", ANGLES, embedding=True)
    params = params_for(tmp_path, model, data, name="emb", outputs={"embedding": "embedding"})
    rep = evaluated(params, tmp_path / "out")
    assert "20 points from output &#x27;embedding&#x27;" in rep.tsne_map._repr_html_()
    assert rep.metrics["tsne"]["source"] == "output 'embedding'"
    params = params_for(tmp_path, model, data, name="scores")
    rep = evaluated(params, tmp_path / "out")
    _ = rep.tsne_map  # the map is built on first access
    assert rep.metrics["tsne"]["source"] == "output 'logits' (class scores)"
