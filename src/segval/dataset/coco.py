"""Load a COCO annotation file and run the cheap checks on it (no pixels are read).

:func:`index_coco` checks the structure, duplicate image / annotation ids, annotations pointing
at unknown images or categories, and ``file_name`` entries escaping the image folder (``..``,
absolute paths). It reports every such problem of the file in one :class:`DatasetError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from segval.dataset.packed import PackedAnnotation
from segval.dataset.taxonomy import Taxonomy
from segval.errors import DatasetError

#: Problems listed in one combined error (the total is always given).
MAX_LISTED_PROBLEMS = 50


@dataclass(frozen=True)
class ImageRecord:
    """One COCO image entry.

    Attributes:
        id: COCO image id.
        file_name: path relative to the split's image folder ('/' separators).
        width: W from the COCO entry.
        height: H from the COCO entry.
        video_id: the video (sequence) the frame belongs to, if any.
        frame_index: position of the frame in its video, if any.
    """

    id: int
    file_name: str
    width: int
    height: int
    video_id: int | None = None
    frame_index: int | None = None


def load_json(path: Path) -> Any:
    """Parse a JSON file.

    Raises:
        DatasetError: invalid JSON (the message gives line and column) or not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}; fix the file "
            "(e.g. `python -m json.tool FILE` shows where)",
            path=path,
        ) from None
    except UnicodeDecodeError as err:
        raise DatasetError(f"not UTF-8 text ({err}); a COCO file must be UTF-8 JSON", path=path) from None


def index_coco(
    coco: Any, taxonomy: Taxonomy, *, path: Path, folder: str = "the image folder"
) -> tuple[list[ImageRecord], dict[int, list[dict[str, Any]]]]:
    """Check a parsed COCO dict and index its annotations by image id.

    Args:
        coco: the parsed file.
        taxonomy: categories the annotations may use.
        path: the file (named in errors).
        folder: how to name the image folder in errors, e.g. ``"images/train/"``.

    Returns:
        (image records in file order, {image id: annotation dicts in file order}); the annotations
        that :func:`segval.dataset.packed.load_coco_packed` packed stay packed (:class:`PackedAnnotation`).

    Raises:
        DatasetError: listing every problem found (structure, duplicate ids, unknown image or
            category, escaping file names, categories disagreeing with the taxonomy).
    """
    if not isinstance(coco, Mapping):
        raise DatasetError(f"a COCO file must hold a JSON object, got {type(coco).__name__}", path=path)
    images = coco.get("images")
    anns = coco.get("annotations", [])
    if not isinstance(images, list):
        raise DatasetError("a COCO file needs an 'images' list", path=path)
    if not isinstance(anns, list):
        raise DatasetError("'annotations' must be a list", path=path)
    problems: list[DatasetError] = list(_category_problems(coco.get("categories"), taxonomy, path))

    records: list[ImageRecord] = []
    by_id: dict[int, ImageRecord] = {}
    by_image: dict[int, list[dict[str, Any]]] = {}
    file_names: dict[str, int] = {}
    for k, im in enumerate(images):
        try:
            rec = _image_record(im, k, path)
            if rec.id in by_id:
                raise DatasetError(
                    f"duplicate image id (file_name {rec.file_name!r} and {by_id[rec.id].file_name!r}); "
                    "image ids must be unique within a split",
                    path=path,
                    image_id=rec.id,
                )
            _check_relative(rec.file_name, path, rec.id, folder)
            if rec.file_name in file_names:
                raise DatasetError(
                    f"file_name {rec.file_name!r} is used by image ids {file_names[rec.file_name]} and {rec.id}",
                    path=path,
                    image_id=rec.id,
                )
        except DatasetError as err:
            problems.append(err)
            continue
        file_names[rec.file_name] = rec.id
        by_id[rec.id] = rec
        records.append(rec)
        by_image[rec.id] = []

    seen: set[int] = set()
    for k, ann in enumerate(anns):
        if type(ann) is PackedAnnotation:  # its fields checked when packed (dataset.packed)
            problem = _packed_problem(ann, seen, by_id, taxonomy, path)
            if problem is None:
                by_image[ann.image_id].append(ann)  # type: ignore[arg-type]
            else:
                problems.append(problem)
            continue
        try:
            if not isinstance(ann, Mapping):
                raise DatasetError(f"annotation entry {k} is not an object", path=path)
            ann_id = _int_field(ann, "id", path, what=f"annotation entry {k}")
            if ann_id in seen:
                raise DatasetError("duplicate annotation id; annotation ids must be unique", path=path,
                                   annotation_id=ann_id)
            seen.add(ann_id)
            image_id = _int_field(ann, "image_id", path, what=f"annotation id {ann_id}")
            cat = _int_field(ann, "category_id", path, what=f"annotation id {ann_id}")
            if image_id not in by_id:
                raise DatasetError(
                    f"annotation points at image id {image_id}, which is not in 'images'",
                    path=path,
                    annotation_id=ann_id,
                )
            if cat not in taxonomy:
                raise DatasetError(
                    f"category id {cat} is not in the taxonomy (ids: {taxonomy.ids}); "
                    "fix the annotation or add the category",
                    path=path,
                    image_id=image_id,
                    annotation_id=ann_id,
                )
            if "segmentation" not in ann:
                raise DatasetError("annotation has no 'segmentation'", path=path, image_id=image_id,
                                   annotation_id=ann_id)
        except DatasetError as err:
            problems.append(err)
            continue
        by_image[image_id].append(ann)  # type: ignore[arg-type]
    if problems:
        raise combine_problems(problems, f"{path}: {len(problems)} problem(s) in the annotation file", path=path)
    return records, by_image


