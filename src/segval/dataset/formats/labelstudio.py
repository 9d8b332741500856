"""Read a Label Studio JSON export into an :class:`ImportedDataset`: ``format=labelstudio``.

Both export forms:

* **JSON** (full tasks): ``[{"id", "data": {"image": URL, ...}, "annotations": [{"result": [...],
  "was_cancelled", "created_at", ...}], "predictions", "file_upload"?}]``. Per task the latest
  annotation that was not cancelled is read (a warning counts tasks with several); predictions are
  not ground truth and are not read; tasks without an annotation are skipped and reported.
* **JSON-MIN**: ``[{"image": URL, "id", "<from_name>": [value, ...], "annotator", ...}]``, each value a
  result's ``value`` with ``original_width`` / ``original_height`` beside its keys (label-studio-sdk's
  ``convert_to_json_min``).

Results read as masks: ``brushlabels`` (or ``brush`` / ``labels`` carrying ``format: rle``): Label
Studio's brush RLE (:mod:`segval.dataset.brush_rle`), and ``polygonlabels`` (or ``polygon``):
``points`` in percent of the image, scaled by the image size (``original_width`` /
``original_height``) and rasterised like a COCO polygon (pycocotools). Results sharing an ``id`` are
one region: a ``labels`` result repeating a brush result's id names its class and is not counted
twice. ``rectanglelabels``, ``keypointlabels``, ``ellipselabels``, ``choices``, ``relation`` and other
results without a mask are skipped and reported.

Image size: the image file's header (``original_width`` / ``original_height`` must agree with it).
Images are looked up in ``images_dir`` by the task's image URL: ``/data/local-files/?d=<path>`` (the
path, then its last part), ``/data/upload/<project>/<8 hex>-<name>`` (the stored name, then the name
without Label Studio's 8-hex upload prefix), cloud / http URLs by their last path part, plain paths
as given, then by base name anywhere below ``images_dir`` (an ambiguous base name is an error). A
missing image is an error that says what was looked for (and, without ``original_width`` /
``original_height``, that the size too comes from the file).

Taxonomy: ``labels`` (a list of names, or a labeling-config XML whose ``<Label value background>``
give names and colours), else the labels in first-seen order; ids 1, 2, ...; a label named background
is id 0, else a background stuff class is added as id 0 (``background="none"``: uncovered pixels void).

Entry point :func:`read_labelstudio`; :func:`parse_task` (a task's image names and regions) and
:func:`image_candidates` (URL -> file names to try) are what the relabel import-back reuses.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segval.dataset.brush_rle import BrushRLEError, decode_mask
from segval.dataset.coco import load_json
from segval.dataset.coco_dialects import parse_color
from segval.dataset.formats.result import (
    DEFAULT_MAX_PIXELS,
    Findings,
    ImportedDataset,
    ImportedImage,
    ImportedInstance,
    check_unique_names,
    package_file_name,
    probe_image,
    resolve_inside,
    taxonomy_from_names,
)
from segval.dataset.rle import from_mask
from segval.errors import DatasetError

__all__ = ["Region", "Task", "image_candidates", "load_tasks", "parse_task", "read_label_config", "read_labelstudio"]

_BRUSH = ("brushlabels", "brush")
_POLY = ("polygonlabels", "polygon")
_LABEL_KEYS = ("brushlabels", "polygonlabels", "labels")
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")
_IMAGE_EXT = re.compile(r"\.(png|jpe?g|bmp|tiff?|webp|gif)$", re.IGNORECASE)
_VALUE_HINTS = ("brushlabels", "polygonlabels", "rectanglelabels", "keypointlabels", "ellipselabels", "labels", "rle",
                "points", "choices")


def image_candidates(url: str) -> list[str]:
    """Relative file names to try for a task's image URL, most specific first.

    >>> image_candidates("/data/upload/3/0a1b2c3d-shelf 1.png")
    ['0a1b2c3d-shelf 1.png', 'shelf 1.png']
    >>> image_candidates("/data/local-files/?d=scenes/a%2Fb.jpg")
    ['scenes/a/b.jpg', 'b.jpg']
    """
    u = url.strip()
    parsed = urllib.parse.urlparse(u)
    out: list[str] = []
    if parsed.path.rstrip("/").endswith("/data/local-files") or "/data/local-files/" in parsed.path:
        d = urllib.parse.parse_qs(parsed.query).get("d", [""])[0]
        if d:
            out += [d, PurePosixPath(d).name]
    elif parsed.scheme in ("", "file") and not parsed.path.startswith("/data/upload/"):
        p = urllib.parse.unquote(parsed.path)
        out += [p.lstrip("/") if parsed.scheme == "file" else p, PurePosixPath(p).name]
    else:  # /data/upload/<project>/<8 hex>-<name>, s3://, gs://, azure-blob://, http(s)://
        name = PurePosixPath(urllib.parse.unquote(parsed.path)).name
        out.append(name)
        m = _UPLOAD_PREFIX.match(name)
        if m:
            out.append(m.group(1))
    seen: list[str] = []
    for c in out:
        if c and c not in seen:
            seen.append(c)
    return seen


def read_label_config(path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int] | None]]:
    """(name, colour) of every ``<Label value=... background=...>`` of a labeling config, in order, once each."""
    from segval.dataset.formats.cvat import parse_xml_safely

    root = parse_xml_safely(Path(path))
    out: list[tuple[str, tuple[int, int, int] | None]] = []
    for el in root.iter("Label"):
        name = el.attrib.get("value")
        if not name or name in [n for n, _ in out]:
            continue
        try:
            color = parse_color(el.attrib.get("background"))
        except ValueError:
            color = None  # a CSS colour name: the palette colour is used
        out.append((name, color))
    if not out:
        raise DatasetError("the labeling config has no <Label value=...>", path=path)
    return out


def _image_url(data: Mapping[str, Any]) -> str | None:
    v = data.get("image")
    if isinstance(v, str) and v:
        return v
    for v in data.values():
        if isinstance(v, str) and (_IMAGE_EXT.search(urllib.parse.urlparse(v).path) or v.startswith("/data/")):
            return v
    return None


def _min_results(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON-MIN: every list of value dicts becomes results (type from the value's keys)."""
    out = []
    for key, vals in item.items():
        if not isinstance(vals, list) or not vals or not all(isinstance(v, Mapping) for v in vals):
            continue
        for v in vals:
            if not any(h in v for h in _VALUE_HINTS):
                continue
            typ = next((k for k in ("brushlabels", "polygonlabels", "rectanglelabels", "keypointlabels",
                                    "ellipselabels", "labels", "choices") if k in v), "labels")
            out.append({"id": None, "type": typ, "from_name": key, "value": dict(v),
                        "original_width": v.get("original_width"), "original_height": v.get("original_height")})
    return out


