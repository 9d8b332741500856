"""Dataset versions: diffs between packages and read-only, never-overwritten releases.

Layout: a versioned dataset is a folder of releases, ``<releases>/<X.Y.Z>/``, each a normal
dataset package (dataset.yaml ``version: X.Y.Z``) holding its dataset card (README.md) and the
CHANGELOG.md up to that version; ``<releases>/CHANGELOG.md`` is the whole history.

Rules of a release (:func:`release`):

* the version is the newest release bumped (``major``/``minor``/``patch``) or an explicit
  ``X.Y.Z`` greater than every release; the first release takes the source's dataset.yaml
  version unless an explicit version is given;
* an existing ``<releases>/<version>`` is never overwritten (DatasetError before anything is written);
* ids are never deleted: every image / annotation id of the previous release must still be in
  the new one or be listed in dataset.yaml ``deprecated``::

      deprecated: {images: [3, 7], annotations: [12]}          # ids of every split
      deprecated: {train: {images: [3]}, val: {annotations: [5]}}  # or per split

* the version folder is written atomically, then every file and folder in it is made read-only; one release
  at a time writes into a releases folder (`<releases>/.segval.lock`, a second one is refused), and the next
  release finishes what a killed one left undone (read-only bits, the top CHANGELOG entry).

Optional parts of a release (checked before anything is written):

* ``baseline=<run dir>``: a finished ``segval train`` / ``eval`` / ``analyze`` run of this taxonomy is
  bundled into ``<version>/baseline/`` (safetensors weights + model.json, metrics.json, findings,
  the exact config; :mod:`segval.release.baseline`) and the card's results table is filled from it;
* ``domain_gap=<domain_gap.json>``: a ``segval domain-gap`` result of this taxonomy, copied beside the
  baseline (``baseline/domain_gap.json``, or ``domain_gap.json`` without a baseline) and summarised
  in the card's known limitations;
* ``loaders=True`` (default): loader snippets in ``<version>/loaders/`` (:mod:`segval.release.loaders`).

A diff (:func:`diff_packages`) compares two packages split by split: images and annotations
added, changed (annotation: segmentation, category or iscrowd differs; image: file name or size
differs), deprecated (newly listed in ``deprecated``) and removed (gone and not deprecated),
and pixels per class gained / lost on the images both hold (semantic targets compared image by
image).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from segval.dataset.package import DatasetPackage
from segval.dataset.versioning import (
    VERSION_RE,
    bump_version,
    parse_version,
    prepend_entry,
)
from segval.errors import ConfigError, DatasetError



def list_releases(releases: str | os.PathLike) -> list[str]:
    """Versions released under ``releases`` (sub-folders named X.Y.Z holding dataset.yaml), oldest first."""
    root = Path(releases)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if p.is_dir() and VERSION_RE.match(p.name) and (p / "dataset.yaml").is_file()]
    return sorted(found, key=parse_version)


def next_version(source_version: str, released: list[str], *, bump: str | None, version: str | None) -> str:
    """The version of the next release (see the module doc); ConfigError if not newer than every release."""
    if version:
        new = ".".join(map(str, parse_version(str(version))))
    elif released:
        new = bump_version(released[-1], bump or "")
    else:
        new = ".".join(map(str, parse_version(source_version)))
    if released and new not in released and parse_version(new) <= parse_version(released[-1]):
        raise ConfigError(f"version {new} is not newer than the latest release {released[-1]}; "
                          f"give a larger version= or use bump=major|minor|patch")
    return new


# ---------------------------------------------------------------------- deprecated ids
def deprecated_ids(pkg: DatasetPackage) -> dict[str, dict[str, set[int]]]:
    """``{split: {"images": ids, "annotations": ids}}`` from dataset.yaml ``deprecated``."""
    raw = pkg.metadata.get("deprecated") or {}
    where = pkg.root / "dataset.yaml"
    if not isinstance(raw, Mapping):
        raise DatasetError(f"'deprecated' must be a mapping {{images: [ids], annotations: [ids]}}, got {raw!r}",
                           path=where)
    out = {s: {"images": set(), "annotations": set()} for s in pkg.splits}

    def ids(value: Any, what: str) -> set[int]:
        if value is None:
            return set()
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise DatasetError(f"'deprecated' {what} must be a list of integer ids, got {value!r}", path=where)
        return set(value)

    for key, value in raw.items():
        if key in ("images", "annotations"):
            for s in out:
                out[s][key] |= ids(value, key)
        elif key in out:
            if not isinstance(value, Mapping):
                raise DatasetError(f"'deprecated' {key}: must be a mapping {{images: [...], annotations: [...]}}",
                                   path=where)
            for what in ("images", "annotations"):
                out[key][what] |= ids(value.get(what), f"{key}.{what}")
        else:
            raise DatasetError(f"'deprecated' has an unknown key {key!r}: use images, annotations or a split name "
                               f"({pkg.splits})", path=where)
    return out


# ---------------------------------------------------------------------- diff
def _split_index(pkg: DatasetPackage, split: str) -> tuple[dict[int, Any], dict[int, dict[str, Any]]]:
    if split not in pkg.splits:
        return {}, {}
    data = pkg.split(split)
    images = {rec.id: rec for rec in data.images}
    anns = {int(a["id"]): a for rec in data.images for a in data.annotations_for(rec.id)}
    return images, anns


def _ann_changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return any(a.get(k) != b.get(k) for k in ("segmentation", "category_id", "iscrowd", "image_id"))


def diff_packages(a: DatasetPackage, b: DatasetPackage, *,
                  progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, Any]:
    """What changed from package ``a`` to package ``b`` (see the module doc).

    Returns:
        ``{"a": {name, version, root}, "b": {...}, "splits": {split: {"images": {added, changed,
        deprecated, removed: [ids]}, "annotations": {... same ...}, "pixels": {class name:
        {"gained", "lost"}}, "images_compared": n}}, "totals": {"images"|"annotations": {kind: n}},
        "pixels": {class name: {"gained", "lost"}}}``. ``gained`` counts pixels that are the class
        in ``b`` but not in ``a``, ``lost`` the reverse, over the images both hold.
    """
    if a.taxonomy != b.taxonomy:
        names_a, names_b = a.taxonomy.names, b.taxonomy.names
        if names_a != names_b:
            raise DatasetError(f"the taxonomies differ ({names_a} vs {names_b}); pixels per class cannot be compared",
                               path=b.root / "dataset.yaml")
    dep_a, dep_b = deprecated_ids(a), deprecated_ids(b)
    tax = b.taxonomy
    classes = tax.names
    progress = progress or (lambda it: it)
    out: dict[str, Any] = {
        "a": {"name": a.name, "version": a.version, "root": str(a.root)},
        "b": {"name": b.name, "version": b.version, "root": str(b.root)},
        "splits": {},
    }
    kinds = ("added", "changed", "deprecated", "removed")
    totals = {what: dict.fromkeys(kinds, 0) for what in ("images", "annotations")}
    total_px = {c: {"gained": 0, "lost": 0} for c in classes}
    for split in list(dict.fromkeys([*a.splits, *b.splits])):
        img_a, ann_a = _split_index(a, split)
        img_b, ann_b = _split_index(b, split)
        da = dep_a.get(split, {"images": set(), "annotations": set()})
        db = dep_b.get(split, {"images": set(), "annotations": set()})
        entry: dict[str, Any] = {}
        for what, ia, ib in (("images", img_a, img_b), ("annotations", ann_a, ann_b)):
            newly = db[what] - da[what]
            if what == "images":
                changed = [i for i in ia.keys() & ib.keys()
                           if (ia[i].file_name, ia[i].width, ia[i].height) != (ib[i].file_name, ib[i].width, ib[i].height)]
            else:
                changed = [i for i in ia.keys() & ib.keys() if _ann_changed(ia[i], ib[i])]
            entry[what] = {
                "added": sorted(ib.keys() - ia.keys()),
                "changed": sorted(changed),
                "deprecated": sorted(i for i in newly if i in ia or i in ib),
                "removed": sorted(i for i in ia.keys() - ib.keys() if i not in db[what]),
            }
            for k in kinds:
                totals[what][k] += len(entry[what][k])
        # pixels per class on the images both hold, only where an annotation of the image differs
        touched = {ann_a[i]["image_id"] for i in ann_a.keys() - ann_b.keys()} | \
                  {ann_b[i]["image_id"] for i in ann_b.keys() - ann_a.keys()} | \
                  {ann_a[i]["image_id"] for i in entry["annotations"]["changed"]} | \
                  {ann_b[i]["image_id"] for i in entry["annotations"]["changed"]}
        common = sorted(i for i in touched if i in img_a and i in img_b)
        px = {c: {"gained": 0, "lost": 0} for c in classes}
        if common:
            sa, sb = a.split(split), b.split(split)
            for i in progress(common):
                ta = sa.semantic_target(img_a[i], source="coco")  # train indices, 255 = ignore
                tb = sb.semantic_target(img_b[i], source="coco")
                if ta.shape != tb.shape:
                    continue  # a resized image: counted as a changed image, not compared pixel by pixel
                diff = ta != tb
                if not diff.any():
                    continue
                gained = np.bincount(tb[diff].reshape(-1), minlength=256)
                lost = np.bincount(ta[diff].reshape(-1), minlength=256)
                for idx, c in enumerate(classes):
                    px[c]["gained"] += int(gained[idx])
                    px[c]["lost"] += int(lost[idx])
        for c in classes:
            total_px[c]["gained"] += px[c]["gained"]
            total_px[c]["lost"] += px[c]["lost"]
        entry["pixels"] = px
        entry["images_compared"] = len(common)
        out["splits"][split] = entry
    out["totals"] = totals
    out["pixels"] = total_px
    return out


def _ids(ids: list[int], limit: int = 50) -> str:
    text = ", ".join(map(str, ids[:limit]))
    return text + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def format_diff(diff: Mapping[str, Any], *, heading: str = "#") -> str:
    """Markdown of :func:`diff_packages`'s result."""
    a, b = diff["a"], diff["b"]
    lines = [f"{heading} Diff {a['name']} {a['version']} -> {b['name']} {b['version']}", ""]
    for what in ("images", "annotations"):
        t = diff["totals"][what]
        lines.append(f"- {what}: {t['added']} added, {t['changed']} changed, {t['deprecated']} deprecated, "
                     f"{t['removed']} removed")
    for split, entry in diff["splits"].items():
        lines += ["", f"{heading}# Split {split}", ""]
        for what in ("images", "annotations"):
            for kind in ("added", "changed", "deprecated", "removed"):
                ids = entry[what][kind]
                if ids:
                    lines.append(f"- {what} {kind} ({len(ids)}): {_ids(ids)}")
        moved = {c: v for c, v in entry["pixels"].items() if v["gained"] or v["lost"]}
        if moved:
            lines += ["", f"Pixels per class ({entry['images_compared']} images in both compared):", "",
                      "| class | gained | lost | net |", "|---|---:|---:|---:|"]
            lines += [f"| {c} | {v['gained']} | {v['lost']} | {v['gained'] - v['lost']:+d} |" for c, v in moved.items()]
        if lines[-1] == f"{heading}# Split {split}" or lines[-1] == "":
            lines.append("- no change")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------- release
