"""`segval train model=mask2former_tiny task=...` end to end: semantic metrics through the same code as
SegFormer's, COCO AP / PQ written into metrics.json, and `segval eval task=instance` reproducing AP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_segval, train_args
from tests.commands.test_train import numpy_metrics

pytestmark = pytest.mark.slow

M2F = ["model=mask2former_tiny", "callbacks=model_checkpoint"]


def test_semantic_run_flows_through_the_segformer_metric_code(shapes_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "sem"
    res = run_segval(*train_args(shapes_root, run, "model=mask2former_tiny", steps=2), cwd=tmp_path)
    assert res.returncode == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "semantic" and "instance" not in metrics and "panoptic" not in metrics
    conf = np.load(run / "confusion_matrix.npy")
    assert conf.sum() == 4 * 64 * 64  # every val pixel once, at label resolution
    ref = numpy_metrics(conf)
    for key in ("mIoU", "mAcc", "aAcc", "fwIoU"):
        assert metrics["summary"][key] == pytest.approx(ref[key], abs=1e-9)
    # the analysis callbacks ran on Mask2Former's logits as on SegFormer's
    with open(run / "per_image.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (run / "boundary_iou.json").is_file()


def test_instance_run_writes_ap_and_eval_reproduces_it(shapes_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "inst"
    res = run_segval(*train_args(shapes_root, run, *M2F, "task=instance", "model.optimizer.lr=1e-3",
                                 "data.batch_size=4", "trainer.val_check_interval=60", steps=60), cwd=tmp_path)
    assert res.returncode == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    inst = metrics["instance"]
    assert metrics["task"] == "instance" and set(inst["per_class"]) == {"disc", "square", "bar"}
    assert 0 < inst["AP"] <= inst["AP50"] <= 1 and inst["APl"] is None  # no object above 96^2 px in 64x64
    assert "COCOeval" in metrics["definitions"]["instance"]
    with open(run / "csv" / "metrics.csv") as f:
        assert {"val/AP", "val/AP50", "val/AP75", "val/mIoU"} <= set(next(csv.reader(f)))
    best = next((run / "checkpoints").glob("best-step*.ckpt"))
    out = tmp_path / "eval"
    res = run_segval("eval", f"ckpt_path={best}", "data=package", f"data.root={shapes_root}", "data.num_workers=0",
                     "task=instance", "callbacks=none", f"hydra.run.dir={out}", cwd=tmp_path)
    assert res.returncode == 0, res.output
    again = json.loads((out / "metrics.json").read_text())
    assert again["instance"] == inst and again["summary"] == metrics["summary"]


def test_panoptic_run_writes_pq(shapes_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "pan"
    res = run_segval(*train_args(shapes_root, run, *M2F, "task=panoptic", "model.adapter.object_mask_threshold=0",
                                 "model.adapter.overlap_threshold=0", steps=2), cwd=tmp_path)
    assert res.returncode == 0, res.output
    pan = json.loads((run / "metrics.json").read_text())["panoptic"]
    assert set(pan["per_class"]) == {"background", "disc", "square", "bar"}
    assert pan["n_th"] + pan["n_st"] == pan["n"] >= 1 and 0 <= pan["PQ"] <= 1
