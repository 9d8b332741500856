"""Corrections coming back from annotators become a NEW dataset version (ids kept, never reused).

For each returned image, the returned instances REPLACE that image's annotations:

* an existing annotation matched to a returned one (same category, mask IoU >= 0.5, one-to-one,
  greedy by IoU, ties by lower annotation id) keeps its id; it is *corrected* when the mask changed;
* an unmatched existing annotation is *deprecated*: its data moves to the split's
  ``deprecated_annotations`` (with ``deprecated_in``) and its id is listed in dataset.yaml
  ``deprecated: {<split>: {annotations: [...]}}``; ids are never deleted nor reused;
* an unmatched returned instance is *added* with a new id above every id ever used (annotations,
  deprecated annotations and deprecated ids of every split).

Images not returned keep their annotations. The result is written as a new package (the version a
semver minor bump unless given; an existing target is refused before anything is written) with
label maps regenerated for changed images, a CHANGELOG.md entry listing corrected / added /
deprecated ids and the pixels changed per class (:func:`segval.release.versions.changelog_entry`
on :func:`~segval.release.versions.diff_packages`), and it is made read-only. The source package is
only read: its bytes are unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segval.dataset.rle import encode_coco_rle
from segval.errors import ConfigError, DatasetError
from segval.relabel.labelstudio import ReturnedInstance

__all__ = ["MATCH_IOU", "apply_corrections", "default_target", "match_instances"]

MATCH_IOU = 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = int((a | b).sum())
    return float((a & b).sum() / u) if u else 0.0


def match_instances(existing: Sequence[tuple[int, int, np.ndarray]], returned: Sequence[ReturnedInstance],
                    min_iou: float = MATCH_IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU within the category.

    Args:
        existing: ``(annotation id, category id, mask)``.
        returned: the returned instances.

    Returns:
        ``(index in existing, index in returned, IoU)`` per match (IoU >= ``min_iou``).

    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[:3] = True
    >>> match_instances([(7, 1, a)], [ReturnedInstance(1, b, "t"), ReturnedInstance(2, a, "t")])
    [(0, 0, 0.6666666666666666)]
    """
    cands = []
    for i, (aid, cat, m) in enumerate(existing):
        for j, r in enumerate(returned):
            if r.category_id != cat:
                continue
            v = _iou(m, r.mask)
            if v >= min_iou:
                cands.append((-v, aid, j, i))
    cands.sort()
    used_e, used_r, out = set(), set(), []
    for negv, _, j, i in cands:
        if i in used_e or j in used_r:
            continue
        used_e.add(i)
        used_r.add(j)
        out.append((i, j, -negv))
    return sorted(out)


def default_target(root: Path, version: str) -> Path:
    """Where the new version goes by default: ``<parent>/<version>`` when the package folder is named
    by its version (a folder of releases), else ``<parent>/<name>-<version>``."""
    from segval.dataset.versioning import VERSION_RE

    return root.parent / (version if VERSION_RE.match(root.name) else f"{root.name}-{version}")


def _max_id_ever(root: Path, pkg: Any) -> int:
    from segval.dataset.coco import load_json
    from segval.release.versions import deprecated_ids

    top = 0
    for s in pkg.splits:
        coco = load_json(pkg.split(s).annotation_path)
        for a in list(coco.get("annotations") or []) + list(coco.get("deprecated_annotations") or []):
            top = max(top, int(a["id"]))
    for d in deprecated_ids(pkg).values():
        top = max([top, *d["annotations"]])
    return top


def _check_target(root: Path, target: Path, new_version: str) -> Path:
    """``target``, when a new version may be written there (it never overwrites, and lies outside ``root``)."""
    from segval.release.versions import list_releases

    if target.exists():
        raise DatasetError(f"the target of version {new_version} already exists; a version is never overwritten: "
                           "give another output= or version=", path=target)
    if new_version in list_releases(target.parent) or (new_version in list_releases(root.parent)
                                                       and root.parent == target.parent):
        raise DatasetError(f"version {new_version} is already released in {target.parent}; give version= newer "
                           "than every release", path=target.parent / new_version)
    if target.resolve() == root.resolve() or target.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"output {target} must lie outside the source package {root}")
    return target


