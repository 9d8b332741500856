"""labelme folder -> dataset package (segval.dataset.labelme)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segval.dataset.labelme import import_labelme, shape_to_mask
from segval.dataset.package import DatasetPackage
from segval.errors import DatasetError


def _b64_png(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _shape(label, points, shape_type="polygon", group_id=None):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}}


def _write(folder: Path, name: str, shapes, *, h=40, w=50, embed=True, seed=0) -> Path:
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    data = {"version": "5.0.1", "flags": {}, "shapes": shapes, "imageHeight": h, "imageWidth": w}
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    if embed:
        data["imagePath"] = name + ".jpg"
        data["imageData"] = _b64_png(rgb)
    else:
        Image.fromarray(rgb).save(folder / (name + ".png"))
        data["imagePath"] = Path(name).name + ".png"
        data["imageData"] = None
    path = folder / (name + ".json")
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "lm"
    _write(src, "a", [
        _shape("box", [[2, 2], [20, 15]], "rectangle"),
        _shape("ball", [[30, 20], [30, 25]], "circle"),
        _shape("box", [[25, 2], [45, 2], [45, 10]], "polygon", group_id=1),
        _shape("box", [[25, 30], [45, 30], [45, 38]], "polygon", group_id=1),
    ])
    _write(src, "sub/b", [_shape("ball", [[5, 5], [15, 5], [15, 15], [5, 15]])], embed=False, seed=1)
    return src


def test_import_first_seen_order_and_groups(folder: Path, tmp_path: Path) -> None:
    res = import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0")
    assert res["taxonomy"] == ["_background_", "box", "ball"]
    assert res["images"] == 2 and res["instances"] == 4  # grouped polygons are one instance
    pkg = DatasetPackage.open(tmp_path / "pkg")
    sd = pkg.split("train")
    assert [r.file_name for r in sd.images] == ["a.png", "sub/b.png"]
    insts = sd.instances(sd.images[0])
    assert [i.category_id for i in insts] == [1, 2, 1]
    grouped = insts[2].mask
    assert grouped[5, 40] and grouped[35, 44] and not grouped[20, 40]
    # rectangle is inclusive of both corners, like labelme (PIL ImageDraw)
    assert insts[0].mask.sum() == 19 * 14
    # embedded image decoded exactly; imagePath fallback works
    assert sd.read_image(sd.images[1]).shape == (40, 50, 3)
    lm = sd.read_label_map(sd.images[0])
    assert lm[20, 30] == 2 and lm[0, 0] == 0


def test_label_list_gives_ids(folder: Path, tmp_path: Path) -> None:
    (folder / "label_names.txt").write_text("_background_\nball\nbox\nunused\n")
    res = import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0")
    assert res["taxonomy"] == ["_background_", "ball", "box", "unused"]
    pkg = DatasetPackage.open(tmp_path / "pkg")
    assert pkg.taxonomy.background_id == 0
    sd = pkg.split("train")
    assert [i.category_id for i in sd.instances(sd.images[0])] == [2, 1, 2]


def test_label_not_in_list_is_named(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"a\.json.*'box' is not in the label list"):
        import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0", labels=["_background_", "ball"])
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("stype", ["line", "linestrip", "point", "cubic_bezier"])
def test_bad_shape_type_names_item_and_writes_nothing(folder: Path, tmp_path: Path, stype: str) -> None:
    _write(folder, "z_bad", [_shape("box", [[1, 1], [9, 9]], stype)])
    with pytest.raises(DatasetError, match=rf"z_bad\.json: shape 0 \(label 'box'\).*{stype}"):
        import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0")
    assert not (tmp_path / "pkg").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["lm"]  # no temporary folder left


def test_skip_unsupported_reports_reason(folder: Path, tmp_path: Path) -> None:
    _write(folder, "z_line", [_shape("box", [[1, 1], [9, 9]], "line"), _shape("ball", [[5, 5], [8, 8]], "circle")])
    res = import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0", skip_unsupported=True)
    assert any("z_line.json: shape 0" in s and "'line'" in s for s in res["skipped"])
    assert res["images"] == 3


def test_invalid_json_and_size_mismatch(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    src.mkdir()
    (src / "x.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"x\.json: invalid JSON at line 1"):
        import_labelme(src, tmp_path / "pkg", name="lm", version="1.0.0")
    (src / "x.json").unlink()
    p = _write(src, "y", [_shape("a", [[1, 1], [5, 5]], "rectangle")])
    d = json.loads(p.read_text())
    d["imageHeight"] = 99
    p.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match=r"y\.json: imageHeight x imageWidth = 99x50"):
        import_labelme(src, tmp_path / "pkg", name="lm", version="1.0.0")


def test_polygon_matches_labelme_rasterisation() -> None:
    # labelme: PIL ImageDraw.polygon(xy, outline=1, fill=1) on a mode-"1" image
    pts = [[1.3, 2.7], [30.2, 5.1], [18.9, 28.4]]
    m = shape_to_mask(_shape("a", pts), 32, 32, where="t")
    ref = Image.new("1", (32, 32), 0)
    from PIL import ImageDraw

    ImageDraw.Draw(ref).polygon([tuple(p) for p in pts], outline=1, fill=1)
    assert np.array_equal(m, np.asarray(ref, dtype=bool))


def test_labelme2voc_class_names_with_ignore(folder: Path, tmp_path: Path) -> None:
    (folder / "class_names.txt").write_text("__ignore__\n_background_\nbox\nball\n")
    res = import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0")
    assert res["taxonomy"] == ["_background_", "box", "ball"]
    assert DatasetPackage.open(tmp_path / "pkg").taxonomy.ids == [0, 1, 2]
    _write(folder, "z_ign", [_shape("__ignore__", [[1, 1], [9, 9]], "rectangle")])
    res = import_labelme(folder, tmp_path / "pkg2", name="lm", version="1.0.0")
    pkg = DatasetPackage.open(tmp_path / "pkg2")
    assert pkg.taxonomy.background_id is None and res["taxonomy"] == ["_background_", "box", "ball"]
    split = pkg.split("train")
    rec = next(r for r in split.images if r.file_name == "z_ign.png")
    expected = np.zeros((40, 50), np.uint8)
    expected[1:10, 1:10] = 255  # labelme's rectangle includes both corners
    for source in ("coco", "label_map"):
        assert split.semantic_target(rec, source).tolist() == expected.tolist()
    assert any("ignore regions (255)" in w and "z_ign.json" in w for w in res["warnings"])


def test_configurable_ignore_labels_give_255_where_no_object_lies(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    _write(src, "a", [_shape("dontcare", [[0, 0], [19, 9]], "rectangle"),
                      _shape("box", [[10, 5], [29, 14]], "rectangle")])
    res = import_labelme(src, tmp_path / "pkg", name="lm", version="1.0.0", ignore_labels=["dontcare"],
                         license="CC0-1.0")
    assert res["taxonomy"] == ["_background_", "box"] and res["license"] == "CC0-1.0"
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    expected = np.zeros((40, 50), np.uint8)
    expected[0:10, 0:20] = 255
    expected[5:15, 10:30] = 1  # the box wins over the ignore region
    assert split.semantic_target(split.images[0]).tolist() == expected.tolist()
    # without the list the ignore label is a class
    res = import_labelme(src, tmp_path / "pkg2", name="lm", version="1.0.0", ignore_labels=[])
    assert res["taxonomy"] == ["_background_", "dontcare", "box"] and res["license"] == "unknown"
    assert any("license: unknown" in w for w in res["warnings"])


def test_area_less_shape_error_names_the_override_key(folder: Path, tmp_path: Path) -> None:
    _write(folder, "z_pt", [_shape("ball", [[3, 3]], "point")])
    with pytest.raises(DatasetError, match=r"z_pt\.json: shape 0 \(label 'ball'\): shape_type 'point' has no area.*"
                                           r"labelme\.skip_unsupported=true"):
        import_labelme(folder, tmp_path / "pkg", name="lm", version="1.0.0")
    assert not (tmp_path / "pkg").exists()
