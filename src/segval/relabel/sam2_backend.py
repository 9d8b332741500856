"""SAM 2 through transformers' ``Sam2Model``: model building, our own pre-processing, prompts, proposals.

Why not the ``sam2`` package and not transformers' image processor (the package is not
Meta's, needs torchvision and initialises Hydra; the processor needs torchvision). Here:

* **pre-processing** (:func:`preprocess`): the RGB image is resized to ``image_size`` x
  ``image_size`` (bilinear, as SAM 2 does: no aspect-preserving padding), scaled to [0, 1] and
  normalised with the ImageNet mean / std;
* **prompts** (:func:`prompts_for`) are given in original pixel coordinates and scaled by
  ``image_size / W`` and ``image_size / H`` (:func:`scale_points`);
* **masks**: the decoder's low-resolution logits (``image_size / 4``) are resized to ``H x W``
  (bilinear) and thresholded at 0.

Prompts of a queue item: the box of the existing annotation(s) (or of the item's region), one
positive point at the annotation's most interior pixel (largest distance to its border) and, when
another annotation lies inside the box, one negative point on the most interior pixel of the
largest such one ("not that object"). SAM 2 returns three masks with their predicted IoU
(multimask output); the best one is kept with its predicted IoU as the score.

Presets (``conf/relabel/sam2/*.yaml``) point at a local directory or a hub id (weights must be
there: offline without weights is a ConfigError, never a silent random init). ``architecture:
tiny | large`` builds a RANDOMLY INITIALISED model in code instead (tests, the offline demo and the
benchmark): its proposals mean nothing, and every output says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segval.errors import ConfigError

log = logging.getLogger("segval")

__all__ = ["ARCHITECTURES", "IMAGENET_MEAN", "IMAGENET_STD", "Prompt", "Proposal", "Sam2Backend", "build_config",
           "check_weights_dir", "postprocess_masks", "preprocess", "prompts_for", "scale_points"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHITECTURES = ("tiny", "large")
SAM2_MODEL_TYPES = ("sam2", "sam2_video")
RANDOM_INIT_NOTE = "RANDOM-INIT SAM 2 (no pretrained weights): proposals are NOT meaningful; demo / tests only"


def build_config(architecture: str, *, video: bool = False, image_size: int | None = None) -> Any:
    """A Sam2Config (``video=False``) or Sam2VideoConfig built in code.

    ``tiny`` is the tiny test backbone (256 px input) with a 128-wide neck: transformers' video
    model needs the neck wider than the 64-channel memory when a mask is the prompt. ``large``
    is SAM 2.1 Hiera-Large's architecture (1024 px).
    """
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    if architecture == "tiny":
        size = image_size or 256
        if size != 256:
            raise ConfigError("architecture=tiny is built for image_size=256")
        bb = Sam2HieraDetConfig(image_size=[256, 256], hidden_size=32, blocks_per_stage=[1, 1, 2, 1],
                                embed_dim_per_stage=[32, 64, 128, 256], num_attention_heads_per_stage=[1, 2, 4, 8],
                                global_attention_blocks=[3], window_size_per_stage=[8, 4, 4, 4])
        vc = Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[256, 128, 64, 32],
                              backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]], fpn_hidden_size=128)
        pe = {"hidden_size": 128, "image_size": 256, "patch_size": 16}
        # a light decoder (one two-way layer), like the real models where the image encoder dominates
        md = {"hidden_size": 128, "mlp_dim": 256, "num_hidden_layers": 1, "num_attention_heads": 4,
              "iou_head_hidden_dim": 64}
        if not video:
            return Sam2Config(vision_config=vc, prompt_encoder_config=pe, mask_decoder_config=md)
        return Sam2VideoConfig(vision_config=vc, prompt_encoder_config=pe, mask_decoder_config=md, image_size=256,
                               memory_attention_hidden_size=128, memory_attention_num_layers=1,
                               memory_attention_feed_forward_hidden_size=256, memory_attention_rope_feat_sizes=[16, 16],
                               memory_encoder_hidden_size=128, memory_encoder_output_channels=64,
                               mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128,
                               memory_fuser_intermediate_dim=256, num_maskmem=3)
    if architecture == "large":
        if image_size not in (None, 1024):
            raise ConfigError("architecture=large is built for image_size=1024")
        bb = Sam2HieraDetConfig(hidden_size=144, num_attention_heads=2, blocks_per_stage=[2, 6, 36, 4],
                                embed_dim_per_stage=[144, 288, 576, 1152], num_attention_heads_per_stage=[2, 4, 8, 16],
                                window_size_per_stage=[8, 4, 16, 8], global_attention_blocks=[23, 33, 43])
        vc = Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[1152, 576, 288, 144])
        return Sam2VideoConfig(vision_config=vc) if video else Sam2Config(vision_config=vc)
    raise ConfigError(f"relabel.sam2.architecture must be one of {list(ARCHITECTURES)} or null (weights from "
                      f"relabel.sam2.pretrained), got {architecture!r}")


def check_weights_dir(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``config.json`` of a local weights directory and check it is a SAM 2 model.

    Raises:
        ConfigError: no config.json, or its ``model_type`` is not a SAM 2 one (wrong architecture).
    """
    p = Path(path) / "config.json"
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{p}: cannot read the weights' config.json ({err}); point relabel.sam2.pretrained at a "
                          "SAM 2 directory (config.json + *.safetensors, e.g. `hf download facebook/sam2.1-hiera-tiny "
                          "--local-dir DIR`)") from None
    mt = cfg.get("model_type")
    if mt not in SAM2_MODEL_TYPES:
        raise ConfigError(f"{p}: model_type {mt!r} is not a SAM 2 model ({list(SAM2_MODEL_TYPES)}); "
                          f"relabel.sam2.pretrained must hold SAM 2 weights (e.g. facebook/sam2.1-hiera-tiny)")
    return cfg