def _check_corrections(corrections: Mapping[int, Sequence[ReturnedInstance]], sd: Any, tax: Any, split: str) -> None:
    """DatasetError for an image id not in the split, a category not in the taxonomy, a mask of another size."""
    ids = {r.id for r in sd.images}
    for image_id, insts in corrections.items():
        if image_id not in ids:
            raise DatasetError(f"image id {image_id} is not in split {split!r}", path=sd.annotation_path,
                               image_id=image_id)
        rec = sd.image(image_id)
        for r in insts:
            if r.category_id not in tax:
                raise DatasetError(f"category id {r.category_id} is not in the taxonomy", image_id=image_id)
            if r.mask.shape != (rec.height, rec.width):
                raise DatasetError(f"returned mask of size {r.mask.shape[1]}x{r.mask.shape[0]} but the image is "
                                   f"{rec.width}x{rec.height}", image_id=image_id)


class _CocoEdit:
    """The split's COCO document edited image by image: matched annotations get the returned mask, unmatched
    ones are deprecated (kept in ``deprecated_annotations``), returned instances without a match are added
    with new ids (never reused)."""

    def __init__(self, coco: dict[str, Any], version: str, origin: str, *, next_id: int) -> None:
        self.coco, self.version, self.origin, self.next_id = coco, version, origin, next_id
        self.pos = {int(a["id"]): k for k, a in enumerate(coco["annotations"])}
        self.corrected: list[int] = []
        self.added: list[int] = []
        self.deprecated: list[int] = []
        self.appended: list[dict[str, Any]] = []

    def apply(self, image_id: int, existing: Sequence[tuple[int, int, np.ndarray]],
              returned: Sequence[ReturnedInstance]) -> list[tuple[int, np.ndarray, int]] | None:
        """Apply the returned instances of one image; its final ``(category, mask, annotation id)`` list, or
        None when nothing changed."""
        anns = self.coco["annotations"]
        matches = match_instances(existing, returned)
        m_e = {i: j for i, j, _ in matches}
        m_r = {j for _, j, _ in matches}
        changed = False
        final = []
        for i, (aid, cat, mask) in enumerate(existing):
            if i in m_e:
                new_mask = returned[m_e[i]].mask
                if not np.array_equal(new_mask, mask):
                    ann = dict(anns[self.pos[aid]])
                    ann["segmentation"], ann["area"], ann["bbox"] = encode_coco_rle(new_mask)
                    anns[self.pos[aid]] = ann
                    self.corrected.append(aid)
                    changed = True
                final.append((cat, new_mask, aid))
            else:
                ann = dict(anns[self.pos[aid]])
                ann["deprecated_in"] = self.version
                ann["deprecated_reason"] = (f"not in the corrections imported with `segval relabel import` "
                                            f"{self.origin}").strip()
                self.coco.setdefault("deprecated_annotations", []).append(ann)
                anns[self.pos[aid]] = None
                self.deprecated.append(aid)
                changed = True
        for j, r in enumerate(returned):
            if j in m_r:
                continue
            seg, area, bbox = encode_coco_rle(r.mask)
            self.appended.append({"id": self.next_id, "image_id": image_id, "category_id": r.category_id,
                                  "segmentation": seg, "area": area, "bbox": bbox, "iscrowd": 0})
            final.append((r.category_id, r.mask, self.next_id))
            self.added.append(self.next_id)
            self.next_id += 1
            changed = True
        return final if changed else None

    def finished(self) -> dict[str, Any]:
        """The edited document: deprecated annotations out of ``annotations``, added ones appended."""
        coco = self.coco
        coco["annotations"] = [a for a in coco["annotations"] if a is not None] + self.appended
        if isinstance(coco.get("info"), dict):
            coco["info"] = {**coco["info"], "version": self.version}
        return coco


