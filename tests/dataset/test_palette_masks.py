"""Palette / colour label maps (format=voc) and CVAT "Segmentation mask 1.1": exact classes, instances, ignore."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segval.dataset import DatasetPackage
from segval.dataset.formats import write_imported
from segval.dataset.formats.cvat_masks import read_cvat_masks
from segval.dataset.formats.palette import ColorTable, read_labelmap_txt, read_voc, voc_colormap
from segval.dataset.taxonomy import palette_color
from segval.errors import DatasetError

from .helpers import write_rgb

H, W = 6, 8


def _class_map():
    m = np.zeros((H, W), np.uint8)
    m[1:4, 1:4] = 15  # person
    m[1:4, 5:8] = 15  # another person
    m[4:6, 0:3] = 5  # bottle
    m[0, :] = 255  # border
    return m


def _save_palette(path, idx):
    im = Image.fromarray(idx.astype(np.uint8), mode="P")
    im.putpalette(voc_colormap(256).reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _save_rgb(path, idx, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(table, np.uint8)[idx]).save(path)


def test_voc_palette_with_objects(tmp_path):
    write_rgb(tmp_path / "JPEGImages" / "2011_000003.jpg", H, W, fmt="JPEG")
    cls = _class_map()
    _save_palette(tmp_path / "SegmentationClass" / "2011_000003.png", cls)
    obj = np.zeros((H, W), np.uint8)
    obj[1:4, 1:4], obj[1:4, 5:8], obj[0, :] = 1, 2, 255  # bottle not in any object
    _save_palette(tmp_path / "SegmentationObject" / "2011_000003.png", obj)
    res = read_voc(tmp_path / "SegmentationClass", tmp_path / "JPEGImages",
                   objects_dir=tmp_path / "SegmentationObject")
    assert res.taxonomy.names[15] == "person" and res.taxonomy.background_id == 0
    assert any("PASCAL VOC" in w for w in res.warnings)
    (im,) = res.splits["train"]
    got = [(i.category_id, i.mask.decode()) for i in im.instances]
    assert [c for c, _ in got] == [15, 15, 5]
    assert (got[0][1] == (obj == 1)).all() and (got[1][1] == (obj == 2)).all() and (got[2][1] == (cls == 5)).all()
    assert (im.ignore.decode() == (cls == 255)).all()
    write_imported(res, tmp_path / "pkg", name="voc", license="CC-BY-4.0")
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    assert split.read_label_map(split.images[0]).tolist() == cls.tolist()  # the class map, 255 included
    assert split.images[0].file_name == "2011_000003.jpg"


def test_dataset_meta_rgb_and_pair_patterns(tmp_path):
    meta = {"classes": ["background", "cube", "cable"], "palette": [[0, 0, 0], [255, 0, 0], [0, 0, 255]]}
    (tmp_path / "ann").mkdir()
    (tmp_path / "dataset_meta.json").write_text(json.dumps(meta))
    m = np.zeros((H, W), np.int64)
    m[2:5, 2:6], m[0, 0:2] = 1, 2
    for i in (7, 12):
        write_rgb(tmp_path / "img" / f"image_{i}.png", H, W, seed=i)
        _save_rgb(tmp_path / "ann" / f"gt_{i}.png", m, meta["palette"])
    write_rgb(tmp_path / "img" / "image_99.png", H, W)  # no mask: skipped, reported
    res = read_voc(tmp_path / "ann", tmp_path / "img", pair=("image_{id}.png", "gt_{id}.png"))
    assert res.taxonomy.names == ["background", "cube", "cable"] and res.taxonomy.category(2).color == (0, 0, 255)
    assert [im.file_name for im in res.splits["train"]] == ["image_12.png", "image_7.png"]
    assert res.skipped["images without a mask"].examples == ["image_99.png"]
    im = res.splits["train"][0]
    assert [(i.category_id, int(i.area)) for i in im.instances] == [(1, 12), (2, 2)]
    assert im.ignore is None


def test_labelmap_txt_and_grey_masks(tmp_path):
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncube:250,50,83::\n"
                                           "cable::: \n")
    table = read_labelmap_txt(tmp_path / "labelmap.txt")
    assert table.colors == [(0, 0, 0), (250, 50, 83), palette_color(2)]
    m = np.zeros((H, W), np.uint8)
    m[1:3, 1:3] = 2
    write_rgb(tmp_path / "img" / "a.png", H, W)
    (tmp_path / "ann").mkdir()
    Image.fromarray(m, mode="L").save(tmp_path / "ann" / "a.png")
    res = read_voc(tmp_path / "ann", tmp_path / "img", colors=tmp_path / "labelmap.txt")
    (inst,) = res.splits["train"][0].instances
    assert inst.category_id == 2 and (inst.mask.decode() == (m == 2)).all()


def test_unknown_colour_named_with_count(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", H, W)
    m = np.zeros((H, W), np.int64)
    m[0:2, 0:3] = 1
    _save_rgb(tmp_path / "ann" / "a.png", m, [[0, 0, 0], [12, 34, 56]])
    with pytest.raises(DatasetError, match=r"a.png: colours not in the colour table .*\(12, 34, 56\): 6 px"):
        read_voc(tmp_path / "ann", tmp_path / "img", colors="voc")


def test_mask_size_and_missing_image(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", H, W)
    _save_palette(tmp_path / "ann" / "a.png", np.zeros((H + 1, W), np.uint8))
    _save_palette(tmp_path / "ann" / "b.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError) as e:
        res = read_voc(tmp_path / "ann", tmp_path / "img")
        write_imported(res, tmp_path / "pkg", name="x")
    msg = str(e.value)
    assert "2 problem(s)" in msg and "mask is 8x7 (width x height) but its image is 8x6" in msg
    assert "mask 'b.png' has no image" in msg and not (tmp_path / "pkg").exists()


def test_colour_table_checks(tmp_path):
    with pytest.raises(DatasetError, match="share the colour"):
        ColorTable(["a", "b"], [(1, 2, 3), (1, 2, 3)], source="t")
    (tmp_path / "labelmap.txt").write_text("cube:1,2\n")
    with pytest.raises(DatasetError, match="line 1: 'cube:1,2' has 2"):
        read_labelmap_txt(tmp_path / "labelmap.txt")


# ---------------------------------------------------------------- CVAT Segmentation mask 1.1
def _cvat_masks(tmp_path, *, with_image=True):
    root = tmp_path / "cvat"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("frame_a\n")
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:255,0,0::\n"
                                       "road:0,128,0::\n")
    cls = np.zeros((H, W), np.int64)
    cls[3:6, :] = 2  # road
    cls[1:4, 1:3] = 1  # car 1 (on the road)
    cls[1:3, 5:7] = 1  # car 2
    _save_rgb(root / "SegmentationClass" / "frame_a.png", cls, [[0, 0, 0], [255, 0, 0], [0, 128, 0]])
    obj = np.zeros((H, W), np.int64)
    obj[1:4, 1:3], obj[1:3, 5:7], obj[3:6, :][cls[3:6, :] == 2] = 1, 2, 3
    _save_rgb(root / "SegmentationObject" / "frame_a.png", obj, voc_colormap(4))
    if with_image:
        write_rgb(root / "JPEGImages" / "frame_a.jpg", H, W, fmt="JPEG")
    else:
        (root / "JPEGImages").mkdir()
    return root, cls, obj


def test_cvat_segmentation_mask(tmp_path):
    root, cls, obj = _cvat_masks(tmp_path)
    res = read_cvat_masks(root)
    assert res.taxonomy.names == ["background", "car", "road"] and res.taxonomy.background_id == 0
    (im,) = res.splits["train"]
    got = [(i.category_id, i.mask.decode()) for i in im.instances]
    assert [c for c, _ in got] == [1, 1, 2]
    for (c, m), k in zip(got, (1, 2, 3)):
        assert (m == ((obj == k) & (cls == c))).all()
    write_imported(res, tmp_path / "pkg", name="cvatm")
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    assert split.read_label_map(split.images[0]).tolist() == cls.tolist()


def test_cvat_segmentation_mask_missing_image(tmp_path):
    root, _, _ = _cvat_masks(tmp_path, with_image=False)
    with pytest.raises(DatasetError, match="no image for item 'frame_a'"):
        read_cvat_masks(root)


def test_cvat_segmentation_mask_unknown_colour(tmp_path):
    root, cls, _ = _cvat_masks(tmp_path)
    _save_rgb(root / "SegmentationClass" / "frame_a.png", cls, [[0, 0, 0], [255, 0, 0], [0, 129, 0]])
    with pytest.raises(DatasetError, match=r"frame_a.png: colours not in the colour table .*\(0, 129, 0\): 22 px"):
        read_cvat_masks(root)


def test_truncated_mask_png(tmp_path):
    write_rgb(tmp_path / "img" / "a.png", H, W)
    _save_palette(tmp_path / "ann" / "a.png", _class_map())
    data = (tmp_path / "ann" / "a.png").read_bytes()
    (tmp_path / "ann" / "a.png").write_bytes(data[: len(data) - 30])
    with pytest.raises(DatasetError, match="a.png: cannot decode the mask .truncated or corrupt"):
        read_voc(tmp_path / "ann", tmp_path / "img")


def test_cvat_segmentation_mask_escaping_item(tmp_path):
    root, _, _ = _cvat_masks(tmp_path)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("../../outside\n")
    with pytest.raises(DatasetError, match="without '..'"):
        read_cvat_masks(root)


def test_cvat_segmentation_mask_of_other_size(tmp_path):
    root, _, _ = _cvat_masks(tmp_path)
    write_rgb(root / "JPEGImages" / "frame_a.jpg", H, W + 2, fmt="JPEG")
    with pytest.raises(DatasetError, match="mask is 8x6 .width x height. but its image is 10x6"):
        read_cvat_masks(root)


def test_binary_grey_masks_read_through_a_grey_colour_table(tmp_path):
    """A 0 / 255 grey mask (cleargrasp, many robotics sets) with `object:255,255,255` is the object class, not
    ignore; the same mask with the VOC table is all ignore / background, and a fully ignored mask warns."""
    from .helpers import box, write_rgb

    write_rgb(tmp_path / "img" / "a.png", 6, 8)
    obj = box(6, 8, 1, 4, 2, 6)
    (tmp_path / "m").mkdir()
    Image.fromarray(np.where(obj, 255, 0).astype(np.uint8), mode="L").save(tmp_path / "m" / "a.png")
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\nglass:255,255,255::\n")
    res = read_voc(tmp_path / "m", tmp_path / "img", colors=tmp_path / "labelmap.txt")
    (im,) = res.splits["train"]
    assert res.taxonomy.names == ["background", "glass"] and im.ignore is None
    assert [(i.category_id, i.mask.decode().tolist()) for i in im.instances] == [(1, obj.tolist())]
    res = read_voc(tmp_path / "m", tmp_path / "img", colors="voc")  # the same mask read with VOC's table
    (im,) = res.splits["train"]
    assert im.instances == [] and im.ignore.decode().tolist() == obj.tolist()
    assert any("nothing but ignore (255) and class 0" in w and "object:255,255,255" in w and "a.png" in w
               for w in res.warnings)


def test_labelme2voc_class_names_as_colour_table(tmp_path):
    """labelme2voc: class_names.txt (``__ignore__`` first) + palette PNGs whose index 255 is the ignore label."""
    from .helpers import box, write_rgb

    write_rgb(tmp_path / "JPEGImages" / "a.jpg", 6, 8, fmt="JPEG")
    (tmp_path / "class_names.txt").write_text("__ignore__\n_background_\nbox\nball\n")
    idx = np.zeros((6, 8), np.uint8)
    idx[box(6, 8, 0, 2, 0, 3)] = 2  # ball
    idx[box(6, 8, 3, 6, 4, 8)] = 255  # __ignore__
    png = Image.fromarray(idx, mode="P")
    png.putpalette(voc_colormap().reshape(-1).tolist())
    (tmp_path / "SegmentationClass").mkdir()
    png.save(tmp_path / "SegmentationClass" / "a.png")
    res = read_voc(tmp_path / "SegmentationClass", tmp_path / "JPEGImages")
    (im,) = res.splits["train"]
    assert res.taxonomy.names == ["_background_", "box", "ball"] and res.taxonomy.background_id == 0
    assert [(i.category_id, i.area) for i in im.instances] == [(2, 6)]
    assert im.ignore.decode().tolist() == box(6, 8, 3, 6, 4, 8).tolist()
