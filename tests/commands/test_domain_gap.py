"""Domain gap: the table from two payloads (exact) and `segval domain-gap` on two generated splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segval.analysis.domain_gap import domain_gap, format_domain_gap
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.dataset.taxonomy import Category, Taxonomy
from segval.demo.shapes import SHAPES_TAXONOMY, write_shapes_package
from segval.models import SegmentationModule

from tests.helpers import run_segval

ADAPTER = {"_target_": "segval.models.segformer.SegformerAdapter", "pretrained": None,
           "config": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 64], "num_attention_heads": [1, 1, 2, 2],
                      "decoder_hidden_size": 16, "drop_path_rate": 0.0}}


def test_gap_table_from_two_payloads() -> None:
    def payload(split, ious, miou):
        return {"dataset": {"name": "d", "version": "1.0.0"}, "split": split, "checkpoint": "c.ckpt", "step": 5,
                "summary": {"mIoU": miou, "mAcc": 0.7, "aAcc": 0.9},
                "per_class": [{"name": n, "index": i, "id": i, "IoU": v} for i, (n, v) in
                              enumerate(zip(["bg", "mug", "cable", "glass"], ious))]}

    doc = domain_gap(payload("val", [0.9, 0.8, 0.5, None], 0.8), payload("robot_cam", [0.85, 0.4, 0.5, 0.2], 0.5))
    rows = {r["name"]: r for r in doc["per_class"]}
    assert rows["mug"]["gap"] == pytest.approx(-0.4) and rows["mug"]["relative"] == pytest.approx(-0.5)
    assert rows["cable"]["gap"] == 0.0 and rows["glass"]["gap"] is None and rows["glass"]["relative"] is None
    assert [r["name"] for r in doc["per_class"]] == ["mug", "bg", "cable", "glass"]  # largest drop first, nulls last
    assert doc["summary"]["mIoU_gap"] == pytest.approx(-0.3) and doc["summary"]["largest_drops"] == ["mug", "bg"]
    md = format_domain_gap(doc)
    assert "| mug | 80.00 | 40.00 | -40.00 | -50.0% |" in md and "| glass | n/a | 20.00 | n/a | n/a |" in md


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("gap")
    root = write_shapes_package(tmp / "shapes", images={"train": 2, "val": 3, "robot_cam": 3}, size=(32, 32), seed=5)
    torch.manual_seed(0)
    names = SHAPES_TAXONOMY.names
    model = SegmentationModule(num_classes=4, class_names=names, adapter=ADAPTER,
                               dataset={"name": "shapes", "version": "1.0.0", "taxonomy_ids": SHAPES_TAXONOMY.ids})
    ckpt = tmp / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "global_step": 3}, ckpt)
    return root, ckpt


ARGS = ("data=package", "data.num_workers=0", "data.val_batch_size=2", "data.validate=false")


def test_domain_gap_on_two_generated_splits(setup, tmp_path: Path) -> None:
    root, ckpt = setup
    run = run_segval("domain-gap", f"ckpt_path={ckpt}", f"data.root={root}", *ARGS, "target.split=robot_cam",
                     f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert run.returncode == 0, run.output
    out = tmp_path / "r"
    doc = json.loads((out / "domain_gap.json").read_text())
    assert doc["source"]["split"] == "val" and doc["target"]["split"] == "robot_cam"
    # every row against the two evaluations' own confusion matrices (IoU recomputed independently)
    for side in ("source", "target"):
        conf = np.load(out / side / "confusion_matrix.npy").astype(np.float64)
        tp, gt, pred = np.diag(conf), conf.sum(1), conf.sum(0)
        for r in doc["per_class"]:
            i = r["index"]
            expected = None if gt[i] + pred[i] == 0 else tp[i] / (gt[i] + pred[i] - tp[i])
            got = r[f"IoU_{side}"]
            assert (got is None and expected is None) or got == pytest.approx(expected, abs=1e-9)
    for r in doc["per_class"]:
        if r["gap"] is not None:
            assert r["gap"] == pytest.approx(r["IoU_target"] - r["IoU_source"])
    src = json.loads((out / "source" / "metrics.json").read_text())
    assert doc["summary"]["mIoU_source"] == src["summary"]["mIoU"]
    assert (out / "domain_gap.md").is_file() and "domain gap:" in run.stdout


def test_a_target_of_another_taxonomy_is_refused(setup, tmp_path: Path) -> None:
    root, ckpt = setup
    other = Taxonomy([*SHAPES_TAXONOMY.categories[:3], Category(3, "rod", (1, 2, 3), True, "thin")], background_id=0)
    m = np.zeros((32, 32), bool)
    m[4:10, 4:20] = True
    with PackageWriter(tmp_path / "robot", name="robot", version="1.0.0", taxonomy=other, splits=["test"]) as w:
        w.add_image("test", np.zeros((32, 32, 3), np.uint8), "a", instances=[InstanceMask(3, m)])
    run = run_segval("domain-gap", f"ckpt_path={ckpt}", f"data.root={root}", *ARGS, f"target.root={tmp_path / 'robot'}",
                     "target.split=test", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert run.returncode == 2, run.output
    assert "taxonomy differs" in run.stderr and "3:bar" in run.stderr and "3:rod" in run.stderr
    assert not (tmp_path / "r" / "domain_gap.json").exists() and not (tmp_path / "r" / "source").exists()
