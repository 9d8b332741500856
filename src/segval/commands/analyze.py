"""`segval analyze`: explain why weak classes are weak; findings.json and a report (Markdown, HTML, plots, mosaic).

Two ways in:

* ``run_dir=<train or eval run directory>``: reads ``metrics.json`` and ``confusion_matrix.npy`` (required)
  and ``per_image.csv`` / ``boundary_iou.json`` (used when present); nothing is predicted again
  (except the few mosaic images, when the run's checkpoint is still there).
* ``ckpt_path=<checkpoint>`` (+ ``data=...``, ``split=...``): evaluates it first as ``segval eval``
  does, with the analysis callbacks of ``callbacks:`` (per_image.csv, boundary_iou.json,
  class_table.csv), into this run's directory, then analyses that.

Train-split class statistics (the few-examples / small-objects evidence) come from the dataset that
``metrics.json`` names; when it cannot be opened the analysis goes on without them and says so.
Writes ``<output_dir>/findings.json``, ``<output_dir>/report/{report.md, report.html, plots/*.png}``
and keeps ``per_image.csv`` beside them.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segval.analysis.run_files import RunFiles, load_agreement, load_run
from segval.commands._common import segval_app
from segval.errors import ConfigError, SegvalError
from segval.io import atomic_path

log = logging.getLogger("segval")

# ---------------------------------------------------------------------------------------- the dataset
def _is_missing(node: DictConfig, key: str) -> bool:
    return key not in node or OmegaConf.is_missing(node, key) or node[key] is None


def open_datamodule(cfg: DictConfig, metrics: Mapping[str, Any], notes: list[str]) -> Any | None:
    """The data module of the dataset ``metrics.json`` names, or None (with a note saying why).

    A package folder in ``dataset.source`` is opened with the config's other ``data.*`` settings;
    a plain COCO file needs ``data=coco data.images=<folder>`` (``data.annotations`` defaults to it).
    A dataset that cannot be opened, or whose classes differ from the run's, is not used.
    """
    from hydra.utils import instantiate

    source = (metrics.get("dataset") or {}).get("source")
    names = [r["name"] for r in metrics["per_class"]]
    overrides: dict[str, Any] = {}
    if not _is_missing(cfg.data, "annotations") or (source and str(source).lower().endswith(".json")):
        if _is_missing(cfg.data, "annotations"):
            overrides["annotations"] = source
        if _is_missing(cfg.data, "images"):
            notes.append(f"the run was evaluated on a plain COCO export ({source}); pass data=coco "
                         f"data.images=<image folder> to add train statistics (few examples, small objects) "
                         "and the worst-images mosaic")
            return None
    elif source and (Path(source) / "dataset.yaml").is_file():
        overrides = {"root": source, "annotations": None, "images": None}
    elif source:
        notes.append(f"the dataset named in metrics.json ({source}) is not there any more; using the data config "
                     f"(data.root={cfg.data.get('root')})")
    try:
        dm = instantiate(cfg.data, **overrides, _convert_="partial")
        dm.load()
    except SegvalError as err:
        notes.append(f"the dataset could not be opened, so there is no train-split evidence (few examples, small "
                     f"objects) and no mosaic: {err}")
        return None
    if dm.class_names != names:
        notes.append(f"the dataset at {dm.dataset_info()['source']} now has the classes {dm.class_names}, the run "
                     f"has {names}: its statistics are not used (no few-examples evidence, no mosaic)")
        return None
    version = (metrics.get("dataset") or {}).get("version")
    if version is not None and str(version) != str(dm.load().version):
        notes.append(f"the run was evaluated on version {version}; the dataset opened is version "
                     f"{dm.load().version}: train statistics come from the latter")
    return dm


def train_split(dm: Any) -> Any:
    """The training split's :class:`~segval.dataset.split.SplitData` (for a plain COCO export: its held-in part)."""
    from segval.dataset.coco import load_json
    from segval.dataset.split import SplitData

    data, idx = dm._split_and_indices("train" if dm.plain_coco else dm.train_split)
    if idx is None:
        return data
    keep = {data.images[i].id for i in idx}
    coco = load_json(data.annotation_path)
    coco = {**coco, "images": [im for im in coco["images"] if im.get("id") in keep],
            "annotations": [a for a in coco.get("annotations") or [] if a.get("image_id") in keep]}
    return SplitData("train", coco, images_dir=data.images_dir, taxonomy=data.taxonomy,
                     annotation_path=data.annotation_path, max_pixels=data.max_pixels)


