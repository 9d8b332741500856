"""`segval qa`: run the QA checks over a dataset package; writes qa.json + qa.md into the run directory.

Exit code: 0 clean, 1 findings at or above ``qa.fail_on``, 2 could not run (bad data or config).
"""

from __future__ import annotations

import sys
from pathlib import Path

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from segval.app import segval_app


def open_package(cfg: DictConfig) -> Any:
    """Open ``cfg.data`` (a package root, or a plain COCO export when ``data.annotations`` is set) directly.

    Unlike the training data module this needs no train / val split and does not import torch, so
    a QA run starts in well under a second; ``cfg.dataset`` gets the package name and version.
    """
    from segval.dataset.package import DatasetPackage
    from segval.errors import ConfigError

    data = cfg.data
    max_pixels = int(data.get("max_pixels") or 64_000_000)
    if data.get("annotations"):
        if not data.get("images"):
            raise ConfigError("data.annotations is set but data.images is not: pass the folder the file_name "
                              "entries are relative to")
        pkg = DatasetPackage.from_coco(data.annotations, data.images, split="train",
                                       background=data.get("background", "auto"), max_pixels=max_pixels)
    elif data.get("root"):
        pkg = DatasetPackage.open(data.root, max_pixels=max_pixels)
    else:
        raise ConfigError("no dataset given: set data.root=<package folder> (data=package) or "
                          "data=coco data.annotations=<file.json> data.images=<folder>")
    with open_dict(cfg):
        cfg.dataset.name = pkg.name
        cfg.dataset.version = str(pkg.version)
    return pkg


def annotator_inputs(cfg: DictConfig, pkg: Any, qa_cfg: Any) -> tuple[Any, Any]:
    """``annotators.agreement`` (read) and ``annotators.previous`` (correction rates of the previous version's
    annotators, from the diff previous -> this package); (None, None) when not given."""
    import json

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
        from segval.dataset.versions import diff_packages
        from segval.qa.annotators import correction_rates

        prev = DatasetPackage.open(str(ann.previous))
        corrections = correction_rates(prev, diff_packages(prev, pkg), missing=qa_cfg.annotator_missing)
    return agreement, corrections


@segval_app("qa")
def main(cfg: DictConfig) -> None:
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
    if dec["exit_code"]:
        sys.exit(dec["exit_code"])


if __name__ == "__main__":
    main()
