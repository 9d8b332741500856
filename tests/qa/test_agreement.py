"""segval.qa.agreement: hand-computed IoU, >2 sets, flags, bad input, the diagnosis reads the result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segval.errors import DatasetError
from segval.qa.agreement import AgreementAccumulator, compute_agreement, format_agreement, pair_counts

NAMES = ["background", "mug"]
GROUPS = ["stuff", "rigid"]


def test_pair_counts_hand_computed_with_ignore():
    a = np.array([[1, 1, 0], [0, 0, 255]], dtype=np.uint8)
    b = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.uint8)
    inter, union = pair_counts(a, b, 2)
    # the ignored pixel (a = 255) is left out: class 1: a {0,1}, b {0,4} -> I 1, U 3; class 0: I 2 (2, 3), U 4
    assert inter.tolist() == [2, 1]
    assert union.tolist() == [4, 3]


def test_iou_sums_intersection_and_union_over_images():
    a1 = np.array([[1, 1], [0, 0]], np.uint8)
    b1 = np.array([[1, 0], [0, 0]], np.uint8)  # mug: I 1, U 2 ; background: I 2, U 3
    a2 = np.array([[1, 0]], np.uint8)
    b2 = np.array([[1, 0]], np.uint8)  # mug: I 1, U 1 ; background: I 1, U 1
    r = compute_agreement([{1: a1, 2: a2}, {1: b1, 2: b2}], NAMES, GROUPS)
    assert r["per_class"]["mug"] == pytest.approx(2 / 3)  # (1 + 1) / (2 + 1), not the mean of 0.5 and 1.0
    assert r["per_class"]["background"] == pytest.approx(3 / 4)
    assert r["per_group"]["rigid"]["IoU"] == pytest.approx(2 / 3)
    assert r["targets"]["rigid"] == 0.85 and r["targets"]["deformable"] == 0.75 and r["targets"]["thin"] == 0.70
    assert r["flagged_classes"] == ["mug", "background"]  # both below 0.85, furthest below first
    assert [i["image_id"] for i in r["flagged_images"]] == [1]
    assert r["flagged_images"][0]["worst_class"] == "mug"
    row = next(x for x in r["per_image"] if x["image_id"] == 1)
    assert row["per_class"]["mug"] == pytest.approx(0.5)
    json.dumps(r)  # JSON-serialisable
    assert "mug" in format_agreement(r)


def test_three_sets_mean_over_pairs():
    a = np.array([[1, 1, 0, 0]], np.uint8)
    b = np.array([[1, 1, 0, 0]], np.uint8)
    c = np.array([[1, 0, 0, 0]], np.uint8)
    r = compute_agreement([{7: a}, {7: b}, {7: c}], NAMES, GROUPS, set_names=["a", "b", "c"])
    # mug pairs: ab 2/2, ac 1/2, bc 1/2 -> mean 2/3
    assert r["per_class"]["mug"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert [p["sets"] for p in r["pairs"]] == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert r["pairs"][0]["per_class"]["mug"] == 1.0


def test_class_absent_everywhere_is_none_not_zero_and_targets_override():
    t = np.zeros((2, 2), np.uint8)
    r = compute_agreement([{1: t}, {1: t.copy()}], NAMES, GROUPS, targets={"stuff": 0.5})
    assert r["per_class"]["mug"] is None
    assert r["per_class"]["background"] == 1.0
    assert r["targets"]["stuff"] == 0.5 and r["flagged_classes"] == [] and r["flagged_images"] == []


def test_min_pixels_keeps_tiny_disagreements_from_flagging_an_image():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    a[0, 0] = 1
    r = compute_agreement([{1: a}, {1: b}], NAMES, GROUPS, min_pixels=2)
    assert r["per_class"]["mug"] == 0.0 and r["flagged_classes"][0] == "mug"
    assert r["flagged_images"] == []


def test_sets_over_different_image_ids_name_the_ids():
    t = np.zeros((2, 2), np.uint8)
    msg = r"b\.json: annotation sets must cover the same images: this set lacks image ids \[2\].*has image ids \[3\]"
    with pytest.raises(DatasetError, match=msg):
        compute_agreement([{1: t, 2: t}, {1: t, 3: t}], NAMES, GROUPS, set_names=["a.json", "b.json"])


def test_sizes_must_match_and_two_sets_needed():
    acc = AgreementAccumulator(NAMES, GROUPS, 2)
    with pytest.raises(DatasetError, match="image id 5.*different sizes"):
        acc.update(5, [np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8)])
    with pytest.raises(ValueError, match="at least two"):
        AgreementAccumulator(NAMES, GROUPS, 1)


def test_diagnosis_reads_the_result_directly():
    from segval.analysis.diagnosis import diagnose
    from segval.metrics.functional.semantic import semantic_metrics
    from segval.metrics.results import metrics_payload

    a = np.array([[1, 1], [0, 0]], np.uint8)
    b = np.array([[1, 0], [0, 0]], np.uint8)
    agreement = compute_agreement([{1: a}, {1: b}], NAMES, GROUPS)
    conf = np.array([[100, 0], [70, 30]], dtype=np.int64)  # mug IoU 0.3 -> weak
    payload = metrics_payload(semantic_metrics(conf), NAMES, split="val", step=1)
    findings = diagnose(payload, conf, taxonomy_groups=dict(zip(NAMES, GROUPS, strict=True)),
                        agreement=json.loads(json.dumps(agreement)))
    mug = next(c for c in findings["classes"] if c["name"] == "mug")
    causes = {c["cause"]: c for c in mug["causes"]}
    assert causes["annotator_disagreement"]["evidence"]["agreement_IoU"] == pytest.approx(0.5)
    assert causes["annotator_disagreement"]["evidence"]["target"] == 0.85
