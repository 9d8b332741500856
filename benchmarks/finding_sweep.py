"""Finding power of `segval relabel find` over injection rates and seeds, as stills or as videos.

    python benchmarks/finding_power.py --still --render data/heldout --rates 0.15 0.3 --seeds 0 1 2
    python benchmarks/finding_power.py --video --render data/heldout --rates 0.3 --seeds 0 1 2 [--gain]

Per (rate, seed) case under ``--work``: the clean render gets one error on ``rate`` of its train images (the full
mix of :data:`segval.demo.inject.KINDS`, simplify included; the render's swap pairs), ``--still`` strips
``video_id`` / ``frame_index`` from a copy, then the real command runs:
``segval relabel find data=package data.root=<case> find.train=[...] relabel.budget=<all train images>``.
Its queue ranks every image; K = 2 x corrupted images.

Figures per case: recall@K and per-image AUROC (corrupted vs clean) of the queue; of every still-image kind
alone and of the model's label quality (cleanlab's softmin, the same formula; ``cleanlab`` itself when installed);
of the queue without still evidence (today's ranking); of the default fusion of the still kinds without each of its
kinds in turn (what each kind adds: ``fusion without appearance_margin`` is the fusion before that kind existed).
Then mean ± std over seeds per rate, and the last line ``finding_power: ... PASS|FAIL`` (goals: recall@K >= 0.85
and AUROC >= 0.85 at every rate, never below the best single kind nor the label quality). ``--gain``: for the first
seed of each rate the clean-truth oracle answers the queue, the corrections are imported and both versions are
trained with 2 seeds: the mIoU gain on the clean val split, mean ± std.

Every step is resumable (a finished case is not redone); cases are independent folders.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_KEYS = ("video_id", "frame_index", "video_name")
DEFAULT_TRAIN = ["experiment=demo", "logger=csv", "trainer.max_steps=800", "trainer.val_check_interval=400"]


def segval(*args: str, log: Path) -> None:
    """Run ``segval <args>`` (a new process) with its output kept in ``log``; raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run([sys.executable, "-m", "segval.cli", *args], stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-20:])
        raise SystemExit(f"segval {' '.join(args[:2])} failed (exit {code}); log {log}:\n{tail}")


def strip_videos(src: Path, dst: Path) -> Path:
    """A copy of package ``src`` without the video keys of its images."""
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    for ann in (tmp / "annotations").glob("*.json"):
        doc = json.loads(ann.read_text(encoding="utf-8"))
        for im in doc.get("images", []):
            for k in VIDEO_KEYS:
                im.pop(k, None)
        ann.write_text(json.dumps(doc), encoding="utf-8")
    tmp.rename(dst)
    return dst


def prepare(clean: Path, case: Path, *, rate: float, seed: int, still: bool, swap_pairs: Sequence[Sequence[str]]
            ) -> tuple[Path, dict[str, Any]]:
    """Inject (once) and, for stills, strip the videos; returns the package to queue and the manifest."""
    from segval.demo.inject import KINDS, InjectConfig, inject_errors

    manifest = case / "errors.json"
    corrupted = case / "corrupted"
    if not manifest.is_file():
        shutil.rmtree(corrupted, ignore_errors=True)
        mix = {"swap": 0.3, "drop": 0.15, "dilate": 0.1, "erode": 0.1, "simplify": 0.1, "shift": 0.15,
               "wrong_region": 0.1}
        assert set(mix) == set(KINDS)
        cfg = InjectConfig(rate=rate, seed=seed, mix=mix, swap_pairs=tuple(tuple(p) for p in swap_pairs))
        inject_errors(clean, corrupted, manifest, cfg)
    pkg = corrupted
    if still:
        pkg = case / "stills"
        if not pkg.is_dir():
            strip_videos(corrupted, pkg)
    return pkg, json.loads(manifest.read_text(encoding="utf-8"))