def check_ids_kept(prev: DatasetPackage, new: DatasetPackage) -> None:
    """DatasetError naming every id of ``prev`` that is gone from ``new`` without being deprecated."""
    diff_like = []
    dep = deprecated_ids(new)
    for split in prev.splits:
        img_a, ann_a = _split_index(prev, split)
        img_b, ann_b = _split_index(new, split)
        d = dep.get(split, {"images": set(), "annotations": set()})
        for what, ia, ib in (("image", img_a, img_b), ("annotation", ann_a, ann_b)):
            gone = sorted(i for i in ia.keys() - ib.keys() if i not in d[what + "s"])
            if gone:
                diff_like.append(f"split {split!r}: {what} ids {_ids(gone)}")
    if diff_like:
        raise DatasetError(
            f"ids of release {prev.version} are missing and not deprecated ({'; '.join(diff_like)}); ids are never "
            f"deleted: put them back or list them in dataset.yaml 'deprecated: {{images: [...], annotations: [...]}}'",
            path=new.root / "dataset.yaml")


def changelog_entry(version: str, notes: str, diff: Mapping[str, Any] | None, *, day: str | None = None) -> str:
    """One CHANGELOG.md section (newest sections go first); class names Markdown-escaped (the card shows it)."""
    from segval.report.markdown_safe import md_escape

    lines = [f"## {version} ({day or date.today().isoformat()})", ""]
    if notes:
        lines += [str(notes).strip(), ""]
    if diff is None:
        lines.append("- first release")
    else:
        lines.append(f"Changes since {diff['a']['version']}:")
        lines.append("")
        for what in ("images", "annotations"):
            t = diff["totals"][what]
            lines.append(f"- {what}: {t['added']} added, {t['changed']} changed, {t['deprecated']} deprecated")
            for split, entry in diff["splits"].items():
                for kind in ("added", "changed", "deprecated"):
                    if entry[what][kind]:
                        lines.append(f"  - {split} {kind}: {_ids(entry[what][kind])}")
        moved = {c: v for c, v in diff["pixels"].items() if v["gained"] or v["lost"]}
        if moved:
            lines.append("- pixels changed per class: " + ", ".join(
                f"{md_escape(c)} +{v['gained']}/-{v['lost']}" for c, v in moved.items()))
    return "\n".join(lines) + "\n"


