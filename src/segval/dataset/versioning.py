"""A package written as a new version of itself: semantic versions, the copy, and its CHANGELOG entry.

``segval dataset clean``, ``segval relabel import`` and ``segval demo inject`` each write a new version
of a package with :func:`write_version_copy` (ids kept, replaced annotations, deprecated ids recorded,
a CHANGELOG entry on top); :func:`new_version` picks and checks its version. Releases
(:mod:`segval.release.versions`) build on the same helpers.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from segval.dataset.writer import SEMVER
from segval.errors import ConfigError

VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
SEMVER_CORE_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
BUMPS = ("major", "minor", "patch")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)`` (ConfigError if it is not X.Y.Z)."""
    m = VERSION_RE.match(str(text).strip())
    if not m:
        raise ConfigError(f"version {text!r} is not a semantic version X.Y.Z (e.g. 1.2.0)")
    return int(m[1]), int(m[2]), int(m[3])


def version_core(text: str) -> tuple[int, int, int] | None:
    """The X.Y.Z core of a semver string, pre-release / build parts dropped (``"1.2.3-rc.1"`` -> ``(1, 2, 3)``);
    None if it is not semver."""
    m = SEMVER_CORE_RE.match(str(text).strip())
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]))


def bump_version(version: str, bump: str) -> str:
    """The next version: ``bump_version("1.2.3", "minor") == "1.3.0"`` (a pre-release suffix is dropped)."""
    core = version_core(version)
    if core is None:
        raise ConfigError(f"version {version!r} is not a semantic version X.Y.Z (e.g. 1.2.0)")
    major, minor, patch = core
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    if bump == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise ConfigError(f"bump={bump!r}: use one of {list(BUMPS)} or give version=X.Y.Z")


def new_version(source_version: str, version: str | None) -> str:
    """The version of a new package made from one at ``source_version``: ``version`` when given, else the
    source's minor + 1.

    Raises:
        ConfigError: ``version`` is not semver, or not higher than ``source_version``.
    """
    new = str(version) if version else bump_version(source_version, "minor")
    if not SEMVER.match(new):
        raise ConfigError(f"version must be a semver string such as '1.1.0', got {new!r}")
    source = version_core(source_version)
    if source is not None and version_core(new) <= source:
        raise ConfigError(f"version {new} must be higher than the source version {source_version} (a new version is newer "
                          "than its source); give a higher version= or leave it out for the minor + 1")
    return new


CHANGELOG_HEAD = "# Changelog\n\n"


def prepend_entry(history: str, entry: str) -> str:
    """A CHANGELOG text with ``entry`` on top (below the heading), newest first."""
    body = history[len(CHANGELOG_HEAD):] if history.startswith(CHANGELOG_HEAD) else history
    return CHANGELOG_HEAD + entry + ("\n" + body.lstrip("\n") if body.strip() else "")


def write_version_copy(root: Path, tmp: Path, *, version: str, annotations: Mapping[str, Any],
                       label_maps: Mapping[str, Mapping[str, Any]] | None = None,
                       deprecated: Mapping[str, Any] | None = None, changelog: str | None = None) -> None:
    """Fill ``tmp`` (an :func:`segval.io.atomic_dir`) with a copy of the package at ``root`` as ``version``:
    the COCO of each split in ``annotations`` ({split: coco dict}) and its label maps ({split: {relative path:
    uint8[H, W]}}) replaced, annotation ids of ``deprecated`` ({split: ids}) added to dataset.yaml's
    ``deprecated`` (ids are never deleted), and ``changelog`` (an entry) put on top of CHANGELOG.md. A
    read-only source (a release) gives a writable copy."""
    shutil.copytree(root, tmp, dirs_exist_ok=True, symlinks=False)
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(p.stat().st_mode | (0o755 if p.is_dir() else 0o644))
    from segval.dataset.package import split_layout

    meta = yaml.safe_load((root / "dataset.yaml").read_text(encoding="utf-8"))
    layout = split_layout(meta["splits"], tmp, path=root / "dataset.yaml")  # list or {split: {annotations, ...}}
    for split, coco in annotations.items():
        with open(layout[split].annotations, "w", encoding="utf-8") as f:
            json.dump(coco, f, separators=(",", ":"))
        for rel, lm in ((label_maps or {}).get(split) or {}).items():
            Image.fromarray(lm).save(tmp / rel, compress_level=1)
    meta["version"] = version
    for split, ids in (deprecated or {}).items():
        if ids:
            entry = meta.setdefault("deprecated", {}).setdefault(split, {})
            entry["annotations"] = sorted(set(entry.get("annotations") or []) | {int(i) for i in ids})
    with open(tmp / "dataset.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(meta, f, sort_keys=False, default_flow_style=None, allow_unicode=True)
    if changelog is not None:
        prepend_changelog(tmp, changelog)


def prepend_changelog(root: Path, entry: str) -> None:
    """Put ``entry`` on top of ``root``/CHANGELOG.md (created when missing), newest first."""
    log = root / "CHANGELOG.md"
    old = log.read_text(encoding="utf-8") if log.is_file() else ""
    log.write_text(prepend_entry(old, entry), encoding="utf-8")
