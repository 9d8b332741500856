"""`segval qa` checks: each one on a constructed mask / package that must trip it and one that must not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from segval.dataset import Category, DatasetPackage, InstanceMask, PackageWriter, Taxonomy
from segval.errors import ConfigError, DatasetError
from segval.qa import checks as qc
from segval.qa.runner import QAConfig, format_markdown, run_qa, write_report

H, W = 64, 64


def _tax() -> Taxonomy:
    return Taxonomy(
        [
            Category(0, "background", (0, 0, 0), False, "stuff"),
            Category(1, "cube", (200, 30, 30), True, "rigid"),
            Category(2, "mug", (30, 200, 30), True, "rigid"),
        ],
        background_id=0,
    )


def _box(y0, x0, y1, x1, h=H, w=W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _write(root, images, *, splits=("train",), taxonomy=None):
    """images: list of (split, [InstanceMask], extra)."""
    with PackageWriter(root, name="qa-test", version="1.0.0", taxonomy=taxonomy or _tax(), splits=list(splits),
                       label_maps=False) as w:
        for k, (split, inst, extra) in enumerate(images):
            w.add_image(split, np.zeros((H, W, 3), np.uint8), f"img_{k:03d}", instances=inst, extra=extra)
    return DatasetPackage.open(root)


def _flags(report, check):
    return [(i["image_id"], f) for i in report["images"] for f in i["flags"] if f["check"] == check]


BIG = _box(0, 0, 40, 40)  # 1600 px of 4096: background 61%


# ---------------------------------------------------------------------- pure functions
def test_components_and_perimeter_definitions():
    sq = _box(5, 5, 15, 15)
    assert qc.num_components(sq) == 1
    assert qc.pixel_perimeter(sq) == 40
    assert qc.jaggedness(sq) == 16.0
    diag = np.zeros((5, 5), bool)
    diag[0, 0] = diag[1, 1] = True
    assert qc.num_components(diag) == 1  # 8-connectivity
    ring = _box(0, 0, 5, 5, 5, 5)
    ring[2, 2] = False
    assert qc.pixel_perimeter(ring) == 24  # holes count
    assert qc.num_components(np.zeros((4, 4), bool)) == 0
    assert qc.jaggedness(np.zeros((4, 4), bool)) == 0.0


def test_mask_info_uses_crop_and_crop_iou():
    a = qc.mask_info(_box(10, 10, 20, 20))
    b = qc.mask_info(_box(15, 10, 25, 20))
    assert a.box == (10, 10, 20, 20) and a.area == 100 and a.crop.shape == (10, 10)
    assert qc.crop_iou(a, b) == pytest.approx(50 / 150)
    assert qc.crop_iou(a, qc.mask_info(_box(40, 40, 50, 50))) == 0.0


def test_rle_crop_matches_decoded_mask():
    from segval.dataset.rle import RunLengths

    rng = np.random.default_rng(0)
    masks = [rng.random((13, 9)) < p for p in (0.05, 0.5, 0.95)] + [np.ones((13, 9), bool), _box(0, 8, 13, 9, 13, 9)]
    for m in masks:
        rl = RunLengths(13, 9, np.array(_counts(m), dtype=np.int64))
        assert np.array_equal(rl.decode(), m)
        box, crop = qc.rle_crop(rl.counts, 13, 9)
        assert box == qc.bounding_box(m) and np.array_equal(crop, m[box[0]:box[2], box[1]:box[3]])
    assert qc.rle_crop(np.array([13 * 9]), 13, 9) == (None, None)


def _counts(m: np.ndarray) -> list[int]:
    """COCO run lengths (column-major, starting with a 0-run) of a bool mask."""
    flat = m.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], change])).tolist()


def test_uncovered_and_overlap():
    assert qc.uncovered_fraction([], 4, 4) == 1.0
    assert qc.uncovered_fraction([_box(0, 0, 2, 4, 4, 4)], 4, 4) == 0.5
    n, idx = qc.overlap_pixels([_box(0, 0, 2, 2, 4, 4), _box(1, 1, 3, 3, 4, 4), _box(3, 3, 4, 4, 4, 4)])
    assert n == 1 and idx == [0, 1]
    assert qc.overlap_pixels([_box(0, 0, 2, 2, 4, 4), _box(2, 2, 4, 4, 4, 4)]) == (0, [])


def test_track_key_and_matching_by_track_id():
    assert qc.track_key({"attributes": {"track_id": 7}}) == 7
    assert qc.track_key({"instance_id": 3}) == 3
    assert qc.track_key({"id": 1}) is None
    left, right = qc.mask_info(_box(0, 0, 10, 10)), qc.mask_info(_box(0, 30, 10, 40))
    # by track id: object 1 jumped right, object 2 jumped left -> both IoU 0
    pairs = qc.match_instances([(1, 1, left), (1, 2, right)], [(1, 1, right), (1, 2, left)])
    assert [(i, j, round(v, 3)) for i, j, v in pairs] == [(0, 0, 0.0), (1, 1, 0.0)]
    # without track ids: best IoU within the category -> swapped, both IoU 1
    pairs = qc.match_instances([(1, None, left), (1, None, right)], [(1, None, right), (1, None, left)])
    assert [(i, j, v) for i, j, v in pairs] == [(1, 0, 1.0), (0, 1, 1.0)]
    # another category is never matched
    assert qc.match_instances([(2, None, left)], [(1, None, left)]) == []


# ---------------------------------------------------------------------- runner: per-image checks
def _run(tmp_path, images, **cfg):
    pkg = _write(tmp_path / "pkg", images)
    return run_qa(pkg, QAConfig.from_mapping(cfg), progress=False)


def test_clean_package_has_no_findings(tmp_path):
    rep = _run(tmp_path, [("train", [InstanceMask(1, BIG)], None)])
    assert rep["counts"]["flagged_images"] == 0 and rep["decision"]["exit_code"] == 0
    assert rep["schema_version"] == 1 and rep["decision"]["status"] == "clean"


def test_no_segment(tmp_path):
    rep = _run(tmp_path, [("train", [], None), ("train", [InstanceMask(1, BIG)], None)])
    assert [i for i, _ in _flags(rep, "no_segment")] == [1]
    assert rep["decision"]["exit_code"] == 1  # no_segment is an error by default


def test_background_over_70_percent(tmp_path):
    rep = _run(tmp_path, [("train", [InstanceMask(1, _box(0, 0, 30, 30))], None),  # 78% background
                          ("train", [InstanceMask(1, _box(0, 0, 40, 40))], None)])  # 61%
    fl = _flags(rep, "background")
    assert [i for i, _ in fl] == [1] and fl[0][1]["value"] == pytest.approx(1 - 900 / 4096, abs=1e-4)


def test_small_mask(tmp_path):
    rep = _run(tmp_path, [("train", [InstanceMask(1, BIG), InstanceMask(2, _box(50, 50, 57, 57))], None),  # 49 px
                          ("train", [InstanceMask(1, BIG), InstanceMask(2, _box(50, 50, 60, 55))], None)])  # 50 px
    fl = _flags(rep, "small_mask")
    assert len(fl) == 1 and fl[0][0] == 1 and fl[0][1]["value"] == 49


def _dots(n):
    m = BIG.copy()
    for k in range(n - 1):
        m[50, 2 + 3 * k] = m[51, 2 + 3 * k] = True  # separate 2-px specks
    return m


def test_fragmented(tmp_path):
    rep = _run(tmp_path, [("train", [InstanceMask(1, _dots(11))], None),
                          ("train", [InstanceMask(1, _dots(10))], None)], max_jaggedness=1e6)
    fl = _flags(rep, "fragmented")
    assert [(i, f["value"]) for i, f in fl] == [(1, 11)]


def test_jagged(tmp_path):
    comb = np.zeros((H, W), bool)
    comb[0:40, 0:40:2] = True  # 20 one-pixel-wide teeth ...
    comb[0, 0:40] = True  # ... joined by a spine: one component, very long outline
    assert qc.jaggedness(comb) > 200
    rep = _run(tmp_path, [("train", [InstanceMask(1, comb)], None), ("train", [InstanceMask(1, BIG)], None)])
    fl = _flags(rep, "jagged")
    assert [i for i, _ in fl] == [1] and _flags(rep, "fragmented") == []


def test_overlap(tmp_path):
    rep = _run(tmp_path, [("train", [InstanceMask(1, BIG), InstanceMask(2, _box(30, 30, 50, 50))], None),
                          ("train", [InstanceMask(1, BIG), InstanceMask(2, _box(40, 40, 60, 60))], None)],
               background_max=0.9)
    fl = _flags(rep, "overlap")
    assert len(fl) == 1 and fl[0][0] == 1 and fl[0][1]["value"] == 100 and fl[0][1]["annotation_ids"] == [1, 2]


def test_temporal_iou_between_consecutive_frames(tmp_path):
    f0 = _box(0, 0, 40, 40)
    f1 = _box(0, 5, 40, 45)  # IoU 35/45 = 0.78 with f0
    f2 = _box(0, 30, 40, 64)  # IoU 15/49 < 0.5 with f1
    vid = lambda v, i: {"video_id": v, "frame_index": i}  # noqa: E731
    # listed out of frame order on purpose; another video's frame in between
    rep = _run(tmp_path, [("train", [InstanceMask(1, f2)], vid(0, 2)), ("train", [InstanceMask(1, f0)], vid(0, 0)),
                          ("train", [InstanceMask(1, f0)], vid(1, 0)), ("train", [InstanceMask(1, f1)], vid(0, 1))],
               background_max=1.0)
    fl = _flags(rep, "temporal_iou")
    assert len(fl) == 1 and fl[0][0] == 1 and fl[0][1]["previous_image_id"] == 4
    assert fl[0][1]["value"] == pytest.approx(15 * 40 / (40 * 40 + 34 * 40 - 15 * 40), abs=1e-4)


def test_format_bad_rle_size_is_flagged_not_fatal(tmp_path):
    _write(tmp_path / "pkg", [("train", [InstanceMask(1, BIG)], None), ("train", [InstanceMask(1, BIG)], None)])
    ann_path = tmp_path / "pkg" / "annotations" / "train.json"
    coco = json.loads(ann_path.read_text())
    coco["annotations"][0]["segmentation"]["size"] = [H, W + 1]
    ann_path.write_text(json.dumps(coco))
    rep = run_qa(DatasetPackage.open(tmp_path / "pkg"), QAConfig(), progress=False)
    fl = _flags(rep, "format")
    assert [i for i, _ in fl] == [1] and rep["decision"]["exit_code"] == 1


def test_format_image_file_size(tmp_path):
    _write(tmp_path / "pkg", [("train", [InstanceMask(1, BIG)], None), ("train", [InstanceMask(1, BIG)], None)])
    from PIL import Image

    Image.fromarray(np.zeros((H, W + 3, 3), np.uint8)).save(tmp_path / "pkg" / "images" / "train" / "img_000.png")
    pkg = DatasetPackage.open(tmp_path / "pkg")
    assert [i for i, _ in _flags(run_qa(pkg, QAConfig(), progress=False), "format")] == [1]
    assert _flags(run_qa(pkg, QAConfig(check_image_files=False), progress=False), "format") == []


# ---------------------------------------------------------------------- class distribution
def test_class_drift_between_splits(tmp_path):
    cubes = [("train", [InstanceMask(1, BIG)], None)] * 3
    mugs = [("val", [InstanceMask(2, BIG)], None)] * 3
    pkg = _write(tmp_path / "pkg", cubes + mugs, splits=("train", "val"))
    rep = run_qa(pkg, QAConfig(), progress=False)
    assert rep["distribution_reference"].startswith("whole dataset")
    assert {f["category_id"] for f in rep["splits"]["train"]["findings"]} == {1, 2}
    # same mix in both splits: no drift
    mixed = [(s, [InstanceMask(1, BIG)], None) for s in ("train", "val")] + \
            [(s, [InstanceMask(2, BIG)], None) for s in ("train", "val")]
    pkg2 = _write(tmp_path / "pkg2", mixed, splits=("train", "val"))
    rep2 = run_qa(pkg2, QAConfig(), progress=False)
    assert rep2["counts"]["checks"]["class_drift"] == 0


def test_class_drift_against_expected_share(tmp_path):
    tax = _tax().to_dict()
    pkg = _write(tmp_path / "pkg", [("train", [InstanceMask(1, BIG), InstanceMask(2, _box(40, 40, 64, 64))], None)])
    meta = yaml.safe_load((tmp_path / "pkg" / "dataset.yaml").read_text())
    assert tax  # taxonomy in dataset.yaml is a list
    for e in meta["taxonomy"]:
        e["expected_share"] = {0: 0.47, 1: 0.39, 2: 0.14}[e["id"]]  # observed: 0.467, 0.391, 0.141
    (tmp_path / "pkg" / "dataset.yaml").write_text(yaml.safe_dump(meta))
    pkg = DatasetPackage.open(tmp_path / "pkg")
    rep = run_qa(pkg, QAConfig(), progress=False)
    assert rep["distribution_reference"].startswith("expected_share") and rep["counts"]["checks"]["class_drift"] == 0
    meta["taxonomy"][1]["expected_share"] = 0.10  # cube expected 10%, observed 39%
    meta["taxonomy"][0]["expected_share"] = 0.76
    (tmp_path / "pkg" / "dataset.yaml").write_text(yaml.safe_dump(meta))
    rep = run_qa(DatasetPackage.open(tmp_path / "pkg"), QAConfig(), progress=False)
    assert {f["category_id"] for f in rep["splits"]["train"]["findings"]} == {0, 1}
    meta["taxonomy"][1]["expected_share"] = 2
    (tmp_path / "pkg" / "dataset.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(DatasetError, match="expected_share"):
        run_qa(DatasetPackage.open(tmp_path / "pkg"), QAConfig(), progress=False)


# ---------------------------------------------------------------------- config, severity, report
def test_severity_and_fail_on(tmp_path):
    images = [("train", [InstanceMask(1, BIG), InstanceMask(2, _box(50, 50, 55, 55))], None)]  # small_mask
    assert _run(tmp_path / "a", images)["decision"]["exit_code"] == 0  # warning < error
    assert _run(tmp_path / "b", images, fail_on="warning")["decision"]["exit_code"] == 1
    rep = _run(tmp_path / "c", images, severity={"small_mask": "error"})
    assert rep["decision"]["exit_code"] == 1 and rep["decision"]["worst_severity"] == "error"
    assert _run(tmp_path / "d", images, severity={"small_mask": "error"}, fail_on="never")["decision"]["exit_code"] == 0


@pytest.mark.parametrize("bad", [{"fail_on": "fatal"}, {"severity": {"small_mask": "loud"}},
                                 {"severity": {"nope": "info"}}, {"nope": 1}, {"background_max": 1.5},
                                 {"min_mask_px": -1}, {"drift_measure": "area"}])
def test_bad_config(bad):
    with pytest.raises(ConfigError):
        QAConfig.from_mapping(bad)


def test_report_files(tmp_path):
    rep = _run(tmp_path, [("train", [], None), ("train", [InstanceMask(1, BIG)], None)])
    j, m = write_report(rep, tmp_path / "out", max_listed=1)
    assert json.loads(j.read_text())["counts"]["checks"]["no_segment"] == 1
    md = m.read_text()
    assert "| train | 2 | 1 |" in md and "no_segment" in md and "FINDINGS" in md
    assert "None." in format_markdown({**rep, "images": []})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["qa.json", "qa.md"]


def test_crowd_and_background_annotations(tmp_path):
    speckled = _dots(20)  # 20 components: would trip fragmented if it were not a crowd region
    rep = _run(tmp_path / "a", [("train", [InstanceMask(1, speckled, iscrowd=1)], None)])
    assert _flags(rep, "fragmented") == [] and _flags(rep, "no_segment") == []
    # an annotation of the background category alone is no segment, and its pixels count as background
    rep = _run(tmp_path / "b", [("train", [InstanceMask(0, BIG)], None)])
    assert len(_flags(rep, "no_segment")) == 1
    assert rep["splits"]["train"]["distribution"]["background"]["share"] == 1.0


# ---------------------------------------------------------------------- measurements from run lengths
def _shapes(rng, h, w):
    """Masks that take the run-length path (one run per column) and ones that do not."""
    disc = np.hypot(*np.mgrid[:h, :w] - np.array([h / 2, w / 3])[:, None, None]) < 5
    tri = np.tril(np.ones((h, w), bool))[:, ::-1]
    bottom = _box(h - 4, 2, h, 7, h, w)  # runs reach the bottom border: they go on in the next column
    diag = np.eye(h, w, dtype=bool)  # one run per column, touching only at corners: one component
    steps = _box(0, 0, 3, 3, h, w) | _box(4, 3, 7, 6, h, w)  # neighbouring runs 1 row apart: two components
    two = _box(1, 1, 4, 4, h, w) | _box(1, 6, 4, 8, h, w)  # an empty column between: two components
    holes = _box(1, 1, 9, 9, h, w)
    holes[4, 4] = False  # two runs in a column
    noise = [rng.random((h, w)) < p for p in (0.05, 0.5)]
    return [disc, tri, bottom, diag, steps, two, holes, _box(3, 4, 4, 5, h, w), np.ones((h, w), bool), *noise]


def test_rle_info_equals_decoded_measurements():
    rng = np.random.default_rng(1)
    h, w = 17, 12
    fast = 0
    for m in _shapes(rng, h, w):
        got = qc.rle_info(np.array(_counts(m), dtype=np.int64), h, w)
        want = qc.mask_info(m)
        fast += got.runs is not None
        assert (got.area, got.box, got.components, got.perimeter, got.jaggedness) == (
            want.area, want.box, want.components, want.perimeter, want.jaggedness)
        assert np.array_equal(qc.crop_of(got), want.crop)
    assert fast == 4  # disc, triangle, diagonal, single pixel (the full image is one run over all columns)
    assert qc.rle_info(np.array([h * w]), h, w).box is None


def test_run_cover_and_crop_iou_from_runs_equal_pixel_counts():
    rng = np.random.default_rng(2)
    h, w = 40, 30
    masks = []
    for _ in range(6):
        m = np.zeros((h, w), bool)
        cy, cx, r = rng.integers(8, 32), rng.integers(8, 22), rng.integers(3, 9)
        m[np.hypot(*np.mgrid[:h, :w] - np.array([cy, cx])[:, None, None]) < r] = True
        masks.append(m)
    masks.append(_box(38, 0, 40, 2, h, w))  # apart from the discs
    infos = [qc.rle_info(np.array(_counts(m), dtype=np.int64), h, w) for m in masks]
    assert all(i.runs is not None for i in infos)
    depth = np.sum(masks, axis=0)
    touch = [bool(np.any(m & (depth >= 2))) for m in masks]
    assert qc.run_cover(infos) == (int(np.count_nonzero(depth >= 1)), int(np.count_nonzero(depth >= 2)), touch)
    assert touch[-1] is False and sum(touch) >= 2
    assert qc.run_cover([]) == (0, 0, [])
    for a in range(6):
        for b in range(6):
            inter = np.count_nonzero(masks[a] & masks[b])
            union = np.count_nonzero(masks[a] | masks[b])
            assert qc.crop_iou(infos[a], infos[b]) == pytest.approx(inter / union)
            assert qc.crop_iou(infos[a], qc.mask_info(masks[b])) == pytest.approx(inter / union)  # runs x crop