def combine_problems(
    problems: Sequence[DatasetError], header: str, *, path: object | None = None, cap: int = MAX_LISTED_PROBLEMS
) -> DatasetError:
    """One DatasetError listing ``problems`` (the first ``cap``, and the total).

    A single problem is returned as it is. The full list is kept in the ``problems`` attribute.
    """
    if len(problems) == 1:
        err = problems[0]
    else:
        lines = [f"  - {p}" for p in problems[:cap]]
        if len(problems) > cap:
            lines.append(f"  ... and {len(problems) - cap} more ({len(problems)} problems in all)")
        err = DatasetError(header + ":\n" + "\n".join(lines))
        err.path = None if path is None else str(path)
    err.problems = list(problems)  # type: ignore[attr-defined]
    return err


# ---------------------------------------------------------------------- helpers
def _packed_problem(ann: PackedAnnotation, seen: set[int], by_id: Mapping[int, ImageRecord], taxonomy: Taxonomy,
                    path: Path) -> DatasetError | None:
    """The checks of :func:`index_coco` that a packed annotation can fail (its fields have the right types)."""
    if ann.id in seen:
        return DatasetError("duplicate annotation id; annotation ids must be unique", path=path, annotation_id=ann.id)
    seen.add(ann.id)
    if ann.image_id not in by_id:
        return DatasetError(f"annotation points at image id {ann.image_id}, which is not in 'images'", path=path,
                            annotation_id=ann.id)
    if ann.category_id not in taxonomy:
        return DatasetError(f"category id {ann.category_id} is not in the taxonomy (ids: {taxonomy.ids}); "
                            "fix the annotation or add the category", path=path, image_id=ann.image_id,
                            annotation_id=ann.id)
    return None


def _category_problems(cats: Any, taxonomy: Taxonomy, path: Path) -> list[DatasetError]:
    if cats is None:
        return []
    if not isinstance(cats, list):
        return [DatasetError("'categories' must be a list", path=path)]
    problems = []
    for c in cats:
        if not isinstance(c, Mapping) or "id" not in c:
            problems.append(DatasetError(f"COCO category {c!r} has no 'id'", path=path))
            continue
        try:
            known = taxonomy.category(c["id"])
        except KeyError:
            problems.append(DatasetError(
                f"COCO category id {c['id']!r} ({c.get('name')!r}) is not in the taxonomy of dataset.yaml "
                f"(ids: {taxonomy.ids}); the taxonomy lives in dataset.yaml, keep the two in step",
                path=path,
            ))
            continue
        if "name" in c and c["name"] != known.name:
            problems.append(DatasetError(
                f"COCO category id {known.id} is named {c['name']!r} here but {known.name!r} in dataset.yaml",
                path=path,
            ))
    return problems


def _int_field(obj: Mapping[str, Any], key: str, path: Path, *, what: str) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise DatasetError(f"{what}: {key!r} must be an integer, got {v!r}", path=path)
    return v


def _image_record(im: Any, k: int, path: Path) -> ImageRecord:
    if not isinstance(im, Mapping):
        raise DatasetError(f"image entry {k} is not an object", path=path)
    image_id = _int_field(im, "id", path, what=f"image entry {k}")
    fn = im.get("file_name")
    if not isinstance(fn, str) or not fn:
        raise DatasetError(f"'file_name' must be a non-empty string, got {fn!r}", path=path, image_id=image_id)
    w = _int_field(im, "width", path, what=f"image id {image_id}")
    h = _int_field(im, "height", path, what=f"image id {image_id}")
    if w <= 0 or h <= 0:
        raise DatasetError(f"width and height must be positive, got {w}x{h}", path=path, image_id=image_id)
    opt = {}
    for key in ("video_id", "frame_index"):
        v = im.get(key)
        opt[key] = None if v is None else _int_field(im, key, path, what=f"image id {image_id}")
    return ImageRecord(image_id, fn, w, h, **opt)


def _check_relative(file_name: str, path: Path, image_id: int, folder: str) -> None:
    p = PurePosixPath(file_name.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", file_name) or ".." in p.parts:
        raise DatasetError(
            f"file_name {file_name!r} must be a relative path inside {folder} without '..'; "
            "make it relative to the image folder",
            path=path,
            image_id=image_id,
        )
