"""`segval qa sample` / `segval qa sam-audit`: managing the annotation team by numbers.

    segval qa sample data=package data.root=<package> split=train fraction=0.15 seed=0
    segval qa sam-audit data.root=<imported version> proposals=<relabel run>/proposals.json

``sample`` writes sample.json, sample.csv and sample.md (:mod:`segval.qa.sampling`); ``sam-audit``
writes sam_audit.json and sam_audit.md (:mod:`segval.qa.sam_audit`) into the run directory.
Run as a module: ``python -m segval.qa_team_app sample|sam-audit key=value ...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segval.app import segval_app
from segval.errors import ConfigError


@segval_app("qa_sample")
def sample_main(cfg: DictConfig) -> dict:
    from segval.io import write_json, write_text
    from segval.qa.sampling import format_sample, review_sample, sample_csv
    from segval.qa_app import open_package

    pkg = open_package(cfg)
    by = OmegaConf.to_container(cfg.by, resolve=True) if cfg.by is not None else []
    size = None if cfg.size is None else cfg.size
    sample = review_sample(pkg, str(cfg.split), fraction=cfg.fraction, size=size, seed=int(cfg.seed), by=by,
                           annotator_missing=str(cfg.annotator_missing))
    out = Path(cfg.paths.output_dir)
    write_json(out / "sample.json", sample)
    write_text(out / "sample.csv", sample_csv(sample))
    write_text(out / "sample.md", format_sample(sample))
    for r in sample["strata"]:
        print("  " + ", ".join(f"{k} {v}" for k, v in r["stratum"].items()) + f": {r['sampled']} of {r['population']}")
    print(f"review sample: {sample['size']} of {sample['population']} images of {pkg.name} {pkg.version} / "
          f"{sample['split']} (seed {sample['seed']}, stratified by {' and '.join(sample['by'])})")
    print(f"sample: {out / 'sample.json'}\n        {out / 'sample.csv'}\n        {out / 'sample.md'}")
    return sample


@segval_app("qa_sam_audit")
def sam_audit_main(cfg: DictConfig) -> dict:
    from segval.io import write_json, write_text
    from segval.qa.sam_audit import audit, format_audit, read_proposals
    from segval.qa_app import open_package

    if not cfg.proposals:
        raise ConfigError("missing proposals=<relabel run>/proposals.json (the SAM 2 proposals of `segval relabel`)")
    proposals_path = Path(str(cfg.proposals))
    proposals = read_proposals(proposals_path)
    split = cfg.split
    queue = proposals_path.parent / "queue.json"
    if not split and queue.is_file():
        split = json.loads(queue.read_text(encoding="utf-8")).get("split")
    pkg = open_package(cfg)
    doc = audit(proposals, pkg, str(split or "train"), min_iou=float(cfg.min_iou),
                base_fraction=float(cfg.base_fraction), margin=float(cfg.margin), proposals_path=proposals_path)
    out = Path(cfg.paths.output_dir)
    write_json(out / "sam_audit.json", doc)
    write_text(out / "sam_audit.md", format_audit(doc))
    print(format_audit(doc).rstrip())
    flagged = doc["summary"]["flagged_classes"]
    print(f"\n{len(flagged)} class(es) below {100 * doc['min_iou']:.0f}% IoU"
          + (": " + ", ".join(f"{c['name']} (review {c['recommended_sample']} of {c['proposals']})"
                              for c in doc["classes"] if c["flagged"]) if flagged else ""))
    print(f"audit: {out / 'sam_audit.json'}\n       {out / 'sam_audit.md'}")
    return doc


if __name__ == "__main__":
    commands = {"sample": sample_main, "sam-audit": sam_audit_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: python -m segval.qa_team_app sample|sam-audit key=value ...", file=sys.stderr)
        sys.exit(2)
    command = commands[sys.argv.pop(1)]
    command()