def eval_split_name(dm: Any, metrics: Mapping[str, Any]) -> str:
    """The data module's name of the split ``metrics.json`` was computed on."""
    return "val" if dm.plain_coco else str(metrics.get("split") or dm.val_split)


# ---------------------------------------------------------------------------------------- inputs of diagnose
def diagnosis_config(block: DictConfig | Mapping[str, Any] | None) -> Any:
    """``DiagnosisConfig`` from the ``diagnosis:`` block (ConfigError naming a bad or unknown setting)."""
    from segval.analysis.diagnosis import DiagnosisConfig

    values = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block or {})
    try:
        return DiagnosisConfig.from_mapping(values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"diagnosis: {err}") from None


def _checkpoint_model(path: str | None, names: list[str]) -> tuple[Any, str | None]:
    """(model in eval mode or None, why predictions are not available)."""
    if not path:
        return None, "no checkpoint recorded in metrics.json"
    if not Path(path).is_file():
        return None, f"the checkpoint {path} is not there any more"
    from segval.models import SegmentationModule

    try:
        model = SegmentationModule.from_checkpoint(path)
    except SegvalError as err:
        return None, str(err)
    if list(model.class_names) != names:
        return None, f"the checkpoint {path} has the classes {model.class_names}, the run has {names}"
    return model.eval(), None


def build_mosaic(dm: Any, split: str, findings: Mapping[str, Any], per_image: list[dict[str, Any]] | None,
                 *, k: int, checkpoint: str | None, notes: list[str]) -> bytes | None:
    """The worst-images mosaic PNG, or None (with a note)."""
    from segval.report.mosaic import load_items, render_mosaic, select_worst_images

    if k <= 0:
        return None
    picks = select_worst_images(findings, per_image, k)
    if not picks:
        notes.append("no worst images to show: no weak class has worst images and there is no per_image.csv")
        return None
    model, why = _checkpoint_model(checkpoint, dm.class_names)
    try:
        dataset = dm.dataset(split)
        items, missing = load_items(dataset, picks, model=model)
    except SegvalError as err:
        notes.append(f"the worst-images mosaic could not be drawn: {err}")
        return None
    if missing:
        notes.append(f"worst images not found in split {split!r} of the dataset (left out of the mosaic): {missing}")
    if not items:
        return None
    if why:
        notes.append(f"the mosaic shows image | ground truth only: {why}")
    tax = dm.taxonomy
    return render_mosaic(items, tax.names, tax.colors, background_index=tax.background_index,
                         missing_predictions=why, title=f"Worst images of split {split}")


