"""`segval qa` / `segval qa sample` / `segval qa sam-audit`: data quality and the annotation team by numbers.

    segval qa data=package data.root=<package> qa.fail_on=warning
    segval qa sample data=package data.root=<package> split=train fraction=0.15 seed=0
    segval qa sam-audit data.root=<imported version> proposals=<relabel run>/proposals.json
    segval qa pilot data.root=<package> images=20 annotators=3            # plan the guideline pilot
    segval qa pilot pilot=<plan run> sets=[a.json,b.json,c.json]          # score it

``qa`` runs the QA checks (:mod:`segval.qa.runner`) and writes qa.json + qa.md into the run directory; exit
code 0 clean, 1 findings at or above ``qa.fail_on``, 2 could not run (bad data or config). ``sample`` writes
sample.json, sample.csv and sample.md (:mod:`segval.qa.sampling`); ``sam-audit`` writes sam_audit.json and
sam_audit.md (:mod:`segval.qa.sam_audit`); ``pilot`` writes pilot.json + pilot.md (+ the annotators' task files
when planning, agreement.json when scoring; :mod:`segval.relabel.pilot`, which writes Label Studio / CVAT files and
so lives in ``relabel``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segval.commands._common import dispatch, open_package, segval_app
from segval.errors import ConfigError
from segval.io import write_json, write_text


def annotator_inputs(cfg: DictConfig, pkg: Any, qa_cfg: Any) -> tuple[Any, Any]:
    """``annotators.agreement`` (read) and ``annotators.previous`` (correction rates of the previous version's
    annotators, from the diff previous -> this package); (None, None) when not given."""
    from segval.errors import DatasetError

    ann = cfg.get("annotators") or {}
    agreement = corrections = None
    if ann.get("agreement"):
        path = Path(str(ann.agreement))
        if not path.is_file():
            raise DatasetError("agreement file not found; pass the agreement.json of `segval agreement`", path=path)
        agreement = json.loads(path.read_text(encoding="utf-8"))
    if ann.get("previous"):
        from segval.dataset.package import DatasetPackage
        from segval.release.versions import diff_packages
        from segval.qa.annotators import correction_rates

        prev = DatasetPackage.open(str(ann.previous))
        corrections = correction_rates(prev, diff_packages(prev, pkg), missing=qa_cfg.annotator_missing)
    return agreement, corrections


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the QA checks; writes qa.json + qa.md and returns the report (``decision.exit_code``: 0 / 1)."""
    from segval.qa.runner import QAConfig, run_qa, write_report

    qa_cfg = QAConfig.from_mapping(OmegaConf.to_container(cfg.qa, resolve=True))
    pkg = open_package(cfg)
    agreement, corrections = annotator_inputs(cfg, pkg, qa_cfg)
    report = run_qa(pkg, qa_cfg, splits=list(cfg.splits) if cfg.splits else None, progress=bool(cfg.progress),
                    agreement=agreement, corrections=corrections)
    json_path, md_path = write_report(report, Path(cfg.paths.output_dir), max_listed=int(cfg.max_listed))
    c = report["counts"]
    for s, sp in report["splits"].items():
        found = ", ".join(f"{k} {v}" for k, v in sp["counts"].items() if v) or "no findings"
        print(f"{s}: {sp['flagged_images']}/{sp['images']} images flagged; {found}")
    dec = report["decision"]
    print(f"\n{pkg.name} {pkg.version}: {dec['status'].upper()} ({c['flagged_images']} of {c['images']} images "
          f"flagged; worst severity {dec['worst_severity'] or 'none'}, fail_on={dec['fail_on']})")
    if report.get("annotators"):
        from segval.qa.annotators import format_annotators

        print("\n" + format_annotators(report["annotators"]).rstrip())
        print(f"annotators: {json_path.parent / 'annotators.csv'}")
    print(f"report: {json_path}\n        {md_path}")
    return report


@segval_app("qa")
def main(cfg: DictConfig) -> None:
    code = run(cfg)["decision"]["exit_code"]
    if code:
        sys.exit(code)


def run_sample(cfg: DictConfig) -> dict[str, Any]:
    from segval.qa.sampling import format_sample, review_sample, sample_csv

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


def run_sam_audit(cfg: DictConfig) -> dict[str, Any]:
    from segval.qa.sam_audit import audit, format_audit, read_proposals

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


