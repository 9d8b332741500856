"""The GPU speed options on the CPU: compile / channels_last / fused AdamW / SDPA give the plain path's losses,
a compiler failure falls back to eager with one warning, and the state dict keeps its keys."""

from __future__ import annotations

import copy
import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from segval.errors import ConfigError
from segval.models import SegmentationModule
from segval.models.mask2former import Mask2FormerAdapter
from segval.models.segformer import SegformerAdapter
from segval.models.speed import CompiledForward, attention_for, compile_module, resolve_flag
from tests.models.test_mask2former import NAMES, batch_for, tiny_kwargs

C = 4
TINY = {
    "_target_": "segval.models.segformer.SegformerAdapter",
    "pretrained": None,
    "config": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128], "num_attention_heads": [1, 2, 4, 8],
               "decoder_hidden_size": 32, "drop_path_rate": 0.0,
               # no dropout: the compiled graph draws its masks from another random stream
               "classifier_dropout_prob": 0.0},
}


class Batches(Dataset):
    """Four fixed items (images float[3, 32, 48], masks long[32, 48] with ignore pixels), recycled to ``length``."""

    def __init__(self, length: int = 4) -> None:
        self.length = length
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(4, 3, 32, 48, generator=g)
        self.masks = torch.randint(0, C, (4, 32, 48), generator=g)
        self.masks[:, :4] = 255

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i % 4], "mask": self.masks[i % 4]}


class Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.values.append(float(outputs["loss"]))


def module(**speed) -> SegmentationModule:
    fused = speed.pop("fused", False)
    torch.manual_seed(0)
    return SegmentationModule(C, [f"c{i}" for i in range(C)], TINY, optimizer={"lr": 1e-3, "fused": fused},
                              scheduler={"power": 1.0}, **speed)


def train_losses(model: SegmentationModule, steps: int = 4) -> list[float]:
    """Losses of ``steps`` Lightning training steps (batch 2, shuffled from a fixed seed) on the CPU."""
    pl.seed_everything(0, verbose=False)
    losses = Losses()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[losses],
                         limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=DataLoader(Batches(), batch_size=2, shuffle=False))
    return losses.values


@pytest.fixture(scope="module")
def plain_losses() -> list[float]:
    return train_losses(module())


def test_flags_resolve_auto_to_the_device_and_refuse_other_values() -> None:
    assert resolve_flag("auto", cuda=True, name="x") and not resolve_flag("auto", cuda=False, name="x")
    assert resolve_flag(True, cuda=False, name="x") and not resolve_flag(False, cuda=True, name="x")
    assert resolve_flag("true", cuda=False, name="x") and not resolve_flag(None, cuda=True, name="x")
    with pytest.raises(ConfigError, match="model.compile must be auto, true or false"):
        module(compile="yes")


def test_auto_keeps_the_cpu_path_plain(plain_losses: list[float]) -> None:
    model = module(compile="auto", channels_last="auto", fused="auto")
    assert train_losses(model) == plain_losses  # bit for bit: nothing switched on without CUDA
    assert model.speed_applied == {"compile": False, "channels_last": False}
    assert not model.optimizers().optimizer.defaults["fused"]
    assert "forward" not in model.adapter.__dict__


def test_channels_last_gives_the_same_losses(plain_losses: list[float]) -> None:
    model = module(channels_last=True)
    losses = train_losses(model)
    assert model.adapter.model.segformer.stages[0].patch_embeddings.proj.weight.is_contiguous(
        memory_format=torch.channels_last)
    assert losses == pytest.approx(plain_losses, rel=1e-5)


def test_fused_adamw_gives_the_same_losses_and_weights(plain_losses: list[float]) -> None:
    plain, fused = module(), module(fused=True)
    assert train_losses(fused) == pytest.approx(plain_losses, rel=1e-5)
    assert fused.optimizers().optimizer.defaults["fused"]
    train_losses(plain)
    # 4 steps at lr 1e-3 move a weight by up to 4e-3; the two kernels round differently, far below that
    # (biases in front of BatchNorm get ~0 gradients, so Adam's update there is rounding noise: atol 1e-4)
    for (name, a), b in zip(plain.state_dict().items(), fused.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-4), name