def figures(scores: Mapping[int, float], ids: Sequence[int], positives: set[int], kinds_of: Mapping[int, str]
            ) -> dict[str, Any]:
    """recall@K (K = 2 x positives), AUROC and the injected kinds found in the top K."""
    from finding_power import auroc, recall_at_k

    floor = min(scores.values(), default=0.0) - 1.0
    s = {i: scores.get(i, floor) for i in ids}
    ranked = sorted(ids, key=lambda i: (-s[i], i))
    k = 2 * len(positives)
    top = set(ranked[:k])
    by: dict[str, list[int]] = {}
    for i, kind in kinds_of.items():
        by.setdefault(kind, [0, 0])
        by[kind][0] += i in top
        by[kind][1] += 1
    return {"recall_at_K": recall_at_k(ranked, positives, k), "AUROC": auroc([s[i] for i in ids],
                                                                             [i in positives for i in ids]),
            "found": {k2: f"{a}/{b}" for k2, (a, b) in sorted(by.items())}}


def queue_scores(queue: Mapping[str, Any]) -> dict[int, float]:
    """Each image's score in a queue (its first item's ``image_score``; images not queued: absent)."""
    out: dict[int, float] = {}
    for it in sorted(queue["items"], key=lambda it: it["rank"]):
        out.setdefault(int(it["image_id"]), float(it["evidence"]["image_score"]))
    return out