def run_pilot(cfg: DictConfig) -> dict[str, Any]:
    """Plan the guideline pilot (no ``sets``) or score it (``pilot=`` + ``sets=[...]``)."""
    from segval.commands._common import as_list, output_dir
    from segval.relabel.pilot import format_pilot

    out = output_dir(cfg)
    sets = as_list(cfg.sets, "sets")
    doc = _score_pilot(cfg, sets) if sets else _plan_pilot(cfg, out)
    write_json(out / "pilot.json", doc)
    write_text(out / "pilot.md", format_pilot(doc))
    if doc["status"] == "planned":
        print(f"pilot planned: {len(doc['annotators'])} annotators x {len(doc['images'])} images of "
              f"{doc['dataset']['name']} {doc['dataset']['version']} / {doc['split']} ({doc['videos']} videos)")
        for name, files in doc["tasks"].items():
            print(f"  {name}: " + ", ".join(f"{v}" for k, v in files.items() if k in ("labelstudio", "cvat")))
        print(f"score it with: segval qa pilot pilot={out / 'pilot.json'} sets=[<one export per annotator>]")
    else:
        write_json(out / "agreement.json", doc["agreement"])
        for c in doc["classes"]:
            iou = "n/a" if c["IoU"] is None else f"{100 * c['IoU']:.1f}%"
            print(f"  {c['name']}: {iou}" + ("  BELOW" if c["flagged"] else ""))
        print(f"pilot {doc['status'].upper()}: {len(doc['flagged_classes'])} class(es) under "
              f"{100 * doc['threshold']:.0f}% inter-annotator IoU")
        for s in doc["sections_to_clarify"]:
            print(f"  clarify '{s['section']}'" + (f" (most confused with {s['partner']})" if s["partner"] else "")
                  + "; images " + ", ".join(str(im["image_id"]) for im in s["images"]))
        print(f"agreement: {out / 'agreement.json'}")
    print(f"pilot: {out / 'pilot.json'}\n       {out / 'pilot.md'}")
    return doc


def _plan_pilot(cfg: DictConfig, out: Path) -> dict[str, Any]:
    from segval.relabel.pilot import plan_pilot, write_tasks

    if cfg.pilot:
        raise ConfigError("pilot= is given but sets= is empty: to score a pilot pass the returned sets "
                          "(sets=[a.json,b.json,...]); to plan a new one leave pilot= out")
    pkg = open_package(cfg, plain_coco=False)
    annotators = cfg.annotators if isinstance(cfg.annotators, int) else [str(a) for a in cfg.annotators]
    plan = plan_pilot(pkg, str(cfg.split), images=int(cfg.images), annotators=annotators, seed=int(cfg.seed),
                      threshold=0.8 if cfg.threshold is None else float(cfg.threshold), guideline=str(cfg.guideline) if cfg.guideline else None)
    plan["tasks"] = write_tasks(plan, pkg, out / "tasks", fmt=str(cfg.format), prefill=bool(cfg.prefill),
                                image_url=cfg.image_url)
    plan["prefill"] = bool(cfg.prefill)
    return plan


def _score_pilot(cfg: DictConfig, sets: list[str]) -> dict[str, Any]:
    from omegaconf import open_dict

    from segval.commands._common import progress
    from segval.relabel.pilot import score_pilot

    if not cfg.pilot:
        raise ConfigError("sets= needs pilot=<the planned pilot.json or its run directory>")
    path = Path(str(cfg.pilot))
    path = path / "pilot.json" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"pilot={path}: not found; plan the pilot first (segval qa pilot data.root=...)")
    plan = json.loads(path.read_text(encoding="utf-8"))
    if not cfg.data.get("root") and not cfg.data.get("annotations"):
        with open_dict(cfg):
            cfg.data.root = (plan.get("dataset") or {}).get("root")
    pkg = open_package(cfg, plain_coco=False)
    if pkg.name != (plan.get("dataset") or {}).get("name"):
        raise ConfigError(f"the pilot was planned on dataset {plan.get('dataset', {}).get('name')!r}, data.root is "
                          f"{pkg.name!r}")
    doc = score_pilot(plan, pkg, sets, threshold=None if cfg.threshold is None else float(cfg.threshold), min_pixels=int(cfg.min_pixels),
                      examples=int(cfg.examples), progress=progress("pilot"))
    doc["scored"]["pilot"] = str(path)
    return doc


main_sample = segval_app("qa_sample")(run_sample)
main_sam_audit = segval_app("qa_sam_audit")(run_sam_audit)
main_pilot = segval_app("qa_pilot")(run_pilot)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("sample", "sam-audit", "pilot"):
        dispatch("segval.commands.qa", {"sample": main_sample, "sam-audit": main_sam_audit, "pilot": main_pilot})
    else:
        main()