# ---------------------------------------------------------------------------------------- the command
def _checks(run: RunFiles, notes: list[str]) -> None:
    gt = [int(r.get("gt_pixels") or 0) for r in run.metrics["per_class"]]
    if sum(gt) == 0:
        raise SegvalError(f"{run.run_dir / 'metrics.json'}: split {run.metrics.get('split')!r} has no labelled pixel "
                          "(an empty split, or every pixel ignored); nothing to analyse: evaluate a split with labels")
    absent = [r["name"] for r in run.metrics["per_class"] if r.get("status") == "absent"]
    if absent:
        notes.append(f"never seen in split {run.metrics.get('split')!r} (no ground truth, no prediction), reported as "
                     f"absent, not 0: {', '.join(absent)}")
    fix = ("the analysis callbacks write it during validation (or run segval analyze ckpt_path=<checkpoint>, "
           "which evaluates with them)")
    if run.per_image is None:
        notes.append(f"no per_image.csv in {run.run_dir}: no per-image scores (worst images, label quality); {fix}")
    if run.boundary is None:
        notes.append(f"no boundary_iou.json in {run.run_dir}: no boundary-IoU evidence; {fix}")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run ``segval analyze``; returns the findings."""
    from segval.analysis.class_stats import class_statistics
    from segval.analysis.diagnosis import diagnose, format_findings, write_findings
    from segval.report import ReportInputs, report_plots, write_report

    out_dir = Path(cfg.paths.output_dir)
    if cfg.run_dir and cfg.ckpt_path:
        raise ConfigError("set run_dir=<run directory> (analyse it) or ckpt_path=<checkpoint> (evaluate, then "
                          "analyse), not both")
    if not cfg.run_dir and not cfg.ckpt_path:
        raise ConfigError("nothing to analyse: pass run_dir=<a segval train or eval run directory>, or "
                          "ckpt_path=<checkpoint> data=... to evaluate a checkpoint first")
    config = diagnosis_config(cfg.get("diagnosis"))  # bad settings fail before any work
    agreement = load_agreement(cfg.get("agreement"))
    notes: list[str] = []
    if cfg.ckpt_path:
        from segval.commands.eval import run as evaluate

        evaluate(cfg)  # writes metrics.json, confusion matrix and the analysis files into out_dir
        if not _is_global_zero():
            return {}
        run_dir = out_dir
    else:
        run_dir = Path(cfg.run_dir).expanduser().resolve()
    run = load_run(run_dir)
    _checks(run, notes)
    metrics = run.metrics

    dm = open_datamodule(cfg, metrics, notes)
    train_stats, groups = None, None
    if dm is not None:
        groups = {c.name: c.group for c in dm.taxonomy}
        try:
            split = train_split(dm)
            if len(split) == 0:
                notes.append(f"the train split {split.name!r} has no images: no few-examples evidence")
            else:
                train_stats = class_statistics(split, source=dm.format, progress=len(split) >= 100)
        except SegvalError as err:
            notes.append(f"train-split statistics could not be computed, so there is no few-examples evidence: {err}")
    else:
        notes.append("no train-split statistics: the few-examples and small-objects causes were not checked")

    findings = diagnose(
        metrics, run.confmat, taxonomy_groups=groups, train_stats=train_stats, boundary_iou=run.boundary,
        per_image=run.per_image, agreement=agreement, config=config,
    )
    findings_path = out_dir / "findings.json"
    write_findings(findings, findings_path)
    if run.per_image is not None and run_dir.resolve() != out_dir.resolve():
        with atomic_path(out_dir / "per_image.csv") as tmp:
            shutil.copyfile(run_dir / "per_image.csv", tmp)

    plots = report_plots(findings, run.confmat, train_stats=train_stats)
    mosaic = None
    if dm is not None:
        checkpoint = str(Path(cfg.ckpt_path).resolve()) if cfg.ckpt_path else metrics.get("checkpoint")
        mosaic = build_mosaic(dm, eval_split_name(dm, metrics), findings, run.per_image, k=int(cfg.mosaic_k),
                              checkpoint=checkpoint, notes=notes)
    paths = write_report(out_dir / "report", ReportInputs(
        findings, metrics, run.per_image, plots, mosaic, notes, source=str(run_dir)))

    print()
    print(format_findings(findings))
    if notes:
        print("\nnotes:")
        for n in notes:
            print(f"  - {n}")
    print(f"\nfindings:  {findings_path}")
    print(f"report:    {paths['html']}")
    print(f"           {paths['markdown']}")
    return findings


def _is_global_zero() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@segval_app("analyze")
def main(cfg: DictConfig) -> float | None:
    findings = run(cfg)
    miou = (findings.get("summary") or {}).get("mIoU")
    return None if miou is None or (isinstance(miou, float) and math.isnan(miou)) else miou


if __name__ == "__main__":
    main()
