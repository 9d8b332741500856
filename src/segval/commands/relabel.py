"""`segval relabel queue | embed | propose | export | import`: the relabel loop as Hydra apps.

    segval relabel queue run_dir=outputs/analyze/runs/<run> data=package data.root=<pkg> relabel.budget=40
    segval relabel queue ... ckpt_path=<ckpt>                 # score the train split with the checkpoint first
    segval relabel queue ... relabel/sam2=hiera_tiny          # + SAM 2 proposals (and video propagation)
    segval relabel embed queue=<queue dir> relabel/sam2=hiera_tiny
    segval relabel propose queue=<queue dir> relabel/sam2=hiera_tiny
    segval relabel export queue=<queue dir> format=both
    segval relabel import format=labelstudio file=<export.json> data.root=<pkg>

Every ``run_*`` function takes the composed config and also works in-process (``run_queue(cfg)`` is
used by ``segval validate``): give ``output_dir=`` when no Hydra run is active.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segval.commands._common import data_overrides, dispatch, open_package, output_dir, quote, segval_app, \
    train_in_subprocess
from segval.errors import ConfigError, SegvalError

log = logging.getLogger("segval")


# ---------------------------------------------------------------------- helpers
def _progress(enabled: bool):
    from tqdm import tqdm

    return lambda it, desc="": tqdm(it, desc=desc, disable=None if enabled else True, leave=False)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _sam2_cfg(cfg: DictConfig) -> dict | None:
    node = cfg.get("relabel", {}).get("sam2")
    return None if node is None else dict(_plain(node))


def _backend(sam_cfg: dict):
    from segval.relabel.sam2_backend import Sam2Backend

    return Sam2Backend.from_config(sam_cfg)


def _cache(cfg: DictConfig, pkg, backend):
    from segval.relabel.embeddings import EmbeddingCache

    root = cfg.relabel.get("cache_dir")
    if not root:
        return None
    return EmbeddingCache(Path(root) / pkg.name, backend.model_id)


def _evaluate_split(ckpt: str, pkg, split: str, out: Path) -> Path:
    """`segval eval` of ``ckpt`` on ``split`` (a subprocess, its own Hydra run under ``out``); its per_image.csv."""
    run = out / f"eval_{split}"
    cmd = [sys.executable, "-m", "segval.commands.eval", f"ckpt_path={ckpt}", "data=package", f"data.root={pkg.root.resolve()}",
           f"split={split}", "logger=csv", f"hydra.run.dir={run}"]
    print(f"scoring split {split!r} with {ckpt}: {' '.join(cmd[1:])}", flush=True)
    res = subprocess.run(cmd, check=False)
    if res.returncode != 0 or not (run / "per_image.csv").is_file():
        raise SegvalError(f"evaluating {ckpt} on split {split!r} failed (exit {res.returncode}); run it yourself: "
                          f"segval eval ckpt_path={ckpt} data=package data.root={pkg.root} split={split}")
    return run / "per_image.csv"


def _find_checkpoint(run_dir: str | None) -> str | None:
    if not run_dir:
        return None
    import json

    m = Path(run_dir) / "metrics.json"
    if m.is_file():
        ck = json.loads(m.read_text(encoding="utf-8")).get("checkpoint")
        if ck and Path(ck).is_file():
            return ck
    best = sorted((Path(run_dir) / "checkpoints").glob("best-*.ckpt"))
    return str(best[-1]) if best else None


# ---------------------------------------------------------------------- queue
def run_queue(cfg: DictConfig) -> dict:
    """Build the ranked queue (+ SAM 2 proposals and video propagation when ``relabel/sam2`` is set)."""
    from segval.relabel.evidence import TemporalConfig
    from segval.relabel.queue import build_queue, load_model_evidence, write_queue
    from segval.relabel.scoring import RankingConfig
    from segval.relabel.still import StillConfig

    rl = cfg.relabel
    pkg = open_package(cfg)
    split = str(cfg.split)
    out = output_dir(cfg)
    prog = _progress(bool(rl.get("progress", True)))
    ranking = RankingConfig.from_mapping(_plain(rl.ranking))
    t = dict(_plain(rl.get("temporal")) or {})
    try:
        temporal = TemporalConfig(**{"shape_scale_px": ranking.shape_scale_px, **t})
    except TypeError as err:
        raise ConfigError(f"relabel.temporal: {err}; known keys: {list(TemporalConfig.__dataclass_fields__)}") from None
    budget = int(rl.budget)
    per_image = cfg.get("per_image")
    if rl.get("evaluate", "auto") not in ("auto", "never"):
        raise ConfigError(f"relabel.evaluate must be auto or never, got {rl.get('evaluate')!r}")
    if per_image is None and rl.get("evaluate", "auto") == "auto":
        have = load_model_evidence(cfg.get("run_dir"), findings=cfg.get("findings"))
        covers = have["per_image"] is not None and have["per_image_split"] in (None, split)
        ckpt = cfg.get("ckpt_path") or (None if covers else _find_checkpoint(cfg.get("run_dir")))
        stills_only = all(r.video_id is None for r in pkg.split(split).images)
        in_process = stills_only and str((_plain(rl.get("still")) or {}).get("enabled", "auto")).lower() != "false"
        if (ckpt and not covers or cfg.get("ckpt_path")) and not in_process:  # stills: scored below, in-process
            per_image = str(_evaluate_split(str(ckpt), pkg, split, out))
    sam_cfg = _sam2_cfg(cfg)
    backend = _backend(sam_cfg) if sam_cfg else None
    pool = int(rl.get("rerank_pool", 1) or 1)
    use_pool = backend is not None and not backend.random_init and pool > 1
    warnings: list[str] = []
    still_cfg = StillConfig.from_mapping(_plain(rl.get("still")))
    ckpt = cfg.get("ckpt_path") or _find_checkpoint(cfg.get("run_dir"))
    still = _still_evidence(pkg, split, still_cfg, [_scoring(str(ckpt), pkg, split)] if ckpt else [], prog)
    q = build_queue(pkg, split=split, budget=budget * pool if use_pool else budget, run_dir=cfg.get("run_dir"),
                    findings=cfg.get("findings"), per_image=per_image, ranking=ranking, temporal=temporal,
                    geometry=bool(rl.get("geometry", True)), max_items_per_image=int(rl.max_items_per_image),
                    progress=prog, warn=warnings.append, still=still, still_cfg=still_cfg)
    if backend is not None:
        _proposals_and_video(cfg, q, pkg, backend, out, budget, ranking, prog)
    jpath, cpath = write_queue(q, out)
    for w in warnings:
        print(f"warning: {w}")
    _print_queue(q, jpath, cpath)
    return q


def _proposals_and_video(cfg: DictConfig, q: dict, pkg: Any, backend: Any, out: Path, budget: int,
                         ranking: Any, prog: Any) -> None:
    from segval.relabel.proposals import propose_for_queue
    from segval.relabel.video import Sam2VideoBackend, propagate_queue

    sd = pkg.split(q["split"])
    propose_for_queue(q, sd, backend, out, cache=_cache(cfg, pkg, backend), budget=budget, weights=ranking.weights,
                      progress=lambda it: prog(it, "proposals"))
    vcfg = cfg.relabel.get("video") or {}
    if vcfg.get("enabled", True) and any(it.get("video_id") is not None for it in q["items"]):
        propagate_queue(q, sd, Sam2VideoBackend.from_config(_sam2_cfg(cfg)), out, window=int(vcfg.get("window", 4)),
                        min_iou=float(vcfg.get("min_iou", 0.5)), max_items=int(vcfg.get("max_items", 20)),
                        note=backend.label)


def _print_queue(q: dict, jpath: Path, cpath: Path, limit: int = 10) -> None:
    ds = q["dataset"]
    print(f"relabel queue for {ds['name']} {ds['version']} / {q['split']}: {q['images']} images, "
          f"{len(q['items'])} items (budget {q['budget']} images; inputs: per_image rows "
          f"{q['inputs']['per_image_rows_used']}, weak classes {q['inputs']['weak_classes'] or 'none'}, "
          f"{q['inputs']['videos']} videos)")
    se = q["inputs"].get("still_evidence")
    if se:
        sources = sorted({m["source"] for m in se["models"]}) or ["none (no model: give run_dir= or ckpt_path=)"]
        print(f"still-image evidence on {se['images']} images: {', '.join(sorted(se['fused']))}; model evidence: "
              + ", ".join(sources)
              + (" (the model trained on these images: it has memorised some of their errors)"
                 if "in-sample" in sources else ""))
    me = q.get("model_evidence")
    if me:
        print(f"models: {me['kind']}" + (f", {me['k']} folds (manifest {me['folds_file']})" if me.get("k") else "")
              + f"; runs {', '.join(me['runs'] if 'runs' in me else [f['run'] for f in me['folds']])}")
    if not q["items"]:
        print("nothing queued: no image has evidence against its labels (no video to compare frames, no geometry "
              "finding; give run_dir= or ckpt_path= to add the model's per-image evidence)")
    for it in q["items"][:limit]:
        print(f"  {it['rank']:>3}. image {it['image_id']} ({it['file_name']}) {it['class'] or '-'} "
              f"score {it['score']:.3f}: {it['reason']}")
    if len(q["items"]) > limit:
        print(f"  ... {len(q['items']) - limit} more")
    if q.get("sam2"):
        print(f"SAM 2 proposals: {q['sam2']['note']} -> {jpath.parent / 'proposals.json'}")
    if q.get("video_propagation"):
        vp = q["video_propagation"]
        print(f"video propagation: {vp['frames_disagreeing']} frames disagree with their label, {vp['items_added']} "
              f"joined the queue" + (" (none: RANDOM-INIT model)" if vp["random_init"] else "") + f" -> {vp['file']}")
    for e in q.get("label_confusions") or []:
        a, b = e["pair"]
        why = ("look-alike annotations in other images carry the other class" if e.get("source") else
               "the same object has the other class in neighbouring frames")
        print(f"label confusion: {a} <-> {b} in {e['annotations']} annotations ({a}->{b} "
              f"{e['directions'][f'{a}->{b}']}, {b}->{a} {e['directions'][f'{b}->{a}']}): {why}; clarify the "
              "guideline between them")
    print(f"queue: {jpath}\ntable: {cpath}")


# ---------------------------------------------------------------------- still-image evidence
def _scoring(ckpt: str, pkg: Any, split: str, source: str | None = None, images: Any = None) -> Any:
    """A :class:`~segval.relabel.still.ModelScoring` of ``ckpt`` with the normalisation its run trained with and
    what its evidence is for the queued images (in-sample when it trained on this version's ``split``)."""
    from segval.relabel.still import ModelScoring

    run_cfg = _run_config(ckpt)
    data = (run_cfg or {}).get("data") or {}
    kw = {k: list(data[k]) for k in ("mean", "std") if data.get(k)}
    if source is None:
        ds = (run_cfg or {}).get("dataset") or {}
        trained = data.get("train_split") or "train"
        same = ds.get("name") == pkg.name and str(ds.get("version")) == str(pkg.version)
        source = ("in-sample" if trained == split else "out-of-sample") if same else \
            f"a model of {ds.get('name') or 'another dataset'} {ds.get('version') or ''}".strip()
    return ModelScoring(str(ckpt), images, source, **kw)


def _run_config(ckpt: str) -> dict | None:
    """The composed config of the run a checkpoint belongs to (``<run>/.hydra/config.yaml``), or None."""
    import yaml

    for parent in Path(ckpt).resolve().parents[:3]:
        f = parent / ".hydra" / "config.yaml"
        if f.is_file():
            return yaml.safe_load(f.read_text(encoding="utf-8"))
    return None


def _still_evidence(pkg: Any, split: str, cfg: Any, models: list, prog: Any, *, every_image: bool = False,
                    dynamics: Path | None = None) -> Any:
    """The still-image evidence of the queued split: for its images without a video (``relabel.still.enabled=auto``;
    every image with ``true`` or ``every_image``), or None (``false``, or no such image)."""
    from segval.relabel.still import gather_still_evidence

    sd = pkg.split(split)
    if cfg.enabled == "false":
        return None
    recs = list(sd.images) if (cfg.enabled == "true" or every_image) else [r for r in sd.images if r.video_id is None]
    if not recs:
        return None
    return gather_still_evidence(sd, background_id=pkg.taxonomy.background_id, cfg=cfg, images=recs, models=models,
                                 dynamics=dynamics, progress=prog)


# ---------------------------------------------------------------------- find
def run_find(cfg: DictConfig) -> dict:
    """From a dataset to a relabel queue with no run needed: train the baseline once (in-sample; with
    ``find.folds=K``, K cross-fitting models, each image scored by the one that never saw it), gather the
    still-image (and, in videos, temporal) evidence and write queue.json / queue.csv."""
    from segval.relabel.evidence import TemporalConfig
    from segval.relabel.queue import build_queue, write_queue
    from segval.relabel.scoring import RankingConfig
    from segval.relabel.still import StillConfig

    rl, fc = cfg.relabel, cfg.find
    pkg = open_package(cfg, plain_coco=False)
    split = str(cfg.split)
    sd = pkg.split(split)
    out = output_dir(cfg)
    prog = _progress(bool(rl.get("progress", True)))
    ranking = RankingConfig.from_mapping(_plain(rl.ranking))
    temporal = TemporalConfig(**{"shape_scale_px": ranking.shape_scale_px, **(_plain(rl.get("temporal")) or {})})
    still_cfg = StillConfig.from_mapping(_plain(rl.get("still")))
    train = [*data_overrides(cfg), f"data.train_split={split}", *(str(o) for o in (fc.train or []))]
    k = int(fc.folds or 0)
    if k <= 1:
        models, manifest, dyn = _in_sample(pkg, split, out, train, fc)
    else:
        models, manifest = _cross_fit(pkg, sd, split, out, train, k, int(fc.seed))
        dyn = None
    still = _still_evidence(pkg, split, still_cfg, models, prog, every_image=True, dynamics=dyn)
    warnings: list[str] = []
    q = build_queue(pkg, split=split, budget=int(rl.budget), ranking=ranking, temporal=temporal,
                    geometry=bool(rl.get("geometry", True)), max_items_per_image=int(rl.max_items_per_image),
                    progress=prog, warn=warnings.append, still=still, still_cfg=still_cfg)
    q["model_evidence"] = manifest
    jpath, cpath = write_queue(q, out)
    for w in warnings:
        print(f"warning: {w}")
    _print_queue(q, jpath, cpath)
    return q


def _in_sample(pkg: Any, split: str, out: Path, train: list[str], fc: Any) -> tuple[list, dict, Path | None]:
    """One training on the queued split; its model scores every image (in-sample)."""
    run = out / "train"
    extra = []
    if fc.get("dynamics"):
        extra = ["+callbacks.training_dynamics._target_=segval.callbacks.training_dynamics.TrainingDynamicsCallback",
                 f"+callbacks.training_dynamics.dirpath={quote(str(run))}",
                 f"+callbacks.training_dynamics.every_n_steps={int(fc.dynamics_every)}"]
    ckpt = train_in_subprocess(run, [*train, *extra], what="find: baseline (in-sample)")
    manifest = {"kind": "in-sample", "folds": 0, "runs": [str(run)],
                "note": "one training on the queued images: a weak baseline memorises some label errors; "
                        "find.folds=K cross-fits K models instead"}
    return [_scoring(str(ckpt), pkg, split, source="in-sample")], manifest, run if fc.get("dynamics") else None


def _cross_fit(pkg: Any, sd: Any, split: str, out: Path, train: list[str], k: int, seed: int) -> tuple[list, dict]:
    """K trainings, each without one fold (grouped by video, stratified by class); each fold's images are
    scored by the model that never saw them. The manifest is written before the first training."""
    from segval.io import write_json
    from segval.relabel.folds import assign_folds, check_folds, fold_manifest

    names = {c.id: c.name for c in pkg.taxonomy.categories}
    bg = pkg.taxonomy.background_id
    classes_of = {r.id: {int(a["category_id"]) for a in sd.annotations_for(r.id) if a["category_id"] != bg}
                  for r in sd.images}
    folds = assign_folds(sd.images, classes_of, k, seed=seed)
    check_folds(folds, classes_of, k, names)
    runs = [str(out / f"fold{f}") for f in range(k)]
    manifest = {"kind": "cross-fit", **fold_manifest(folds, k, seed=seed, runs=runs)}
    write_json(out / "folds.json", manifest)
    models = []
    for f in range(k):
        held = [i for i, ff in folds.items() if ff == f]
        excluded = write_json(out / f"fold{f}" / "held_out.json", sorted(held))
        ckpt = train_in_subprocess(Path(runs[f]), [*train, f"data.exclude_train_ids={quote(str(excluded))}"],
                                   what=f"find: fold {f + 1}/{k} ({len(held)} images held out)")
        models.append(_scoring(str(ckpt), pkg, split, source=f"out-of-sample (fold {f})", images=frozenset(held)))
    return models, {**manifest, "folds_file": "folds.json"}


# ---------------------------------------------------------------------- embed / propose
def _records_for(cfg: DictConfig, pkg):
    from segval.relabel.queue import read_queue

    if cfg.get("queue"):
        q = read_queue(cfg.queue)
        if q["dataset"]["name"] != pkg.name:
            raise ConfigError(f"queue {q['_path']} is for dataset {q['dataset']['name']!r}, not {pkg.name!r}")
        sd = pkg.split(q["split"])
        ids = list(dict.fromkeys(int(it["image_id"]) for it in q["items"]))
        have = {r.id for r in sd.images}
        bad = [i for i in ids if i not in have]
        if bad:
            from segval.errors import DatasetError

            raise DatasetError(f"queued image ids {bad[:20]} are not in split {q['split']!r} of the dataset",
                               path=q["_path"])
        return q, sd, [sd.image(i) for i in ids]
    sd = pkg.split(str(cfg.split))
    return None, sd, list(sd.images)


def run_embed(cfg: DictConfig) -> dict:
    """Fill the embedding cache for the queued images (``queue=``) or a whole split."""
    from segval.relabel.embeddings import compute_embeddings

    sam_cfg = _sam2_cfg(cfg)
    if not sam_cfg:
        raise ConfigError("choose a SAM 2 model: relabel/sam2=hiera_tiny|hiera_small|hiera_base_plus|large|tiny_random")
    pkg = open_package(cfg)
    _, sd, recs = _records_for(cfg, pkg)
    backend = _backend(sam_cfg)
    cache = _cache(cfg, pkg, backend)
    if cache is None:
        raise ConfigError("relabel.cache_dir must be set: it is where the embeddings go")
    res = compute_embeddings(backend, sd, recs, cache, batch_size=int(sam_cfg.get("batch_size") or 4),
                             progress=bool(cfg.relabel.get("progress", True)))
    print(f"model: {backend.label}")
    print(f"embeddings of {res['requested']} images of {pkg.name} {pkg.version} / {sd.name}: "
          f"{res['cached_before']} already cached, {res['computed']} computed")
    print(f"cache: {cache.dir}")
    return {**res, "cache": str(cache.dir), "model": backend.model_id}


def run_propose(cfg: DictConfig) -> dict:
    """SAM 2 proposals for an existing queue; writes queue.json/csv + proposals.json into the run directory."""
    from segval.relabel.proposals import propose, sam2_summary
    from segval.relabel.queue import write_queue

    sam_cfg = _sam2_cfg(cfg)
    if not sam_cfg:
        raise ConfigError("choose a SAM 2 model: relabel/sam2=hiera_tiny|...|tiny_random")
    if not cfg.get("queue"):
        raise ConfigError("missing queue=<queue.json or its folder>")
    pkg = open_package(cfg)
    q, sd, _ = _records_for(cfg, pkg)
    q.pop("_path", None)
    backend = _backend(sam_cfg)
    out = output_dir(cfg)
    prog = _progress(bool(cfg.relabel.get("progress", True)))
    cache = _cache(cfg, pkg, backend)
    props = propose(q, sd, backend, out, cache=cache, progress=lambda it: prog(it, "proposals"))
    q["sam2"] = sam2_summary(backend, cache)
    jpath, cpath = write_queue(q, out)
    print(f"model: {backend.label}")
    print(f"{len(props)} proposals for {len(q['items'])} items "
          f"(embedding cache: {q['sam2']['cache_hits']} hits, {q['sam2']['cache_misses']} misses)")
    print(f"proposals: {out / 'proposals.json'}\nqueue: {jpath}\ntable: {cpath}")
    return q


# ---------------------------------------------------------------------- export / import
def run_export(cfg: DictConfig) -> dict:
    """Label Studio tasks + labeling config and / or a CVAT COCO 1.0 package of the queued images."""
    import numpy as np

    from segval.io import atomic_dir, write_json, write_text
    from segval.relabel.cvat import coco_for_queue, write_cvat_package
    from segval.relabel.labelstudio import label_config, tasks_for_queue

    fmt = str(cfg.format)
    if fmt not in ("labelstudio", "cvat", "both"):
        raise ConfigError(f"format must be labelstudio, cvat or both, got {fmt!r}")
    if not cfg.get("queue"):
        raise ConfigError("missing queue=<queue.json or its folder>")
    pkg = open_package(cfg)
    q, sd, _ = _records_for(cfg, pkg)
    qdir = Path(q["_path"]).parent
    proposals: dict[str, Any] = {}
    model = (q.get("sam2") or {}).get("note")
    if cfg.get("with_proposals", True):
        from PIL import Image

        for it in q["items"]:
            p = it.get("proposal")
            if p and p.get("file") and (qdir / p["file"]).is_file():
                proposals[it["item_id"]] = np.array(Image.open(qdir / p["file"])) > 127
    out = output_dir(cfg)
    written = {}
    prog = _progress(bool(cfg.get("progress", True)))
    # everything is built (and checked) before anything is written
    tasks = tasks_for_queue(q, sd, pkg.taxonomy, image_url=str(cfg.labelstudio.image_url), proposals=proposals,
                            proposal_model=model, progress=lambda it: prog(it, "label studio")) \
        if fmt in ("labelstudio", "both") else None
    coco = coco_for_queue(q, sd, pkg.taxonomy) if fmt in ("cvat", "both") else None
    if tasks is not None:
        written["labelstudio_tasks"] = str(write_json(out / "labelstudio" / "tasks.json", tasks))
        written["labelstudio_config"] = str(write_text(out / "labelstudio" / "label_config.xml",
                                                       label_config(pkg.taxonomy)))
    if coco is not None:
        with atomic_dir(out / "cvat") as tmp:
            write_cvat_package(coco, sd, tmp)
        written["cvat"] = str(out / "cvat")
    n_img = len({it["image_id"] for it in q["items"]})
    print(f"exported {n_img} images ({len(q['items'])} queue items, {len(proposals)} SAM 2 proposals"
          + (f": {model}" if proposals and model else "") + f") of {pkg.name} {pkg.version} / {sd.name}")
    if tasks is not None:
        print(f"Label Studio: import {written['labelstudio_tasks']} into a project whose labeling config is "
              f"{written['labelstudio_config']} (images served from {pkg.root / 'images'} via local-files)")
    if coco is not None:
        print(f"CVAT: create a task from {out / 'cvat' / 'images'}, then upload {out / 'cvat' / 'cvat_coco.zip'} "
              "as COCO 1.0")
    return written


def run_import(cfg: DictConfig) -> dict:
    """Read a Label Studio / CVAT export and write the corrected dataset as a new version."""
    from segval.io import write_json
    from segval.dataset.formats.result import Findings
    from segval.relabel import cvat, labelstudio
    from segval.relabel.import_back import apply_corrections

    fmt = str(cfg.format)
    if fmt not in ("labelstudio", "cvat"):
        raise ConfigError(f"format must be labelstudio or cvat, got {fmt!r}")
    if not cfg.get("file"):
        raise ConfigError("missing file=<the Label Studio JSON export, or the CVAT 'CVAT for images 1.1' / 'COCO 1.0' "
                          "export (xml, json or zip)>")
    pkg = open_package(cfg, plain_coco=False)
    split = str(cfg.split)
    sd = pkg.split(split)
    reader = labelstudio.read_export if fmt == "labelstudio" else cvat.read_export
    findings = Findings()  # what the reader skipped (boxes, keypoints, tags, ...) and warns about
    corrections = reader(cfg.file, sd, pkg.taxonomy, findings=findings)
    for line in findings.warnings():
        print(f"warning: {line}")
    for kind, skipped in findings.skipped.items():
        print(f"skipped {kind}: {skipped}")
    res = apply_corrections(pkg.root, corrections, split=split, output=cfg.get("output"),
                            version=str(cfg.version) if cfg.get("version") else None, notes=str(cfg.get("notes") or ""),
                            origin=f"{fmt} export {cfg.file}", read_only=bool(cfg.get("read_only", True)))
    out = output_dir(cfg)
    summary = {k: v for k, v in res.items() if k != "changelog_entry"}
    path = write_json(out / "import_summary.json", summary)
    moved = {c: v for c, v in res["diff"]["pixels"].items() if v["gained"] or v["lost"]}
    print(f"{len(corrections)} images returned ({len(res['unchanged_images'])} unchanged): "
          f"{len(res['corrected'])} annotations corrected, {len(res['added'])} added, "
          f"{len(res['deprecated'])} deprecated")
    print("pixels changed per class: " + (", ".join(f"{c} +{v['gained']}/-{v['lost']}" for c, v in moved.items())
                                          or "none"))
    print(f"new version {res['version']} (from {res['previous']} at {res['source']}, unchanged): {res['path']}")
    print(f"summary: {path}")
    return summary


main_queue = segval_app("relabel_queue")(run_queue)
main_find = segval_app("relabel_find")(run_find)
main_embed = segval_app("relabel_embed")(run_embed)
main_propose = segval_app("relabel_propose")(run_propose)
main_export = segval_app("relabel_export")(run_export)
main_import = segval_app("relabel_import")(run_import)

if __name__ == "__main__":
    dispatch("segval.commands.relabel", {"queue": main_queue, "find": main_find, "embed": main_embed, "propose": main_propose,
                                         "export": main_export, "import": main_import})