def _groups(results: Sequence[Any]) -> list[list[Mapping[str, Any]]]:
    by_id: dict[Any, list[Mapping[str, Any]]] = {}
    order: list[Any] = []
    for k, r in enumerate(results):
        if not isinstance(r, Mapping):
            continue
        key = r.get("id")
        key = ("#", k) if key is None else ("id", str(key))
        if key not in by_id:
            by_id[key] = []
            order.append(key)
        by_id[key].append(r)
    return [by_id[k] for k in order]


def _geometry(group: list[Mapping[str, Any]]) -> tuple[str | None, Any, list[str], list[str]]:
    """(kind 'brush' | 'polygon' | None, data, label names, types without a mask)."""
    kind, data, labels, other = None, None, [], []
    for r in group:
        t = str(r.get("type") or "").lower()
        v = r.get("value") if isinstance(r.get("value"), Mapping) else {}
        for key in _LABEL_KEYS:
            for n in v.get(key) or []:
                if isinstance(n, str) and n not in labels:
                    labels.append(n)
        if kind is None and (v.get("format") == "rle" or "rle" in v) and (t in _BRUSH or t == "labels"):
            kind, data = "brush", v.get("rle")
        elif kind is None and "points" in v and (t in _POLY or t == "labels"):
            kind, data = "polygon", v.get("points")
        elif t not in _BRUSH + _POLY + ("labels",):
            other.append(t or "result without a type")
    return kind, data, labels, other


