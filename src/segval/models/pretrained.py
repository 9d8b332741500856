"""Where pretrained weights come from: a local directory or a Hugging Face hub id, never a silent random init."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segval.errors import ConfigError


def label_config(num_classes: int, class_names: Sequence[str] | None) -> dict[str, Any]:
    """``num_labels`` / ``id2label`` / ``label2id`` of a transformers config, the names checked against the count
    (no names: ``class_<i>``)."""
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ConfigError(f"class_names has {len(names)} names for num_classes={num_classes}")
    return {"num_labels": num_classes, "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def resolve_pretrained(spec: str | os.PathLike) -> tuple[str, bool]:
    """Resolve ``model.adapter.pretrained`` to something ``from_pretrained`` can load offline-safely.

    Args:
        spec: a local directory (holding ``config.json`` and ``*.safetensors``) or a hub id such as
            ``nvidia/mit-b0``.

    Returns:
        ``(name_or_path, local_files_only)``: a local directory is loaded as it is; a hub id is loaded
        from the Hugging Face cache when offline (``HF_HUB_OFFLINE=1``) or when it is cached.

    Raises:
        ConfigError: the directory is missing or holds no weights, or a hub id is neither cached nor
            reachable; the message says how to get the weights or how to ask for random init.
    """
    text = str(spec)
    path = Path(os.path.expanduser(text))
    how = (
        "Download the weights on a machine with network (e.g. `hf download {id} --local-dir DIR`) and set "
        "model.adapter.pretrained=DIR, or set model.adapter.pretrained=null to train from random init on purpose."
    )
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"pretrained weights must be a directory (config.json + *.safetensors); {path} is a file")
        if not (path / "config.json").exists():
            raise ConfigError(f"pretrained directory {path} has no config.json; " + how.format(id="<hub id>"))
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ConfigError(f"pretrained directory {path} holds no *.safetensors weights; " + how.format(id="<hub id>"))
        return str(path), True
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ConfigError(f"pretrained weights not found: {text} is not a directory. " + how.format(id="<hub id>"))
    # a hub id: use the local cache first; go online only when the hub is reachable and allowed
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(text, "config.json")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}
    if isinstance(cached, str):
        return text, True
    if offline:
        raise ConfigError(
            f"pretrained hub id {text!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set. " + how.format(id=text)
        )
    return text, False


def load_failed(spec: str, err: Exception) -> ConfigError:
    """The error raised when ``from_pretrained`` fails (no network, wrong architecture, no weights)."""
    return ConfigError(
        f"could not load pretrained weights from {spec!r}: {type(err).__name__}: {err}. "
        "Offline, point model.adapter.pretrained at a local directory with config.json and *.safetensors, "
        "or set model.adapter.pretrained=null to train from random init on purpose."
    )