def case_figures(pkg_root: Path, find_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The queue, each still kind alone, label quality and today's ranking on one case."""
    from segval.dataset.package import DatasetPackage
    from segval.relabel.annotations import class_excess, image_scores
    from segval.relabel.queue import build_queue
    from segval.relabel.still import ModelScoring, StillConfig, gather_still_evidence

    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split(manifest["split"])
    ids = sorted(r.id for r in sd.images)
    positives = {int(it["image_id"]) for it in manifest["items"]}
    kinds_of = {int(it["image_id"]): it["kind"] for it in manifest["items"]}
    queue = json.loads((find_dir / "queue.json").read_text(encoding="utf-8"))
    out: dict[str, Any] = {"images": len(ids), "corrupted": len(positives), "K": 2 * len(positives),
                           "queue": figures(queue_scores(queue), ids, positives, kinds_of)}
    ckpt = json.loads((find_dir / "train" / "metrics.json").read_text(encoding="utf-8"))["checkpoint"]
    run_cfg = find_dir / "train" / ".hydra" / "config.yaml"
    import yaml

    data = (yaml.safe_load(run_cfg.read_text(encoding="utf-8")) or {}).get("data") or {}
    cfg = StillConfig.from_mapping({"weights": dict.fromkeys(StillConfig().weights, 1.0), "enabled": "true"})
    ev = gather_still_evidence(sd, background_id=pkg.taxonomy.background_id, cfg=cfg,
                               models=[ModelScoring(ckpt, None, "in-sample", data.get("mean") or (0.485, 0.456, 0.406),
                                                    data.get("std") or (0.229, 0.224, 0.225))])
    raw = set(StillConfig().raw)
    out["kinds"] = {k: figures(image_scores(rs, None if k in raw else class_excess(rs), ids), ids, positives, kinds_of)
                    for k, rs in ev.rows.items()}
    out.update(ablation(ev, ids, positives, kinds_of))
    out["label_quality"] = figures({i: -v for i, v in (ev.label_quality or {}).items()}, ids, positives, kinds_of)
    try:  # cleanlab itself, as a cross-check of the label-quality formula (extra `bench`)
        from finding_power import _cleanlab_scores

        cl = _cleanlab_scores(ckpt, sd, data.get("mean") or (0.485, 0.456, 0.406), data.get("std") or (0.229, 0.224, 0.225))
        out["cleanlab_softmin"] = figures({i: -v for i, v in cl.items()}, ids, positives, kinds_of)
    except ImportError:
        pass
    today = build_queue(pkg, split=manifest["split"], budget=len(ids),
                        per_image=[{"image_id": i, "label_quality": v, "pixels": 1}
                                   for i, v in (ev.label_quality or {}).items()])
    out["today"] = figures(queue_scores(today), ids, positives, kinds_of)
    return out


def ablation(ev: Any, ids: Sequence[int], positives: set[int], kinds_of: Mapping[int, str]) -> dict[str, Any]:
    """The default fusion of the still kinds on the same evidence (``fused``: the queue's still ranking) and the
    same fusion without each of its kinds in turn (``fused_without``: what each kind adds)."""
    from segval.relabel.fusion import fuse_still
    from segval.relabel.still import StillConfig

    default = StillConfig()
    used = {k: w for k, w in default.weights.items() if w > 0 and ev.rows.get(k)}

    def fused(weights: Mapping[str, float]) -> dict[str, Any]:
        r = fuse_still(ev.rows, ids, weights=weights, raw=default.raw, label_quality=ev.label_quality)
        return figures(r.scores, ids, positives, kinds_of)

    return {"fused": fused(used), "fused_without": {k: fused({j: w for j, w in used.items() if j != k}) for k in used}}


def gain(case: Path, pkg_root: Path, find_dir: Path, clean: Path, train: Sequence[str], seeds: Sequence[int]
         ) -> dict[str, Any]:
    """mIoU on the clean val split before / after the oracle answers the queue (``seeds`` trainings per side)."""
    out = case / "gain"
    relabelled = out / "relabelled"
    if not relabelled.is_dir():
        segval("demo", "oracle", f"queue={find_dir / 'queue.json'}", f"manifest={case / 'errors.json'}",
               f"output={out / 'oracle' / 'annotations' / 'instances_default.json'}",
               f"hydra.run.dir={out / 'oracle_run'}", log=out / "oracle.log")
        segval("relabel", "import", "format=cvat", f"file={out / 'oracle' / 'annotations' / 'instances_default.json'}",
               "data=package", f"data.root={pkg_root}", f"output={relabelled}", f"hydra.run.dir={out / 'import_run'}",
               log=out / "import.log")
    miou: dict[str, list[float]] = {"before": [], "after": []}
    for side, root in (("before", pkg_root), ("after", relabelled)):
        for s in seeds:
            run = out / f"{side}_seed{s}"
            if not (run / "metrics.json").is_file():
                segval("train", *train, "data=package", f"data.root={root}", f"seed={s}", f"hydra.run.dir={run}",
                       log=out / f"{side}_seed{s}.log")
            miou[side].append(json.loads((run / "metrics.json").read_text())["summary"]["mIoU"])
    d = [a - b for a, b in zip(miou["after"], miou["before"])]
    return {"mIoU_before": miou["before"], "mIoU_after": miou["after"], "gain_mean": float(np.mean(d)),
            "gain_std": float(np.std(d, ddof=1)) if len(d) > 1 else None,
            "noise_std": float(np.std(miou["before"], ddof=1)) if len(d) > 1 else None}


def render_swap_pairs(name: str) -> list[list[str]]:
    """The plausible confusions of a demo render (``segval-demo-<variant>``; the standard demo otherwise)."""
    from segval.demo.scene_variants import VARIANTS

    variant = VARIANTS.get(name.removeprefix("segval-demo-"), VARIANTS["standard"])
    return [list(p) for p in variant.swap_pairs]


def _mean_std(values: Sequence[float]) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "n/a"
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def sweep(args: Any) -> int:
    """The ``--still`` / ``--video`` modes of benchmarks/finding_power.py (see the module doc)."""
    from segval.dataset.package import DatasetPackage

    clean = Path(args.render)
    if not (clean / "dataset.yaml").is_file():
        raise SystemExit(f"{clean} is no package: render one first, e.g. `segval data render render.root={clean} "
                         "render.variant=heldout render.seed=1`")
    swap_pairs = [p.split(":") for p in args.swap_pairs.split(",") if p] if args.swap_pairs else \
        render_swap_pairs(DatasetPackage.open(clean).name)
    still = bool(args.still)
    work = Path(args.work)
    train = args.train or DEFAULT_TRAIN
    results: dict[str, list[dict[str, Any]]] = {}
    start = time.perf_counter()
    for rate in args.rates:
        for seed in args.seeds:
            case = work / f"{'still' if still else 'video'}_r{int(round(rate * 100))}_s{seed}"
            pkg_root, manifest = prepare(clean, case, rate=rate, seed=seed, still=still, swap_pairs=swap_pairs)
            find_dir = case / "find"
            if not (find_dir / "queue.json").is_file():
                n = len(manifest.get("images_list") or []) or manifest["images"]
                segval("relabel", "find", "data=package", f"data.root={pkg_root}",
                       "find.train=[" + ",".join(f'"{o}"' for o in train) + "]", f"relabel.budget={n}",
                       f"hydra.run.dir={find_dir}", log=case / "find.log")
            fig = case / "figures.json"
            res = json.loads(fig.read_text()) if fig.is_file() else case_figures(pkg_root, find_dir, manifest)
            if args.gain and seed == args.seeds[0] and "gain" not in res:
                res["gain"] = gain(case, pkg_root, find_dir, clean, train, seeds=(0, 1))
            fig.write_text(json.dumps(res, indent=1))
            res["case"] = case.name
            results.setdefault(f"{rate:g}", []).append(res)
            q = res["queue"]
            print(f"{case.name}: queue recall@K {q['recall_at_K']:.3f} AUROC {q['AUROC']:.3f} "
                  f"(label quality {res['label_quality']['AUROC']:.3f}, today {res['today']['AUROC']:.3f}); "
                  f"found {q['found']}", flush=True)
    ok = True
    for rate, rs in results.items():
        best_kind = {k: np.mean([r["kinds"][k]["AUROC"] for r in rs if k in r["kinds"]]) for k in rs[0]["kinds"]}
        top_kind = max(best_kind, key=best_kind.get)
        rec = [r["queue"]["recall_at_K"] for r in rs]
        au = [r["queue"]["AUROC"] for r in rs]
        print(f"\nrate {rate}, {len(rs)} seed(s), {'stills' if still else 'videos'}:")
        print(f"  queue (segval relabel find)   recall@K {_mean_std(rec)}   AUROC {_mean_std(au)}")
        for k in (rs[0].get("fused_without") or {}):
            print(f"  fusion without {k:<14} recall@K {_mean_std([r['fused_without'][k]['recall_at_K'] for r in rs])}"
                  f"   AUROC {_mean_std([r['fused_without'][k]['AUROC'] for r in rs])}")
        for name in ("label_quality", "cleanlab_softmin", "today"):
            if name in rs[0]:
                print(f"  {name:<29} recall@K {_mean_std([r[name]['recall_at_K'] for r in rs])}   "
                      f"AUROC {_mean_std([r[name]['AUROC'] for r in rs])}")
        for k in sorted(best_kind, key=lambda k: -best_kind[k]):
            print(f"  kind {k:<24} recall@K {_mean_std([r['kinds'][k]['recall_at_K'] for r in rs if k in r['kinds']])}"
                  f"   AUROC {_mean_std([r['kinds'][k]['AUROC'] for r in rs if k in r['kinds']])}")
        for r in rs:
            if "gain" in r:
                g = r["gain"]
                print(f"  mIoU gain after the oracle relabels the queue ({r['case']}): {100 * g['gain_mean']:+.1f} "
                      f"(before {_mean_std(g['mIoU_before'])}, after {_mean_std(g['mIoU_after'])})")
        goal = 0.95 if not still else 0.85
        ok &= np.mean(rec) >= goal and np.mean(au) >= goal
        ok &= np.mean(au) >= best_kind[top_kind] and np.mean(au) >= np.mean([r["label_quality"]["AUROC"] for r in rs])
    (work / "finding_power.json").write_text(json.dumps(results, indent=1))
    mode = "stills" if still else "videos"
    worst = min(np.mean([r["queue"]["recall_at_K"] for r in rs]) for rs in results.values())
    worst_au = min(np.mean([r["queue"]["AUROC"] for r in rs]) for rs in results.values())
    print(f"\n{time.perf_counter() - start:.0f} s; figures: {work / 'finding_power.json'}")
    print(f"finding_power ({mode}): recall@K {worst:.3f}, AUROC {worst_au:.3f} at the worst rate "
          f"(goal >= {0.85 if still else 0.95} both, above every single kind and label quality) "
          f"{'PASS' if ok else 'FAIL'}")
    return 0
