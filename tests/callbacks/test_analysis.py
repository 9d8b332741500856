"""segval.callbacks.analysis driven by real tiny Lightning validations (CPU, a shapes package).

Every file is checked against a direct recomputation from the model's own predictions on the same
batches: per_image.csv against per_image_scores, boundary_iou.json against boundary_counts, the
class table against last_metrics and the package's annotations.
"""

from __future__ import annotations

import csv
import json
import math
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger

from segval.callbacks.analysis import (
    CLASS_TABLE_COLUMNS,
    BoundaryIoUCallback,
    ClassTableCallback,
    PerImageScoresCallback,
    _groups,
)
from segval.metrics.functional.boundary import boundary_counts
from segval.metrics.functional.label_quality import per_image_scores
from segval.metrics.per_image_csv import per_image_columns, read_per_image_csv
from segval.datamodules import SegmentationDataModule
from segval.demo.shapes import write_shapes_package
from segval.models import SegmentationModule

TINY_ADAPTER = {
    "_target_": "segval.models.segformer.SegformerAdapter",
    "pretrained": None,
    "config": {
        "depths": [1, 1, 1, 1],
        "hidden_sizes": [16, 32, 64, 128],
        "num_attention_heads": [1, 2, 4, 8],
        "decoder_hidden_size": 64,
        "drop_path_rate": 0.0,
    },
}
N_VAL = 5


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("cb") / "shapes", images={"train": 2, "val": N_VAL})


def make_dm(root: Path) -> SegmentationDataModule:
    return SegmentationDataModule(root=root, crop_size=(64, 64), num_workers=0, batch_size=2, train_transforms=None,
                                  validate=False)


def make_model(dm: SegmentationDataModule, seed: int = 0) -> SegmentationModule:
    torch.manual_seed(seed)
    return SegmentationModule(num_classes=dm.num_classes, class_names=dm.class_names, adapter=TINY_ADAPTER,
                              dataset=dm.dataset_info())


def make_trainer(callbacks: list, **kw: Any) -> pl.Trainer:
    kw = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
          "enable_progress_bar": False, "enable_model_summary": False, **kw}
    return pl.Trainer(callbacks=callbacks, **kw)


def callbacks(out: Path) -> list[pl.Callback]:
    return [BoundaryIoUCallback(out), PerImageScoresCallback(out), ClassTableCallback(out)]


