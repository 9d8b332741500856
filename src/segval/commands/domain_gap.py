"""`segval domain-gap`: one checkpoint on the annotation split and on a second domain, gap per class.

    segval domain-gap ckpt_path=<ckpt> data.root=<package> target.split=robot_cam
    segval domain-gap ckpt_path=<ckpt> data.root=<package> split=val target.root=<robot package> target.split=test

Both evaluations run through :func:`segval.commands.eval.run` (same checkpoint, same metric definitions)
into ``source/`` and ``target/`` of the run directory; the gap table goes to ``domain_gap.json`` and
``domain_gap.md`` (:mod:`segval.analysis.domain_gap`). A target of another taxonomy is refused before
anything is evaluated. ``segval dataset release domain_gap=<run>/domain_gap.json`` puts it in the card.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from segval.commands._common import segval_app
from segval.errors import ConfigError


def _side(cfg: DictConfig, out: Path, *, root: str | None, split: str) -> DictConfig:
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.paths.output_dir = str(out)
        sub.split = split
        if root is not None:
            sub.data.root = root
    return sub


def run(cfg: DictConfig) -> dict[str, Any]:
    """Check the taxonomies, evaluate both sides, return the domain_gap document (also written)."""
    from segval.analysis.domain_gap import check_same_taxonomy, domain_gap, format_domain_gap
    from segval.dataset.package import DatasetPackage
    from segval.io import write_json, write_text

    if cfg.data.get("annotations"):
        raise ConfigError("segval domain-gap works on dataset packages: data=package data.root=<package>")
    if not cfg.data.get("root"):
        raise ConfigError("missing data.root=<package> (the annotation package)")
    source_split, target_split = str(cfg.split), str(cfg.target.split)
    target_root = str(cfg.target.root) if cfg.target.get("root") else str(cfg.data.root)
    if Path(target_root).resolve() == Path(str(cfg.data.root)).resolve() and target_split == source_split:
        raise ConfigError(f"source and target are the same split {source_split!r} of {target_root}: give another "
                          "target.split= or target.root=")
    src_pkg = DatasetPackage.open(str(cfg.data.root))
    tgt_pkg = src_pkg if target_root == str(cfg.data.root) else DatasetPackage.open(target_root)
    src_pkg.split(source_split)
    tgt_pkg.split(target_split)  # ConfigError naming the splits
    check_same_taxonomy(src_pkg.taxonomy, tgt_pkg.taxonomy, where=Path(target_root) / "dataset.yaml")
    from segval.commands.eval import run as evaluate  # torch / Lightning: only once the inputs are known to be good
    out = Path(cfg.paths.output_dir)
    print(f"source: {src_pkg.name} {src_pkg.version} / {source_split}")
    source = evaluate(_side(cfg, out / "source", root=None, split=source_split))
    print(f"\ntarget: {tgt_pkg.name} {tgt_pkg.version} / {target_split}")
    target = evaluate(_side(cfg, out / "target", root=target_root, split=target_split))
    doc = domain_gap(source, target)
    write_json(out / "domain_gap.json", doc)
    md = format_domain_gap(doc)
    write_text(out / "domain_gap.md", md)
    print("\n" + md.rstrip())
    print(f"\ndomain gap: {out / 'domain_gap.json'}\n            {out / 'domain_gap.md'}")
    return doc


@segval_app("domain_gap")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)["summary"].get("mIoU_gap")


if __name__ == "__main__":
    main()