def apply_corrections(
    source: str | os.PathLike,
    corrections: Mapping[int, Sequence[ReturnedInstance]],
    *,
    split: str = "train",
    output: str | os.PathLike | None = None,
    version: str | None = None,
    notes: str = "",
    origin: str = "",
    read_only: bool = True,
) -> dict[str, Any]:
    """Write the corrected package as a new version (see the module doc).

    Args:
        source: the package the corrections were made on (only read).
        corrections: ``{image_id: [ReturnedInstance]}`` of ``split``, from :func:`labelstudio.read_export`
            or :func:`cvat.read_export`.
        split: the split the image ids belong to.
        output: the new package folder (default :func:`default_target`).
        version: the new version (default: source version, minor bump).
        notes: text for the CHANGELOG entry.
        origin: where the corrections came from (named in the CHANGELOG).
        read_only: make the new version read-only.

    Returns:
        ``{"version", "path", "previous", "corrected", "added", "deprecated", "unchanged_images",
        "diff"}`` (ids are lists; ``diff`` is :func:`diff_packages`' result).

    Raises:
        DatasetError: the target exists (or that version is already released beside it), an image
            id not in the split, a mask of another size than its image, a category not in the taxonomy.
        ConfigError: a bad or not newer version.
    """

    from segval.dataset.coco import load_json
    from segval.dataset.package import DatasetPackage
    from segval.dataset.semantic import rasterize_semantic
    from segval.dataset.versioning import new_version as next_package_version
    from segval.dataset.versioning import prepend_changelog, write_version_copy
    from segval.io import atomic_dir
    from segval.release.versions import changelog_entry, check_ids_kept, diff_packages, make_read_only

    root = Path(source)
    pkg = DatasetPackage.open(root)
    sd = pkg.split(split)
    new_version = next_package_version(pkg.version, version)
    target = _check_target(root, Path(output) if output else default_target(root, new_version), new_version)
    _check_corrections(corrections, sd, pkg.taxonomy, split)
    coco = load_json(sd.annotation_path)
    edit = _CocoEdit(coco, new_version, origin, next_id=_max_id_ever(root, pkg) + 1)
    unchanged: list[int] = []
    label_maps: dict[Path, np.ndarray] = {}
    for image_id in sorted(corrections):
        rec = sd.image(image_id)
        final = edit.apply(image_id, [(i.annotation_id, i.category_id, i.mask) for i in sd.instances(rec)],
                           list(corrections[image_id]))
        if final is None:
            unchanged.append(image_id)
        elif sd.has_label_maps:
            rel = sd.label_map_path(rec).relative_to(root)
            label_maps[rel] = rasterize_semantic(rec.height, rec.width,
                                                 [(c, m, int(m.sum()), a) for c, m, a in final], pkg.taxonomy.background_id)
    coco = edit.finished()
    corrected, added, deprecated = edit.corrected, edit.added, edit.deprecated

    summary = [f"Corrections of {len(corrections)} {split} images imported with `segval relabel import`"
               + (f" from {origin}" if origin else "") + ".",
               f"corrected annotation ids: {', '.join(map(str, sorted(corrected))) or 'none'}",
               f"added annotation ids: {', '.join(map(str, added)) or 'none'}",
               f"deprecated annotation ids: {', '.join(map(str, sorted(deprecated))) or 'none'}"]
    if notes:
        summary.insert(0, str(notes).strip())
    result: dict[str, Any] = {}
    with atomic_dir(target) as tmp:
        write_version_copy(root, tmp, version=new_version, annotations={split: coco},
                           label_maps={split: label_maps}, deprecated={split: deprecated})
        new_pkg = DatasetPackage.open(tmp)
        check_ids_kept(pkg, new_pkg)
        diff = diff_packages(pkg, new_pkg)
        diff["b"]["root"] = str(target)
        entry_text = changelog_entry(new_version, "\n".join(f"- {s}" if k else s for k, s in enumerate(summary)), diff)
        prepend_changelog(tmp, entry_text)
        result = {"version": new_version, "path": str(target), "previous": pkg.version, "source": str(root),
                  "corrected": sorted(corrected), "added": added, "deprecated": sorted(deprecated),
                  "unchanged_images": unchanged, "images": sorted(corrections), "diff": diff,
                  "changelog_entry": entry_text}
    if read_only:
        make_read_only(target)
    return result
