"""`segval dataset release` / `segval dataset diff`: versioned, read-only dataset releases.

    segval dataset release source=<working package> releases=<folder of versions> bump=minor notes="..."
    segval dataset release source=<working package> releases=<folder of versions> version=2.0.0
    segval dataset diff a=<package> b=<package>

A release is written to ``<releases>/<X.Y.Z>/`` (a dataset package with its card README.md and
CHANGELOG.md), never overwritten and made read-only; see :mod:`segval.dataset.versions`.
A diff is written as diff.json and diff.md into the run directory and printed.
Run as a module: ``python -m segval.dataset_versions_app release|diff key=value ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from segval.app import segval_app
from segval.errors import ConfigError


def _progress(desc: str):
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, unit="img", disable=None)


@segval_app("dataset_release")
def release_main(cfg: DictConfig) -> dict:
    from segval.dataset.versions import BUMPS, release

    missing = [k for k in ("source", "releases") if not cfg.get(k)]
    if missing:
        raise ConfigError(f"missing {', '.join(f'{k}=...' for k in missing)} on the command line")
    if not cfg.version and cfg.bump not in BUMPS:
        raise ConfigError(f"bump must be one of {list(BUMPS)} (or give version=X.Y.Z), got {cfg.bump!r}")
    res = release(cfg.source, cfg.releases, bump=cfg.bump, version=str(cfg.version) if cfg.version else None,
                  notes=str(cfg.notes or ""), progress=_progress("diff"))
    if res["diff"] is not None:
        t = res["diff"]["totals"]
        print(f"changes since {res['previous']}: images " + ", ".join(f"{v} {k}" for k, v in t["images"].items())
              + "; annotations " + ", ".join(f"{v} {k}" for k, v in t["annotations"].items()))
    else:
        print(f"first release (version from {Path(cfg.source) / 'dataset.yaml'}"
              f"{' overridden by version=' if cfg.version else ''})")
    print(f"released {res['version']} (read-only): {res['path']}\ncard: {Path(res['path']) / 'README.md'}\n"
          f"changelog: {Path(cfg.releases) / 'CHANGELOG.md'}")
    return res


@segval_app("dataset_diff")
def diff_main(cfg: DictConfig) -> dict:
    from segval.dataset.package import DatasetPackage
    from segval.dataset.versions import diff_packages, format_diff
    from segval.io import write_json, write_text

    missing = [k for k in ("a", "b") if not cfg.get(k)]
    if missing:
        raise ConfigError(f"missing {', '.join(f'{k}=<package>' for k in missing)} on the command line")
    diff = diff_packages(DatasetPackage.open(cfg.a), DatasetPackage.open(cfg.b), progress=_progress("diff"))
    out = Path(cfg.paths.output_dir)
    md = format_diff(diff)
    write_json(out / "diff.json", diff)
    write_text(out / "diff.md", md)
    print(md.rstrip())
    print(f"diff: {out / 'diff.json'}\nreport: {out / 'diff.md'}")
    return diff


if __name__ == "__main__":
    commands = {"release": release_main, "diff": diff_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: python -m segval.dataset_versions_app release|diff key=value ...", file=sys.stderr)
        sys.exit(2)
    command = commands[sys.argv.pop(1)]
    command()
