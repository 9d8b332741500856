"""`segval dataset import format=...` as a user runs it on each tool's export: the report, the package, the
label maps it implies (things / stuff / crowd / ignore), one clear error per one-defect export with nothing
written, and import -> export -> import for the formats segval also writes.

Fixtures are written per each tool's documented format by the builders of ``tests/dataset``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from segval.dataset import Category, DatasetPackage, InstanceMask, PackageWriter, Taxonomy
from segval.dataset.brush_rle import encode_mask
from tests.dataset.helpers import box, rle_of, write_json, write_rgb
from tests.dataset.test_coco_panoptic import _layout as panoptic_layout
from tests.dataset.test_cvat_xml import _reference_decode, _xml as cvat_xml
from tests.dataset.test_labelstudio_reader import CUBE as LS_CUBE
from tests.dataset.test_labelstudio_reader import POLY_MASK, _brush_result, _poly_result, _task
from tests.dataset.test_palette_masks import _class_map, _cvat_masks, _save_palette
from tests.helpers import run_segval


def _import(tmp_path: Path, *args: str):  # noqa: ANN202
    return run_segval("dataset", "import", *args, f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)


def _label_map(root: Path, split: str = "train", k: int = 0) -> np.ndarray:
    sd = DatasetPackage.open(root).split(split)
    return sd.read_label_map(sd.images[k])


def _meta(root: Path) -> dict:
    return yaml.safe_load((root / "dataset.yaml").read_text())


def _nothing_written(tmp_path: Path, out: Path) -> bool:
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


# ------------------------------------------------------------------------------------------ one test per format
def test_coco_file_with_dialects_and_a_box_without_mask(tmp_path: Path) -> None:
    """COCO-Annotator style: hex colours, string booleans, a 64-bit id, a box without a mask (ignore)."""
    cube = box(6, 8, 1, 4, 1, 4)
    write_rgb(tmp_path / "photos" / "a.png", 6, 8)
    coco = {"images": [{"id": 0, "file_name": "a.png", "width": 8, "height": 6, "path": "/datasets/a.png"}],
            "categories": [{"id": 1, "name": "cube", "color": "#c81e1e", "isthing": "true", "metadata": {}}],
            "annotations": [
                {"id": 2**40, "image_id": 0, "category_id": 1, "segmentation": rle_of(cube), "area": -1,
                 "bbox": [1, 1, 3, 3], "iscrowd": "false", "isbbox": False},
                {"id": 5, "image_id": 0, "category_id": 1, "segmentation": [], "bbox": [2, 0, 6, 3], "area": 18,
                 "iscrowd": "0"}]}
    src = write_json(tmp_path / "coco.json", coco)
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=coco", f"source={src}", f"images={tmp_path / 'photos'}", f"output={out}",
                "name=shelf", "license=CC0-1.0")
    assert r.returncode == 0, r.output
    for want in ("warning: category colours given as strings ('#rrggbb')", "warning: 'iscrowd' given as a string",
                 "become ignore boxes", ": 1 (first ids: 5)", "'area' missing, negative"):
        assert want in r.stdout, want
    assert "license: unknown" not in r.stdout and f"package written: {out} (license: CC0-1.0)" in r.stdout
    meta = _meta(out)
    assert (meta["name"], meta["license"], meta["background_id"]) == ("shelf", "CC0-1.0", None)
    assert meta["taxonomy"][1]["color"] == [200, 30, 30]
    expected = np.where(cube, 1, np.where(box(6, 8, 0, 3, 2, 8), 255, 0))  # the box is ignore where no cube lies
    assert _label_map(out).tolist() == expected.tolist()


def test_coco_folder_layout_notes_the_other_task_files(tmp_path: Path) -> None:
    root = tmp_path / "coco2017"
    cube = box(6, 8, 1, 4, 1, 4)
    write_rgb(root / "val2017" / "a.jpg", 6, 8, fmt="JPEG")
    write_json(root / "annotations" / "instances_val2017.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "cube", "supercategory": "object"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle_of(cube), "area": 9,
                         "bbox": [1, 1, 3, 3], "iscrowd": 0}]})
    write_json(root / "annotations" / "captions_val2017.json", {"images": [], "annotations": []})
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=coco", f"source={root}", f"output={out}")
    assert r.returncode == 0, r.output
    assert "captions_val2017.json left out: COCO captions" in r.stdout
    assert "split 'val2017' named 'val' (the year dropped)" in r.stdout
    assert "license: unknown" in r.stdout  # with the warning saying how to set it
    assert _meta(out)["splits"] == ["val"] and _meta(out)["license"] == "unknown"
    assert _label_map(out, "val").tolist() == cube.astype(np.uint8).tolist()


def test_coco_panoptic(tmp_path: Path) -> None:
    """Things -> instances, stuff -> a class, crowd and void -> 255 (no background class by default)."""
    js = panoptic_layout(tmp_path)
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=coco_panoptic", f"source={js}", f"output={out}", "split=val")
    assert r.returncode == 0, r.output
    assert "crowd" in r.stdout and "(license: CC-BY-4.0)" in r.stdout  # the licence the export names
    expected = np.full((6, 8), 255, np.uint8)
    expected[0:2, :] = 3  # table (stuff)
    expected[2:5, 1:4] = 1  # the cube; the crowd cube and void stay 255
    assert _label_map(out, "val").tolist() == expected.tolist()
    insts = DatasetPackage.open(out).split("val")
    assert sorted(i.category_id for i in insts.instances(insts.images[0])) == [1, 3]


def test_cvat_xml_lists_skipped_shapes_and_undeclared_labels(tmp_path: Path) -> None:
    write_rgb(tmp_path / "export" / "images" / "a.png", 10, 12)
    body = """  <image id="0" name="a.png" width="12" height="10">
    <box label="cube" xtl="0" ytl="0" xbr="4" ybr="4" occluded="0" z_order="0"></box>
    <polygon label="cube" occluded="0" points="1,1;7,1;7,6;1,6" z_order="0"></polygon>
    <mask label="cable" source="manual" occluded="0" rle="0, 4, 2, 4" left="5" top="4" width="2" height="5" z_order="1"></mask>
    <points label="cube" points="1,1" occluded="0"></points>
    <polyline label="cable" points="0,0;5,5" occluded="0" z_order="0"></polyline>
    <tag label="cube" source="manual"></tag>
    <polygon label="mug" points="9,7;11,7;11,9;9,9" occluded="0" z_order="0"></polygon>
  </image>"""
    xml = cvat_xml(tmp_path, body)
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=cvat", f"source={xml}", f"output={out}")
    assert r.returncode == 0, r.output
    for want in ("skipped box: 1", "skipped points: 1", "skipped polyline: 1", "skipped tag: 1",
                 "not declared in <meta>", "mug"):
        assert want in r.stdout, want
    cable = _reference_decode("0, 4, 2, 4", 5, 4, 2, 10, 12)
    expected = np.zeros((10, 12), np.uint8)
    expected[box(10, 12, 1, 6, 1, 7)] = 1
    expected[cable] = 2  # the mask at its offset, over the polygon (higher z_order)
    expected[box(10, 12, 7, 9, 9, 11)] = 3
    assert _label_map(out).tolist() == expected.tolist()


def test_cvat_segmentation_masks(tmp_path: Path) -> None:
    root, cls, _ = _cvat_masks(tmp_path)
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=cvat_masks", f"source={root}", f"output={out}")
    assert r.returncode == 0, r.output
    assert "3 instances" in r.stdout and _meta(out)["taxonomy"][1]["name"] == "car"
    assert _label_map(out).tolist() == cls.tolist()


def test_labelstudio_export(tmp_path: Path) -> None:
    """Brush + polygon regions; a `labels` result repeating the brush region counts once; boxes skipped."""
    write_rgb(tmp_path / "imgs" / "a.png", 10, 20)
    repeat = {"id": "r1", "type": "labels", "from_name": "lab", "to_name": "image", "original_width": 20,
              "original_height": 10, "value": {"format": "rle", "rle": encode_mask(LS_CUBE), "labels": ["cube"]}}
    tasks = [_task(1, "/data/upload/29/0a1b2c3d-a.png", [
        _brush_result("r1", "cube", LS_CUBE), repeat, _poly_result("p1", "cable"),
        {"id": "b1", "type": "rectanglelabels", "original_width": 20, "original_height": 10,
         "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["cube"]}}])]
    src = write_json(tmp_path / "project.json", tasks)
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=labelstudio", f"source={src}", f"images={tmp_path / 'imgs'}", f"output={out}")
    assert r.returncode == 0, r.output
    assert "skipped rectanglelabels: 1" in r.stdout and "read 1 images, 2 instances" in r.stdout
    expected = np.where(LS_CUBE, 1, np.where(POLY_MASK, 2, 0))
    assert _label_map(out).tolist() == expected.tolist()
    assert _meta(out)["taxonomy"][2]["name"] == "cable"


def test_voc_root_with_objects(tmp_path: Path) -> None:
    root = tmp_path / "VOC"
    write_rgb(root / "JPEGImages" / "2011_000003.jpg", 6, 8, fmt="JPEG")
    cls = _class_map()  # persons, a bottle, a 255 border row
    _save_palette(root / "SegmentationClass" / "2011_000003.png", cls)
    obj = np.zeros((6, 8), np.uint8)
    obj[1:4, 1:4], obj[1:4, 5:8], obj[0, :] = 1, 2, 255
    _save_palette(root / "SegmentationObject" / "2011_000003.png", obj)
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=voc", f"source={root}", f"output={out}")
    assert r.returncode == 0, r.output
    assert "21 PASCAL VOC classes" in r.stdout and "imported 1 images, 3 instances" in r.stdout
    assert _label_map(out).tolist() == cls.tolist()  # border 255 kept as ignore
    sd = DatasetPackage.open(out).split("train")
    persons = [i.mask for i in sd.instances(sd.images[0]) if i.category_id == 15]
    assert [m.tolist() for m in persons] == [(obj == 1).tolist(), (obj == 2).tolist()]


def test_labelme_ignore_label_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "lm"
    src.mkdir()
    rgb = np.zeros((10, 12, 3), np.uint8)
    Image.fromarray(rgb).save(src / "a.png")
    shapes = [{"label": "dontcare", "points": [[0, 0], [5, 3]], "shape_type": "rectangle", "group_id": None},
              {"label": "box", "points": [[4, 2], [8, 6]], "shape_type": "rectangle", "group_id": None}]
    write_json(src / "a.json", {"shapes": shapes, "imagePath": "a.png", "imageData": None, "imageHeight": 10,
                                "imageWidth": 12})
    out = tmp_path / "pkg"
    r = _import(tmp_path, "format=labelme", f"source={src}", f"output={out}", "labelme.ignore_labels=[dontcare]")
    assert r.returncode == 0, r.output
    expected = np.zeros((10, 12), np.uint8)
    expected[0:4, 0:6] = 255
    expected[2:7, 4:9] = 1
    assert _label_map(out).tolist() == expected.tolist()


# ------------------------------------------------------------------------------------------ one defect each
def _coco_file(tmp_path: Path, file_name: str = "a.png") -> Path:
    write_rgb(tmp_path / "photos" / "a.png", 6, 8)
    return write_json(tmp_path / "coco.json", {
        "images": [{"id": 1, "file_name": file_name, "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "cube"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle_of(box(6, 8, 1, 4, 1, 4)),
                         "area": 9, "bbox": [1, 1, 3, 3], "iscrowd": 0}]})


def _truncated_coco(tmp_path: Path) -> list[str]:
    src = _coco_file(tmp_path)
    src.write_text(src.read_text()[:80])
    return ["format=coco", f"source={src}", f"images={tmp_path / 'photos'}"]


def _escaping_coco(tmp_path: Path) -> list[str]:
    return ["format=coco", f"source={_coco_file(tmp_path, '../secret.png')}", f"images={tmp_path / 'photos'}"]


def _unknown_ls_label(tmp_path: Path) -> list[str]:
    write_rgb(tmp_path / "imgs" / "a.png", 10, 20)
    src = write_json(tmp_path / "p.json", [_task(4, "/data/upload/1/0a1b2c3d-a.png", [_poly_result("p9", "mug")])])
    return ["format=labelstudio", f"source={src}", f"images={tmp_path / 'imgs'}", "labelstudio.labels=[cube,cable]"]


def _missing_ls_image(tmp_path: Path) -> list[str]:
    (tmp_path / "imgs").mkdir()
    src = write_json(tmp_path / "p.json", [_task(7, "/data/upload/1/0a1b2c3d-gone.png", [_poly_result("p1", "cube")])])
    return ["format=labelstudio", f"source={src}", f"images={tmp_path / 'imgs'}"]


def _cvat_mask_out_of_bounds(tmp_path: Path) -> list[str]:
    write_rgb(tmp_path / "export" / "images" / "a.png", 10, 12)
    xml = cvat_xml(tmp_path, '  <image id="3" name="a.png" width="12" height="10">\n'
                             '    <mask label="cube" rle="0, 10" left="8" top="0" width="5" height="2" z_order="0">'
                             "</mask>\n  </image>")
    return ["format=cvat", f"source={xml}"]


def _panoptic_png_wrong_size(tmp_path: Path) -> list[str]:
    return ["format=coco_panoptic", f"source={panoptic_layout(tmp_path, png_size=(5, 8))}"]


@pytest.mark.parametrize("make, names", [
    (_truncated_coco, ["coco.json", "invalid JSON at line 1"]),
    (_escaping_coco, ["coco.json", "image id 1", "'../secret.png'", "without '..'"]),
    (_unknown_ls_label, ["p.json", "task 4 result 'p9'", "label 'mug' is not in the given labels"]),
    (_missing_ls_image, ["p.json", "task 7", "not found in", "looked for"]),
    (_cvat_mask_out_of_bounds, ["annotations.xml", "image 'a.png' (id 3)", "<mask> 0", "leaves the 12x10 image"]),
    (_panoptic_png_wrong_size, ["a.png", "is 8x5 (width x height) but its image is 8x6"]),
])
def test_one_defect_is_one_clear_error_and_nothing_is_written(tmp_path: Path, make, names) -> None:
    out = tmp_path / "pkg"
    r = _import(tmp_path, *make(tmp_path), f"output={out}")
    assert r.returncode == 2, r.output
    assert "Traceback" not in r.output
    for n in names:
        assert n in r.stderr, (n, r.stderr)
    assert _nothing_written(tmp_path, out)


def test_unknown_format_and_option(tmp_path: Path) -> None:
    r = _import(tmp_path, "format=yolo", f"source={tmp_path}", f"output={tmp_path / 'pkg'}")
    assert r.returncode == 2 and "format must be one of ['coco', 'coco_panoptic', 'cvat'" in r.stderr


# ------------------------------------------------------------------------------------------ round trips
TAX = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "cube", (200, 30, 30), True, "rigid"),
                Category(2, "cable", (30, 200, 30), True, "thin"), Category(3, "table", (90, 60, 20), False, "stuff")],
               background_id=0)


def _package(root: Path) -> Path:
    rng = np.random.default_rng(0)
    with PackageWriter(root, name="rt", version="1.0.0", taxonomy=TAX, splits=["train", "val"],
                       license="CC-BY-4.0") as w:
        for k in range(3):
            insts = [InstanceMask(3, box(12, 16, 8, 12, 0, 16)), InstanceMask(1, box(12, 16, 2 + k, 8, 2, 7)),
                     InstanceMask(1, box(12, 16, 3, 9, 9, 14)), InstanceMask(2, box(12, 16, 5, 6, 0, 16))]
            w.add_image("train" if k < 2 else "val", rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
                        f"v0/f{k}.png", instances=insts, extra={"video_id": 0, "frame_index": k})
    return root


def _targets(root: Path) -> dict:
    pkg = DatasetPackage.open(root)
    return {(s, r.file_name): pkg.split(s).semantic_target(r) for s in pkg.splits for r in pkg.split(s).images}


@pytest.mark.slow
@pytest.mark.parametrize("fmt, import_args", [
    ("coco", ["format=coco"]),
    ("panoptic", ["format=coco_panoptic", "background=background"]),
    ("label_maps", ["format=label_maps"]),
])
def test_import_export_import_is_lossless(tmp_path: Path, fmt: str, import_args: list[str]) -> None:
    """A COCO file -> package -> export -> package: the same targets (and COCO byte-identical annotations)."""
    p0 = _package(tmp_path / "p0")
    # the first import reads a plain COCO file of the package, as a user's export would be
    r = _import(tmp_path, "format=coco", f"source={p0 / 'annotations' / 'train.json'}",
                f"images={p0 / 'images' / 'train'}", f"output={tmp_path / 'p1'}", "license=CC-BY-4.0")
    assert r.returncode == 0, r.output
    r = run_segval("dataset", "export", f"root={tmp_path / 'p1'}", f"format={fmt}", f"output={tmp_path / 'e'}",
                   f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 0, r.output
    source = tmp_path / "e"
    r = _import(tmp_path, *import_args, f"source={source}", f"output={tmp_path / 'p2'}")
    assert r.returncode == 0, r.output
    t0 = {k: v for k, v in _targets(p0).items() if k[0] == "train"}
    t1, t2 = _targets(tmp_path / "p1"), _targets(tmp_path / "p2")
    assert t0.keys() == t1.keys() == t2.keys()
    assert all((t0[k] == t1[k]).all() and (t1[k] == t2[k]).all() for k in t0)
    assert _meta(tmp_path / "p2")["license"] == "CC-BY-4.0"  # carried by the export manifest
    if fmt == "coco":
        a1 = json.loads((tmp_path / "p1" / "annotations" / "train.json").read_text())
        a2 = json.loads((tmp_path / "p2" / "annotations" / "train.json").read_text())
        assert a1["annotations"] == a2["annotations"]
