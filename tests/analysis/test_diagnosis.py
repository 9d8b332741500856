"""diagnose: each cause from constructed confusion matrices and statistics, statuses, worst images, output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from segval.analysis.diagnosis import (
    FINDINGS_SCHEMA,
    DiagnosisConfig,
    diagnose,
    format_findings,
    write_findings,
)
from segval.metrics.functional.semantic import semantic_metrics
from segval.metrics.per_image_csv import read_per_image_csv
from segval.metrics.results import metrics_payload

RIGID = "rigid"


def _payload(conf, names, **kw):
    conf = np.asarray(conf, dtype=np.int64)
    return metrics_payload(semantic_metrics(conf), names, split="val", step=100, **kw)


def _run(conf, names, groups=None, **kw):
    conf = np.asarray(conf, dtype=np.int64)
    groups = groups if groups is not None else {n: ("stuff" if n == "background" else RIGID) for n in names}
    return diagnose(_payload(conf, names), conf, taxonomy_groups=groups, **kw)


def _cls(findings, name):
    return next(c for c in findings["classes"] if c["name"] == name)


# a class whose errors are spread thinly over five others (13% each: no confusion), IoU 0.35, Acc 0.35
DIFFUSE_NAMES = ["background", "a", "b", "c", "d", "e"]


def _diffuse_conf():
    conf = np.diag([1000, 35, 100, 100, 100, 100]).astype(np.int64)
    conf[1, [0, 2, 3, 4, 5]] = 13
    return conf


def _stats(**override):
    base = {"images": 100, "instances": 120, "pixels": 50000, "median_instance_area": 2000.0}
    stats = {"background": {"images": 100, "instances": 0, "pixels": 10**6, "median_instance_area": None}}
    stats.update({n: dict(base) for n in DIFFUSE_NAMES[1:]})
    stats["a"].update(override)
    return stats


# ------------------------------------------------------------------ confusion
def test_symmetric_confusion_names_partner_and_guideline():
    names = ["background", "mug", "cup"]
    conf = [[1000, 20, 20], [0, 59, 41], [0, 35, 65]]
    f = _run(conf, names)
    mug = _cls(f, "mug")
    assert mug["status"] == "weak" and mug["IoU"] == pytest.approx(59 / 155)
    top = mug["causes"][0]
    assert top["cause"] == "confusion" and top["evidence"]["partner"] == "cup"
    assert top["evidence"]["symmetric"] is True
    assert top["strength"] == pytest.approx(0.41)
    assert top["evidence"]["partner_share_to_class"] == pytest.approx(0.35)
    assert top["summary"] == "mug loses 41% of its pixels to cup; cup loses 35% to mug: symmetric, likely a guideline problem"
    assert "clarify the guideline between mug and cup" in mug["actions"]
    assert not any(a.startswith("merge") for a in mug["actions"])  # cup's IoU is 0.40: not "both very low"
    assert _cls(f, "cup")["status"] == "ok"  # 65 / 161 = 0.4037
    assert f["summary"]["weak_classes"] == ["mug"]


def test_symmetric_confusion_with_both_very_low_suggests_merge():
    names = ["background", "mug", "cup"]
    f = _run([[1000, 0, 0], [0, 30, 70], [0, 60, 40]], names)
    mug, cup = _cls(f, "mug"), _cls(f, "cup")
    assert mug["causes"][0]["evidence"]["partner"] == "cup" and cup["causes"][0]["evidence"]["partner"] == "mug"
    assert mug["causes"][0]["evidence"]["symmetric"] and cup["causes"][0]["evidence"]["symmetric"]
    assert "merge mug and cup (both IoU below 25% and confused both ways)" in mug["actions"]
    assert f["summary"]["weak_classes"] == ["mug", "cup"]  # lowest IoU first: 30/160, 40/170


def test_one_way_confusion_with_background():
    names = ["background", "mug", "cup"]
    f = _run([[1000, 0, 0], [70, 30, 0], [0, 0, 100]], names)
    top = _cls(f, "mug")["causes"][0]
    assert top["cause"] == "confusion" and top["evidence"]["partner"] == "background"
    assert top["evidence"]["symmetric"] is False and top["strength"] == pytest.approx(0.7)
    assert top["summary"] == ("mug loses 70% of its pixels to background (100% of all it misses); "
                              "background loses only 0% to mug: one-way")


def test_confusion_partner_is_argmax_of_the_row_and_min_share_applies():
    names = ["background", "a", "b", "c"]
    conf = np.diag([1000, 50, 100, 100])
    conf[1, 2], conf[1, 3] = 16, 34  # c takes more than b
    f = _run(conf, names, config=DiagnosisConfig(threshold=0.6))  # IoU 0.5
    assert _cls(f, "a")["causes"][0]["evidence"]["partner"] == "c"
    assert _cls(f, "a")["causes"][0]["evidence"]["share_of_missed"] == pytest.approx(0.68)
    # with a 40% minimum share the confusion no longer counts
    f = _run(conf, names, config=DiagnosisConfig(confusion_min_share=0.4, threshold=0.6))
    assert [c["cause"] for c in _cls(f, "a")["causes"]] == ["unexplained"]


def test_predicted_only_class_confusion_from_its_column():
    names = ["background", "a", "b"]
    conf = [[1000, 30, 0], [0, 0, 0], [0, 10, 100]]
    f = _run(conf, names)
    a = _cls(f, "a")
    assert a["status"] == "weak" and a["IoU"] == 0.0  # MMSeg: predicted without GT counts as 0
    top = a["causes"][0]
    assert top["cause"] == "confusion" and top["evidence"]["direction"] == "false_positive"
    assert top["evidence"]["partner"] == "background" and top["strength"] == pytest.approx(0.75)
    assert "add images of a to the val split (it has none there)" in a["actions"]


# ------------------------------------------------------------------ few examples / small objects
def test_few_examples_from_train_stats():
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, train_stats=_stats(images=5, instances=6, pixels=5000))
    a = _cls(f, "a")
    top = a["causes"][0]
    assert top["cause"] == "few_examples" and len(a["causes"]) == 1
    assert top["strength"] == pytest.approx(0.95)  # 1 - 5/100 (images: the smallest ratio)
    ev = top["evidence"]
    assert ev["limiting"] == "images" and ev["more_images"] == 95 and ev["never_in_training"] is False
    assert ev["instances"] == {"value": 6, "median": 120.0, "ratio": 0.05}
    assert ev["pixels"]["ratio"] == pytest.approx(0.1)
    assert "collect more training images of a: aim for 95 more images (the median class has 100)" in a["actions"]
    # background has pixels but no instances: its instance count is not compared, and it is not weak
    assert _cls(f, "background")["causes"] == []


def test_few_examples_by_pixels_only():
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, train_stats=_stats(pixels=2500))
    top = _cls(f, "a")["causes"][0]
    assert top["cause"] == "few_examples" and top["evidence"]["limiting"] == "pixels"
    assert top["strength"] == pytest.approx(0.95) and top["evidence"]["more_images"] == 0


def test_small_objects_from_median_area():
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, train_stats=_stats(median_instance_area=256.0))
    a = _cls(f, "a")
    assert [c["cause"] for c in a["causes"]] == ["small_objects"]
    assert a["causes"][0]["strength"] == pytest.approx(0.75)
    assert "256 px (< 1,024 px = 32x32)" in a["causes"][0]["summary"]
    assert a["actions"][0].startswith("collect more images of a where it is larger")


def test_never_in_training_data():
    names = DIFFUSE_NAMES + ["f"]
    conf = np.zeros((7, 7), np.int64)
    conf[:6, :6] = _diffuse_conf()
    conf[6, 6], conf[6, 0] = 5, 95  # f is in val, never in train
    stats = _stats()
    stats["f"] = {"images": 0, "instances": 0, "pixels": 0, "median_instance_area": None}
    f = _run(conf, names, train_stats=stats)
    fc = _cls(f, "f")
    assert fc["status"] == "weak" and fc["causes"][0]["cause"] == "few_examples"
    assert fc["causes"][0]["strength"] == 1.0 and fc["causes"][0]["evidence"]["never_in_training"] is True
    assert fc["causes"][0]["summary"] == "f is never in the training data (0 images, 0 instances, 0 pixels)"
    assert f["summary"]["never_in_training"] == ["f"]
    # absent from val as well: status absent, the finding is still there
    conf[6] = 0
    f = _run(conf, names, train_stats=stats)
    fc = _cls(f, "f")
    assert fc["status"] == "absent" and fc["causes"][0]["evidence"]["never_in_training"] is True
    assert fc["actions"] == ["collect images of f for the training split (it has none): aim for 100 images"]
    assert "never in the training data: f" in format_findings(f)


# ------------------------------------------------------------------ boundary
def test_boundary_from_high_acc_low_iou():
    conf = np.diag([1000, 90, 100, 100, 100, 100]).astype(np.int64)
    conf[1, [0, 2, 3, 4, 5]] = 2
    conf[0, 1] = 200  # background predicted as a: IoU 90 / 300 = 0.3, Acc 0.9
    a = _cls(_run(conf, DIFFUSE_NAMES), "a")
    assert [c["cause"] for c in a["causes"]] == ["boundary"]
    ev = a["causes"][0]["evidence"]
    assert a["causes"][0]["strength"] == pytest.approx(0.6) and ev["rules"] == ["high_acc_low_iou"]
    assert ev["false_positives_mostly"] == "background" and ev["false_positive_share"] == pytest.approx(200 / 290)
    assert a["actions"][0].startswith("relabel the images where a is most often missed")


def test_boundary_from_low_boundary_iou_ranks_causes():
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, boundary_iou={"a": 0.07, "b": None},
             train_stats=_stats(images=5, instances=6, pixels=5000, median_instance_area=256.0))
    a = _cls(f, "a")
    assert [c["cause"] for c in a["causes"]] == ["few_examples", "boundary", "small_objects"]
    assert [c["strength"] for c in a["causes"]] == pytest.approx([0.95, 0.8, 0.75])
    assert a["boundary_IoU"] == 0.07 and a["causes"][1]["evidence"]["rules"] == ["low_boundary_iou"]
    # above the ratio: no boundary cause
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, boundary_iou={"a": 0.25})
    assert [c["cause"] for c in _cls(f, "a")["causes"]] == ["unexplained"]


def test_boundary_iou_json_document_accepted():
    doc = {"dilation_ratio": 0.02, "mBIoU": 0.5,
           "per_class": [{"name": "a", "intersection": 7, "union": 100, "boundary_IoU": 0.07}]}
    a = _cls(_run(_diffuse_conf(), DIFFUSE_NAMES, boundary_iou=doc), "a")
    assert a["boundary_IoU"] == 0.07 and a["causes"][0]["cause"] == "boundary"


# ------------------------------------------------------------------ annotator disagreement
def test_annotator_disagreement_against_group_target():
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, agreement={"per_class": {"a": 0.5, "b": 0.95}})
    a = _cls(f, "a")
    assert [c["cause"] for c in a["causes"]] == ["annotator_disagreement"]
    assert a["causes"][0]["strength"] == pytest.approx(0.35 / 0.85)
    assert a["causes"][0]["evidence"]["target"] == 0.85
    assert "clarify the guideline for a (annotators disagree)" in a["actions"]
    # targets from the agreement file, and the deformable default
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, agreement={"per_class": {"a": 0.5}, "targets": {"rigid": 0.6}})
    assert _cls(f, "a")["causes"][0]["strength"] == pytest.approx(0.1 / 0.6)
    groups = {n: "deformable" for n in DIFFUSE_NAMES}
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, groups=groups, agreement={"per_class": {"a": 0.5}})
    assert _cls(f, "a")["causes"][0]["strength"] == pytest.approx(0.25 / 0.75)
    # with a boundary cause too: one relabel action listing both checks, strongest cause first
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, agreement={"per_class": {"a": 0.5}}, boundary_iou={"a": 0.07})
    assert _cls(f, "a")["actions"] == [
        "relabel the images where a is most often missed (per_image.csv, sorted by disagree_a): "
        "check the outlines of a; the labels of a against the guideline",
        "clarify the guideline for a (annotators disagree)",
    ]
    # at or above the target: no cause
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, agreement={"per_class": {"a": 0.9}})
    assert _cls(f, "a")["causes"][0]["cause"] == "unexplained"


# ------------------------------------------------------------------ statuses, thresholds, unexplained
def test_absent_class_is_never_zero():
    names = ["background", "mug", "spoon"]
    f = _run([[1000, 0, 0], [0, 100, 0], [0, 0, 0]], names)
    spoon = _cls(f, "spoon")
    assert spoon["status"] == "absent" and spoon["IoU"] is None and spoon["causes"] == []
    assert f["summary"]["absent_classes"] == ["spoon"] and f["summary"]["weak_classes"] == []
    assert f["summary"]["mIoU"] == 1.0


def test_group_thresholds():
    cfg = DiagnosisConfig(thresholds_by_group={"thin": 0.3})
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, groups={"a": "thin"}, config=cfg)
    a = _cls(f, "a")
    assert a["status"] == "ok" and a["threshold"] == 0.3 and a["group"] == "thin"
    assert f["thresholds"] == {"default": 0.4, "by_group": {"rigid": 0.4, "deformable": 0.4, "thin": 0.3, "stuff": 0.4}}
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, groups={"a": "rigid"}, config=cfg)
    assert _cls(f, "a")["status"] == "weak" and _cls(f, "a")["threshold"] == 0.4
    # unknown group: the default threshold
    assert _cls(_run(_diffuse_conf(), DIFFUSE_NAMES, groups={}), "b")["group"] is None


def test_unexplained_says_what_was_not_checked():
    f = _run(_diffuse_conf(), DIFFUSE_NAMES)
    a = _cls(f, "a")
    assert [c["cause"] for c in a["causes"]] == ["unexplained"] and a["causes"][0]["strength"] == 0.0
    ev = a["causes"][0]["evidence"]
    assert ev["checked"] == ["confusion", "boundary"]
    assert set(ev["not_checked"]) == {"few_examples", "small_objects", "boundary (boundary IoU rule)",
                                      "annotator_disagreement"}
    assert "train longer or use a bigger model" in a["causes"][0]["summary"]
    assert a["actions"][0].startswith("train longer or use a bigger model (no data problem found for a)")


# ------------------------------------------------------------------ worst images
PER_IMAGE_COLUMNS = ["image_id", "pixels", "mIoU", "pixel_acc", "label_quality", "top_confused_gt",
                     "top_confused_pred", "top_confused_pixels"]


def _rows(name_key):
    # (image_id, disagree, label_quality, top gt, top pred, top pixels)
    data = [(1, 50, "0.9", "", "", "0"), (2, 80, "0.5", "a", "b", "70"), (3, 50, "0.2", "", "", "0"),
            (4, 0, "0.01", "", "", "0"), (5, 80, "", "c", "d", "9"), (6, 10, "nan", "", "", "0")]
    return [{"image_id": str(i), "pixels": "1000", "mIoU": "0.5", "pixel_acc": "0.9", "label_quality": lq,
             "top_confused_gt": tg, "top_confused_pred": tp, "top_confused_pixels": tn, name_key: str(d),
             "disagree_b": "0"} for i, d, lq, tg, tp, tn in data]


def test_worst_images_ordering(tmp_path):
    rows = _rows("disagree_a")
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, per_image=rows)
    worst = _cls(f, "a")["worst_images"]
    # disagree pixels desc, then label quality asc (missing last); zero-disagreement images left out
    assert [w["image_id"] for w in worst] == [2, 5, 3, 1, 6]
    assert [w["score"] for w in worst] == [80.0, 80.0, 50.0, 50.0, 10.0]
    assert worst[0]["reason"] == "80 px of a predicted as another class; the image's top confusion is a -> b (70 px); label quality 0.500"
    assert worst[1]["label_quality"] is None and worst[1]["reason"] == "80 px of a predicted as another class"
    assert "the 5 worst images of a (ids 2, 5, 3, 1, 6)" in _cls(f, "a")["actions"][0]
    # worst_k, and ok classes get none
    f = _run(_diffuse_conf(), DIFFUSE_NAMES, per_image=rows, config=DiagnosisConfig(worst_k=2))
    assert [w["image_id"] for w in _cls(f, "a")["worst_images"]] == [2, 5]
    assert _cls(f, "b")["worst_images"] == []
    # read back from a CSV file, with a class name that is not a safe metric key
    path = tmp_path / "per_image.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*PER_IMAGE_COLUMNS, "disagree_a_x", "disagree_b"])
        writer.writeheader()
        writer.writerows(_rows("disagree_a_x"))
    names = ["background", "a/x", "b", "c", "d", "e"]
    f = _run(_diffuse_conf(), names, per_image=read_per_image_csv(path), config=DiagnosisConfig(worst_k=3))
    assert [w["image_id"] for w in _cls(f, "a/x")["worst_images"]] == [2, 5, 3]


# ------------------------------------------------------------------ output
def test_json_round_trip_and_schema(tmp_path):
    names = ["background", "mug", "cup", "spoon"]
    conf = np.array([[1000, 20, 20, 0], [0, 59, 41, 0], [0, 35, 65, 0], [0, 0, 0, 0]])
    stats = {n: {"images": 10, "instances": 10, "pixels": 1000, "median_instance_area": 500.0} for n in names}
    f = diagnose(_payload(conf, names, dataset={"name": "demo", "version": "1.0.0"}), conf,
                 taxonomy_groups={"mug": "rigid"}, train_stats=stats, boundary_iou={"mug": None},
                 per_image=_rows("disagree_mug"), agreement={"per_class": {"mug": 0.8}})
    path = write_findings(f, tmp_path / "run" / "findings.json")

    def no_nan(x):
        raise AssertionError(f"{x} in findings.json")

    back = json.loads(path.read_text(), parse_constant=no_nan)
    assert back == f
    assert back["schema_version"] == 1 and back["dataset"]["name"] == "demo" and back["split"] == "val"
    assert back["step"] == 100 and back["inputs"] == {"train_stats": True, "boundary_iou": True,
                                                      "per_image": True, "agreement": True}
    assert set(back) == set(FINDINGS_SCHEMA)
    assert set(back["summary"]) == set(FINDINGS_SCHEMA["summary"])
    for c in back["classes"]:
        assert set(c) == set(FINDINGS_SCHEMA["classes"][0])
        for cause in c["causes"]:
            assert set(cause) == set(FINDINGS_SCHEMA["classes"][0]["causes"][0])
            assert 0.0 <= cause["strength"] <= 1.0
        for w in c["worst_images"]:
            assert set(w) == set(FINDINGS_SCHEMA["classes"][0]["worst_images"][0])
    assert list(tmp_path.joinpath("run").iterdir()) == [path]  # no temporary file left
    with pytest.raises(ValueError, match="schema_version"):
        write_findings({"classes": []}, tmp_path / "x.json")


def test_format_findings_console_line():
    names = ["background", "mug", "cup", "spoon"]
    conf = np.array([[1000, 20, 20, 0], [0, 59, 41, 0], [0, 35, 65, 0], [0, 0, 0, 0]])
    text = format_findings(_run(conf, names))
    lines = text.splitlines()
    assert lines[0] == "findings (val, step 100): mIoU 58.2%; 1 of 4 classes weak, 1 absent"
    assert lines[1] == "  mug         IoU 38.1% < 40%  confusion: 41% of its pixels go to cup (symmetric)"
    assert lines[2].strip() == "-> clarify the guideline between mug and cup"
    assert lines[-1] == "  absent (no ground truth, no prediction; not counted as 0): spoon"


def test_bad_arguments():
    names = ["background", "mug"]
    conf = np.array([[10, 0], [0, 10]])
    with pytest.raises(ValueError, match=r"confmat must be int\[2, 2\]"):
        diagnose(_payload(conf, names), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="group must be one of"):
        DiagnosisConfig(thresholds_by_group={"soft": 0.3})
    with pytest.raises(ValueError, match="threshold must be a number in"):
        DiagnosisConfig(threshold=1.5)
    with pytest.raises(ValueError, match=r"unknown diagnosis setting\(s\) \['treshold'\]"):
        DiagnosisConfig.from_mapping({"treshold": 0.3})
    assert DiagnosisConfig.from_mapping({"threshold": 0.3, "worst_k": 3}).worst_k == 3
    with pytest.raises(ValueError, match="worst_k"):
        DiagnosisConfig(worst_k=-1)
