"""`segval dataset release` / `segval dataset diff`: versioned, read-only dataset releases.

    segval dataset release source=<working package> releases=<folder of versions> bump=minor notes="..."
    segval dataset release source=<working package> releases=<folder of versions> version=2.0.0
    segval dataset diff a=<package> b=<package>
    segval dataset publish releases=<folder of versions> repo_id=<org>/<name> [publish.dry_run=true]

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
                  notes=str(cfg.notes or ""), progress=_progress("diff"), baseline=cfg.get("baseline") or None,
                  domain_gap=cfg.get("domain_gap") or None, loaders=bool(cfg.get("loaders", True)))
    if res["diff"] is not None:
        t = res["diff"]["totals"]
        print(f"changes since {res['previous']}: images " + ", ".join(f"{v} {k}" for k, v in t["images"].items())
              + "; annotations " + ", ".join(f"{v} {k}" for k, v in t["annotations"].items()))
    else:
        print(f"first release (version from {Path(cfg.source) / 'dataset.yaml'}"
              f"{' overridden by version=' if cfg.version else ''})")
    if res.get("baseline"):
        s = res["baseline"]["summary"]
        miou = s["summary"].get("mIoU")
        print(f"baseline: {s['model']} step {s['step']}, {s['split']} mIoU "
              f"{'n/a' if miou is None else f'{100 * miou:.2f}%'} -> {Path(res['path']) / 'baseline'} "
              f"({', '.join(res['baseline']['files'])})")
    if res.get("loaders"):
        print(f"loaders: {Path(res['path']) / 'loaders'} ({', '.join(res['loaders'])})")
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


@segval_app("dataset_publish")
def publish_main(cfg: DictConfig) -> dict:
    from segval.dataset.publish import format_plan, publish
    from segval.dataset.versions import list_releases, parse_version
    from segval.errors import DatasetError
    from segval.io import write_json

    if not cfg.repo_id:
        raise ConfigError("missing repo_id=<user or organisation>/<name> (the Hub dataset repository)")
    if cfg.root and cfg.releases:
        raise ConfigError("give root=<releases>/<X.Y.Z> or releases=<folder> [version=X.Y.Z], not both")
    if cfg.root:
        root = Path(cfg.root)
    elif cfg.releases:
        released = list_releases(cfg.releases)
        if not released:
            raise DatasetError("no released version here; run `segval dataset release` first", path=cfg.releases)
        version = ".".join(map(str, parse_version(str(cfg.version)))) if cfg.version else released[-1]
        if version not in released:
            raise ConfigError(f"version {version} is not released in {cfg.releases} (released: {released})")
        root = Path(cfg.releases) / version
    else:
        raise ConfigError("missing root=<releases>/<X.Y.Z> (or releases=<folder> [version=X.Y.Z])")
    res = publish(root, str(cfg.repo_id), token=cfg.publish.token or None, private=bool(cfg.publish.private),
                  dry_run=bool(cfg.publish.dry_run))
    out = Path(cfg.paths.output_dir) / "publish.json"
    write_json(out, res)
    print(format_plan(res))
    if res["dry_run"]:
        print("dry run: nothing was uploaded (publish.dry_run=false uploads)")
    else:
        print(f"published {res['name']} {res['version']} as commit {res['commit']} + tag {res['tag']}: {res['url']}")
    print(f"plan: {out}")
    return res


if __name__ == "__main__":
    commands = {"release": release_main, "diff": diff_main, "publish": publish_main}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print("usage: python -m segval.dataset_versions_app release|diff|publish key=value ...", file=sys.stderr)
        sys.exit(2)
    command = commands[sys.argv.pop(1)]
    command()
