"""The baseline published with a dataset version: ``<version>/baseline/``.

:func:`collect_baseline` reads a finished ``segval train`` / ``segval eval`` / ``segval analyze`` run
directory and checks it against the package (before anything is written); :func:`write_baseline`
writes the bundle:

* ``model.safetensors``: the LightningModule's ``state_dict`` (tensors only, no pickle);
* ``model.json``: what rebuilds the model without segval's checkpoint: ``adapter`` (the adapter
  config, ``pretrained`` set to null), ``num_classes``, ``class_names``, ``ignore_index``, ``step``,
  ``hyper_parameters`` (all of the module's, as saved in the checkpoint),
  ``dataset`` (name, version, taxonomy ids the model was trained on), ``source_checkpoint`` (file
  name) and the SHA-256 of ``model.safetensors``. :func:`load_baseline` rebuilds the model from it;
* ``metrics.json``: the run's metrics (the checkpoint's evaluation);
* ``findings.json`` + ``findings.md``: the run's findings when it has them (``segval analyze``),
  else a diagnosis computed from ``metrics.json`` + ``confusion_matrix.npy`` (+ boundary IoU and
  per-image scores when present), without train-split statistics;
* ``config.yaml`` (and ``overrides.yaml``): the exact Hydra config of the run (``.hydra/``).

The run directory may also be the output of ``segval analyze run_dir=<run>``: its findings.json is
published with the analysed run's checkpoint, metrics and config.

The checkpoint is the one ``metrics.json`` names (``checkpoint``), else ``checkpoints/best-*.ckpt``
with the highest step, else ``checkpoints/last.ckpt``. A run whose classes (names, or category ids
when the run recorded them) differ from the package's taxonomy is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segval.errors import DatasetError

BASELINE_DIR = "baseline"
MODEL_FORMAT = "segval-baseline"


@dataclass
class BaselineRun:
    """A checked run directory, ready to bundle (see :func:`collect_baseline`)."""

    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]
    hparams: dict[str, Any]
    state_dict: dict[str, Any]
    step: int
    findings: dict[str, Any] | None


def find_checkpoint(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """The checkpoint a run's metrics belong to (see the module doc)."""
    named = metrics.get("checkpoint")
    candidates = []
    if named:
        p = Path(str(named))
        candidates += [p if p.is_absolute() else run_dir / p, run_dir / "checkpoints" / p.name]
    ck = run_dir / "checkpoints"
    best = sorted(ck.glob("best-*.ckpt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)) if ck.is_dir() else []
    candidates += [*reversed(best), ck / "last.ckpt"]
    for c in candidates:
        if c.is_file():
            return c
    raise DatasetError("no checkpoint found for this run (metrics.json 'checkpoint', checkpoints/best-*.ckpt or "
                       "checkpoints/last.ckpt); pass the run directory of a finished `segval train` or `segval eval`",
                       path=run_dir)


def collect_baseline(run_dir: str | os.PathLike, taxonomy: Any) -> BaselineRun:
    """Read and check a finished run against ``taxonomy`` (the package's); nothing is written.

    Raises:
        DatasetError: no metrics.json / checkpoint / .hydra/config.yaml, an unreadable checkpoint, or
            classes that differ from the taxonomy (names both lists).
    """
    import torch

    run_dir = Path(run_dir).expanduser().resolve()
    findings_path = run_dir / "findings.json"
    source = _analyzed_run(run_dir)
    if source is not None:  # a `segval analyze run_dir=...` output: its findings, the analysed run's model
        run_dir = source
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise DatasetError("metrics.json not found: baseline= needs the run directory of a finished `segval train` "
                           "or `segval eval`", path=metrics_path)
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise DatasetError("the run's exact config (.hydra/config.yaml) is missing: a baseline is only published with "
                           "the config that reproduces it", path=run_dir / ".hydra" / "config.yaml")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    ckpt_path = find_checkpoint(run_dir, metrics)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DatasetError(f"cannot read this checkpoint safely ({type(err).__name__}: {err})", path=ckpt_path) from err
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if "adapter" not in hparams or "class_names" not in hparams:
        raise DatasetError("not a segval checkpoint (no adapter / class_names hyper-parameters)", path=ckpt_path)
    names = list(hparams["class_names"])
    if names != list(taxonomy.names):
        raise DatasetError(f"the run was trained on the classes {names} but the package's taxonomy has "
                           f"{list(taxonomy.names)}; publish a baseline trained on this taxonomy", path=ckpt_path)
    for where, ids in (("checkpoint", (hparams.get("dataset") or {}).get("taxonomy_ids")),
                       ("metrics.json", (metrics.get("dataset") or {}).get("taxonomy_ids"))):
        if ids is not None and list(ids) != list(taxonomy.ids):
            raise DatasetError(f"the {where} records the category ids {list(ids)} but the package has "
                               f"{list(taxonomy.ids)}; publish a baseline trained on this taxonomy",
                               path=ckpt_path if where == "checkpoint" else metrics_path)
    metric_names = [r.get("name") for r in metrics.get("per_class") or []]
    if metric_names and metric_names != names:
        raise DatasetError(f"metrics.json has the classes {metric_names}, the checkpoint {names}", path=metrics_path)
    if source is None:
        findings_path = run_dir / "findings.json"
    findings = json.loads(findings_path.read_text(encoding="utf-8")) if findings_path.is_file() else None
    return BaselineRun(run_dir, ckpt_path, metrics, hparams, dict(ckpt["state_dict"]),
                       int(ckpt.get("global_step", metrics.get("step") or 0)), findings)


def _analyzed_run(folder: Path) -> Path | None:
    """The run a ``segval analyze run_dir=<run>`` output folder analysed (None for any other folder)."""
    import yaml

    cfg_path = folder / ".hydra" / "config.yaml"
    if (folder / "metrics.json").is_file() or not (folder / "findings.json").is_file() or not cfg_path.is_file():
        return None
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    src = cfg.get("run_dir") if isinstance(cfg, Mapping) else None
    if not src:
        return None
    path = Path(str(src)).expanduser()
    if not path.is_absolute():  # relative to where `segval analyze` ran (Hydra records it)
        try:
            hydra_cfg = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text(encoding="utf-8")) or {}
            path = Path(hydra_cfg["hydra"]["runtime"]["cwd"]) / path
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            pass
    return path.resolve()


def _plain_json(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _diagnose_run(run: BaselineRun) -> dict[str, Any] | None:
    """Findings of the run when it has none (from its metrics and confusion matrix)."""
    import numpy as np

    from segval.analysis.diagnosis import diagnose
    from segval.metrics.per_image_csv import read_per_image_csv

    conf = run.run_dir / "confusion_matrix.npy"
    if not conf.is_file():
        return None
    boundary = run.run_dir / "boundary_iou.json"
    per_image = run.run_dir / "per_image.csv"
    return diagnose(run.metrics, np.load(conf),
                    boundary_iou=json.loads(boundary.read_text()) if boundary.is_file() else None,
                    per_image=read_per_image_csv(per_image) if per_image.is_file() else None)


def write_baseline(run: BaselineRun, target: str | os.PathLike) -> dict[str, Any]:
    """Write the bundle of :func:`collect_baseline`'s ``run`` into ``target`` (a new folder).

    Returns:
        ``{"files": [names], "summary": {...}}`` where summary is what the card shows: model,
        step, split, mIoU / mAcc / aAcc, per-class IoU and Acc.
    """
    from safetensors.torch import save_file

    from segval.analysis.diagnosis import format_findings
    from segval.io import write_json, write_text

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in run.state_dict.items() if hasattr(v, "detach")}
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": MODEL_FORMAT})
    digest = hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest()
    adapter = {**_plain_json(run.hparams["adapter"]), "pretrained": None}
    model_json = {
        "format": MODEL_FORMAT,
        "schema_version": 1,
        "module": "segval.models.SegmentationModule",
        "adapter": adapter,
        "num_classes": int(run.hparams.get("num_classes", len(run.hparams["class_names"]))),
        "class_names": list(run.hparams["class_names"]),
        "ignore_index": int(run.hparams.get("ignore_index", 255)),
        "dataset": _plain_json(run.hparams.get("dataset")),
        "step": run.step,
        "hyper_parameters": _plain_json({**run.hparams, "adapter": adapter}),
        "source_checkpoint": run.checkpoint.name,
        "sha256": digest,
        "load": "segval.release.baseline.load_baseline('<this folder>')",
    }
    write_json(target / "model.json", model_json)
    write_json(target / "metrics.json", run.metrics)
    findings = run.findings if run.findings is not None else _diagnose_run(run)
    if findings is not None:
        write_json(target / "findings.json", findings)
        recs = (findings.get("data_targets") or {}).get("recommendations") or []
        write_text(target / "findings.md", "# Findings of the baseline\n\n```\n" + format_findings(findings) + "\n```\n"
                   + ("\n## Data targets\n\n" + "".join(f"- {r}\n" for r in recs) if recs else ""))
    shutil.copyfile(run.run_dir / ".hydra" / "config.yaml", target / "config.yaml")
    if (run.run_dir / ".hydra" / "overrides.yaml").is_file():
        shutil.copyfile(run.run_dir / ".hydra" / "overrides.yaml", target / "overrides.yaml")
    return {"files": sorted(p.name for p in target.iterdir()), "summary": baseline_summary(target)}


def baseline_summary(folder: str | os.PathLike) -> dict[str, Any]:
    """What the dataset card shows of a ``baseline/`` folder (model.json + metrics.json + findings.json)."""
    folder = Path(folder)
    model = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    findings = json.loads((folder / "findings.json").read_text(encoding="utf-8")) \
        if (folder / "findings.json").is_file() else None
    adapter = model.get("adapter") or {}
    return {
        "model": str(adapter.get("_target_", "?")).rsplit(".", 1)[-1],
        "step": model.get("step"),
        "split": metrics.get("split"),
        "summary": {k: metrics.get("summary", {}).get(k) for k in ("mIoU", "mAcc", "aAcc", "fwIoU")},
        "per_class": [{"name": r["name"], "IoU": r.get("IoU"), "Acc": r.get("Acc"), "status": r.get("status")}
                      for r in metrics.get("per_class") or []],
        "weak_classes": (findings or {}).get("summary", {}).get("weak_classes"),
    }


def load_baseline(folder: str | os.PathLike, map_location: str = "cpu") -> Any:
    """Rebuild the baseline's :class:`~segval.models.SegmentationModule` from model.json + model.safetensors.

    Raises:
        DatasetError: a missing file, or weights whose SHA-256 differs from model.json's.
    """
    from safetensors.torch import load_file

    from segval.models import SegmentationModule

    folder = Path(folder)
    for name in ("model.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise DatasetError(f"{name} not found: not a segval baseline folder", path=folder / name)
    model = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if digest != model.get("sha256"):
        raise DatasetError("model.safetensors does not match the SHA-256 in model.json (a changed or truncated file)",
                           path=folder / "model.safetensors")
    hparams = dict(model.get("hyper_parameters") or {
        "num_classes": model["num_classes"], "class_names": model["class_names"], "adapter": model["adapter"],
        "ignore_index": model["ignore_index"], "dataset": model["dataset"]})
    hparams["adapter"] = {**hparams["adapter"], "pretrained": None}
    module = SegmentationModule(**hparams)
    module.load_state_dict(load_file(str(folder / "model.safetensors"), device=map_location))
    module.loaded_step = int(model.get("step") or 0)
    return module.eval()
