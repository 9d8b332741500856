"""Finding power: does segval's relabel queue find the injected label errors, and better than cleanlab?

On the outputs of one `segval demo run` (so every figure uses the same predictions: the best
checkpoint of the training on the corrupted package, evaluated on its train split):

* **recall@K**: share of the corrupted train images among the top K images of segval's queue,
  K = 2 x the number corrupted (the queue is rebuilt with :func:`segval.relabel.queue.build_queue`
  over every train image, with the same run and ranking, so K need not equal the demo's budget);
  random ranking gives K / N in expectation;
* **per-image AUROC** (corrupted vs clean images) of segval's image score and of
  cleanlab.segmentation's label-quality score (``get_label_quality_scores(method="softmin")``,
  lower = worse, so its negation is ranked) computed here from the checkpoint's softmax on
  the same images (full resolution, the eval transforms). The per_image.csv ``label_quality`` column
  is the same formula in segval: the largest difference between the two is printed as a check
  that both saw the same predictions. Images the queue does not list at all share the lowest score
  (ties count one half);
* whether each injected swap pair is the confusion the findings name (findings.json of
  ``<run>/analyze`` (val) and, when present, ``<run>/analyze_train`` (``segval analyze
  run_dir=<run>/eval_train``), class -> confusion partner; the findings' pairs the queue ranked with; and the
  queue's ``label_confusions``: class pairs the annotations themselves confuse across neighbouring frames);
* the **mIoU gain** after the oracle relabel (metrics.json of the two trainings, clean val split).

Goals: recall >= 0.90, AUROC >= cleanlab's, the right pair named, gain >= 5 mIoU.

    pip install 'segval[bench]'          # cleanlab, benchmark-only
    python benchmarks/finding_power.py outputs/demo/<run>  [--json out.json]

``--still`` / ``--video``: `segval relabel find` over injection rates and seeds on a render, stills or videos
(benchmarks/finding_sweep.py has the details).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative) + 0.5 P(tie)
    (Mann-Whitney U with mid-ranks). NaN without a positive or a negative.

    >>> auroc([0.9, 0.1, 0.5, 0.5], [True, False, True, False])
    0.875
    """
    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), float)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # mid-ranks of ties, 1-based
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def recall_at_k(ranked_ids: Sequence[int], positives: set[int], k: int) -> float:
    """Share of ``positives`` among the first ``k`` ids of ``ranked_ids``.

    >>> recall_at_k([5, 3, 9, 1], {3, 1}, 2)
    0.5
    """
    return len(set(list(ranked_ids)[:k]) & positives) / len(positives) if positives else float("nan")


