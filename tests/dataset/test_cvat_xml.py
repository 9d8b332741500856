"""CVAT XML reader ("CVAT for images / video 1.1"): masks at their offset, z_order, skipped shapes, defects."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segval.dataset import DatasetPackage
from segval.dataset.formats import write_imported
from segval.dataset.formats.cvat import decode_cvat_mask, read_cvat_xml
from segval.errors import DatasetError

from .helpers import box, write_rgb

# the <mask> of the example in CVAT's "XML annotation format" docs (a 13 x 15 disc)
DOC_RLE = "3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3"

META = """<meta>
    <task>
      <id>4</id><name>segmentation</name><size>1</size><mode>annotation</mode><overlap>0</overlap>
      <labels>
        <label><name>cube</name><color>#ff0000</color><type>any</type><attributes></attributes></label>
        <label><name>cable</name><color>#00ff00</color><type>mask</type><attributes></attributes></label>
        <label><name>s1</name><type>skeleton</type><attributes></attributes><svg></svg></label>
        <label><name>1</name><type>points</type><attributes></attributes><parent>s1</parent></label>
      </labels>
    </task>
    <dumped>2024-01-01 00:00:00+00:00</dumped>
  </meta>"""


def _xml(tmp_path, body: str, meta: str = META, name: str = "annotations.xml"):
    path = tmp_path / "export" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  {meta}\n'
                    f"{body}\n</annotations>\n", encoding="utf-8")
    return path


def _reference_decode(rle, left, top, width, h, w):
    """An independent decoder: walk the runs pixel by pixel (row-major over the box, 0s first)."""
    out = np.zeros((h, w), np.uint8)
    value, offset = 0, 0
    for n in [int(v) for v in rle.split(",")]:
        for _ in range(n):
            y, x = divmod(offset, width)
            out[y + top, x + left] = value
            offset += 1
        value = 1 - value
    return out.astype(bool)


def test_doc_mask_decodes_at_offset():
    m = decode_cvat_mask(DOC_RLE, 2, 1, 13, 15, 20, 18)
    assert m.sum() == 195 - sum(int(v) for v in DOC_RLE.split(",")[0::2])
    assert (m == _reference_decode(DOC_RLE, 2, 1, 13, 20, 18)).all()
    assert m[1 + 7, 2:15].all()  # the widest row (26 = 13 + 13 ones across two rows)
    assert not m[:1].any() and not m[:, :2].any()


def test_mask_rle_errors():
    with pytest.raises(ValueError, match="cover 194 pixels"):
        decode_cvat_mask(DOC_RLE.replace("3, 5", "2, 5", 1), 0, 0, 13, 15, 20, 20)
    with pytest.raises(ValueError, match="leaves the 20x10 image"):
        decode_cvat_mask(DOC_RLE, 0, 0, 13, 15, 10, 20)


def test_images_mode(tmp_path):
    write_rgb(tmp_path / "export" / "images" / "sub" / "a.png", 10, 12)
    body = """  <image id="0" name="sub/a.png" width="12" height="10">
    <box label="cube" xtl="0" ytl="0" xbr="4" ybr="4" occluded="0" z_order="0"></box>
    <polygon label="cube" occluded="0" points="1,1;7,1;7,6;1,6" z_order="0"></polygon>
    <mask label="cable" source="manual" occluded="0" rle="0, 4, 2, 4" left="5" top="4" width="2" height="5" z_order="1"></mask>
    <polyline label="cable" points="0,0;5,5" occluded="0" z_order="0"></polyline>
    <points label="cube" points="1,1" occluded="0"></points>
    <tag label="cube" source="manual"></tag>
    <skeleton label="s1" z_order="0"><points label="1" occluded="0" outside="0" points="1,1"></points></skeleton>
    <polygon label="mug" points="9,7;11,7;11,9;9,9" occluded="0" z_order="0"></polygon>
    <polygon label="cube" points="9,0;11,0;11,2;9,2" occluded="0" z_order="0" group_id="3"></polygon>
    <polygon label="cube" points="0,8;2,8;2,10;0,10" occluded="0" z_order="0" group_id="3"></polygon>
  </image>"""
    res = read_cvat_xml(_xml(tmp_path, body))
    tax = res.taxonomy
    assert tax.names == ["background", "cube", "cable", "mug"] and tax.background_id == 0
    assert tax.category(1).color == (255, 0, 0)
    (im,) = res.splits["train"]
    assert im.file_name == "sub/a.png" and (im.width, im.height) == (12, 10)
    insts = [(i.category_id, i.mask.decode()) for i in im.instances]
    cable = _reference_decode("0, 4, 2, 4", 5, 4, 2, 10, 12)
    cube = box(10, 12, 1, 6, 1, 7) & ~cable  # the mask has the higher z_order
    group = box(10, 12, 0, 2, 9, 11) | box(10, 12, 8, 10, 0, 2)
    # file order; the grouped pair is one instance at its first member's place
    expect = [(1, cube), (2, cable), (3, box(10, 12, 7, 9, 9, 11)), (1, group)]
    assert [c for c, _ in insts] == [c for c, _ in expect]
    for (c, m), (_, e) in zip(insts, expect):
        assert (m == e).all(), c
    # the polygon rasterises as pycocotools does (the COCO rule)
    ref = mask_utils.decode(mask_utils.frPyObjects([[1, 1, 7, 1, 7, 6, 1, 6]], 10, 12)[0]).astype(bool)
    assert (ref == box(10, 12, 1, 6, 1, 7)).all()
    skipped = {k: v.count for k, v in res.skipped.items()}
    assert skipped == {"box": 1, "polyline": 1, "points": 1, "tag": 1, "skeleton": 1}
    text = " ".join(res.warnings)
    assert "not declared in <meta>" in text and "mug" in text and "z_order" in text and "group_id" in text
    # written: label map follows
    write_imported(res, tmp_path / "pkg", name="cvat")
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    lm = split.read_label_map(split.images[0])
    assert (lm[cable] == 2).all() and (lm[cube] == 1).all() and lm[0, 0] == 0


def test_project_subsets_become_splits(tmp_path):
    meta = META.replace("<task>", "<project>").replace("</task>", "</project>")
    for sub in ("Train", "Validation"):
        write_rgb(tmp_path / "export" / "images" / sub / "img0.png", 8, 8)
    body = """  <image height="8" id="0" name="img0.png" subset="Train" task_id="39" width="8">
    <polygon label="cube" points="1,2;6,2;6,6" z_order="1"/>
  </image>
  <image height="8" id="0" name="img0.png" subset="Validation" task_id="38" width="8">
    <polygon label="cable" points="0,0;4,0;4,4;0,4" z_order="1"/>
  </image>"""
    res = read_cvat_xml(_xml(tmp_path, body, meta))
    assert list(res.splits) == ["train", "validation"]
    assert res.splits["validation"][0].instances[0].category_id == 2


def test_video_tracks(tmp_path):
    meta = META.replace("<mode>annotation</mode>", "<mode>interpolation</mode>").replace(
        "</labels>", "</labels><original_size><width>8</width><height>6</height></original_size>")
    for fr in (10, 13, 16):
        write_rgb(tmp_path / "export" / "images" / f"frame_{fr:06d}.png", 6, 8, seed=fr)
    body = """  <track id="0" label="cube" source="manual">
    <polygon frame="10" outside="0" occluded="0" keyframe="1" points="0,0;4,0;4,3;0,3" z_order="0"></polygon>
    <polygon frame="13" outside="0" occluded="0" keyframe="0" points="1,0;5,0;5,3;1,3" z_order="0"></polygon>
    <polygon frame="16" outside="1" occluded="0" keyframe="1" points="1,0;5,0;5,3;1,3" z_order="0"></polygon>
  </track>
  <track id="1" label="cable">
    <box frame="10" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="3" ybr="3" z_order="0"></box>
  </track>"""
    res = read_cvat_xml(_xml(tmp_path, body, meta=meta))
    ims = res.splits["train"]
    assert [im.file_name for im in ims] == ["frame_000010.png", "frame_000013.png", "frame_000016.png"]
    assert [im.extra for im in ims] == [{"video_id": 4, "frame_index": f} for f in (10, 13, 16)]
    assert [len(im.instances) for im in ims] == [1, 1, 0]
    assert ims[1].instances[0].track_id == 0
    assert (ims[1].instances[0].mask.decode() == box(6, 8, 0, 3, 1, 5)).all()
    assert res.skipped["box"].count == 1


# ---------------------------------------------------------------- one defect each
def _fails(tmp_path, body, match, meta=META, **kw):
    write_rgb(tmp_path / "export" / "images" / "a.png", 10, 12)
    with pytest.raises(DatasetError, match=match) as e:
        write_imported(read_cvat_xml(_xml(tmp_path, body, meta=meta), **kw), tmp_path / "pkg", name="x")
    assert not (tmp_path / "pkg").exists()
    return str(e.value)


IMG = '<image id="5" name="a.png" width="12" height="10">{}</image>'


def test_entities_refused(tmp_path):
    meta = '<!DOCTYPE annotations [<!ENTITY a "aaaaaaaaaa">]>' + META
    path = tmp_path / "export" / "annotations.xml"
    path.parent.mkdir(parents=True)
    path.write_text(f'<?xml version="1.0"?>{meta.split("<meta>")[0]}<annotations><version>1.1</version>'
                    f'<meta>{META.split("<meta>")[1]}</annotations>')
    with pytest.raises(DatasetError, match="DTD or entities"):
        read_cvat_xml(path, tmp_path)


def test_truncated_xml(tmp_path):
    path = _xml(tmp_path, IMG.format('<polygon label="cube" points="1,1;5,1;5,5"/>'))
    path.write_text(path.read_text()[:-60])
    write_rgb(tmp_path / "export" / "images" / "a.png", 10, 12)
    with pytest.raises(DatasetError, match="malformed or truncated XML at line"):
        read_cvat_xml(path)


def test_mask_out_of_bounds(tmp_path):
    msg = _fails(tmp_path, IMG.format('<mask label="cable" rle="0, 4, 2, 4" left="11" top="4" width="2" height="5"/>'),
                 "leaves the 12x10 image")
    assert "'a.png' (id 5) <mask> 0 (label 'cable')" in msg


def test_mask_runs_wrong_sum(tmp_path):
    _fails(tmp_path, IMG.format('<mask label="cable" rle="0, 4, 2, 3" left="1" top="1" width="2" height="5"/>'),
           "cover 9 pixels but the 2x5 box has 10")


def test_image_of_other_size(tmp_path):
    _fails(tmp_path, '<image id="5" name="a.png" width="12" height="11"></image>', "is 12x10 but the XML says 12x11")


def test_missing_image(tmp_path):
    _fails(tmp_path, '<image id="5" name="b.png" width="12" height="10"></image>', "'b.png' .CVAT image id 5. not found")


def test_name_escaping(tmp_path):
    _fails(tmp_path, '<image id="5" name="../a.png" width="12" height="10"></image>', "without '..'")


def test_shape_without_label(tmp_path):
    _fails(tmp_path, IMG.format('<polygon label="" points="1,1;5,1;5,5"/>'), "has no label")


def test_bad_polygon(tmp_path):
    _fails(tmp_path, IMG.format('<polygon label="cube" points="1,1;5,1"/>'), "at least 3 x,y points")


def test_video_frame_without_image(tmp_path):
    body = '<track id="0" label="cube"><polygon frame="3" outside="0" points="0,0;4,0;4,3"/></track>'
    _fails(tmp_path, body, "frame 3 has shapes but no image frame_000003")


def test_unknown_background_name(tmp_path):
    _fails(tmp_path, IMG.format(""), "background='table' is not a class of the export", background="table")