@dataclass
class Region:
    """One labelled region of a task: its class name, geometry and where it is (for messages).

    Attributes:
        label: the class name.
        kind: ``"brush"`` (``data`` = Label Studio brush RLE) or ``"polygon"`` (``data`` = points in percent).
        data: the geometry.
        where: ``"task 3 result 'r1'"``.
        result_id: the result ``id`` (a segval export puts ``a<annotation id>`` there), or None.
    """

    label: str
    kind: str
    data: Any
    where: str
    result_id: str | None = None

    def mask(self, height: int, width: int) -> np.ndarray:
        """bool[H, W] of the region in an image of that size (ValueError for a bad RLE / polygon)."""
        return _brush(self.data, height, width) if self.kind == "brush" else _polygon(self.data, height, width)


@dataclass
class Task:
    """One Label Studio task as exported: its image, its regions (of the latest submitted annotation).

    Attributes:
        id: the task id (its position when the export has none).
        where: ``"task <id>"``.
        data: the task's ``data`` (JSON) or the item itself (JSON-MIN).
        url: the image URL, or None.
        image_names: relative file names to look for, most specific first (:func:`image_candidates`, then
            ``file_upload``).
        regions: the labelled regions with a mask (results sharing an ``id`` are one region).
        sizes: ``(original_width, original_height)`` pairs the results state.
        minimal: True for a JSON-MIN item.
    """

    id: Any
    where: str
    data: Mapping[str, Any]
    url: str | None
    image_names: list[str]
    regions: list[Region] = field(default_factory=list)
    sizes: set[tuple[Any, Any]] = field(default_factory=set)
    minimal: bool = False

    def size_mismatch(self, width: int, height: int) -> tuple[Any, Any] | None:
        """A stated (width, height) that is not the image's, or None."""
        return next((s for s in self.sizes if (_num(s[0]), _num(s[1])) != (width, height)), None)


def parse_task(item: Any, k: int, f: Findings, source: object = None) -> Task | None:
    """Parse one exported task (full JSON or JSON-MIN), the latest annotation that was not cancelled.

    Returns None (and records why in ``f``) for a task without a submitted annotation or one that cannot
    be read; results without a mask are skipped into ``f``, regions with no or several labels are
    problems in ``f``.
    """
    if not isinstance(item, Mapping):
        f.problem(f"task entry {k} is not a JSON object", path=source)
        return None
    tid = item.get("id", k)
    where = f"task {tid}"
    if isinstance(item.get("data"), Mapping):
        data = item["data"]
        anns = item.get("annotations")
        anns = item.get("completions") if anns is None else anns
        anns = [a for a in (anns or []) if isinstance(a, Mapping)]
        live = [a for a in anns if not a.get("was_cancelled") and not a.get("skipped")]
        if not live:
            kind = "tasks with predictions only (not read)" if item.get("predictions") else \
                "tasks without a submitted annotation"
            f.skip(kind, where)
            return None
        if len(live) > 1:
            f.warn("several", "tasks with several annotations: the latest was read", str(tid))
        ann = max(enumerate(live), key=lambda t: (str(t[1].get("created_at") or ""), t[0]))[1]
        results = ann.get("result") or []
        if not isinstance(results, list):
            f.problem(f"{where}: 'result' must be a list", path=source)
            return None
        url = _image_url(data)
        extra_names = [item["file_upload"]] if isinstance(item.get("file_upload"), str) else []
        minimal = False
    else:
        data, results, url, extra_names, minimal = item, _min_results(item), _image_url(item), [], True
    if url is None and not extra_names and data.get("image_id") is None:  # segval's tasks also name the image id
        f.problem(f"{where}: no image URL in the task data (expected data.image)", path=source)
        return None
    task = Task(tid, where, data, url, (image_candidates(url) if url else []) + extra_names, minimal=minimal)
    for g in _groups(results):
        rid = g[0].get("id")
        rwhere = f"{where} result {rid!r}" if rid is not None else f"{where} {g[0].get('from_name', 'result')!r}"
        kind, geo, names, other = _geometry(g)
        for r in g:
            ow, oh = r.get("original_width"), r.get("original_height")
            if ow is None and isinstance(r.get("value"), Mapping):
                ow, oh = r["value"].get("original_width"), r["value"].get("original_height")
            if ow is not None and oh is not None:
                task.sizes.add((ow, oh))
            if r.get("image_rotation") not in (None, 0, 0.0):
                f.warn("rotation", "results on a rotated image (image_rotation != 0): coordinates read as given",
                       rwhere)
        if kind is None:
            f.skip(other[0] if other else "labels without a region", rwhere)
            continue
        if len(names) != 1:
            f.problem(f"{rwhere}: a region needs exactly one label, got {names!r}; fix it in Label Studio "
                      "(segval gives each mask one class)", path=source)
            continue
        task.regions.append(Region(names[0], kind, geo, rwhere, None if rid is None else str(rid)))
    return task


