"""Cache keys in one module: an image replaced by another of the same size and time is noticed, a touched
but unchanged one is not hashed twice, and two params files naming the same model are refused."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

import evallib._keys as keys
from conftest import export_tiny_model
from evallib import run as run_module
from evallib.cli import main
from evallib.errors import ParamsError
from evallib.outputs import load_predictions, read_file_index
from evallib.run import check_unique_names, run_model


def brute_hash(path):
    return hashlib.blake2b(open(path, "rb").read(), digest_size=16).hexdigest()


def bmp_tree(root, rng, *, per_class=3, size=(16, 16)):
    """Grayscale BMP files in class folders: every file has the same byte size, whatever its pixels."""
    for c in "abc":
        (root / c).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8), "L").save(root / c / f"{c}{k}.bmp")
    return root


def replace_keeping_size_and_times(path, new_bytes):
    """Overwrite ``path`` as ``cp -p`` does: other content, the same size, the old modification time."""
    st = os.stat(path)
    assert len(new_bytes) == st.st_size
    path.write_bytes(new_bytes)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_the_keys_have_one_home():
    for name in ("predictions_key", "metrics_key", "data_fingerprint", "code_digest"):
        assert getattr(run_module, name) is getattr(keys, name)


def test_hash_listing_hashes_only_what_may_have_changed(tmp_path, rng):
    data = bmp_tree(tmp_path / "d", rng)
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.bmp"))
    hashes, index, hashed = keys.hash_listing(data, paths)
    assert hashes == [brute_hash(data / p) for p in paths] and hashed == len(paths)
    again, index2, hashed = keys.hash_listing(data, paths, index)
    assert again == hashes and hashed == 0  # nothing read
    # touched, same content: read again, same hash; replaced with the size and time kept: a new hash
    os.utime(data / paths[0], ns=(0, 10**18))
    other = (data / paths[1]).read_bytes()
    replace_keeping_size_and_times(data / paths[2], other)
    now, index3, hashed = keys.hash_listing(data, paths, index2)
    assert hashed == 2 and now[0] == hashes[0] and now[2] == hashes[1] != hashes[2]
    assert now == [brute_hash(data / p) for p in paths]
    (data / paths[3]).unlink()
    gone, _, _ = keys.hash_listing(data, paths, index3)
    assert gone[3].startswith("unreadable: ")


@pytest.fixture
def setup(tmp_path, rng):
    model = export_tiny_model(tmp_path / "tiny.onnx")
    data = bmp_tree(tmp_path / "data", rng)
    params = tmp_path / "m.yaml"
    params.write_text(yaml.safe_dump({
        "name": "m", "model": str(model), "data": {"root": str(data)},
        "preprocess": {"resize": 16, "crop": 16, "mean": [0.5], "std": [0.25], "mode": "grayscale"},
        "outputs": {"scores": "logits", "scores_are": "logits"}}))
    return params, data


def test_a_replaced_image_of_the_same_size_and_time_is_evaluated_again(setup, tmp_path, capsys):
    params, data = setup
    out = tmp_path / "out"
    first = run_model(params, out, progress=False)
    before = load_predictions(out / "m")
    # touched with the content unchanged: the predictions are reused, and the new stat fields recorded
    os.utime(data / "a" / "a0.bmp", ns=(0, 10**18))
    touched = run_model(params, out, progress=False)
    assert touched["inference"]["cached"] is True and touched["predictions_key"] == first["predictions_key"]
    index = read_file_index(out / "m")
    assert int(index.stats[index.paths.index("a/a0.bmp")][1]) == 10**18
    # a/a1.bmp replaced by b/b0.bmp's pixels, as `cp -p` would: same size, same modification time
    replace_keeping_size_and_times(data / "a" / "a1.bmp", (data / "b" / "b0.bmp").read_bytes())
    code = main(["run", str(params), "--out", str(out), "--no-report", "--quiet"])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "m" / "run.json").read_text())
    assert run["inference"]["cached"] is False and run["predictions_key"] != first["predictions_key"]
    after = load_predictions(out / "m")
    i, j = after.paths.index("a/a1.bmp"), after.paths.index("b/b0.bmp")
    np.testing.assert_allclose(after.scores[i], after.scores[j], rtol=1e-6)  # the new pixels' scores
    assert not np.allclose(before.scores[before.paths.index("a/a1.bmp")], after.scores[i])
    assert after.file_hashes[i] == brute_hash(data / "b" / "b0.bmp")
    assert run["data_fingerprint"] != first["data_fingerprint"]


def test_two_params_files_naming_one_model_are_refused_before_anything_runs(setup, tmp_path, capsys):
    params, _ = setup
    folder = tmp_path / "params"
    folder.mkdir()
    shutil.copy(params, folder / "a.yaml")
    shutil.copy(params, folder / "b.yaml")  # a copy to start a new params file, its name not changed yet
    (folder / "c.yaml").write_text(params.read_text().replace("name: m", "name: other"))
    (folder / "d.yaml").write_text("name: [\n")  # an invalid file is that model's own failure, as before
    code = main(["run", str(folder), "--out", str(tmp_path / "out"), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert (f"evallib: error: {folder / 'a.yaml'} and {folder / 'b.yaml'}: name: expected a different name for each "
            f"model (it names the output folder); got 'm' in both") in err
    assert not (tmp_path / "out").exists()  # nothing ran
    with pytest.raises(ParamsError, match=r"a\.yaml, .*b\.yaml and .*e\.yaml: name: .*got 'm' in all 3"):
        check_unique_names([folder / "a.yaml", folder / "b.yaml", folder / "c.yaml", params.rename(folder / "e.yaml")])
    with pytest.raises(ParamsError, match=r"got 'm' in both"):
        run_module.run_many([folder / "a.yaml", folder / "b.yaml"], tmp_path / "out", progress=False)
    check_unique_names([folder / "a.yaml", folder / "c.yaml", folder / "d.yaml"])  # no clash: no error