def make_read_only(root: Path) -> None:
    """chmod a-w every file and folder under ``root`` (folders last, so the walk can finish)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            p = Path(dirpath) / name
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        p = Path(dirpath)
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def check_domain_gap(path: str | os.PathLike, taxonomy: Any) -> dict[str, Any]:
    """Read a ``domain_gap.json`` and check that its classes are the taxonomy's (DatasetError if not)."""

    path = Path(path)
    if not path.is_file():
        raise DatasetError("domain gap file not found; pass the domain_gap.json written by `segval domain-gap`",
                           path=path)
    gap = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(gap, Mapping) or "per_class" not in gap or "summary" not in gap:
        raise DatasetError("not a domain_gap.json (no per_class / summary)", path=path)
    names = [r.get("name") for r in gap.get("class_order") or gap["per_class"]]
    if sorted(map(str, names)) != sorted(taxonomy.names):
        raise DatasetError(f"the domain gap was measured on the classes {names}, the package has {taxonomy.names}; "
                           "measure it with a checkpoint of this taxonomy", path=path)
    return dict(gap)


def _release_ignore(root: Path) -> Callable[[str, list[str]], set[str]]:
    """copytree filter: the card, changelog and hidden files everywhere; ``baseline/`` and ``loaders/`` at the
    top (they belong to one version and are written anew)."""
    base = shutil.ignore_patterns("README.md", "CHANGELOG.md", ".*")
    top = str(Path(root).resolve())

    def ignore(folder: str, names: list[str]) -> set[str]:
        out = set(base(folder, names))
        if str(Path(folder).resolve()) == top:
            out |= {n for n in names if n in ("baseline", "loaders")}
        return out

    return ignore