def load_tasks(json_path: Path) -> list[Any]:
    """The tasks of an export (a JSON list, or one task object). DatasetError for invalid JSON or another shape."""
    tasks = load_json(json_path)
    if isinstance(tasks, Mapping):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise DatasetError("a Label Studio export is a JSON list of tasks", path=json_path)
    return tasks


def read_labelstudio(
    json_path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    *,
    split: str = "train",
    labels: Sequence[str] | str | os.PathLike | None = None,
    background: str | None = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse and check a Label Studio JSON / JSON-MIN export (see the module doc). Nothing is written.

    Args:
        json_path: the exported JSON.
        images_dir: folder holding the images (default: the JSON's folder).
        split: split name.
        labels: class names in id order, or a labeling-config XML (names and colours); default: first seen.
        background: ``"auto"`` or ``"none"`` (see the module doc).
        max_pixels: limit on width * height, checked from the headers before decoding.
        progress: wraps the per-task loop.

    Raises:
        DatasetError: listing every problem (task id, result id, what is wrong, how to fix it).
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise DatasetError("Label Studio export not found; export the project as JSON (or JSON-MIN)", path=json_path)
    img_root = Path(images_dir) if images_dir is not None else json_path.parent
    if not img_root.is_dir():
        raise DatasetError("image folder not found; pass images=<folder holding the task images>", path=img_root)
    tasks = load_tasks(json_path)
    f = Findings()
    declared: list[tuple[str, tuple[int, int, int] | None]] | None = None
    if isinstance(labels, (str, os.PathLike)):
        declared = read_label_config(labels)
    elif labels is not None:
        declared = [(str(n), None) for n in labels]
    seen_names: list[str] = [n for n, _ in declared] if declared else []
    index = _BasenameIndex(img_root)

    parsed = []  # (task id, image path, rel, w, h, regions)
    for k, item in enumerate(progress(tasks) if progress else tasks):
        task = parse_task(item, k, f, json_path)
        if task is None:
            continue
        regions = []
        for reg in task.regions:
            if reg.label not in seen_names:
                if declared is not None:
                    f.problem(f"{reg.where}: label {reg.label!r} is not in the given labels "
                              f"{[n for n, _ in declared]}", path=json_path)
                    continue
                seen_names.append(reg.label)
            regions.append(reg)
        found = index.find(task.image_names)
        if isinstance(found, DatasetError):
            f.problem(f"{task.where}: {found}", path=json_path)
            continue
        if found is None:
            looked = ", ".join(repr(c) for c in task.image_names)
            size_note = "" if task.sizes else (" The results carry no original_width / original_height, so the image "
                                               "size is read from the file as well.")
            f.problem(f"{task.where}: image {task.url!r} not found in {img_root} (looked for {looked}); pass "
                      f"images=<folder holding the task images>.{size_note}", path=json_path)
            continue
        path, rel = found
        try:
            w, h = probe_image(path, max_pixels=max_pixels)
        except DatasetError as err:
            f.add(err)
            continue
        bad = task.size_mismatch(w, h)
        if bad:
            f.problem(f"{task.where}: results say the image is {bad[0]}x{bad[1]} but {rel!r} is {w}x{h} "
                      "(width x height); is it the right image?", path=json_path)
            continue
        parsed.append((task.id, path, rel, w, h, regions))

    names_colors = declared if declared is not None else [(n, None) for n in seen_names]
    if not names_colors and (background is None or str(background).lower() == "none"):
        f.raise_if_any(json_path, "Label Studio export")
        raise DatasetError("no labelled region in the export and background='none': nothing to import",
                           path=json_path)
    tax = taxonomy_from_names(names_colors, background, source=json_path)
    by_name = {c.name: c.id for c in tax}
    out: list[ImportedImage] = []
    users: dict[str, Any] = {}
    for tid, path, rel, w, h, regions in parsed:
        if rel in users:
            f.problem(f"tasks {users[rel]} and {tid} both use the image {rel!r}; merge them in Label Studio",
                      path=json_path)
            continue
        users[rel] = tid
        insts = []
        for reg in regions:
            try:
                m = reg.mask(h, w)
            except ValueError as err:
                f.problem(f"{reg.where} (label {reg.label!r}): {err}", path=json_path)
                continue
            if not m.any():
                f.skip("regions without pixels", reg.where)
                continue
            insts.append(ImportedInstance(by_name[reg.label], from_mask(m), 0, origin=reg.where))
        out.append(ImportedImage(package_file_name(rel), w, h, path=path, instances=insts,
                                 extra={"labelstudio_task_id": tid}, origin=f"task {tid} ({rel})"))
    check_unique_names(f, split, out, json_path)
    f.raise_if_any(json_path, "Label Studio export")
    return ImportedDataset("labelstudio", str(json_path), tax, {split: out}, f.warnings(), f.skipped,
                           max_pixels=max_pixels)


def _num(v: Any) -> int:
    try:
        return int(round(float(v)))
    except (TypeError, ValueError):
        return -1


def _brush(rle: Any, h: int, w: int) -> np.ndarray:
    if not isinstance(rle, list):
        raise ValueError("brush 'rle' must be a list of byte values (format: rle)")
    try:
        return decode_mask(rle, h, w)
    except BrushRLEError as err:
        raise ValueError(str(err)) from None


def _polygon(points: Any, h: int, w: int) -> np.ndarray:
    try:
        xy = [(float(p[0]) * w / 100.0, float(p[1]) * h / 100.0) for p in points]
    except (TypeError, ValueError, IndexError):
        raise ValueError("polygon 'points' must be [[x %, y %], ...]") from None
    if len(xy) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(xy)}")
    if not all(math.isfinite(v) for p in xy for v in p):
        raise ValueError("polygon points hold a non-finite number")
    rle = mask_utils.frPyObjects([[v for p in xy for v in p]], h, w)[0]
    return mask_utils.decode(rle).astype(bool)


class _BasenameIndex:
    """Finds a task's image below ``root``: relative names first, then unique base names."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, names: list[str]) -> tuple[Path, str] | DatasetError | None:
        for n in names:
            if ".." in PurePosixPath(n.replace("\\", "/")).parts:
                return DatasetError(f"image path {n!r} leaves the image folder {self.root} ('..'); task image "
                                    "paths must stay inside it")
            try:
                p = resolve_inside(self.root, n, what="image path")
            except ValueError as err:
                if not PurePosixPath(n).is_absolute():
                    return DatasetError(str(err))  # a link leaving the folder
                continue  # an absolute path: try its base name below the root
            if p.is_file():
                return p, p.relative_to(self.root.resolve()).as_posix()
        if self._by_name is None:
            self._by_name = {}
            for p in sorted(self.root.rglob("*")):
                if p.is_file():
                    self._by_name.setdefault(p.name, []).append(p)
        for n in names:
            hits = self._by_name.get(PurePosixPath(n).name, [])
            if len(hits) == 1:
                return hits[0], hits[0].relative_to(self.root).as_posix()
            if len(hits) > 1:
                return DatasetError(f"image name {PurePosixPath(n).name!r} matches several files below {self.root} "
                                    f"({', '.join(h.relative_to(self.root).as_posix() for h in hits[:4])}); keep one "
                                    "or pass the folder of the right one")
        return None
