"""The CLI words, one module per first word: ``segval X Y`` runs ``segval.commands.X.run_Y(cfg)`` on
``conf/X_Y.yaml`` (``segval X``: ``run(cfg)`` on ``conf/X.yaml``); ``-`` in a word is ``_`` in Python names.

:data:`COMMANDS` is the only list of commands: ``segval --help``, the dispatcher (:mod:`segval.cli`),
``segval validate`` and ``segval demo run`` all read it. This module imports nothing heavy, so the CLI
starts fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    """One ``segval`` command: its words and a one-line help."""

    words: tuple[str, ...]
    help: str

    @property
    def name(self) -> str:
        """``"relabel queue"``: the command as a user types it."""
        return " ".join(self.words)

    @property
    def module(self) -> str:
        """``segval.commands.<first word>``."""
        return f"segval.commands.{self.words[0].replace('-', '_')}"

    @property
    def config(self) -> str:
        """The config name: ``conf/<words joined by _>.yaml``."""
        return "_".join(self.words).replace("-", "_")

    @property
    def function(self) -> str:
        """``run`` for a one-word command, ``run_<second word>`` otherwise."""
        return "run" if len(self.words) == 1 else f"run_{self.words[1].replace('-', '_')}"

    @property
    def main_name(self) -> str:
        """The module attribute holding the Hydra app: ``main`` or ``main_<second word>``."""
        return "main" + self.function[len("run"):]

    def load(self) -> Callable[[Any], Any]:
        """The command's ``run(cfg)``: the work, callable in-process with a composed config."""
        return getattr(importlib.import_module(self.module), self.function)

    def load_main(self) -> Callable[[], Any]:
        """The command's Hydra app (reads ``sys.argv``)."""
        return getattr(importlib.import_module(self.module), self.main_name)


COMMANDS: tuple[Command, ...] = (
    Command(("train",), "train a baseline on a dataset package; writes checkpoints and metrics.json"),
    Command(("eval",), "evaluate a checkpoint on any split (ckpt_path=... data=...)"),
    Command(("analyze",), "why weak classes are weak: findings.json + report (run_dir=... or ckpt_path=...)"),
    Command(("qa",), "QA checks per image and split: qa.json + qa.md; exit 1 on findings >= qa.fail_on"),
    Command(("agreement",), "inter-annotator IoU per class / group against targets (sets=[a.json,b.json])"),
    Command(("compare",), "runs per dataset version over seeds: deltas vs a baseline beyond seed noise"),
    Command(("gate",), "release verdict from a policy (conf/gate): exit 0 pass, 1 fail, 2 cannot decide"),
    Command(("validate",), "qa -> train -> analyze -> relabel queue -> compare -> gate for a version; resumable"),
    Command(("data", "render"), "render the demo tabletop dataset package (pybullet)"),
    Command(("data", "check"), "validate a dataset package or COCO export and print a summary"),
    Command(("dataset", "import"), "COCO / panoptic / CVAT / Label Studio / VOC / labelme export -> a new package"),
    Command(("dataset", "export"), "package -> COCO RLE / label maps / COCO panoptic"),
    Command(("dataset", "split"), "re-split keeping videos whole, class shares within tolerance"),
    Command(("dataset", "stats"), "per-split class statistics, plots and a mosaic"),
    Command(("dataset", "clean"), "3x3 open/close, edge refinement, small components -> a new version"),
    Command(("dataset", "release"), "release a package as <releases>/<X.Y.Z>/: CHANGELOG, card, read-only, "
                                    "never overwritten"),
    Command(("dataset", "diff"), "added / changed / deprecated ids, pixels per class"),
    Command(("dataset", "publish"), "upload a released version to the Hugging Face Hub (tag per version; "
                                    "publish.dry_run=true)"),
    Command(("dataset", "guideline"), "the annotation guideline from the data: class table, examples, rules, pairs "
                                      "to clarify (guideline.md + self-contained .html)"),
    Command(("relabel", "queue"), "ranked relabel queue (queue.json/csv) from findings + model-free evidence"),
    Command(("relabel", "find"), "from a dataset to a relabel queue: trains the baseline (or K cross-fit models), "
                                 "ranks every image by still-image + video evidence"),
    Command(("relabel", "embed"), "SAM 2 image embeddings into the cache (Lightning predict, resumable)"),
    Command(("relabel", "propose"), "SAM 2 proposals for a queue (proposals.json)"),
    Command(("relabel", "export"), "queue -> Label Studio tasks + config / CVAT COCO 1.0 package"),
    Command(("relabel", "import"), "Label Studio / CVAT corrections -> a new dataset version"),
    Command(("qa", "sample"), "reproducible review sample (15%), stratified by class and annotator"),
    Command(("qa", "sam-audit"), "IoU of SAM-assisted masks vs their manual corrections per class; larger sample "
                                 "when < 90%"),
    Command(("qa", "pilot"), "the guideline pilot: plan (N images x M annotators, LS / CVAT tasks) or score it "
                             "(per-class agreement, classes under 80% -> sections to clarify)"),
    Command(("domain-gap",), "one checkpoint on the annotation split and a second domain: gap per class"),
    Command(("demo", "inject"), "copy a clean package with known label errors; errors.json outside"),
    Command(("demo", "oracle"), "answer a relabel queue with the clean truth (CVAT COCO 1.0)"),
    Command(("demo", "run"), "the whole loop: render, inject, train, queue, oracle, import, retrain"),
)


def find_command(words: list[str] | tuple[str, ...]) -> Command | None:
    """The command whose words start ``words`` (the longest match: ``qa sample`` before ``qa``), or None."""
    for cmd in sorted(COMMANDS, key=lambda c: -len(c.words)):
        if tuple(words[: len(cmd.words)]) == cmd.words:
            return cmd
    return None


def command_named(name: str) -> Command:
    """The command ``name`` (``"relabel queue"``); KeyError for an unknown one."""
    for cmd in COMMANDS:
        if cmd.name == name:
            return cmd
    raise KeyError(name)


def command_for_config(config: str) -> Command | None:
    """The command whose config is ``conf/<config>.yaml``, or None."""
    return next((c for c in COMMANDS if c.config == config), None)
