"""The tiny Mask2Former adapter: a train step per task, semantic scores, inference outputs, offline rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segval.datamodules import SegmentationDataModule
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError
from segval.models import SegmentationModule
from segval.models.mask2former import Mask2FormerAdapter

NAMES = ["background", "disc", "square", "bar"]
THING = [False, True, True, True]


def tiny_kwargs() -> dict:
    """The adapter arguments of the shipped ``model=mask2former_tiny`` preset, as Hydra composes it."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("segval.conf", version_base="1.3"):
        cfg = compose("train", overrides=["model=mask2former_tiny", "paths.root_dir=.", "paths.output_dir=."])
    adapter = OmegaConf.to_container(cfg.model.adapter, resolve=True)
    adapter.pop("_target_")
    return adapter


def tiny(**kw) -> Mask2FormerAdapter:
    torch.manual_seed(0)
    return Mask2FormerAdapter(4, NAMES, **(tiny_kwargs() | kw))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("m2f") / "shapes", images={"train": 2, "val": 2})


def batch_for(root: Path, task: str) -> dict:
    dm = SegmentationDataModule(root=root, task=task, batch_size=2, num_workers=0, validate=False)
    dm.setup("validate")
    return next(iter(dm.val_dataloader()))


@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_a_train_step_gives_a_finite_loss_and_gradients(shapes: Path, task: str) -> None:
    batch = batch_for(shapes, task)
    model = tiny().train()
    extra = {"targets": batch["targets"]} if task != "semantic" else {}
    loss, logits = model(batch["image"], batch["mask"], **extra)
    assert logits.shape == (2, 4, 64, 64) and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0.9 * sum(1 for _ in model.parameters())
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_semantic_targets_are_one_mask_per_present_class() -> None:
    masks = torch.tensor([[[0, 2, 255], [2, 2, 0]]])
    (t,) = tiny().semantic_targets(masks)
    assert t["labels"].tolist() == [0, 2]
    assert t["masks"].tolist() == [[[True, False, False], [False, False, True]],
                                   [[False, True, False], [True, True, False]]]


def test_semantic_logits_are_log_of_mask2former_semantic_inference() -> None:
    model = tiny().eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _, logits = model(images)
        out = model.model(pixel_values=images)
    masks = F.interpolate(out.masks_queries_logits, size=(64, 64), mode="bilinear", align_corners=False).sigmoid()
    cls = out.class_queries_logits.softmax(-1)[..., :-1]
    semseg = torch.einsum("bqc,bqhw->bchw", cls, masks)  # Detectron2 MaskFormer.semantic_inference
    torch.testing.assert_close(logits.exp(), semseg, rtol=1e-5, atol=1e-7)
    assert torch.equal(logits.argmax(1), semseg.argmax(1))


def test_instance_and_panoptic_predictions(shapes: Path) -> None:
    batch = batch_for(shapes, "instance")
    model = tiny(object_mask_threshold=0.0, overlap_threshold=0.0).eval()
    loss, logits, preds = model.predict_instances(
        batch["image"], batch["mask"], targets=batch["targets"], task="instance", sizes=[(64, 64), (60, 50)],
        out_sizes=[(64, 64), (30, 25)], thing=THING)
    assert torch.isfinite(loss) and logits.shape == (2, 4, 64, 64)
    k = min(100, 8 * 3)  # queries x thing classes
    assert preds[0]["masks"].shape == (k, 64, 64) and preds[1]["masks"].shape == (k, 30, 25)
    assert set(preds[0]["labels"].tolist()) <= {1, 2, 3} and (preds[0]["scores"] >= 0).all()
    _, _, pan = model.predict_instances(batch["image"], task="panoptic", sizes=[(64, 64)] * 2, thing=THING)
    for p in pan:
        listed = [s["id"] for s in p["segments"]]
        assert sorted(set(p["ids"].unique().tolist()) - {0}) == sorted(listed)
        stuff = [s["label"] for s in p["segments"] if not s["isthing"]]
        assert len(stuff) == len(set(stuff))  # one segment per stuff class
    with pytest.raises(ValueError, match="task must be"):
        model.predict_instances(batch["image"], task="semantic", sizes=[(64, 64)] * 2, thing=THING)


def test_weights_follow_the_offline_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(ConfigError, match="not in the Hugging Face cache"):
        tiny(pretrained="facebook/mask2former-swin-large-coco-panoptic")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no \\*.safetensors"):
        tiny(pretrained=str(tmp_path / "w"))
    with pytest.raises(ConfigError, match="not config.backbone"):
        tiny(config={"backbone": "swin-large"})


def test_weights_saved_locally_load_back(tmp_path: Path) -> None:
    model = tiny()
    model.model.save_pretrained(tmp_path / "w")
    loaded = Mask2FormerAdapter(4, NAMES, pretrained=str(tmp_path / "w"))
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), n


def test_the_module_checks_the_adapter_can_do_the_task() -> None:
    seg = {"_target_": "segval.models.segformer.SegformerAdapter",
           "config": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128], "num_attention_heads": [1, 2, 4, 8],
                      "decoder_hidden_size": 32}}
    with pytest.raises(ConfigError, match="task=instance needs a model that predicts instances"):
        SegmentationModule(4, NAMES, seg, task="instance")
    m2f = {"_target_": "segval.models.mask2former.Mask2FormerAdapter", **tiny_kwargs()}
    module = SegmentationModule(4, NAMES, m2f, task="panoptic")
    assert module.task == "panoptic" and module.hparams.task == "panoptic"


def test_presets_compose_to_the_seed_architecture() -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module("segval.conf", version_base="1.3"):
        cfg = compose("train", overrides=["model=mask2former_swin_l"])
    a = cfg.model.adapter
    assert a.config.num_queries == 200 and list(a.backbone.depths) == [2, 2, 18, 2]
    assert a.backbone.embed_dim == 192 and a.backbone.window_size == 12 and a.pretrained is not None
    assert cfg.task == "semantic" and cfg.data.task == "semantic"