def release(source: str | os.PathLike, releases: str | os.PathLike, *, bump: str | None = "minor",
            version: str | None = None, notes: str = "", day: str | None = None,
            progress: Callable[[Iterable], Iterable] | None = None, baseline: str | os.PathLike | None = None,
            domain_gap: str | os.PathLike | None = None, loaders: bool = True) -> dict[str, Any]:
    """Release the package ``source`` as ``<releases>/<version>`` (see the module doc).

    Args:
        baseline: a finished run directory to publish as ``baseline/`` (None: no baseline).
        domain_gap: a ``domain_gap.json`` to publish and summarise in the card (None: none).
        loaders: write the loader snippets into ``loaders/``.

    Returns:
        ``{"version", "path", "previous", "diff", "baseline", "loaders"}`` (``previous``/``diff``
        None for the first release; ``baseline`` the bundle's files and summary or None;
        ``loaders`` the loader file names).

    Raises:
        DatasetError: the version exists already; ids of the previous release are gone without
            being deprecated; ``source`` is not a valid package; a baseline run or domain gap of
            another taxonomy.
        ConfigError: a bad bump / version, or a version older than the latest release.
        LockedError: another release is writing into ``releases`` now (``<releases>/.segval.lock``).
    """
    from segval.io import folder_lock

    with folder_lock(releases, "segval dataset release"):
        finish_interrupted_releases(Path(releases))
        return _release(source, releases, bump=bump, version=version, notes=notes, day=day, progress=progress,
                        baseline=baseline, domain_gap=domain_gap, loaders=loaders)


