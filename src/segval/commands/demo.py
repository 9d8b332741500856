"""`segval demo inject | oracle | run`: the demo's proof that the loop finds and fixes label errors.

* ``inject``: a copy of a clean package with known label errors (:mod:`segval.demo.inject`); the
  manifest (errors.json) is written outside both packages.
* ``oracle``: answers a relabel queue with the clean ground truth as a CVAT "COCO 1.0" export
  (:mod:`segval.demo.oracle`), standing in for annotators.
* ``run``: the whole story, each stage a real ``segval`` command (:mod:`segval.demo.loop`).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segval.commands import find_command
from segval.commands._common import dispatch, segval_app
from segval.errors import ConfigError


def inject_config(node: DictConfig):
    from segval.demo.inject import InjectConfig

    d = OmegaConf.to_container(node, resolve=True)
    rate = d.get("rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and float(rate) > 1:
        raise ConfigError(f"inject.rate={rate} is over 1: it is the fraction of {d.get('split', 'train')} images "
                          "to corrupt, in [0, 1] (e.g. inject.rate=0.15)")
    try:
        return InjectConfig(**d)
    except TypeError as err:
        raise ConfigError(f"inject: {err}") from None


def run_inject(cfg: DictConfig) -> dict:
    from segval.demo.inject import inject_errors

    if not cfg.root or not cfg.output or not cfg.manifest:
        raise ConfigError("root=<clean package>, output=<new package> and manifest=<errors.json> are all needed")
    icfg = inject_config(cfg.inject)
    icfg.check()
    manifest = inject_errors(cfg.root, cfg.output, cfg.manifest, icfg,
                             version=None if cfg.version is None else str(cfg.version))
    items = manifest["items"]
    n = manifest["images"]
    print(f"injected {len(items)} errors into {len(items)} of {n} {icfg.split} images "
          f"(rate {icfg.rate:g}, seed {icfg.seed}): "
          + ", ".join(f"{k} {v}" for k, v in manifest["counts"].items() if v))
    if manifest["shortfall"]:
        print("warning: too few eligible images for " + ", ".join(f"{k} (-{v})" for k, v in manifest["shortfall"].items()))
    print(f"pixels changed: {sum(i['pixels_changed'] for i in items)}")
    print(f"corrupted package: {manifest['corrupted']['root']} (version {manifest['corrupted']['version']}, "
          f"from {manifest['clean']['version']} at {manifest['clean']['root']}, which is unchanged)")
    print(f"manifest (keep it away from the loop): {Path(cfg.manifest).resolve()}")
    return manifest


def run_oracle(cfg: DictConfig) -> dict:
    from segval.dataset.package import DatasetPackage
    from segval.demo.inject import load_manifest
    from segval.demo.oracle import answer_queue, load_queue, queued_image_ids
    from segval.errors import DatasetError
    from segval.io import write_json

    if not cfg.queue:
        raise ConfigError("missing queue=<queue.json written by `segval relabel queue`>")
    if not cfg.manifest and not cfg.clean:
        raise ConfigError("give manifest=<errors.json of `segval demo inject`> (or clean=<clean package>)")
    queue = load_queue(cfg.queue)
    qds = queue["dataset"]
    manifest = None
    if cfg.manifest:
        manifest = load_manifest(cfg.manifest)
        cor = manifest["corrupted"]
        if (qds.get("name"), str(qds.get("version"))) != (cor.get("name"), str(cor.get("version"))):
            raise DatasetError(
                f"the queue was built on {qds.get('name')!r} version {qds.get('version')}, but this manifest "
                f"describes version {cor.get('version')} (corrupted from {manifest['clean']['version']}); "
                "pass the manifest of the dataset version the queue was built on", path=cfg.manifest)
    clean = DatasetPackage.open(cfg.clean or manifest["clean"]["root"])
    if manifest is not None and clean.version != str(manifest["clean"]["version"]):
        raise DatasetError(f"clean={clean.root} is version {clean.version}, the manifest's clean version is "
                           f"{manifest['clean']['version']}", path=cfg.manifest)
    asked = None if cfg.images is None else [int(i) for i in cfg.images]
    export = answer_queue(queue, clean, image_ids=asked)
    out = write_json(cfg.output, export)
    n_queued = len(queued_image_ids(queue))
    print(f"oracle answered {len(export['images'])} of {n_queued} queued images of {qds.get('name')} "
          f"{qds.get('version')} with the clean ground truth of version {clean.version} "
          f"({len(export['annotations'])} annotations)")
    print(f"CVAT COCO 1.0 export: {out.resolve()}")
    return export




def _override_value(value) -> str:
    """A Hydra override value: lists as [a,b], dicts as {k:v}."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


#: the stages that read the dataset config (``data:``) and those that train with ``train:``
DATA_STAGES = ("qa", "qa_after", "train_before", "eval_train", "train_after", "queue", "import")
TRAIN_STAGES = ("train_before", "train_after")


