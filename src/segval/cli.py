"""`segval <command> [overrides]`: dispatch to the Hydra app of each command."""

from __future__ import annotations

import importlib
import importlib.util
import sys

# command words -> ("module" or "module:function" of a Hydra app, default function `main`; one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("train",): ("segval.train", "train a baseline on a dataset package; writes checkpoints and metrics.json"),
    ("eval",): ("segval.eval", "evaluate a checkpoint on any split (ckpt_path=... data=...)"),
    ("analyze",): ("segval.analyze", "why weak classes are weak: findings.json + report (run_dir=... or ckpt_path=...)"),
    ("qa",): ("segval.qa_app", "QA checks per image and split: qa.json + qa.md; exit 1 on findings >= qa.fail_on"),
    ("agreement",): ("segval.agreement_app", "inter-annotator IoU per class / group against targets (sets=[a.json,b.json])"),
    ("compare",): ("segval.compare_app", "runs per dataset version over seeds: deltas vs a baseline beyond seed noise"),
    ("gate",): ("segval.gate_app", "release verdict from a policy (conf/gate): exit 0 pass, 1 fail, 2 cannot decide"),
    ("validate",): ("segval.validate", "qa -> train -> analyze -> relabel queue -> compare -> gate for a version; resumable"),
    ("data", "render"): ("segval.data_render", "render the demo tabletop dataset package (pybullet)"),
    ("data", "check"): ("segval.data_check", "validate a dataset package or COCO export and print a summary"),
    ("dataset", "import"): ("segval.dataset_io_app:import_main", "labelme folder / COCO export / label maps -> a new package"),
    ("dataset", "export"): ("segval.dataset_io_app:export_main", "package -> COCO RLE / label maps / COCO panoptic"),
    ("dataset", "split"): ("segval.dataset_split_app", "re-split keeping videos whole, class shares within tolerance"),
    ("dataset", "stats"): ("segval.dataset_stats_app", "per-split class statistics, plots and a mosaic"),
    ("dataset", "clean"): ("segval.dataset_clean_app", "3x3 open/close, edge refinement, small components -> a new version"),
    ("dataset", "release"): ("segval.dataset_versions_app:release_main",
                             "release a package as <releases>/<X.Y.Z>/: CHANGELOG, card, read-only, never overwritten"),
    ("dataset", "diff"): ("segval.dataset_versions_app:diff_main", "added / changed / deprecated ids, pixels per class"),
    ("relabel", "queue"): ("segval.relabel_app:queue_main", "ranked relabel queue (queue.json/csv) from findings + model-free evidence"),
    ("relabel", "embed"): ("segval.relabel_app:embed_main", "SAM 2 image embeddings into the cache (Lightning predict, resumable)"),
    ("relabel", "propose"): ("segval.relabel_app:propose_main", "SAM 2 proposals for a queue (proposals.json)"),
    ("relabel", "export"): ("segval.relabel_app:export_main", "queue -> Label Studio tasks + config / CVAT COCO 1.0 package"),
    ("relabel", "import"): ("segval.relabel_app:import_main", "Label Studio / CVAT corrections -> a new dataset version"),
    ("dataset", "publish"): ("segval.dataset_versions_app:publish_main",
                             "upload a released version to the Hugging Face Hub (tag per version; publish.dry_run=true)"),
    ("qa", "sample"): ("segval.qa_team_app:sample_main", "reproducible review sample (15%), stratified by class and annotator"),
    ("qa", "sam-audit"): ("segval.qa_team_app:sam_audit_main",
                          "IoU of SAM-assisted masks vs their manual corrections per class; larger sample when < 90%"),
    ("domain-gap",): ("segval.domain_gap_app", "one checkpoint on the annotation split and a second domain: gap per class"),
    ("demo", "inject"): ("segval.demo_app:inject_main", "copy a clean package with known label errors; errors.json outside"),
    ("demo", "oracle"): ("segval.demo_app:oracle_main", "answer a relabel queue with the clean truth (CVAT COCO 1.0)"),
    ("demo", "run"): ("segval.demo_app:run_main", "the whole loop: render, inject, train, queue, oracle, import, retrain"),
}


def usage() -> str:
    lines = [
        "usage: segval <command> [hydra overrides] [-m] [--cfg job] [--help]",
        "",
        "commands:",
    ]
    for words, (_, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<16} {text}")
    lines += [
        "",
        "Each command is a Hydra app: `segval train --help` lists its config groups,",
        "`segval train trainer.max_steps=100 data.root=...` overrides, `-m` sweeps.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        sys.exit(0 if args else 2)
    for words, (target, _) in sorted(COMMANDS.items(), key=lambda kv: -len(kv[0])):
        if tuple(args[: len(words)]) == words:
            module, _, function = target.partition(":")
            command = importlib.import_module(module)
            # Lightning's DDP launcher starts the other ranks as `python -m <__main__.__spec__.name> <argv[1:]>`:
            # make that the command's module, so they run the same command with the same overrides
            sys.modules["__main__"].__spec__ = importlib.util.find_spec(module)
            sys.argv = [command.__file__, *args[len(words) :]]
            getattr(command, function or "main")()
            return
    print(f"segval: unknown command {' '.join(args[:2])!r}\n\n{usage()}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
