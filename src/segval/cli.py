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