def demo_seeds(cfg: DictConfig) -> list[int]:
    """``seeds`` of ``conf/demo_run.yaml`` as ints.

    Raises:
        ConfigError: not a non-empty list of distinct integers.
    """
    raw = OmegaConf.to_container(cfg.seeds, resolve=True) if OmegaConf.is_list(cfg.seeds) else cfg.seeds
    if not isinstance(raw, list) or not raw or any(isinstance(s, bool) or not isinstance(s, int) for s in raw) \
            or len(set(raw)) != len(raw):
        raise ConfigError(f"seeds={raw!r}: give the training seeds of each side as a list of distinct integers, "
                          "e.g. seeds=[0,1] (two or more measure the seed noise of the gain)")
    return list(raw)


def seed_args(args: list[str], seed: int) -> list[str]:
    """One seed's arguments of a ``per_seed`` stage: ``{seed}`` replaced, ``seed=<seed>`` added last."""
    return [a.replace("{seed}", str(seed)) for a in args] + [f"seed={seed}"]


def stage_args(cfg: DictConfig, name: str) -> list[str]:
    """The ``segval`` arguments of stage ``name`` of ``conf/demo_run.yaml``: its ``args`` (the relabel budget and
    the first checkpoint filled in from what earlier stages wrote), the injection settings, the data and training
    configs where the stage reads them, then its ``extra``.

    Raises:
        ConfigError: the stage's words are not a segval command.
    """
    import json

    work = Path(cfg.work)
    if name == "queue" and cfg.budget is None:
        manifest = json.loads(Path(cfg.manifest).read_text(encoding="utf-8"))
        cfg.budget = 2 * len(manifest["items"])
    if name == "eval_train" and cfg.ckpt_before is None:
        first = work / "train_before" / f"seed{demo_seeds(cfg)[0]}" / "metrics.json"
        metrics = json.loads(first.read_text(encoding="utf-8"))
        cfg.ckpt_before = metrics["checkpoint"]
    stage = cfg.stages[name]
    args = [str(a) for a in stage.args]
    if name == "inject":
        args += [f"inject.{key}={_override_value(v)}"
                 for key, v in OmegaConf.to_container(cfg.inject, resolve=True).items()]
    command = find_command(args)
    if command is None:
        raise ConfigError(f"stage {name}: `segval {' '.join(args[:2])}` is not a segval command")
    n_words = len(command.words)
    if name in DATA_STAGES:
        args[n_words:n_words] = [str(x) for x in cfg.data]
    if name in TRAIN_STAGES:
        args[n_words:n_words] = [str(x) for x in cfg.train]
    return args + [str(x) for x in stage.extra]


def run_run(cfg: DictConfig) -> dict:
    """The whole loop (``make demo``): each stage of ``conf/demo_run.yaml`` as a real ``segval`` process (a
    ``per_seed`` stage once per seed of ``seeds``, the seeds at once when ``parallel_seeds``)."""
    from segval.demo.loop import format_summary, run_stage, run_stages_at_once, summarize
    from segval.io import write_json

    work = Path(cfg.work)
    logs = work / "logs"
    timings: dict[str, float] = {}
    names = list(cfg.stages)
    seeds = demo_seeds(cfg)
    for k, name in enumerate(names):
        stage, index = cfg.stages[name], f"[{k + 1}/{len(names)}] "
        if not stage.get("per_seed", False):
            timings[name] = run_stage(name, stage_args(cfg, name), ok=list(stage.ok), log_dir=logs, index=index)
            continue
        runs = [(f"{name}_seed{seed}", seed_args(stage_args(cfg, name), seed)) for seed in seeds]
        if cfg.parallel_seeds and len(runs) > 1:  # each process gets its share of the cores
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            threads = max(1, cores // len(runs))
            timings[name] = run_stages_at_once(runs, ok=list(stage.ok), log_dir=logs, index=index, threads=threads)
        else:
            timings[name] = sum(run_stage(n, a, ok=list(stage.ok), log_dir=logs, index=index) for n, a in runs)
    summary = summarize({"manifest": cfg.manifest, "queue": work / "queue" / "queue.json",
                         "before": work / "train_before", "after": work / "train_after",
                         "analyze": work / "analyze", "compare": work / "compare", "gate": work / "gate",
                         "guideline": work / "guideline", "relabelled": cfg.relabelled}, timings)
    out = write_json(work / "demo.json", summary)
    print(format_summary(summary))
    print(f"summary: {out.resolve()}")
    return summary


main_inject = segval_app("demo_inject")(run_inject)
main_oracle = segval_app("demo_oracle")(run_oracle)
main_run = segval_app("demo_run")(run_run)

if __name__ == "__main__":
    dispatch("segval.commands.demo", {"inject": main_inject, "oracle": main_oracle, "run": main_run})
