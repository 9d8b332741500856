"""DDP with 2 CPU processes (gloo): the validation metrics of a DDP training run equal a single-process
evaluation of the same checkpoint exactly, and the job makes one W&B run, not one per rank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segval.tracking.offline import offline_runs

from tests.helpers import run_segval

pytestmark = pytest.mark.slow


def test_ddp_two_processes_match_one_process(shapes_root: Path, tmp_path: Path) -> None:
    ddp = tmp_path / "ddp"
    res = run_segval("train", "data=package", f"data.root={shapes_root}", "data.crop_size=[64,64]",
                     "data.num_workers=0", "data.batch_size=2", "data.val_batch_size=1", "trainer=ddp_cpu",
                     "trainer.devices=2", "trainer.max_steps=2", "trainer.val_check_interval=2",
                     "trainer.num_sanity_val_steps=0", f"hydra.run.dir={ddp}", cwd=tmp_path)
    assert res.returncode == 0, res.output[-3000:]
    assert (ddp / "train_ddp_process_1.log").is_file()  # a second rank really ran
    best = next((ddp / "checkpoints").glob("best-step*.ckpt"))
    runs = offline_runs(ddp)
    assert len(runs) == 1 and runs[0]["tags"] == ["shapes", "v1.0.0"]

    # one process, independently: the checkpoint's predictions on every val image, counted with numpy
    import torch

    from segval.datamodules import SegmentationDataModule
    from segval.models import SegmentationModule

    from segval.dataset.content_hash import package_content_hash

    # the checkpoint records which data it was trained on, content hash included
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["dataset"]["content_hash"] == package_content_hash(shapes_root)
    model = SegmentationModule.from_checkpoint(best).eval()
    dm = SegmentationDataModule(root=shapes_root, crop_size=(64, 64), val_batch_size=1)
    dm.setup("validate")
    conf_one = np.zeros((4, 4), np.int64)
    with torch.no_grad():
        for batch in dm.val_dataloader():
            pred = model(batch["image"]).argmax(1).numpy().ravel()
            gt = batch["mask"].numpy().ravel()
            keep = gt != 255
            conf_one += np.bincount(gt[keep] * 4 + pred[keep], minlength=16).reshape(4, 4)
    conf_ddp = np.load(ddp / "confusion_matrix.npy")
    assert conf_ddp.sum() == 4 * 64 * 64  # every val image counted once over the two ranks
    np.testing.assert_array_equal(conf_ddp, conf_one)
    metrics = json.loads((ddp / "metrics.json").read_text())
    tp, gt_px, pred_px = np.diag(conf_one), conf_one.sum(1), conf_one.sum(0)
    for i, row in enumerate(metrics["per_class"]):
        assert (row["gt_pixels"], row["pred_pixels"]) == (gt_px[i], pred_px[i])
        union = gt_px[i] + pred_px[i] - tp[i]
        assert row["IoU"] == (pytest.approx(tp[i] / union, abs=1e-12) if union else None)