def finish_interrupted_releases(rel_root: Path) -> list[str]:
    """Finish what a killed ``release`` left undone after its version folder was in place: make every
    release read-only and put its CHANGELOG entry into ``<releases>/CHANGELOG.md``. Returns the versions
    repaired."""
    from segval.io import write_text

    repaired = []
    top_log = rel_root / "CHANGELOG.md"
    top = top_log.read_text(encoding="utf-8") if top_log.is_file() else ""
    for v in list_releases(rel_root):
        folder = rel_root / v
        changed = False
        if folder.stat().st_mode & stat.S_IWUSR:
            make_read_only(folder)
            changed = True
        if f"\n## {v} (" not in "\n" + top:
            entry = first_changelog_entry(folder / "CHANGELOG.md", v)
            if entry:
                top = prepend_entry(top, entry)
                write_text(top_log, top).chmod(0o644)
                changed = True
        if changed:
            repaired.append(v)
    return repaired


def first_changelog_entry(path: Path, version: str) -> str | None:
    """The ``## <version> (...)`` section of a CHANGELOG.md, or None."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    head = f"## {version} ("
    start = text.find(head)
    if start < 0:
        return None
    end = text.find("\n## ", start + len(head))
    return text[start:] if end < 0 else text[start:end + 1]


def _release(source: str | os.PathLike, releases: str | os.PathLike, *, bump: str | None, version: str | None,
             notes: str, day: str | None, progress: Callable[[Iterable], Iterable] | None,
             baseline: str | os.PathLike | None, domain_gap: str | os.PathLike | None, loaders: bool) -> dict[str, Any]:
    from segval.release.baseline import BASELINE_DIR, collect_baseline, write_baseline
    from segval.release.loaders import write_loaders
    from segval.release.card import write_card
    from segval.io import atomic_dir, write_text

    src = DatasetPackage.open(source)
    rel_root = Path(releases)
    released = list_releases(rel_root)
    new_version = next_version(src.version, released, bump=bump, version=version)
    target = rel_root / new_version
    if target.exists():
        raise DatasetError(f"version {new_version} is already released; a release is never overwritten: "
                           f"bump the version (bump=major|minor|patch or version=X.Y.Z)", path=target)
    if rel_root.resolve() == Path(source).resolve() or rel_root.resolve() in Path(source).resolve().parents:
        raise ConfigError(f"source={source} lies inside releases={releases}: release from a working copy")
    prev = DatasetPackage.open(rel_root / released[-1]) if released else None
    run = collect_baseline(baseline, src.taxonomy) if baseline else None
    gap = check_domain_gap(domain_gap, src.taxonomy) if domain_gap else None
    diff = None
    if prev is not None:
        check_ids_kept(prev, src)
        diff = diff_packages(prev, src, progress=progress)
        diff["b"]["version"] = new_version
    entry = changelog_entry(new_version, notes, diff, day=day)
    prev_log = (rel_root / released[-1] / "CHANGELOG.md") if released else None
    history = prev_log.read_text(encoding="utf-8") if prev_log is not None and prev_log.is_file() else ""
    changelog = prepend_entry(history, entry)
    with atomic_dir(target) as tmp:
        shutil.copytree(src.root, tmp, dirs_exist_ok=True,
                        ignore=_release_ignore(src.root))
        meta = yaml.safe_load((tmp / "dataset.yaml").read_text(encoding="utf-8"))
        meta["version"] = new_version
        (tmp / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
        (tmp / "CHANGELOG.md").write_text(changelog, encoding="utf-8")
        bundle = write_baseline(run, tmp / BASELINE_DIR) if run is not None else None
        if gap is not None:
            from segval.io import write_json

            write_json((tmp / BASELINE_DIR if run is not None else tmp) / "domain_gap.json", gap)
        new_pkg = DatasetPackage.open(tmp)
        loader_files = [p.name for p in write_loaders(new_pkg, tmp / "loaders")] if loaders else []
        write_card(new_pkg, tmp / "README.md", changelog=changelog)
        for p in [tmp, *tmp.rglob("*")]:  # readable by all (mkdtemp/mkstemp give 0700/0600)
            p.chmod(p.stat().st_mode | (0o755 if p.is_dir() else 0o644))
    make_read_only(target)
    top_log = rel_root / "CHANGELOG.md"
    top = top_log.read_text(encoding="utf-8") if top_log.is_file() else ""
    write_text(top_log, prepend_entry(top, entry)).chmod(0o644)
    return {"version": new_version, "path": str(target), "previous": prev.version if prev else None, "diff": diff,
            "baseline": bundle, "loaders": loader_files}
