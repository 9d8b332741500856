"""A split's annotations kept as compact JSON text, one string per image, parsed when asked for.

A COCO annotation parsed into Python objects (a dict, its segmentation dict, the RLE string, the bbox
list, floats) takes about 1 KB; its JSON text about 200 bytes. At 10^5 images of ten objects the parsed
tree alone is about 1 GB, so :func:`load_coco_packed` reads the top-level ``annotations`` list element by
element and keeps each well-formed annotation as its JSON text (:class:`PackedAnnotation`), and
:class:`AnnotationTable` keeps them per image, parsing an image's annotations again (``json.loads``,
exact: the same keys in the same order, the same values and types) each time they are asked for.

Only what :func:`segval.dataset.coco.index_coco` checks is read from each annotation (integer ``id``,
``image_id``, ``category_id`` and a ``segmentation`` key); any other annotation entry stays a parsed dict
and is checked as before. A file that is not a JSON object is read with
:func:`segval.dataset.coco.load_json` (same result, same errors).
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["AnnotationTable", "PackedAnnotation", "load_coco_packed"]

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
_INT_KEYS = ("id", "image_id", "category_id")


class PackedAnnotation(NamedTuple):
    """One annotation as its JSON text, with the fields the cheap checks need."""

    id: int
    image_id: int
    category_id: int
    text: str


def load_coco_packed(path: Path, *, annotations: bool = True) -> Any:
    """The parsed COCO file, its top-level ``annotations`` entries packed where well-formed.

    Returns what :func:`~segval.dataset.coco.load_json` returns, except that each entry of the top-level
    ``annotations`` list that is an object with integer ``id``, ``image_id``, ``category_id`` and a
    ``segmentation`` is a :class:`PackedAnnotation`. With ``annotations=False`` that list is read entry by
    entry and left out (``[]``): the images, categories and other keys of a large file without its annotations.

    Raises:
        DatasetError: as :func:`~segval.dataset.coco.load_json` (invalid JSON, not UTF-8).
    """
    from segval.dataset.coco import load_json

    try:
        text = Path(path).read_text(encoding="utf-8")
        return _parse_top(text, keep_annotations=annotations)
    except (ValueError, UnicodeDecodeError, _NotAnObject):
        return load_json(path)  # the same object or the same error as before, with its line and column


class _NotAnObject(Exception):
    """The file is no JSON object at its top level (read whole instead)."""


def _parse_top(text: str, *, keep_annotations: bool = True) -> dict[str, Any]:
    """The top-level object of ``text``, parsed key by key (its ``annotations`` list element by element)."""
    pos = _WS.match(text, 0).end()
    if not text.startswith("{", pos):
        raise _NotAnObject
    out: dict[str, Any] = {}
    pos = _WS.match(text, pos + 1).end()
    if text.startswith("}", pos):
        return _end(text, pos + 1, out)
    while True:
        if not text.startswith('"', pos):
            raise ValueError("expected a key")
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _WS.match(text, pos).end()
        if not text.startswith(":", pos):
            raise ValueError("expected ':'")
        pos = _WS.match(text, pos + 1).end()
        if key == "annotations" and text.startswith("[", pos):
            value, pos = _parse_annotations(text, pos, keep=keep_annotations)
        else:
            value, pos = _DECODER.raw_decode(text, pos)
        out[key] = value  # a repeated key: the last value, at the first one's place (as json.loads does)
        pos = _WS.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
            continue
        if text.startswith("}", pos):
            return _end(text, pos + 1, out)
        raise ValueError("expected ',' or '}'")


def _end(text: str, pos: int, out: dict[str, Any]) -> dict[str, Any]:
    if _WS.match(text, pos).end() != len(text):
        raise ValueError("extra data")
    return out


def _parse_annotations(text: str, pos: int, *, keep: bool = True) -> tuple[list[Any], int]:
    """The ``annotations`` list starting at ``text[pos] == '['``, well-formed entries packed (none kept unless
    ``keep``)."""
    items: list[Any] = []
    pos = _WS.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return items, pos + 1
    while True:
        start = pos
        ann, pos = _DECODER.raw_decode(text, pos)
        if keep:
            items.append(_pack(ann, text[start:pos]))
        pos = _WS.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos):
            return items, pos + 1
        raise ValueError("expected ',' or ']'")


def _pack(ann: Any, raw: str) -> Any:
    if not isinstance(ann, dict) or "segmentation" not in ann or any(type(ann.get(k)) is not int for k in _INT_KEYS):
        return ann
    if any(c in raw for c in "\n\r\t") or ": " in raw or ", " in raw:  # pretty-printed: keep it compact
        raw = json.dumps(ann, separators=(",", ":"))
    return PackedAnnotation(ann["id"], ann["image_id"], ann["category_id"], raw)


class AnnotationTable:
    """The annotations of a split by image id: packed ones as one JSON string per image, others as dicts.

    Args:
        by_image: ``{image id: [annotation dict or PackedAnnotation, ...]}`` in file order.

    Attributes:
        count: number of annotations.
        ids: int64[count] annotation ids, image by image (``by_image``'s order).
    """

    def __init__(self, by_image: Mapping[int, Sequence[Any]]) -> None:
        self._rows: dict[int, str | list[dict[str, Any]]] = {}
        self.count = 0
        ids = array("q")
        for image_id, anns in by_image.items():
            self.count += len(anns)
            ids.extend(a.id if type(a) is PackedAnnotation else int(a["id"]) for a in anns)
            if anns and all(type(a) is PackedAnnotation for a in anns):
                self._rows[image_id] = "[" + ",".join(a.text for a in anns) + "]"
            else:
                self._rows[image_id] = [json.loads(a.text) if type(a) is PackedAnnotation else a for a in anns]
        self.ids = np.frombuffer(ids, dtype=np.int64) if ids else np.zeros(0, np.int64)

    def get(self, image_id: int) -> list[dict[str, Any]]:
        """The annotation dicts of an image, in file order (parsed again on each call for packed images)."""
        row = self._rows.get(image_id)
        if row is None:
            return []
        return json.loads(row) if type(row) is str else row

    def json_text(self, image_id: int) -> str:
        """The annotations of an image as one JSON array (``"[]"`` when it has none); ``json.loads`` of it equals
        :meth:`get`."""
        row = self._rows.get(image_id)
        if row is None:
            return "[]"
        return row if type(row) is str else json.dumps(row)
