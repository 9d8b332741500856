"""Run directories built as `segval train` writes them, from hand-built confusion matrices (no test here).

``metrics.json`` comes from the real :func:`segval.metrics.results.metrics_payload` of
:func:`segval.metrics.functional.semantic.semantic_metrics`, so the figures compare and gate read are real.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from segval.metrics.functional.semantic import semantic_metrics
from segval.metrics.results import metrics_payload, write_results

CLASSES = ["background", "mug", "cable"]
IDS = [0, 1, 2]


def confmat_for(iou_mug: float, *, cable_ok: int = 80, total: int = 100) -> np.ndarray:
    """A 3-class confusion matrix (conf[gt, pred]) where mug's IoU is exactly ``iou_mug``.

    background: 1000 GT px, all right; mug: ``total`` GT px, ``iou_mug * total`` right and the rest predicted
    as background (nothing else is predicted as mug, so IoU(mug) = TP / total); cable: 100 GT px, ``cable_ok``
    right (IoU = cable_ok / 100), the rest predicted as background.
    """
    tp = int(round(iou_mug * total))
    c = np.zeros((3, 3), dtype=np.int64)
    c[0, 0] = 1000
    c[1, 1], c[1, 0] = tp, total - tp
    c[2, 2], c[2, 0] = cable_ok, 100 - cable_ok
    return c


def make_run(run_dir: Path, confmat: np.ndarray, *, version: str = "1.0.0", seed: int = 0,
             name: str = "shapes", content_hash: str | None = None, split: str = "val",
             classes: Sequence[str] = CLASSES, ids: Sequence[int] = IDS, instance: Mapping[str, Any] | None = None,
             findings: Mapping[str, Any] | None = None, overrides: Sequence[str] | None = None,
             write_metrics: bool = True, log: str | None = None, source: str | None = None) -> Path:
    """A run directory: ``.hydra/{config,overrides}.yaml`` and (unless ``write_metrics=False``: a crashed job)
    ``metrics.json`` + ``confusion_matrix.{npy,csv}``."""
    run_dir = Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    cfg = {"task_name": "train", "seed": seed, "data": {"root": f"/data/{name}/{version}", "val_split": split},
           "dataset": {"name": None, "version": None}, "paths": {"output_dir": "${hydra:runtime.output_dir}"}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    ov = list(overrides) if overrides is not None else [f"seed={seed}", f"data.version={version}"]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ov))
    if log is not None:
        (run_dir / "train.log").write_text(log)
    if not write_metrics:
        return run_dir
    ds = {"name": name, "version": version, "source": source or f"/data/{name}/{version}", "taxonomy_ids": list(ids),
          "class_names": list(classes)}
    if content_hash is not None:
        ds["content_hash"] = content_hash
    payload = metrics_payload(semantic_metrics(confmat), list(classes), class_ids=list(ids), dataset=ds, split=split,
                              step=10)
    if instance is not None:
        payload["task"] = "instance"
        payload["instance"] = dict(instance)
    write_results(payload, confmat, run_dir)
    if findings is not None:
        (run_dir / "findings.json").write_text(json.dumps(findings))
    return run_dir


def make_multirun(sweep_dir: Path, jobs: Sequence[dict[str, Any]], *, sweep_overrides: Sequence[str]) -> Path:
    """A Hydra multirun folder: ``multirun.yaml`` (basic sweeper, ``sweep_overrides``) and job folders
    ``0..`` built by :func:`make_run` from ``jobs`` (each: make_run keyword arguments + ``confmat``; a job
    with ``skip=True`` gets no folder, as if it never started)."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    mr = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                "max_batch_size": None, "params": None},
                    "overrides": {"task": list(sweep_overrides)}},
          "task_name": "train"}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(mr))
    for i, job in enumerate(jobs):
        job = dict(job)
        if job.pop("skip", False):
            continue
        make_run(sweep_dir / str(i), job.pop("confmat"), **job)
    return sweep_dir


def findings_doc(weak: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A minimal findings.json: ``weak`` maps each weak class to its causes; other classes are ok."""
    return {"schema_version": 1, "classes": [
        {"name": n, "status": "weak" if n in weak else "ok",
         "causes": [{"cause": c, "strength": 0.5} for c in weak.get(n, [])]} for n in CLASSES]}
