"""GPU training speed options that never change what is computed: ``torch.compile`` with an eager fallback,
``channels_last``, fused AdamW and the attention implementation of transformers models.

Each option is ``"auto"`` (on when the model trains on a CUDA device, off on the CPU), ``True`` or ``False``
(the opt-out), so ``trainer=gpu`` / ``trainer=ddp`` get them by default and the CPU paths stay as they were.
The attention implementation's ``"auto"`` is SDPA on CUDA and the eager matmul / softmax on the CPU.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from segval.errors import ConfigError

log = logging.getLogger(__name__)

AUTO = "auto"


def resolve_flag(value: bool | str | None, *, cuda: bool, name: str) -> bool:
    """``"auto"`` -> ``cuda``; ``True`` / ``False`` as given (``None`` counts as False).

    Raises:
        ConfigError: any other value (names the option and the accepted values).
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() == AUTO:
        return cuda
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ConfigError(f"{name} must be auto, true or false, got {value!r}")


class CompiledForward:
    """A module's ``forward`` run through ``torch.compile``, falling back to eager with one warning.

    The first call that raises under compilation is repeated eagerly: if the eager call works too,
    the failure was the compiler's (no C++ compiler, an unsupported op, a backend bug), so a single
    warning names it and every later call stays eager; if the eager call fails as well, its error
    (the real one) propagates. Parameters and the state dict are untouched (no ``_orig_mod.`` keys).
    """

    def __init__(self, module: nn.Module, eager: Callable[..., Any], options: Mapping[str, Any]) -> None:
        self.name = type(module).__name__
        self.eager = eager
        self.compiled: Callable[..., Any] | None = torch.compile(eager, **dict(options))
        self.options = dict(options)

    @property
    def active(self) -> bool:
        """Whether calls still go through the compiled function (False after a fallback)."""
        return self.compiled is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any compiler failure; a real error re-raises eagerly below
            out = self.eager(*args, **kwargs)
            self.compiled = None
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            warnings.warn(
                f"torch.compile of {self.name} failed ({type(err).__name__}: {first[:300]}); training continues "
                "eagerly (same results, slower). Set model.compile=false to skip compiling.",
                RuntimeWarning,
                stacklevel=2,
            )
            return out


def compile_module(module: nn.Module, options: Mapping[str, Any] | None = None) -> CompiledForward:
    """Compile ``module.forward`` in place (an instance attribute, so ``module(...)`` runs it with its hooks).

    Args:
        module: the module to compile; calling it twice compiles the original forward again.
        options: ``torch.compile`` keyword arguments (``backend``, ``mode``, ``dynamic``, ...).

    Returns:
        The :class:`CompiledForward` now serving ``module.forward``.
    """
    current = module.__dict__.get("forward")
    eager = current.eager if isinstance(current, CompiledForward) else type(module).forward.__get__(module)
    wrapped = CompiledForward(module, eager, options or {})
    module.forward = wrapped  # type: ignore[method-assign]
    return wrapped


def to_channels_last(module: nn.Module) -> nn.Module:
    """4-D parameters and buffers (convolution weights) in ``channels_last`` memory format, values unchanged."""
    return module.to(memory_format=torch.channels_last)


def batch_channels_last(batch: Any) -> Any:
    """``batch["image"]`` (float[B, 3, H, W]) as a ``channels_last`` tensor with the same values."""
    if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor) and batch["image"].dim() == 4:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    return batch


def adamw(groups: list[dict[str, Any]], *, fused: bool, **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``groups``; ``fused=True`` uses the single-kernel implementation
    (same update rule; CUDA, and CPU since torch 2.4), else PyTorch's default (foreach)."""
    return torch.optim.AdamW(groups, fused=True if fused else None, **kwargs)


def attention_for(implementation: str | None, *, cuda: bool) -> str | None:
    """The attention implementation to ask transformers for: ``"auto"`` -> ``"sdpa"`` on a CUDA device (fused
    kernels) and ``"eager"`` on the CPU (the explicit matmul / softmax, faster there for SegFormer's small heads:
    4.2 against 3.4 training steps/s of the demo model on 2 cores); anything else as given."""
    if isinstance(implementation, str) and implementation.lower() == AUTO:
        return "sdpa" if cuda else "eager"
    return implementation


def set_attention(model: nn.Module, implementation: str | None, *, submodel: str | None = None) -> str | None:
    """Ask a transformers model for an attention implementation (``"sdpa"``, ``"eager"``, ...).

    Args:
        model: a ``PreTrainedModel``.
        implementation: None keeps transformers' choice; ``"auto"`` is the CPU choice of
            :func:`attention_for` (a CUDA trainer switches to SDPA at setup).
        submodel: the sub-config to set it on (``"backbone_config"`` for Mask2Former, whose own decoder has
            no attention interface), else the whole model.

    Returns:
        The implementation now in use by the model (or the sub-model), for the log.
    """
    config = model.config if submodel is None else getattr(model.config, submodel)
    implementation = attention_for(implementation, cuda=False)
    if implementation is None or config._attn_implementation == implementation:
        return config._attn_implementation
    if not hasattr(model, "set_attn_implementation"):
        log.info("%s: this transformers version cannot switch the attention implementation", type(model).__name__)
        return config._attn_implementation
    try:
        model.set_attn_implementation(implementation if submodel is None else {submodel: implementation})
    except (ValueError, ImportError) as err:  # not supported by this class / torch build: keep what it has
        log.warning("%s: attention %s not available (%s); keeping %s", type(model).__name__, implementation, err,
                    config._attn_implementation)
    return config._attn_implementation
