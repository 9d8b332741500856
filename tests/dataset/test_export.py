"""Export a package (COCO RLE, label maps, COCO panoptic) and import it back (segval.dataset.export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segval.dataset.export import export_package, import_coco_export, import_label_maps
from segval.dataset.package import DatasetPackage
from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.errors import ConfigError, DatasetError


def _tax(background: bool = True) -> Taxonomy:
    return Taxonomy(
        [
            Category(0, "background", (0, 0, 0), False, "stuff"),
            Category(3, "mug", (200, 30, 30), True, "rigid"),
            Category(7, "cloth", (30, 200, 30), True, "deformable"),
            Category(9, "table", (90, 90, 200), False, "stuff"),
        ],
        background_id=0 if background else None,
    )


def _make_package(root: Path, *, background: bool = True) -> Path:
    rng = np.random.default_rng(0)
    with PackageWriter(root, name="toy", version="1.2.0", taxonomy=_tax(background), splits=["train", "val"]) as w:
        for k in range(5):
            split = "train" if k < 3 else "val"
            h, w_ = 24, 32
            img = rng.integers(0, 255, (h, w_, 3), dtype=np.uint8)
            table = np.zeros((h, w_), bool)
            table[12:, :] = True
            mug = np.zeros((h, w_), bool)
            mug[8 + k : 16 + k, 4:12] = True  # lies on the table
            cloth = np.zeros((h, w_), bool)
            cloth[2:6, 20 : 24 + k] = True
            insts = [InstanceMask(9, table), InstanceMask(3, mug), InstanceMask(7, cloth, iscrowd=int(k == 1))]
            if k == 2:
                mug2 = np.zeros((h, w_), bool)
                mug2[0:3, 0:3] = True
                insts.append(InstanceMask(3, mug2))
            w.add_image(split, img, f"vid/frame_{k:02d}", instances=insts, extra={"video_id": 0, "frame_index": k})
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_coco_export_import_export_is_byte_stable(tmp_path: Path) -> None:
    pkg = DatasetPackage.open(_make_package(tmp_path / "pkg"))
    export_package(pkg, tmp_path / "e1", "coco")
    import_coco_export(tmp_path / "e1", tmp_path / "pkg2", name=None, version=None)
    pkg2 = DatasetPackage.open(tmp_path / "pkg2")
    assert pkg2.taxonomy == pkg.taxonomy and list(pkg2.splits) == ["train", "val"]
    assert (pkg2.name, pkg2.version) == ("toy", "1.2.0")
    export_package(pkg2, tmp_path / "e2", "coco")
    a, b = _files(tmp_path / "e1"), _files(tmp_path / "e2")
    assert a.keys() == b.keys() and a == b
    coco = json.loads(a["annotations/train.json"])
    ann = coco["annotations"][0]
    assert isinstance(ann["segmentation"]["counts"], str) and len(ann["bbox"]) == 4 and ann["area"] > 0
    assert {x["iscrowd"] for x in coco["annotations"]} == {0, 1}
    assert coco["images"][0]["video_id"] == 0
    # the round trip keeps the masks
    for s in ("train", "val"):
        for r1, r2 in zip(pkg.split(s).images, pkg2.split(s).images):
            m1 = [i.mask for i in pkg.split(s).instances(r1)]
            m2 = [i.mask for i in pkg2.split(s).instances(r2)]
            assert all(np.array_equal(x, y) for x, y in zip(m1, m2, strict=True))


def test_coco_import_of_polygon_file(tmp_path: Path) -> None:
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img_dir / "a.png")
    coco = {"images": [{"id": 5, "file_name": "a.png", "width": 20, "height": 20}],
            "annotations": [{"id": 9, "image_id": 5, "category_id": 1, "iscrowd": 0,
                             "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]], "area": 100, "bbox": [2, 2, 10, 10]}],
            "categories": [{"id": 1, "name": "box"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    res = import_coco_export(tmp_path / "c.json", tmp_path / "pkg", name="c", version=None, images=img_dir)
    assert res["images"] == 1 and res["annotations"] == 1
    pkg = DatasetPackage.open(tmp_path / "pkg")
    assert pkg.taxonomy.names == ["background", "box"] and pkg.version == "1.0.0"
    with pytest.raises(ConfigError, match="needs `images`"):
        import_coco_export(tmp_path / "c.json", tmp_path / "pkg3", name="c", version=None)


@pytest.mark.parametrize("background", [True, False])
def test_label_maps_round_trip(tmp_path: Path, background: bool) -> None:
    pkg = DatasetPackage.open(_make_package(tmp_path / "pkg", background=background))
    export_package(pkg, tmp_path / "e1", "label_maps")
    lm = np.asarray(Image.open(tmp_path / "e1/label_maps/train/vid/frame_00.png"))
    assert lm.dtype == np.uint8
    assert lm[0, 31] == (0 if background else 255)  # nothing annotated there
    assert lm[10, 5] == 3 and lm[20, 20] == 9
    res = import_label_maps(tmp_path / "e1", tmp_path / "pkg2", name=None, version=None)
    assert res["void_kept"] is (not background)
    export_package(DatasetPackage.open(tmp_path / "pkg2"), tmp_path / "e2", "label_maps")
    a, b = _files(tmp_path / "e1"), _files(tmp_path / "e2")
    a.pop("export.yaml"), b.pop("export.yaml"), a.pop("taxonomy.yaml"), b.pop("taxonomy.yaml")
    assert a == b


def test_label_maps_bad_value_is_named(tmp_path: Path) -> None:
    pkg = DatasetPackage.open(_make_package(tmp_path / "pkg"))
    export_package(pkg, tmp_path / "e1", "label_maps")
    bad = tmp_path / "e1/label_maps/val/vid/frame_04.png"
    a = np.asarray(Image.open(bad)).copy()
    a[0, 0] = 42
    Image.fromarray(a).save(bad)
    with pytest.raises(DatasetError, match=r"frame_04\.png: values \[42\]"):
        import_label_maps(tmp_path / "e1", tmp_path / "pkg2", name=None, version=None)
    assert not (tmp_path / "pkg2").exists()


def test_panoptic_export_is_consistent_and_loads_with_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    pkg = DatasetPackage.open(_make_package(tmp_path / "pkg"))
    res = export_package(pkg, tmp_path / "pan", "panoptic")
    assert res["images"] == 5
    path = tmp_path / "pan/annotations/panoptic_train.json"
    data = json.loads(path.read_text())
    assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
    assert all(set(a) == {"image_id", "file_name", "segments_info"} for a in data["annotations"])
    coco = COCO()  # pycocotools indexes the images and categories (panoptic annotations are per image)
    coco.dataset = {k: v for k, v in data.items() if k != "annotations"}
    coco.createIndex()
    assert sorted(coco.getCatIds()) == [0, 3, 7, 9] and len(coco.getImgIds()) == 3
    assert {c["id"]: c["isthing"] for c in data["categories"]} == {0: 0, 3: 1, 7: 1, 9: 0}
    for ann in data["annotations"]:
        png = np.asarray(Image.open(tmp_path / "pan/panoptic/train" / ann["file_name"])).astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 256 * 256 * png[..., 2]
        segs = {s["id"]: s for s in ann["segments_info"]}
        assert set(np.unique(ids).tolist()) - {0} == set(segs)
        assert sum(s["area"] for s in segs.values()) == ids.size  # background covers the rest
        for sid, s in segs.items():
            m = ids == sid
            ys, xs = np.nonzero(m)
            assert s["area"] == m.sum()
            assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert set(s) == {"id", "category_id", "area", "bbox", "iscrowd"}
        cats = [s["category_id"] for s in segs.values()]
        assert cats.count(9) == 1 and cats.count(0) == 1  # stuff: one segment per class
    two_mugs = data["annotations"][2]
    assert [s["category_id"] for s in two_mugs["segments_info"]].count(3) == 2


def test_export_refuses_existing_output_and_unknown_format(tmp_path: Path) -> None:
    pkg = DatasetPackage.open(_make_package(tmp_path / "pkg"))
    (tmp_path / "out").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        export_package(pkg, tmp_path / "out", "coco")
    with pytest.raises(ConfigError, match="format must be one of"):
        export_package(pkg, tmp_path / "o2", "yolo")
    with pytest.raises(ConfigError, match="split 'test'"):
        export_package(pkg, tmp_path / "o3", "coco", splits=["test"])
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_plain_label_map_folder_import(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "lm/a").mkdir(parents=True)
    (tmp_path / "img/a").mkdir(parents=True)
    lm = np.zeros((8, 8), np.uint8)
    lm[:4] = 3
    lm[6:, 6:] = 255
    Image.fromarray(lm).save(tmp_path / "lm/a/x.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img/a/x.jpg")
    (tmp_path / "tax.yaml").write_text(yaml.safe_dump(_tax().to_dict()))
    res = import_label_maps(tmp_path / "lm", tmp_path / "pkg", name="p", version=None, images=tmp_path / "img",
                            taxonomy=tmp_path / "tax.yaml", split="val")
    assert res["void_kept"] and res["annotations"] == 2
    pkg = DatasetPackage.open(tmp_path / "pkg")
    sd = pkg.split("val")
    assert sd.images[0].file_name == "a/x.jpg" and pkg.taxonomy.background_id is None
    assert np.array_equal(sd.read_label_map(sd.images[0]), lm)
    with pytest.raises(ConfigError, match="needs `images`"):
        import_label_maps(tmp_path / "lm", tmp_path / "pkg3", name="p", version=None)
