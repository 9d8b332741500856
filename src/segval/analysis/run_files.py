"""The result files of a train / eval run directory, as ``segval analyze`` reads them, and the agreement input.

``metrics.json`` and ``confusion_matrix.npy`` are required (checked against each other); ``per_image.csv`` and
``boundary_iou.json`` are used when present.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from segval.errors import ConfigError, SegvalError
from segval.metrics.per_image_csv import read_per_image_csv

__all__ = ["REQUIRED", "RunFiles", "load_agreement", "load_run"]

#: the files a run directory must hold to be analysed
REQUIRED = ("metrics.json", "confusion_matrix.npy")


@dataclasses.dataclass
class RunFiles:
    """What ``segval analyze`` reads from a run directory.

    Attributes:
        run_dir: the directory.
        metrics: the ``metrics.json`` document.
        confmat: int64[C, C], ``conf[gt, pred]``.
        per_image: rows of ``per_image.csv`` (numbers parsed, empty cells None), or None when absent.
        boundary: the ``boundary_iou.json`` document, or None when absent.
    """

    run_dir: Path
    metrics: dict[str, Any]
    confmat: np.ndarray
    per_image: list[dict[str, Any]] | None
    boundary: dict[str, Any] | None

    @property
    def class_names(self) -> list[str]:
        return [r["name"] for r in self.metrics["per_class"]]


def load_run(run_dir: str | Path) -> RunFiles:
    """Read a train / eval run directory.

    Raises:
        ConfigError: ``run_dir`` is not a directory.
        SegvalError: ``metrics.json`` or ``confusion_matrix.npy`` missing or unreadable, or the
            confusion matrix does not match the classes of ``metrics.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir={run_dir} is not a directory; pass run_dir=<a segval train or eval run directory>")
    for name in REQUIRED:
        if not (run_dir / name).is_file():
            raise SegvalError(
                f"{run_dir / name} not found: {run_dir} is not a finished train or eval run. Produce it with "
                "`segval eval ckpt_path=<checkpoint> data=... hydra.run.dir=<dir>` first and analyse that directory, "
                "or run `segval analyze ckpt_path=<checkpoint> data=...`, which evaluates it for you"
            )
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SegvalError(f"{run_dir / 'metrics.json'}: cannot read it ({err}); run segval eval again") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("per_class"), list) or not metrics["per_class"]:
        raise SegvalError(f"{run_dir / 'metrics.json'}: no 'per_class' list; not a metrics.json written by segval")
    if metrics.get("schema_version") != 1:
        raise SegvalError(f"{run_dir / 'metrics.json'}: schema_version {metrics.get('schema_version')!r} is not "
                          "supported (expected 1); evaluate the checkpoint again with this segval version")
    try:
        confmat = np.load(run_dir / "confusion_matrix.npy", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SegvalError(f"{run_dir / 'confusion_matrix.npy'}: cannot read it ({err}); "
                          "run segval eval again") from None
    n = len(metrics["per_class"])
    if confmat.shape != (n, n):
        raise SegvalError(f"{run_dir / 'confusion_matrix.npy'} is {confmat.shape} but metrics.json has {n} classes; "
                          "the two files come from different runs: run segval eval again")
    per_image = read_per_image_csv(run_dir / "per_image.csv") if (run_dir / "per_image.csv").is_file() else None
    boundary = None
    if (run_dir / "boundary_iou.json").is_file():
        try:
            boundary = json.loads((run_dir / "boundary_iou.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SegvalError(f"{run_dir / 'boundary_iou.json'}: invalid JSON ({err})") from None
    return RunFiles(run_dir, metrics, confmat.astype(np.int64), per_image, boundary)


def load_agreement(path: str | None) -> dict[str, Any] | None:
    """The inter-annotator agreement json ``{"per_class": {name: iou}}``, or None.

    Raises:
        ConfigError: the file is missing or not in that format.
    """
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"agreement={p}: file not found; pass the agreement json ({{\"per_class\": {{name: iou}}}}) "
                          "or leave agreement=null")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"agreement={p}: invalid JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("per_class"), dict):
        raise ConfigError(f"agreement={p}: expected {{\"per_class\": {{class name: IoU}}}}, got keys "
                          f"{sorted(doc) if isinstance(doc, dict) else type(doc).__name__}")
    return doc
