"""Class-count targets trip at the right numbers; "double the data" recommendations with the images needed."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from segval.analysis.diagnosis import diagnose
from segval.dataset.package import DatasetPackage
from segval.dataset.taxonomy import Category, Taxonomy
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError
from segval.qa.runner import QAConfig, run_qa
from segval.qa.targets import count_targets, data_targets, target_of

TAX = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "mug", (1, 1, 1), True, "rigid"),
                Category(2, "cable", (2, 2, 2), True, "thin"), Category(3, "cloth", (3, 3, 3), True, "deformable"),
                Category(4, "glass", (4, 4, 4), True, "rigid", True), Category(5, "straw", (5, 5, 5), True, "thin", True)],
               background_id=0)


def test_targets_per_group_and_transparent() -> None:
    assert [target_of(c.group, c.transparent) for c in TAX.categories[1:]] == [500, 1500, 1500, 2500, 2500]
    assert target_of("thin", False, factors={"thin": 4.0, "transparent": 5, "rigid": 1, "stuff": 1,
                                             "deformable": 3}) == 2000


@pytest.mark.parametrize("delta, trips", [(-1, True), (0, False), (1, False)])
def test_count_rule_trips_below_the_target_only(delta: int, trips: bool) -> None:
    counts = Counter({1: 500 + delta, 2: 1500 + delta, 3: 1500 + delta, 4: 2500 + delta, 5: 2500 + delta})
    rows = count_targets(counts, TAX)
    assert [r["name"] for r in rows] == ["mug", "cable", "cloth", "glass", "straw"]  # background left out
    assert all(r["met"] is not trips for r in rows)
    assert [r["short_by"] for r in rows] == [1 if trips else 0] * 5


def test_bad_factors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="opaque"):
        count_targets({}, TAX, factors={"opaque": 2})
    with pytest.raises(ConfigError, match="> 0"):
        count_targets({}, TAX, factors={"thin": 0})
    with pytest.raises(ConfigError, match="count_base"):
        QAConfig.from_mapping({"count_base": 0})


def test_qa_rule_on_a_package(tmp_path) -> None:
    pkg = DatasetPackage.open(write_shapes_package(tmp_path / "s", images={"train": 6, "val": 2}, size=(32, 32)))
    counts: Counter = Counter()
    for s in pkg.splits:
        sd = pkg.split(s)
        counts.update(int(a["category_id"]) for r in sd.images for a in sd.annotations_for(r.id))
    # base chosen so that disc (rigid) sits exactly on its target and bar (thin, x3) one instance short
    disc, bar = counts[1], counts[3]
    rep = run_qa(pkg, QAConfig(count_base=disc, count_factors={"thin": (bar + 1) / disc}, check_image_files=False),
                 progress=False)
    rows = {r["name"]: r for r in rep["class_counts"]["rows"]}
    assert rows["disc"]["met"] and rows["disc"]["target"] == disc
    assert not rows["bar"]["met"] and rows["bar"]["short_by"] == 1
    tripped = [f["category_id"] for f in rep["class_counts"]["findings"]]
    assert 3 in tripped and 1 not in tripped
    assert rep["counts"]["checks"]["class_count"] == len(tripped)
    assert all(f["severity"] == "info" for f in rep["class_counts"]["findings"])
    assert rep["decision"]["status"] == "clean"  # info findings never fail a run (fail_on=error)


def test_double_the_data_in_findings() -> None:
    names = ["background", "mug", "cable", "glass"]
    metrics = {"split": "val", "summary": {"mIoU": 0.5}, "dataset": {},
               "per_class": [{"name": n, "index": i, "id": i, "IoU": v, "Acc": v, "status": "present"}
                             for i, (n, v) in enumerate(zip(names, [0.95, 0.5999, 0.60, 0.30]))]}
    conf = np.diag([100, 60, 60, 30]).astype(np.int64)
    train = {"background": {"images": 90, "instances": 0, "pixels": 10_000},
             "mug": {"images": 40, "instances": 120, "pixels": 500},
             "cable": {"images": 50, "instances": 100, "pixels": 500},
             "glass": {"images": 0, "instances": 0, "pixels": 0}}
    f = diagnose(metrics, conf, taxonomy_groups={"background": "stuff", "mug": "rigid", "cable": "thin",
                                                 "glass": "rigid"}, train_stats=train)
    rows = {r["name"]: r for r in f["data_targets"]["classes"]}
    assert rows["mug"]["double_data"] and rows["mug"]["images_needed"] == 40
    assert not rows["cable"]["double_data"] and rows["cable"]["images_needed"] is None  # 0.60 is not under 0.60
    assert rows["glass"]["double_data"] and rows["glass"]["images_needed"] == 50  # never in train: median (40, 50, 90)
    # instance targets: mug 120 of 500 at 3 per image -> 127 images; cable (thin) 100 of 1500 at 2 per image -> 700
    assert rows["mug"]["images_for_target"] == 127 and rows["cable"]["target"] == 1500
    assert rows["cable"]["images_for_target"] == 700
    assert rows["background"]["instances"] is None  # painted without annotations: no instance target
    recs = f["data_targets"]["recommendations"]
    assert "mug: IoU 60.0% < 60%: double its training data (about 40 more images)" in recs
    # transparent classes from the dataset's own flags
    out = data_targets(f["classes"], train, transparent={"glass"})
    assert {r["name"]: r["target"] for r in out["classes"]}["glass"] == 2500