@torch.no_grad()
def direct(model: SegmentationModule, dm: SegmentationDataModule, max_batches: int | None = None):
    """Per-image rows by image id and summed boundary counts, recomputed from the model's logits."""
    model.eval()
    dm.setup("validate")  # a no-op when the trainer did it in this process
    c = model.hparams.num_classes
    rows: dict[int, dict] = {}
    inter = torch.zeros(c, dtype=torch.int64)
    union = torch.zeros(c, dtype=torch.int64)
    for k, batch in enumerate(dm.val_dataloader()):
        if max_batches is not None and k >= max_batches:
            break
        logits = model(batch["image"])
        for image_id, row in zip(batch["image_id"].tolist(), per_image_scores(logits, batch["mask"])):
            rows[image_id] = row
        i, u = boundary_counts(logits.argmax(1), batch["mask"], c)
        inter += i
        union += u
    return rows, inter, union


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- one validation, every file
def test_validate_writes_every_file(shapes: Path, tmp_path: Path) -> None:
    wandb_before = "wandb" in sys.modules
    out = tmp_path / "run"
    dm = make_dm(shapes)
    model = make_model(dm)
    trainer = make_trainer(callbacks(out))
    trainer.validate(model, datamodule=dm, verbose=False)

    assert sorted(p.name for p in out.iterdir()) == ["boundary_iou.json", "class_table.csv", "per_image.csv", "plots"]
    assert [p.name for p in (out / "plots").iterdir()] == ["confusion_matrix.png"]
    assert (out / "plots" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if not wandb_before:
        assert "wandb" not in sys.modules  # never imported without a WandbLogger

    rows, inter, union = direct(model, dm)
    val_ids = sorted(rec.id for rec in dm.load().split("val").images)
    assert sorted(rows) == val_ids and len(val_ids) == N_VAL

    # per_image.csv: one row per val image, sorted by id, the values of a direct recomputation
    with open(out / "per_image.csv", newline="") as f:
        assert next(csv.reader(f)) == per_image_columns(model.metric_names)
    back = read_per_image_csv(out / "per_image.csv")
    assert [r["image_id"] for r in back] == val_ids
    names = model.class_names
    for rec in back:
        ref = rows[rec["image_id"]]
        assert rec["pixels"] == ref["pixels"] == 64 * 64
        for key in ("mIoU", "pixel_acc", "label_quality"):
            assert rec[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
        for key in ("top_confused_gt", "top_confused_pred"):
            assert rec[key] == (None if ref[key] is None else names[ref[key]])
        assert rec["top_confused_pixels"] == ref["top_confused_pixels"]
        assert [rec[f"disagree_{n}"] for n in model.metric_names] == ref["disagree"]

    # boundary_iou.json: counts summed over every prediction of the split
    doc = json.loads((out / "boundary_iou.json").read_text())
    assert set(doc) == {"dilation_ratio", "per_class", "mBIoU"} and doc["dilation_ratio"] == 0.02
    assert [c["name"] for c in doc["per_class"]] == names
    assert [c["intersection"] for c in doc["per_class"]] == inter.tolist()
    assert [c["union"] for c in doc["per_class"]] == union.tolist()
    expected = [i / u if u else None for i, u in zip(inter.tolist(), union.tolist())]
    assert [c["boundary_IoU"] for c in doc["per_class"]] == pytest.approx(expected)
    defined = [e for e in expected if e is not None]
    assert doc["mBIoU"] == pytest.approx(sum(defined) / len(defined))
    torch.testing.assert_close(model.last_boundary_iou, torch.tensor(expected, dtype=torch.float64))
    assert float(trainer.callback_metrics["val/mBIoU"]) == pytest.approx(doc["mBIoU"], rel=1e-6)
    for name, value in zip(model.metric_names, expected):
        assert float(trainer.callback_metrics[f"val/biou/{name}"]) == pytest.approx(value, rel=1e-6)

    # class_table.csv: metrics of the module, groups from the taxonomy, instances from the annotations
    table = read_csv(out / "class_table.csv")
    with open(out / "class_table.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == CLASS_TABLE_COLUMNS
    m = model.last_metrics
    assert [r["name"] for r in table] == names
    assert [int(r["id"]) for r in table] == dm.taxonomy.ids
    assert [r["group"] for r in table] == ["stuff", "rigid", "rigid", "thin"]
    split = dm.load().split("val")
    instances = [0] * len(names)
    for rec in split.images:
        for ann in split.annotations_for(rec.id):
            instances[dm.taxonomy.index_of(ann["category_id"])] += 1
    assert [int(r["instances"]) for r in table] == instances and sum(instances) > 0
    for i, r in enumerate(table):
        for key in ("IoU", "Acc", "Dice"):
            assert float(r[key]) == pytest.approx(float(m[key][i]), nan_ok=True)
        assert float(r["boundary_IoU"]) == pytest.approx(expected[i])
        assert float(r["pixel_share"]) == pytest.approx(int(m["gt_pixels"][i]) / int(m["gt_pixels"].sum()))
        assert r["status"] == "present"


def test_sanity_check_writes_nothing_and_latest_validation_wins(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    dm = make_dm(shapes)
    model = make_model(dm, seed=1)
    cbs = callbacks(out)
    # one training step; only the sanity check validates (2 batches)
    trainer = make_trainer(cbs, max_steps=1, num_sanity_val_steps=2, check_val_every_n_epoch=100)
    trainer.fit(model, datamodule=dm)
    assert not out.exists()
    assert not hasattr(model, "last_boundary_iou")

    make_trainer(cbs).validate(model, datamodule=dm, verbose=False)
    assert len(read_per_image_csv(out / "per_image.csv")) == N_VAL
    # a later, shorter validation replaces every file (one batch of 2 images)
    make_trainer(cbs, limit_val_batches=1).validate(model, datamodule=dm, verbose=False)
    rows, inter, union = direct(model, dm, max_batches=1)
    assert [r["image_id"] for r in read_per_image_csv(out / "per_image.csv")] == sorted(rows)
    doc = json.loads((out / "boundary_iou.json").read_text())
    assert [c["union"] for c in doc["per_class"]] == union.tolist()
    assert sorted(p.name for p in out.iterdir()) == ["boundary_iou.json", "class_table.csv", "per_image.csv", "plots"]


# ---------------------------------------------------------------- W&B
class FakeWandb(WandbLogger):
    """A WandbLogger that records calls instead of starting a run."""

    def __init__(self) -> None:  # no super().__init__: nothing of wandb is touched
        self.tables: list[dict] = []
        self.images: list[dict] = []

    name = "fake"  # type: ignore[assignment]
    version = "0"  # type: ignore[assignment]
    save_dir = None  # type: ignore[assignment]

    def log_metrics(self, metrics: Any, step: Any = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        pass

    def save(self) -> None:
        pass

    def finalize(self, status: str) -> None:
        pass

    def log_table(self, key: str, columns: Any = None, data: Any = None, dataframe: Any = None,
                  step: Any = None) -> None:
        self.tables.append({"key": key, "columns": columns, "data": data})

    def log_image(self, key: str, images: list, step: Any = None, **kwargs: Any) -> None:
        self.images.append({"key": key, "images": images})


def test_wandb_logger_gets_table_and_image(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    dm = make_dm(shapes)
    model = make_model(dm)
    fake = FakeWandb()
    make_trainer(callbacks(out), logger=[fake]).validate(model, datamodule=dm, verbose=False)
    assert len(fake.tables) == 1 and fake.tables[0]["key"] == "val/class_table"
    assert fake.tables[0]["columns"] == list(CLASS_TABLE_COLUMNS)
    data = fake.tables[0]["data"]
    assert [row[0] for row in data] == model.class_names
    assert all(v is None or not isinstance(v, float) or not math.isnan(v) for row in data for v in row)
    assert fake.images == [{"key": "val/confusion_matrix", "images": [str(out / "plots" / "confusion_matrix.png")]}]


# ---------------------------------------------------------------- pieces
def test_groups_from_hparams_then_taxonomy() -> None:
    names = ["a", "b"]
    module = SimpleNamespace(hparams={"dataset": {"groups": {"a": "rigid"}}})
    assert _groups(module, SimpleNamespace(), names) == ["rigid", ""]
    module = SimpleNamespace(hparams={"dataset": {"groups": ["thin", "stuff"]}})
    assert _groups(module, SimpleNamespace(), names) == ["thin", "stuff"]
    cats = [SimpleNamespace(name="b", group="deformable")]
    trainer = SimpleNamespace(datamodule=SimpleNamespace(taxonomy=SimpleNamespace(categories=cats)))
    assert _groups(SimpleNamespace(hparams={"dataset": {}}), trainer, names) == ["", "deformable"]
    assert _groups(SimpleNamespace(hparams={}), SimpleNamespace(datamodule=None), names) == ["", ""]


def test_boundary_payload_nan_is_null() -> None:
    cb = BoundaryIoUCallback("unused", dilation_ratio=0.05)
    inter, union = torch.tensor([2, 0, 0]), torch.tensor([4, 0, 1])
    biou = torch.tensor([0.5, math.nan, 0.0], dtype=torch.float64)
    cb.last = {"intersection": inter, "union": union, "boundary_IoU": biou}
    doc = cb.payload(["a", "b", "c"])
    assert doc == {
        "dilation_ratio": 0.05,
        "per_class": [
            {"name": "a", "intersection": 2, "union": 4, "boundary_IoU": 0.5},
            {"name": "b", "intersection": 0, "union": 0, "boundary_IoU": None},
            {"name": "c", "intersection": 0, "union": 1, "boundary_IoU": 0.0},
        ],
        "mBIoU": 0.25,
    }
    json.dumps(doc, allow_nan=False)


# ---------------------------------------------------------------- two processes (DDP, gloo)
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConvAdapter(torch.nn.Module):
    """A 3x3 convolution with the adapter contract. ddp_spawn pickles the module, and transformers'
    SegFormer cannot be pickled once its output-capturing hooks are installed (a local function)."""

    def __init__(self, num_classes: int, class_names: Any = None, ignore_index: int = 255) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 3, padding=1)
        self.ignore_index = ignore_index

    def forward(self, images: torch.Tensor, masks: torch.Tensor | None = None):
        logits = self.conv(images)
        if masks is None:
            return None, logits
        return torch.nn.functional.cross_entropy(logits, masks, ignore_index=self.ignore_index), logits


def test_ddp_two_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rank streams its part; rank 0 merges; boundary counts are summed over the ranks."""
    root = write_shapes_package(tmp_path / "shapes6", images={"train": 2, "val": 6})  # even: no padded repeats
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    out = tmp_path / "run"
    dm = make_dm(root)
    torch.manual_seed(0)
    model = SegmentationModule(num_classes=dm.num_classes, class_names=dm.class_names,
                               adapter={"_target_": f"{__name__}.ConvAdapter"}, dataset=dm.dataset_info())
    trainer = make_trainer(callbacks(out), devices=2, strategy="ddp_spawn")
    trainer.validate(model, datamodule=dm, verbose=False)

    rows, inter, union = direct(model, dm)
    back = read_per_image_csv(out / "per_image.csv")
    assert [r["image_id"] for r in back] == sorted(rows) and len(back) == 6
    for rec in back:
        assert rec["label_quality"] == pytest.approx(rows[rec["image_id"]]["label_quality"], rel=1e-6)
    doc = json.loads((out / "boundary_iou.json").read_text())
    assert [c["intersection"] for c in doc["per_class"]] == inter.tolist()
    assert [c["union"] for c in doc["per_class"]] == union.tolist()
    assert len(read_csv(out / "class_table.csv")) == dm.num_classes
    assert not list(out.glob(".*"))  # no part or temporary file left


def test_missing_outputs_are_a_clear_error(tmp_path: Path) -> None:
    trainer = SimpleNamespace(sanity_checking=False, global_rank=0)
    module = SimpleNamespace(class_names=["a", "b"], metric_names=["a", "b"], hparams={"ignore_index": 255},
                             device=torch.device("cpu"))
    batch = {"mask": torch.zeros(1, 4, 4, dtype=torch.long), "image_id": torch.tensor([1])}
    boundary_cb, per_image_cb = BoundaryIoUCallback(tmp_path), PerImageScoresCallback(tmp_path)
    for cb, key in ((boundary_cb, "'preds'"), (per_image_cb, "'logits'")):
        cb.on_validation_epoch_start(trainer, module)
        with pytest.raises(ValueError, match=f"{type(cb).__name__} needs validation_step to return a dict with {key}"):
            cb.on_validation_batch_end(trainer, module, None, batch, 0)
    per_image_cb.on_exception(trainer, module, RuntimeError())
    assert list(tmp_path.iterdir()) == []  # the temporary part file is gone