@pytest.mark.slow
def test_compiled_training_gives_the_same_losses_and_state_dict_keys(plain_losses: list[float]) -> None:
    model = module(compile=True, channels_last=True, fused=True)
    keys = list(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would warn: the compiled path must run
        losses = train_losses(model)
    wrapped = model.adapter.__dict__["forward"]
    assert isinstance(wrapped, CompiledForward) and wrapped.active
    assert losses == pytest.approx(plain_losses, rel=1e-5)
    assert list(model.state_dict()) == keys  # no _orig_mod. prefix: checkpoints load either way


def failing_backend(gm, example_inputs):  # noqa: ANN001, ANN201
    raise RuntimeError("no C++ compiler in this test")


def test_a_compiler_failure_falls_back_to_eager_with_one_warning(plain_losses: list[float],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    model = module(compile=True, compile_options={"backend": failing_backend})
    with pytest.warns(RuntimeWarning, match="torch.compile of SegformerAdapter failed") as caught:
        losses = train_losses(model)
    assert sum("torch.compile" in str(w.message) for w in caught) == 1
    assert not model.adapter.__dict__["forward"].active
    assert losses == pytest.approx(plain_losses, rel=1e-6)


def test_a_real_error_is_not_hidden_by_the_fallback() -> None:
    adapter = SegformerAdapter(C, config=TINY["config"])
    compile_module(adapter, {"backend": failing_backend})
    with pytest.raises(RuntimeError, match="channels"):  # wrong channel count: eager fails as well
        adapter(torch.zeros(1, 5, 32, 32))


def test_compiling_twice_wraps_the_original_forward() -> None:
    adapter = SegformerAdapter(C, config=TINY["config"])
    first = compile_module(adapter, {"backend": "eager"})
    second = compile_module(adapter, {"backend": "eager"})
    assert second.eager == first.eager and adapter.forward is second


@pytest.mark.parametrize("cls", ["segformer", "mask2former"])
def test_sdpa_attention_gives_the_eager_outputs(cls: str) -> None:
    def build(attn: str):
        torch.manual_seed(0)
        if cls == "segformer":
            return SegformerAdapter(C, config=TINY["config"], attn_implementation=attn).eval()
        return Mask2FormerAdapter(C, NAMES, **(tiny_kwargs() | {"attn_implementation": attn})).eval()

    sdpa, eager = build("sdpa"), build("eager")
    assert sdpa.attn_implementation == "sdpa" and eager.attn_implementation == "eager"
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(sdpa(x)[1], eager(x)[1], atol=1e-5)


def test_auto_attention_is_eager_on_the_cpu_and_sdpa_when_a_cuda_trainer_sets_up() -> None:
    assert attention_for("auto", cuda=True) == "sdpa" and attention_for("auto", cuda=False) == "eager"
    assert attention_for("sdpa", cuda=False) == "sdpa" and attention_for(None, cuda=True) is None
    model = module()
    assert model.adapter.attention_request == "auto" and model.adapter.attn_implementation == "eager"
    model.apply_speed_options(cuda=True)  # what setup() does under trainer=gpu (compile / channels_last are off)
    assert model.adapter.attn_implementation == "sdpa"
    assert model.adapter.model.config._attn_implementation == "sdpa"
    for pinned in ("eager", "sdpa"):  # an explicit choice is kept on either device
        torch.manual_seed(0)
        fixed = SegmentationModule(C, [f"c{i}" for i in range(C)], {**TINY, "attn_implementation": pinned})
        fixed.apply_speed_options(cuda=pinned == "eager")
        assert fixed.adapter.attn_implementation == pinned
    m2f = Mask2FormerAdapter(C, NAMES, **tiny_kwargs())
    assert m2f.attn_implementation == "eager" and m2f.model.config.backbone_config._attn_implementation == "eager"


def test_mask2former_training_step_skips_the_logits_with_the_same_loss(tmp_path) -> None:  # noqa: ANN001
    from segval.demo.shapes import write_shapes_package

    root = write_shapes_package(tmp_path / "shapes", images={"train": 2, "val": 2})
    batch = batch_for(root, "semantic")
    torch.manual_seed(0)
    adapter = Mask2FormerAdapter(C, NAMES, **tiny_kwargs()).train()
    torch.manual_seed(1)  # the point sampling of the loss is random
    loss, logits = adapter(batch["image"], batch["mask"])
    torch.manual_seed(1)
    loss_only, none = copy.deepcopy(adapter)(batch["image"], batch["mask"], need_logits=False)
    assert logits is not None and none is None and torch.equal(loss, loss_only)


def test_training_steps_read_no_tensor_on_the_host_between_logging_steps(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Every tensor -> Python conversion (a host sync on a GPU) during training, by step: only the logging /
    progress-bar steps (every 10) may have them; the optimizer's CPU step counters are not device tensors.
    (``self.log(..., prog_bar=True)`` of the loss read it at every step.)"""
    import collections
    import traceback

    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    from segval.callbacks.progress import StepProgressBar

    by_step: dict[int, list[str]] = collections.defaultdict(list)
    state = {"step": None}

    def counting(name: str):  # noqa: ANN202
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):  # noqa: ANN001, ANN202
            where = traceback.extract_stack(limit=3)[-2]
            if state["step"] is not None and "torch/optim/" not in where.filename:
                by_step[state["step"]].append(f"{name} {where.filename}:{where.lineno}")
            return original(self, *args, **kwargs)
        return read

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))

    class Steps(pl.Callback):
        def on_train_batch_start(self, trainer, *_) -> None:  # noqa: ANN001
            state["step"] = trainer.global_step if trainer.global_step >= 1 else None

        def on_train_end(self, *_) -> None:  # noqa: ANN002
            state["step"] = None

    trainer = pl.Trainer(accelerator="cpu", max_steps=21, logger=CSVLogger(tmp_path), log_every_n_steps=10,
                         enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, callbacks=[Steps(), StepProgressBar(refresh_rate=10),
                                                            LearningRateMonitor("step")])
    trainer.fit(module(), train_dataloaders=DataLoader(Batches(64), batch_size=2))  # one epoch: no epoch end
    # steps 9 and 19 end on a logging / redraw step; step 20 is the last (the bar shows the final loss)
    read = {step: calls for step, calls in by_step.items() if (step + 1) % 10 and step != 20}
    assert not read, read
    assert by_step  # the logging steps do read the loss: the counter works