def _how(name: str, spec: str) -> str:
    hub = spec if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) else "facebook/sam2.1-hiera-tiny"
    return (f"Download the weights on a machine with network (`hf download {hub} --local-dir DIR`) and set "
            f"relabel.sam2.pretrained=DIR, or use relabel/sam2=tiny_random (RANDOM-INIT, demo only) on purpose.")


def _resolve(spec: str, name: str) -> tuple[str, bool]:
    """``resolve_pretrained`` with the relabel options named in its errors."""
    from segval.models.pretrained import resolve_pretrained

    try:
        return resolve_pretrained(spec)
    except ConfigError as err:
        msg = str(err).split(". Download")[0].split("; Download")[0]
        raise ConfigError(f"relabel.sam2 ({name}): {msg}. {_how(name, str(spec))}") from None


def _load_failed(spec: str, name: str, err: Exception) -> ConfigError:
    return ConfigError(f"relabel.sam2 ({name}): could not load SAM 2 weights from {spec!r}: {type(err).__name__}: "
                       f"{err}. {_how(name, spec)}")


# ---------------------------------------------------------------------- pre / post-processing (pure)
def preprocess(images: Sequence[np.ndarray], image_size: int) -> torch.Tensor:
    """uint8[H, W, 3] RGB images -> float[B, 3, S, S], resized (bilinear) and ImageNet-normalised."""
    out = []
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for im in images:
        a = np.asarray(im)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"images must be uint8[H, W, 3] RGB, got {a.dtype}{list(a.shape)}")
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)[None]  # (1, 3, H, W)
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False)[0]
        out.append((t - mean) / std)
    return torch.stack(out)


def scale_points(xy: np.ndarray, height: int, width: int, image_size: int) -> np.ndarray:
    """Pixel coordinates ``(..., 2)`` as (x, y) in the original image -> model input coordinates.

    >>> scale_points(np.array([[80.0, 30.0]]), 60, 160, 256).tolist()
    [[128.0, 128.0]]
    """
    s = np.array([image_size / width, image_size / height], dtype=np.float64)
    return np.asarray(xy, dtype=np.float64) * s


