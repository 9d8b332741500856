"""`segval dataset release baseline=<run>` as a user runs it, and its refusal."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from segval.release.baseline import load_baseline
from segval.demo.shapes import write_shapes_package

from tests.helpers import run_segval
from tests.release.test_baseline import make_run


def test_release_with_an_eval_like_run_as_baseline(tmp_path: Path) -> None:
    root = write_shapes_package(tmp_path / "shapes", images={"train": 2, "val": 2}, size=(32, 32))
    model = make_run(tmp_path / "eval", step=9)
    # as `segval eval` leaves it: no checkpoints/ folder, metrics.json names a checkpoint elsewhere
    ckpt = tmp_path / "elsewhere" / "model.ckpt"
    ckpt.parent.mkdir()
    (tmp_path / "eval" / "checkpoints" / "best-step000009.ckpt").rename(ckpt)
    (tmp_path / "eval" / "checkpoints").rmdir()
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    metrics["checkpoint"] = str(ckpt)
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(metrics))

    run = run_segval("dataset", "release", f"source={root}", f"releases={tmp_path / 'rel'}",
                     f"baseline={tmp_path / 'eval'}", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert run.returncode == 0, run.output
    assert "baseline: SegformerAdapter step 9, val mIoU 55.00%" in run.stdout and "loaders:" in run.stdout
    base = tmp_path / "rel" / "1.0.0" / "baseline"
    assert json.loads((base / "metrics.json").read_text()) == metrics
    assert json.loads((base / "model.json").read_text())["source_checkpoint"] == "model.ckpt"
    assert (base / "config.yaml").read_text() == (tmp_path / "eval" / ".hydra" / "config.yaml").read_text()
    card = (tmp_path / "rel" / "1.0.0" / "README.md").read_text()
    for r in metrics["per_class"]:
        iou = "n/a" if r["IoU"] is None else f"{100 * r['IoU']:.2f}"
        assert f"| {r['name']} | {iou} |" in card
    rebuilt = load_baseline(base)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))

    # a run of another taxonomy: exit 2, the message names both class lists, no version written
    make_run(tmp_path / "other", names=["background", "disc", "cube", "bar"])
    run = run_segval("dataset", "release", f"source={root}", f"releases={tmp_path / 'rel2'}",
                     f"baseline={tmp_path / 'other'}", f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert run.returncode == 2 and "'cube'" in run.stderr and "Traceback" not in run.stderr, run.output
    assert not (tmp_path / "rel2" / "1.0.0").exists()
