"""`segval demo inject`: deterministic, ids kept, and a manifest that is exact pixel for pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from segval.dataset.package import DatasetPackage
from segval.demo.inject import (
    KINDS,
    InjectConfig,
    apportion,
    dilate_mask,
    erode_mask,
    inject_errors,
    load_manifest,
    shift_mask,
    simplify_mask,
)
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError, DatasetError

MIX = {k: 1.0 for k in KINDS}


def _cfg(**kw) -> InjectConfig:
    base = dict(rate=0.5, mix=MIX, swap_pairs=(("disc", "square"),), boundary_px=2, simplify_tolerance=2.0,
                shift_px=6, min_pixels=16, seed=3)
    base.update(kw)
    return InjectConfig(**base)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("clean") / "shapes", images={"train": 28, "val": 4},
                                size=(48, 64), frames_per_video=4)


@pytest.fixture(scope="module")
def injected(clean, tmp_path_factory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("inj")
    m = inject_errors(clean, d / "corrupted", d / "errors.json", _cfg())
    return d / "corrupted", d / "errors.json", m


def _decode(ann) -> np.ndarray:
    seg = ann["segmentation"]
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


def _coco(root: Path, split: str = "train") -> dict:
    return json.loads((root / "annotations" / f"{split}.json").read_text())


# ---------------------------------------------------------------------- pure mask operations
def test_mask_operations_exact() -> None:
    m = np.zeros((9, 9), bool)
    m[3:6, 3:6] = True
    # ellipse of radius 1 is the 4-neighbourhood cross
    d = dilate_mask(m, 1)
    assert d.sum() == 9 + 4 * 3 and d[2, 4] and not d[2, 2]
    e = erode_mask(m, 1)
    assert e.sum() == 1 and e[4, 4]
    s = shift_mask(m, -4, 5)  # rows 3..5 -> -1..1 (row -1 lost), cols 3..5 -> 8..10 (9, 10 lost)
    assert np.argwhere(s).tolist() == [[0, 8], [1, 8]]
    assert shift_mask(m, 0, 0).tolist() == m.tolist()
    ring = np.zeros((20, 20), bool)
    ring[2:18, 2:18] = True
    ring[8:12, 8:12] = False  # a hole: simplification refills it
    simp = simplify_mask(ring, 1.0)
    assert simp[2:18, 2:18].all() and simp.sum() == 16 * 16
    assert apportion(7, {"swap": 1, "drop": 1}) == {"swap": 4, "drop": 3}
    assert sum(apportion(14, MIX).values()) == 14 and set(apportion(14, MIX).values()) == {2}


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match=r"rate.*\[0, 1\].*1.5"):
        _cfg(rate=1.5).check()
    with pytest.raises(ConfigError, match="unknown kinds"):
        _cfg(mix={"melt": 1.0}).check()
    with pytest.raises(ConfigError, match="not classes of the dataset"):
        from segval.demo.shapes import SHAPES_TAXONOMY

        _cfg(swap_pairs=(("disc", "mug"),)).check(SHAPES_TAXONOMY)


# ---------------------------------------------------------------------- the package and the manifest
def test_manifest_exact_pixels_and_ids_kept(clean, injected) -> None:
    out, manifest_path, manifest = injected
    assert load_manifest(manifest_path) == manifest == json.loads(manifest_path.read_text())
    items = {i["image_id"]: i for i in manifest["items"]}
    assert len(items) == len(manifest["items"]) == manifest["corrupted_images"] == 14  # one error per image
    assert manifest["counts"] == apportion(14, MIX) and manifest["shortfall"] == {}
    a, b = DatasetPackage.open(clean), DatasetPackage.open(out)
    assert (a.version, b.version) == ("1.0.0", "1.1.0") == (manifest["clean"]["version"], manifest["corrupted"]["version"])
    ca, cb = _coco(clean), _coco(out)
    assert [im["id"] for im in ca["images"]] == [im["id"] for im in cb["images"]]
    ann_a = {x["id"]: x for x in ca["annotations"]}
    ann_b = {x["id"]: x for x in cb["annotations"]}
    dep_b = {x["id"]: x for x in cb.get("deprecated_annotations", [])}
    assert set(ann_b) | set(dep_b) == set(ann_a) and not set(ann_b) & set(dep_b)  # ids kept, none new
    dropped = sorted(i["annotation_id"] for i in items.values() if i["kind"] == "drop")
    assert sorted(dep_b) == dropped
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert meta["deprecated"]["train"]["annotations"] == dropped
    # val is untouched, byte for byte
    assert (clean / "annotations/val.json").read_bytes() == (out / "annotations/val.json").read_bytes()

    sa, sb = a.split("train"), b.split("train")
    lut = a.taxonomy.lut()
    for rec in sa.images:
        # semantic targets computed two independent ways: the label-map PNG and the package's COCO rasterisation
        lm_a = np.asarray(Image.open(clean / "label_maps/train" / Path(rec.file_name).with_suffix(".png")))
        lm_b = np.asarray(Image.open(out / "label_maps/train" / Path(rec.file_name).with_suffix(".png")))
        assert np.array_equal(lut[lm_b], sb.semantic_target(sb.image(rec.id)))
        diff = int((lm_a != lm_b).sum())
        anns_a = [x for x in ca["annotations"] if x["image_id"] == rec.id]
        anns_b = [x for x in cb["annotations"] if x["image_id"] == rec.id]
        if rec.id not in items:
            assert diff == 0 and anns_a == anns_b
            continue
        it = items[rec.id]
        assert it["pixels_changed"] == diff > 0, it
        changed = [x["id"] for x in anns_a if ann_b.get(x["id"]) != x]
        assert changed == [it["annotation_id"]]  # exactly the one annotation named
        old = ann_a[it["annotation_id"]]
        assert it["category_id"] == old["category_id"]
        m_old = _decode(old)
        if it["kind"] == "drop":
            assert it["mask_pixels_changed"] == m_old.sum()
            continue
        new = ann_b[it["annotation_id"]]
        m_new = _decode(new)
        assert new["area"] == m_new.sum() and new["bbox"] == [float(v) for v in mask_utils.toBbox(
            {"size": new["segmentation"]["size"], "counts": new["segmentation"]["counts"].encode()})]
        if it["kind"] in ("swap", "wrong_region"):
            assert np.array_equal(m_old, m_new) and new["category_id"] == it["new_category_id"] != old["category_id"]
            assert it["mask_pixels_changed"] == m_old.sum()
            partner = {1: 2, 2: 1}.get(old["category_id"])
            if it["kind"] == "swap":
                assert new["category_id"] == partner
            else:
                assert new["category_id"] not in (partner, 0)
            continue
        assert new["category_id"] == old["category_id"] and it["new_category_id"] is None
        assert it["mask_pixels_changed"] == int((m_old ^ m_new).sum()) > 0
        if it["kind"] == "dilate":
            assert (m_new >= m_old).all()
        elif it["kind"] == "erode":
            assert (m_new <= m_old).all()
        elif it["kind"] == "shift":
            dy, dx = it["params"]["dy"], it["params"]["dx"]
            assert max(abs(dy), abs(dx)) >= 3
            h, w = m_old.shape  # independent: pad, slice
            padded = np.zeros((h + 2 * 10, w + 2 * 10), bool)
            padded[10 + dy: 10 + dy + h, 10 + dx: 10 + dx + w] = m_old
            assert np.array_equal(m_new, padded[10:10 + h, 10:10 + w])
    assert {i["kind"] for i in items.values()} == set(KINDS)


def test_deterministic_for_a_seed(clean, injected, tmp_path) -> None:
    out, _, manifest = injected
    again = inject_errors(clean, tmp_path / "again", tmp_path / "errors.json", _cfg())
    assert again["items"] == manifest["items"]
    assert (tmp_path / "again/annotations/train.json").read_bytes() == (out / "annotations/train.json").read_bytes()
    for p in sorted((out / "label_maps/train").rglob("*.png")):
        assert p.read_bytes() == (tmp_path / "again/label_maps/train" / p.relative_to(out / "label_maps/train")).read_bytes()
    other = inject_errors(clean, tmp_path / "other", tmp_path / "errors2.json", _cfg(seed=4))
    assert other["items"] != manifest["items"]


def test_bad_input(clean, injected, tmp_path) -> None:
    out, manifest_path, _ = injected
    with pytest.raises(DatasetError, match="already exists"):
        inject_errors(clean, out, tmp_path / "e.json", _cfg())
    with pytest.raises(ConfigError, match="outside both packages"):
        inject_errors(clean, tmp_path / "new", clean / "errors.json", _cfg())
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        inject_errors(clean, tmp_path / "new", tmp_path / "e.json", _cfg(rate=1.2))
    assert not (tmp_path / "new").exists()
    # a manifest for another dataset version
    load_manifest(manifest_path, package=DatasetPackage.open(out))
    load_manifest(manifest_path, package=DatasetPackage.open(clean), role="clean")
    with pytest.raises(DatasetError, match=r"version 1\.1\.0.*version 1\.0\.0"):
        load_manifest(manifest_path, package=DatasetPackage.open(clean))
    with pytest.raises(DatasetError, match="not found"):
        load_manifest(tmp_path / "none.json")
