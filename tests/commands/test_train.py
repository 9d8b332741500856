"""`segval train` / `segval eval` end to end on a generated package, as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_segval, train_args

pytestmark = pytest.mark.slow


def numpy_metrics(conf: np.ndarray) -> dict[str, np.ndarray | float]:
    """An independent computation of the MMSeg / Detectron2 figures from conf[gt, pred]."""
    conf = conf.astype(np.float64)
    tp, gt, pred = np.diag(conf), conf.sum(1), conf.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (gt + pred - tp)
        acc = tp / gt
    return {"IoU": iou, "Acc": acc, "mIoU": np.nanmean(iou), "mAcc": np.nanmean(acc), "aAcc": tp.sum() / gt.sum(),
            "fwIoU": float(np.sum((gt / gt.sum())[gt > 0] * iou[gt > 0]))}


@pytest.fixture(scope="module")
def trained(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "train"
    res = run_segval(*train_args(shapes_root, run_dir, steps=4), cwd=run_dir.parent)
    assert res.returncode == 0, res.output
    assert "mIoU" in res.stdout and "metrics:" in res.stdout
    return run_dir


def test_train_writes_checkpoints_metrics_and_confusion(trained: Path) -> None:
    ckpts = sorted(p.name for p in (trained / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(n.startswith("best-step") for n in ckpts)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["schema_version"] == 1
    assert metrics["dataset"]["name"] == "shapes" and metrics["dataset"]["version"] == "1.0.0"
    assert [c["name"] for c in metrics["per_class"]] == ["background", "disc", "square", "bar"]
    conf = np.load(trained / "confusion_matrix.npy")
    assert conf.shape == (4, 4) and conf.dtype == np.int64
    # 4 val images of 64x64, no ignore pixels: every pixel counted once
    assert conf.sum() == 4 * 64 * 64
    ref = numpy_metrics(conf)
    for key in ("mIoU", "mAcc", "aAcc", "fwIoU"):
        assert metrics["summary"][key] == pytest.approx(ref[key], abs=1e-9)
    for i, row in enumerate(metrics["per_class"]):
        assert row["gt_pixels"] == conf[i].sum() and row["pred_pixels"] == conf[:, i].sum()
        if np.isnan(ref["IoU"][i]):
            assert row["IoU"] is None
        else:
            assert row["IoU"] == pytest.approx(ref["IoU"][i], abs=1e-12)
    # a confusion matrix per validation (steps 2 and 4), with class names in the CSV header
    saved = sorted(p.name for p in (trained / "confusion").glob("*.npy"))
    assert saved == ["step_000002.npy", "step_000004.npy"]
    header = (trained / "confusion" / "step_000004.csv").read_text().splitlines()[0]
    assert header.split(",")[1:] == ["background", "disc", "square", "bar"]


def test_per_class_figures_are_logged(trained: Path) -> None:
    with open(trained / "csv" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    for name in ("background", "disc", "square", "bar"):
        assert f"val/iou/{name}" in columns and f"val/acc/{name}" in columns
    assert {"val/mIoU", "val/mAcc", "val/aAcc", "val/fwIoU", "train/loss"} <= set(columns)


def test_eval_reproduces_the_best_checkpoint_metrics(trained: Path, shapes_root: Path) -> None:
    best = next((trained / "checkpoints").glob("best-step*.ckpt"))
    out = trained.parent / "eval"
    res = run_segval("eval", f"ckpt_path={best}", "data=package", f"data.root={shapes_root}", "data.num_workers=0",
                     f"hydra.run.dir={out}", cwd=trained.parent)
    assert res.returncode == 0, res.output
    np.testing.assert_array_equal(np.load(out / "confusion_matrix.npy"), np.load(trained / "confusion_matrix.npy"))
    assert json.loads((out / "metrics.json").read_text())["split"] == "val"


def test_ddp_eval_on_two_cpu_processes_matches_one_process(trained: Path, tmp_path: Path) -> None:
    from segval.demo.shapes import write_shapes_package

    odd = write_shapes_package(tmp_path / "odd", images={"train": 2, "val": 5}, seed=3)  # 5 images on 2 ranks
    best = next((trained / "checkpoints").glob("best-step*.ckpt"))
    common = ["eval", f"ckpt_path={best}", "data=package", f"data.root={odd}", "data.num_workers=0",
              "data.val_batch_size=1"]
    one = run_segval(*common, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert one.returncode == 0, one.output
    two = run_segval(*common, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                     "trainer.precision=32-true", "trainer.sync_batchnorm=false", f"hydra.run.dir={tmp_path / 'two'}",
                     cwd=tmp_path)
    assert two.returncode == 0, two.output
    # each of the 5 val images counted exactly once across the 2 ranks (no sampler padding)
    conf = np.load(tmp_path / "two" / "confusion_matrix.npy")
    assert conf.sum() == 5 * 64 * 64
    np.testing.assert_array_equal(conf, np.load(tmp_path / "one" / "confusion_matrix.npy"))
    with open(tmp_path / "two" / "per_image.csv") as f:
        assert sorted(int(r["image_id"]) for r in csv.DictReader(f)) == sorted(
            int(r["image_id"]) for r in csv.DictReader(open(tmp_path / "one" / "per_image.csv")))


def test_eval_on_another_split(trained: Path, shapes_root: Path) -> None:
    out = trained.parent / "eval_train"
    res = run_segval("eval", f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}", "data=package",
                     f"data.root={shapes_root}", "data.num_workers=0", "split=train", f"hydra.run.dir={out}",
                     cwd=trained.parent)
    assert res.returncode == 0, res.output
    assert np.load(out / "confusion_matrix.npy").sum() == 8 * 64 * 64


def test_resume_continues_at_the_same_step_with_optimizer_state(trained: Path, shapes_root: Path) -> None:
    last = trained / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)
    assert before["global_step"] == 4
    out = trained.parent / "resumed"
    res = run_segval(*train_args(shapes_root, out, f"ckpt_path={last}", steps=6), cwd=trained.parent)
    assert res.returncode == 0, res.output
    after = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 6
    # AdamW counted 6 steps per parameter: 4 restored + 2 new (a fresh optimizer would say 2)
    steps = {float(s["step"]) for s in after["optimizer_states"][0]["state"].values()}
    assert steps == {6.0}
    assert after["lr_schedulers"][0]["last_epoch"] == 6
    # the resumed run logged only the new steps
    with open(out / "csv" / "metrics.csv") as f:
        logged = {int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")}
    assert logged and min(logged) >= 4


def test_multirun_makes_one_job_per_value(shapes_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [a for a in train_args(shapes_root, tmp_path / "unused", steps=2) if not a.startswith("hydra.run.dir")]
    args = [a for a in args if not a.startswith("trainer.max_steps")]
    res = run_segval("train", "-m", *args[1:], "trainer.max_steps=2,3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert res.returncode == 0, res.output
    steps = {json.loads((sweep / str(j) / "metrics.json").read_text())["step"] for j in (0, 1)}
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    assert steps <= {2, 3} and (sweep / "multirun.yaml").exists()


def test_wandb_logs_offline_under_the_run_dir(shapes_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "wb"
    args = [a if a != "logger=csv" else "logger=many" for a in train_args(shapes_root, run_dir, steps=2)]
    res = run_segval(*args, cwd=tmp_path)
    assert res.returncode == 0, res.output
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert (run_dir / "csv" / "metrics.csv").exists()