def postprocess_masks(low_res: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Low-resolution mask logits ``(..., h, w)`` -> bool ``(..., H, W)`` (bilinear resize, logit > 0)."""
    lead = low_res.shape[:-2]
    x = low_res.reshape(-1, 1, *low_res.shape[-2:]).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return (x > 0).reshape(*lead, height, width)


@dataclass
class Prompt:
    """Prompts of one item in original pixel coordinates."""

    box: list[float] | None  # x0, y0, x1, y1
    points: list[list[float]] = field(default_factory=list)  # (x, y)
    labels: list[int] = field(default_factory=list)  # 1 positive, 0 negative


@dataclass
class Proposal:
    """The best of SAM 2's masks for an item."""

    mask: np.ndarray  # bool[H, W]
    score: float  # predicted IoU
    all_scores: list[float]


def _interior_point(mask: np.ndarray) -> list[float] | None:
    import cv2

    if not mask.any():
        return None
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return [float(x), float(y)]


def prompts_for(target: np.ndarray | None, others: Sequence[np.ndarray], region: Sequence[float] | None) -> Prompt | None:
    """Prompts of an item (see the module doc).

    Args:
        target: bool[H, W] union of the item's annotations, or None (a missing object).
        others: bool[H, W] masks of the image's other annotations.
        region: ``[x, y, w, h]`` of the item (used when there is no target).

    Returns:
        the prompt, or None when the item has neither target nor region.
    """
    if target is not None and target.any():
        ys, xs = np.nonzero(target)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        pts, labels = [_interior_point(target)], [1]
    elif region is not None:
        x, y, w, h = (float(v) for v in region)
        box = [x, y, x + w, y + h]
        pts, labels = [[x + w / 2, y + h / 2]], [1]
    else:
        return None
    inside = []
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    for m in others:
        sub = m[y0:y1, x0:x1]
        if target is not None:
            sub = sub & ~target[y0:y1, x0:x1]
        n = int(sub.sum())
        if n:
            inside.append((n, m if target is None else m & ~target))
    if inside:
        inside.sort(key=lambda t: -t[0])
        p = _interior_point(inside[0][1])
        if p is not None:
            pts.append(p)
            labels.append(0)
    return Prompt(box, [p for p in pts if p is not None], labels[: len([p for p in pts if p is not None])])


# ---------------------------------------------------------------------- loading
def pick_device(device: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; or the device named."""
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        ("cpu" if device == "auto" else device))


def load_model(model_cls: Any, name: str, *, pretrained: str | None, architecture: str | None, seed: int,
               build: Callable[[], Any], what: str) -> tuple[Any, str]:
    """A SAM 2 model of ``model_cls`` (``Sam2Model`` / ``Sam2VideoModel``) and its source: the pretrained weights
    (local directory or cached hub id; offline without them is a clear error), or a RANDOM-INIT model of
    ``build()``'s config, said loudly.

    Raises:
        ConfigError: not exactly one of ``pretrained`` / ``architecture``; weights that cannot be loaded.
    """
    if (pretrained is None) == (architecture is None):
        raise ConfigError(f"relabel.sam2 ({name}): set exactly one of pretrained=<dir or hub id> (SAM 2 weights) "
                          f"or architecture=tiny|large (random init, demo / tests only); got pretrained={pretrained!r}, "
                          f"architecture={architecture!r}")
    if pretrained is None:
        torch.manual_seed(seed)
        model = model_cls(build())
        log.warning("%s (%s%s)", RANDOM_INIT_NOTE, name, what)
        return model, f"random-init:{architecture}:seed{seed}"
    source, local_only = _resolve(pretrained, name)
    if Path(source).is_dir():
        check_weights_dir(source)
    try:
        return model_cls.from_pretrained(source, local_files_only=local_only), str(pretrained)
    except (OSError, ValueError, KeyError) as err:
        raise _load_failed(str(pretrained), name, err) from err


# ---------------------------------------------------------------------- the backend
class Sam2Backend:
    """A SAM 2 image model with our pre-processing, counted encoder calls and a stable model id.

    Args:
        name: preset name (e.g. ``hiera_tiny``).
        pretrained: local directory or hub id of SAM 2 weights (None with ``architecture``).
        architecture: ``tiny`` / ``large``: build a RANDOM-INIT model in code (demo, tests, benchmark).
        image_size: model input size (from the weights' config when pretrained).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        seed: seed of the random init.
    """

    def __init__(self, name: str, *, pretrained: str | None = None, architecture: str | None = None,
                 image_size: int | None = None, device: str = "auto", seed: int = 0) -> None:
        from transformers import Sam2Model

        self.name = name
        self.device = pick_device(device)
        self.random_init = pretrained is None
        self.encoder_calls = 0  # images through the image encoder (tests count it)
        self.model, self.source = load_model(
            Sam2Model, name, pretrained=pretrained, architecture=architecture, seed=seed,
            build=lambda: build_config(architecture, image_size=image_size), what="")
        self.model.eval().to(self.device)
        self.image_size = int(self.model.config.prompt_encoder_config.image_size)
        digest = hashlib.sha256((self.source + self.model.config.to_json_string()).encode()).hexdigest()[:10]
        self.model_id = f"sam2-{name}-{digest}"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Sam2Backend:
        """From a ``relabel.sam2`` preset mapping."""
        known = {"name", "pretrained", "architecture", "image_size", "device", "seed", "batch_size", "description",
                 "random_init"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"relabel.sam2: unknown key(s) {unknown}; known: {sorted(known)}")
        arch = cfg.get("architecture")
        if cfg.get("random_init") and arch is None:
            raise ConfigError("relabel.sam2.random_init=true needs architecture=tiny|large")
        if arch is not None and not cfg.get("random_init"):
            raise ConfigError(f"relabel.sam2.architecture={arch} builds a RANDOM-INIT model: say so with "
                              "relabel.sam2.random_init=true (or use a preset with pretrained weights)")
        return cls(str(cfg.get("name") or "sam2"), pretrained=cfg.get("pretrained"), architecture=arch,
                   image_size=cfg.get("image_size"), device=str(cfg.get("device") or "auto"),
                   seed=int(cfg.get("seed") or 0))

    @property
    def label(self) -> str:
        """What outputs say about the model (random init loudly)."""
        return f"{self.model_id} ({RANDOM_INIT_NOTE})" if self.random_init else self.model_id

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Image embeddings of a preprocessed batch: three feature maps ``[B, C_l, h_l, w_l]`` (on the CPU)."""
        self.encoder_calls += int(pixel_values.shape[0])
        emb = self.model.get_image_embeddings(pixel_values.to(self.device))
        return [e.detach().float().cpu() for e in emb]

    @torch.no_grad()
    def predict(self, embeddings: Sequence[torch.Tensor], prompt: Prompt, height: int, width: int) -> Proposal:
        """Best of the three masks for one prompt, from one image's embeddings (``[1, C, h, w]`` each)."""
        s = self.image_size
        emb = [e.to(self.device) for e in embeddings]
        kwargs: dict[str, Any] = {}
        if prompt.box is not None:
            b = scale_points(np.array(prompt.box, dtype=np.float64).reshape(2, 2), height, width, s).reshape(-1)
            kwargs["input_boxes"] = torch.tensor(b, dtype=torch.float32, device=self.device).view(1, 1, 4)
        if prompt.points:
            pts = scale_points(np.array(prompt.points, dtype=np.float64), height, width, s)
            kwargs["input_points"] = torch.tensor(pts, dtype=torch.float32, device=self.device).view(1, 1, -1, 2)
            kwargs["input_labels"] = torch.tensor(prompt.labels, dtype=torch.int32, device=self.device).view(1, 1, -1)
        out = self.model(image_embeddings=emb, multimask_output=True, **kwargs)
        scores = out.iou_scores[0, 0].float().cpu()  # (3,)
        best = int(torch.argmax(scores))
        mask = postprocess_masks(out.pred_masks[0, 0, best].cpu(), height, width).numpy()
        return Proposal(mask, float(scores[best]), [round(float(v), 4) for v in scores])