def pairs_named(findings: Mapping[str, Any] | None, pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """For each pair (a, b): does findings.json name b as a's confusion partner, or a as b's?"""
    out: dict[str, Any] = {}
    partner: dict[str, list[str]] = {}
    if findings:
        for c in findings.get("classes", []):
            for cause in c.get("causes", []):
                if cause.get("cause") == "confusion":
                    partner.setdefault(c["name"], []).append((cause.get("evidence") or {}).get("partner"))
    for a, b in pairs:
        out[f"{a}<->{b}"] = {"named": b in partner.get(a, []) or a in partner.get(b, []),
                             a: partner.get(a, []), b: partner.get(b, [])}
    return out


def _segval_scores(run: Path, pkg, n_images: int) -> tuple[list[int], dict[int, float], str]:
    """Image ids ranked by segval's queue (all train images) and each one's image score."""
    qcfg = {}
    qpath = run / "queue" / "queue.json"
    if qpath.is_file():
        qcfg = json.loads(qpath.read_text()).get("ranking") or {}
    try:
        from segval.relabel.queue import build_queue
        from segval.relabel.scoring import RankingConfig

        keys = set(RankingConfig().to_dict())
        ranking = {k: v for k, v in qcfg.items() if k in keys} or None
        queue = build_queue(pkg, split="train", budget=n_images, run_dir=run / "eval_train", ranking=ranking)
        how = f"build_queue over all {n_images} train images (run_dir eval_train, the demo's ranking)"
    except ImportError:
        queue = json.loads(qpath.read_text())
        how = f"the demo's queue.json only ({queue.get('budget')} images; the rest tie at the bottom)"
    ranked: list[int] = []
    score: dict[int, float] = {}
    for it in sorted(queue["items"], key=lambda it: it["rank"]):
        i = int(it["image_id"])
        if i not in score:
            ranked.append(i)
            s = (it.get("evidence") or {}).get("image_score")
            score[i] = float(s if s is not None else it["score"])
    return ranked, score, how


def _predict(ckpt: str, split, mean: Sequence[float], std: Sequence[float], records, batch: int = 8):
    """Softmax probabilities float32[N, C, H, W] per chunk (yields (records, probs, labels))."""
    import torch

    from segval.models import SegmentationModule

    model = SegmentationModule.from_checkpoint(ckpt).eval()
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    for k in range(0, len(records), batch):
        recs = records[k: k + batch]
        imgs = torch.stack([torch.from_numpy(split.read_image(r)).permute(2, 0, 1) for r in recs]).float() / 255
        with torch.no_grad():
            logits = model((imgs - m) / s)
        probs = logits.float().softmax(dim=1).numpy()
        labels = np.stack([split.semantic_target(r) for r in recs])
        yield recs, probs, labels


def _cleanlab_scores(ckpt: str, split, mean, std) -> dict[int, float]:
    from cleanlab.segmentation.rank import get_label_quality_scores

    out: dict[int, float] = {}
    records = sorted(split.images, key=lambda r: r.id)
    for recs, probs, labels in _predict(ckpt, split, mean, std, records):
        if (labels == 255).any():  # cleanlab has no void label: give void pixels their predicted class
            labels = np.where(labels == 255, probs.argmax(1), labels)
        scores, _ = get_label_quality_scores(labels.astype(np.int64), probs, method="softmin", verbose=False)
        for r, sc in zip(recs, scores):
            out[r.id] = float(sc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, nargs="?", help="a `segval demo run` directory (holds demo.json, errors.json, ...)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--still", action="store_true", help="sweep `segval relabel find` on stills (benchmarks/finding_sweep.py)")
    mode.add_argument("--video", action="store_true", help="the same sweep, videos kept")
    ap.add_argument("--render", type=Path, default=Path("data/demo"), help="sweep: the clean render to inject into")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.3], help="sweep: injection rates")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sweep: injection seeds")
    ap.add_argument("--work", type=Path, default=Path("outputs/finding_power"), help="sweep: where the cases go")
    ap.add_argument("--train", nargs="*", default=None, help="sweep: `segval train` overrides of find's training")
    ap.add_argument("--swap-pairs", default=None, help="sweep: a:b,c:d (default: the render's)")
    ap.add_argument("--gain", action="store_true", help="sweep: mIoU gain after the oracle relabels the queue")
    ap.add_argument("--k-factor", type=float, default=2.0, help="K = k_factor x number of corrupted images")
    ap.add_argument("--no-cleanlab", action="store_true", help="skip cleanlab (not installed)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.still or args.video:
        from finding_sweep import sweep

        return sweep(args)
    if args.run is None:
        ap.error("give a `segval demo run` directory, or --still / --video for the sweep")

    from segval.dataset.package import DatasetPackage
    from segval.demo.inject import load_manifest

    run = args.run
    manifest = load_manifest(run / "errors.json")
    pkg = DatasetPackage.open(manifest["corrupted"]["root"])
    load_manifest(run / "errors.json", package=pkg)  # the manifest of this version
    split = pkg.split(manifest["split"])
    all_ids = sorted(r.id for r in split.images)
    positives = {int(it["image_id"]) for it in manifest["items"]}
    y = [i in positives for i in all_ids]
    k = int(round(args.k_factor * len(positives)))
    result: dict[str, Any] = {"run": str(run), "train_images": len(all_ids), "corrupted": len(positives), "K": k,
                              "random_recall_at_K": k / len(all_ids)}

    ranked, seg_score, how = _segval_scores(run, pkg, len(all_ids))
    floor = min(seg_score.values(), default=0.0) - 1.0
    seg = [seg_score.get(i, floor) for i in all_ids]
    result["segval"] = {"how": how, "recall_at_K": recall_at_k(ranked, positives, k), "AUROC": auroc(seg, y),
                        "images_scored": len(seg_score)}
    by_kind: dict[str, list[int]] = {}
    top = set(ranked[:k])
    for it in manifest["items"]:
        by_kind.setdefault(it["kind"], [0, 0])
        by_kind[it["kind"]][1] += 1
        by_kind[it["kind"]][0] += int(it["image_id"]) in top
    result["segval"]["found_in_top_K_by_kind"] = by_kind

    per_image = run / "eval_train" / "per_image.csv"
    lq: dict[int, float] = {}
    if per_image.is_file():
        with open(per_image, newline="") as f:
            for row in csv.DictReader(f):
                v = float(row["label_quality"])
                if math.isfinite(v):
                    lq[int(row["image_id"])] = v
        lq_scores = [-lq.get(i, 1.0) for i in all_ids]
        lq_rank = sorted(lq, key=lambda i: lq[i])
        result["segval_label_quality_only"] = {"AUROC": auroc(lq_scores, y),
                                               "recall_at_K": recall_at_k(lq_rank, positives, k)}

    from segval.demo.loop import side_metrics

    runs_before = side_metrics(run / "train_before")  # one run, or one per seed (the queue used the first)
    metrics_before = runs_before[0]
    ckpt = metrics_before["checkpoint"]
    if not args.no_cleanlab:
        from omegaconf import OmegaConf

        hydra_cfg = OmegaConf.load(run / "eval_train" / ".hydra" / "config.yaml")
        mean, std = list(hydra_cfg.data.mean), list(hydra_cfg.data.std)
        cl = _cleanlab_scores(ckpt, split, mean, std)
        cl_rank = sorted(cl, key=lambda i: cl[i])
        result["cleanlab"] = {"AUROC": auroc([-cl[i] for i in all_ids], y),
                              "recall_at_K": recall_at_k(cl_rank, positives, k)}
        common = [i for i in all_ids if i in lq]
        if common:
            result["cleanlab"]["max_abs_diff_vs_per_image_label_quality"] = float(
                max(abs(cl[i] - lq[i]) for i in common))

    pairs = [p for p in manifest["config"]["swap_pairs"]]
    swapped = {(it["class"], it["new_class"]) for it in manifest["items"] if it["kind"] == "swap"}
    pairs = [p for p in pairs if (p[0], p[1]) in swapped or (p[1], p[0]) in swapped]
    named = {}
    for name, path in (("val_findings", run / "analyze" / "findings.json"),
                       ("train_findings", run / "analyze_train" / "findings.json"),
                       ("queue_confusion_pairs", None), ("queue_label_confusions", None)):
        if path is None:
            q = run / "queue" / "queue.json"
            qd = json.loads(q.read_text()) if q.is_file() else {}
            if name == "queue_confusion_pairs":  # the findings' confusion pairs the queue ranked with
                qp = (qd.get("inputs") or {}).get("confusion_pairs") or []
            else:  # class pairs the annotations confuse across neighbouring frames
                qp = [e["pair"] for e in qd.get("label_confusions") or []]
            named[name] = {f"{a}<->{b}": {"named": [a, b] in qp or [b, a] in qp} for a, b in pairs}
        elif path.is_file():
            named[name] = pairs_named(json.loads(path.read_text()), pairs)
    result["swap_pairs"] = named

    runs_after = side_metrics(run / "train_after")
    if runs_after:  # means over the seeds of each side
        b = sum(m["summary"]["mIoU"] for m in runs_before) / len(runs_before)
        a = sum(m["summary"]["mIoU"] for m in runs_after) / len(runs_after)
        result["mIoU_before"], result["mIoU_after"], result["mIoU_gain"] = b, a, a - b

    print(json.dumps(result, indent=2))
    s = result["segval"]
    print(f"\nrecall@{k}: segval {s['recall_at_K']:.3f} (goal >= 0.90; random {result['random_recall_at_K']:.3f})")
    cl_auc = result.get("cleanlab", {}).get("AUROC")
    print(f"AUROC: segval {s['AUROC']:.3f}" + ("" if cl_auc is None else f", cleanlab {cl_auc:.3f}") + " (goal: >=)")
    for where, v in named.items():
        print(f"swap pairs named ({where}): " + ", ".join(f"{p}: {'yes' if d['named'] else 'no'}" for p, d in v.items()))
    if "mIoU_gain" in result:
        print(f"mIoU {100 * result['mIoU_before']:.1f} -> {100 * result['mIoU_after']:.1f}: "
              f"gain {100 * result['mIoU_gain']:+.1f} (goal >= +5)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
