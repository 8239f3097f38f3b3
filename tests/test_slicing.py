import numpy as np
import pytest
from scipy import ndimage

from evallib.data.image_properties import PROPERTY_NAMES, image_properties, laplacian, properties_table
from evallib.data.slicing import (
    NO_METADATA,
    NO_VALUE,
    bin_properties,
    bin_values,
    combine_slices,
    read_metadata,
    slices_from_paths,
)
from evallib.errors import DataError
from evallib.metrics.slices import metrics_by_slice

IMAGES = ["cat/1.jpg", "cat/2.jpg", "dog/3.jpg", "dog/4.jpg", "dog/5.jpg"]


def _csv(tmp_path, text, name="meta.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


# --- metadata ------------------------------------------------------------------------------------

def test_metadata_joins_by_path_and_unlisted_images_get_their_own_slice(tmp_path):
    p = _csv(tmp_path, "path,camera,site\ndog/3.jpg,B,north\ncat/1.jpg,A,south\n./dog/4.jpg,B,south\n")
    cols = read_metadata(p, IMAGES)
    assert list(cols) == ["camera", "site"]
    assert cols["camera"].tolist() == ["A", NO_METADATA, "B", "B", NO_METADATA]
    assert cols["site"].tolist() == ["south", NO_METADATA, "north", "south", NO_METADATA]


def test_metadata_accepts_absolute_paths_under_the_data_folder(tmp_path):
    root = tmp_path / "data"
    p = _csv(tmp_path, f"path,camera\n{root / 'cat' / '2.jpg'},A\n")
    assert read_metadata(p, IMAGES, root=root)["camera"].tolist()[1] == "A"


def test_unknown_paths_are_an_error_naming_the_file_and_rows(tmp_path):
    p = _csv(tmp_path, "path,camera\ncat/1.jpg,A\ncat/9.jpg,A\ndog/3.jpg,B\nbird/7.jpg,C\n")
    with pytest.raises(DataError, match=r"meta\.csv: paths not among the 5 evaluated images at rows "
                                        r"3 \('cat/9\.jpg'\), 5 \('bird/7\.jpg'\)"):
        read_metadata(p, IMAGES)
    assert read_metadata(p, IMAGES, unknown="ignore")["camera"].tolist()[:3] == ["A", NO_METADATA, "B"]


def test_duplicate_paths_are_an_error_naming_both_rows(tmp_path):
    p = _csv(tmp_path, "path,camera\ncat/1.jpg,A\ndog/3.jpg,B\n./cat/1.jpg,C\n")
    with pytest.raises(DataError, match=r"meta\.csv: each image may be listed once; duplicate paths at "
                                        r"row 4 \(same path as row 2: '\./cat/1\.jpg'\)"):
        read_metadata(p, IMAGES)


def test_missing_values_are_an_error_naming_the_column_and_rows(tmp_path):
    p = _csv(tmp_path, "path,camera,site\ncat/1.jpg,A,\ndog/3.jpg,,north\ndog/4.jpg,B,\n")
    with pytest.raises(DataError, match=r"meta\.csv: missing values \(column 'site': rows 2, 4; "
                                        r"column 'camera': row 3\)"):
        read_metadata(p, IMAGES)


def test_bad_headers_and_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: metadata file not found"):
        read_metadata(tmp_path / "nope.csv", IMAGES)
    with pytest.raises(DataError, match=r"meta\.csv: expected a column 'path' naming each image; got columns "
                                        r"\['file', 'camera'\]"):
        read_metadata(_csv(tmp_path, "file,camera\ncat/1.jpg,A\n"), IMAGES)
    with pytest.raises(DataError, match=r"meta\.csv: row 3: expected 2 fields like the header"):
        read_metadata(_csv(tmp_path, "path,camera\ncat/1.jpg,A\ndog/3.jpg,B,extra\n"), IMAGES)
    with pytest.raises(DataError, match=r"appear more than once"):
        read_metadata(_csv(tmp_path, "path,camera,camera\ncat/1.jpg,A,B\n"), IMAGES)
    with pytest.raises(DataError, match=r"at least one column besides 'path'"):
        read_metadata(_csv(tmp_path, "path\ncat/1.jpg\n"), IMAGES)


def test_numeric_columns_with_many_values_are_binned(tmp_path):
    images = [f"img/{i}.jpg" for i in range(40)]
    rows = "".join(f"img/{i}.jpg,{20 + i},{i % 3}\n" for i in range(39))
    cols = read_metadata(_csv(tmp_path, "path,age,shift\n" + rows), images, numeric_bins=4)
    assert cols["shift"].tolist()[:4] == ["0", "1", "2", "0"]  # few values: kept as categories
    age = cols["age"]
    assert age[39] == NO_METADATA
    assert len(set(age[:39])) == 4
    ref = np.quantile(np.arange(20, 59), [0.25, 0.5, 0.75])
    assert age[0] == f"< {ref[0]:.3g}" and age[38] == f">= {ref[2]:.3g}"


# --- paths and bins --------------------------------------------------------------------------------

def test_slices_from_path_components():
    paths = ["scanner_a/cat/1.jpg", "scanner_b/dog/2.jpg", "scanner_a/dog/3.jpg"]
    cols = slices_from_paths(paths, levels={"scanner": 0, "class_folder": -1})
    assert cols["scanner"].tolist() == ["scanner_a", "scanner_b", "scanner_a"]
    assert cols["class_folder"].tolist() == ["cat", "dog", "dog"]
    with pytest.raises(DataError, match=r"image_paths: '1\.jpg' has 0 folder\(s\); levels\['scanner'\] = 0"):
        slices_from_paths(["1.jpg"], levels={"scanner": 0})


def test_bin_values_against_quantiles_and_edges():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    x[5] = np.nan
    labels = bin_values(x, bins=3)
    q1, q2 = np.nanquantile(x, [1 / 3, 2 / 3])
    ref = np.where(x < q1, f"< {q1:.3g}", np.where(x < q2, f"[{q1:.3g}, {q2:.3g})", f">= {q2:.3g}"))
    ok = np.isfinite(x)
    assert (labels[ok] == ref[ok]).all() and labels[5] == NO_VALUE
    counts = np.unique(labels[ok], return_counts=True)[1]
    assert counts.min() >= 99
    assert bin_values([0.1, 0.5, 0.9], edges=[0.2, 0.6]).tolist() == ["< 0.2", "[0.2, 0.6)", ">= 0.6"]
    assert bin_values([1.0, 1.0, 1.0], bins=3).tolist() == ["all"] * 3  # tied values are never split
    assert bin_values([0.3101, 0.31025, 0.5], edges=[0.3102, 0.3103]).tolist() == [
        "< 0.3102", "[0.3102, 0.3103)", ">= 0.3103"]  # more digits where 3 would read alike
    with pytest.raises(ValueError, match=r"edges: expected increasing numbers; got \[0.6, 0.2\]"):
        bin_values([0.1], edges=[0.6, 0.2])


def test_combine_refuses_clashes():
    a = {"camera": ["A", "B"]}
    assert list(combine_slices(a, {"site": ["x", "y"]})) == ["camera", "site"]
    with pytest.raises(ValueError, match="the slicing column 'camera' is given twice"):
        combine_slices(a, {"camera": ["C", "D"]})
    with pytest.raises(ValueError, match="'site' has 3 values; expected 2"):
        combine_slices(a, {"site": ["x", "y", "z"]})


# --- image properties ------------------------------------------------------------------------------

def test_image_properties_against_a_direct_computation():
    from PIL import Image

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    p = image_properties(img)
    gray = np.asarray(Image.fromarray(img).convert("L")).astype(np.float64)  # PIL's 8-bit BT.601 luma
    assert abs(gray.astype(float) - img.astype(float) @ [0.299, 0.587, 0.114]).max() <= 0.51
    assert p.brightness == pytest.approx(gray.mean() / 255, rel=1e-12)
    assert p.contrast == pytest.approx(gray.std() / 255, rel=1e-12)
    assert p.blur == pytest.approx(ndimage.laplace(gray).var(), rel=1e-12)
    np.testing.assert_array_equal(laplacian(gray.astype(np.uint8)), ndimage.laplace(gray))
    np.testing.assert_allclose(laplacian(gray / 7), ndimage.laplace(gray / 7), atol=1e-4)  # float input
    assert (p.height, p.width, p.pixels, p.aspect_ratio) == (37, 53, 37 * 53, pytest.approx(53 / 37))
    g = image_properties(img[..., 0])  # grayscale decodes work too
    assert g.blur == pytest.approx(ndimage.laplace(img[..., 0].astype(float)).var(), rel=1e-12)
    assert g.brightness == pytest.approx(img[..., 0].mean() / 255, rel=1e-12)


def test_blur_and_brightness_order_images_as_expected():
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    blurred = ndimage.gaussian_filter(sharp.astype(float), sigma=(2, 2, 0)).round().astype(np.uint8)
    dark = (sharp // 4).astype(np.uint8)
    ps, pb, pd = image_properties(sharp), image_properties(blurred), image_properties(dark)
    assert pb.blur < ps.blur / 10
    assert pd.brightness < ps.brightness / 3 and pd.contrast < ps.contrast / 3


def test_image_properties_refuse_bad_arrays():
    with pytest.raises(TypeError, match="image: expected dtype uint8"):
        image_properties(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"image: expected shape \(height, width, 3\) or \(height, width\); "
                                         r"got \(4, 4, 4\)"):
        image_properties(np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="properties: expected ImageProperties; item 1 is dict"):
        properties_table([image_properties(np.zeros((2, 2), np.uint8)), {}])


def test_binned_properties_become_slices_for_metrics_by_slice():
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) // rng.integers(1, 8) for _ in range(90)]
    images = [im.astype(np.uint8) for im in images]
    table = properties_table([image_properties(im) for im in images])
    assert list(table) == list(PROPERTY_NAMES) and table["height"].dtype == np.int64
    slices = bin_properties(table, bins=3)
    # height, width and pixels are not binned by default, and every image is 8 x 8: one bin, left out
    assert set(slices) == {"brightness", "contrast", "blur"}
    y = np.zeros(90, dtype=np.int64)
    pred = (table["brightness"] < np.quantile(table["brightness"], 1 / 3)).astype(np.int64)  # dark ones fail
    res = metrics_by_slice(y, pred, {"brightness": slices["brightness"]}, min_slice_size=10)
    weakest = res.weakest(1)[0]
    assert weakest.name.startswith("brightness=< ") and weakest.accuracy == 0.0


def test_images_without_metadata_are_a_slice_of_their_own_in_the_metrics(tmp_path):
    images = [f"img/{i}.jpg" for i in range(120)]
    rows = "".join(f"img/{i}.jpg,{'A' if i % 2 else 'B'}\n" for i in range(80))
    cols = read_metadata(_csv(tmp_path, "path,camera\n" + rows), images)
    y = np.zeros(120, dtype=np.int64)
    pred = np.r_[np.zeros(80, np.int64), np.ones(40, np.int64)]  # the unlisted images all fail
    res = metrics_by_slice(y, pred, cols)
    row = res.row(f"camera={NO_METADATA}")
    assert row.n == 40 and row.accuracy == 0.0 and row.weak
    assert [r.name for r in res.weak] == [f"camera={NO_METADATA}"]
