"""COCO as tools really write it: pure helpers that bring a COCO dict to the form segval reads.

What they accept (each kind is reported once, with a count and the first ids, not once per annotation):

* booleans as strings or numbers (``"false"``, ``"0"``, ``"true"``, ``1``) for ``iscrowd`` / ``isthing``;
* category colours as hex strings (``"#ff8000"``, ``"f80"``) or ``"r,g,b"``;
* ids as numeric strings; category id 0; category ids beyond the uint8 label-map range (64-bit ids
  of some tools) renumbered 1..N in file order (the map is returned and reported);
* extra keys anywhere (left as they are);
* annotations without a mask (missing / empty ``segmentation``, a bbox only): taken out and returned
  per image as boxes, to be *ignore* regions (255 in semantic targets, see
  :func:`bbox_ignore_mask`);
* negative or inconsistent ``area`` / ``bbox``: recomputed from the mask;
* polygons reaching outside the image: clipped to the image rectangle (Sutherland-Hodgman).

:func:`classify_coco` says what a JSON file is when it is not COCO instance segmentation: a
results file (a top-level list with ``score``), captions, keypoints only, image info only, COCO
panoptic, an SA-1B per-image file (``image`` + class-agnostic RLE ``annotations``), labelme, Label
Studio; :func:`require_instances` turns that into an error that says what segval needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segval.dataset.rle import RunLengths, from_mask
from segval.dataset.segmentation import decode_segmentation
from segval.errors import ConfigError, DatasetError

__all__ = [
    "CocoKind",
    "NormalizedCoco",
    "bbox_ignore_mask",
    "classify_coco",
    "clip_polygon",
    "coerce_bool",
    "coerce_int",
    "is_bbox_only",
    "BBOX_ONLY_MODES",
    "normalize_coco",
    "parse_color",
    "require_instances",
]

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
MAX_IDS = 5


def coerce_bool(value: Any) -> bool:
    """``True`` / ``False`` from a bool, 0 / 1, or a string such as ``"false"``, ``"0"``, ``"True"``.

    >>> coerce_bool("false"), coerce_bool("1"), coerce_bool(0), coerce_bool(True)
    (False, True, False, True)

    Raises:
        ValueError: anything else (``2``, ``"maybe"``, ``None``).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise ValueError(f"expected a boolean (true/false, 1/0), got {value!r}")


def coerce_int(value: Any) -> int:
    """An integer from an int, an integral float or a numeric string (64-bit ids included).

    >>> coerce_int("12"), coerce_int(3.0), coerce_int(2**40)
    (12, 3, 1099511627776)

    Raises:
        ValueError: a bool, a fractional number or a non-numeric string.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"expected an integer, got the boolean {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def parse_color(value: Any) -> tuple[int, int, int] | None:
    """An RGB triple from ``[r, g, b]``, ``"#rrggbb"``, ``"rrggbb"``, ``"#rgb"`` or ``"r,g,b"``; None for None / "".

    >>> parse_color("#FF8000"), parse_color("f80"), parse_color("10, 20, 30"), parse_color([1, 2, 3])
    ((255, 128, 0), (255, 136, 0), (10, 20, 30), (1, 2, 3))

    Raises:
        ValueError: anything else, or components outside 0..255.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        v = value.strip()
        h = v[1:] if v.startswith("#") else v
        if re.fullmatch(r"[0-9A-Fa-f]{6}", h):
            rgb = tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
        elif re.fullmatch(r"[0-9A-Fa-f]{3}", h) and not re.fullmatch(r"\d{1,3}", v):
            rgb = tuple(int(c * 2, 16) for c in h)
        elif re.fullmatch(r"\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*", v):
            rgb = tuple(int(c) for c in v.split(","))
        else:
            raise ValueError(f"colour {value!r} is neither '#rrggbb' nor 'r,g,b'")
    elif isinstance(value, Sequence) and len(value) == 3:
        try:
            rgb = tuple(coerce_int(c) for c in value)
        except ValueError:
            raise ValueError(f"colour {value!r} must be three integers") from None
    else:
        raise ValueError(f"colour {value!r} must be [r, g, b] or '#rrggbb'")
    if any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour {value!r} has components outside 0..255")
    return rgb  # type: ignore[return-value]


# ---------------------------------------------------------------------- what kind of file
@dataclass(frozen=True)
class CocoKind:
    """What a parsed JSON file is.

    Attributes:
        kind: ``instances`` (usable), ``panoptic``, ``results``, ``captions``, ``keypoints``,
            ``image_info``, ``sa1b``, ``detection`` (boxes only), ``labelme``, ``labelstudio``, ``unknown``.
        message: what it is and what segval needs (empty for ``instances``).
    """

    kind: str
    message: str = ""


def _has_mask(ann: Mapping[str, Any]) -> bool:
    return not is_bbox_only(ann) and "segmentation" in ann


def classify_coco(obj: Any) -> CocoKind:
    """Recognise what a parsed JSON file is (see :class:`CocoKind`)."""
    from segval.dataset.formats.coco_panoptic import is_coco_panoptic  # same package family, no cycle at import

    if isinstance(obj, list):
        if obj and all(isinstance(a, Mapping) for a in obj[:50]):
            if any("score" in a for a in obj[:50]) and any("image_id" in a for a in obj[:50]):
                return CocoKind("results", "a COCO *results* file (a list of predictions with 'score'), not ground "
                                "truth; segval needs the annotation file (a JSON object with 'images', "
                                "'annotations' and 'categories')")
            if any("annotations" in a or "completions" in a or ("data" in a and "id" in a) for a in obj[:50]):
                return CocoKind("labelstudio", "a Label Studio JSON export (a list of tasks); read it with "
                                "`segval dataset import format=labelstudio source=<file> images=<folder>`")
            if any(isinstance(v, list) and v and isinstance(v[0], Mapping) and any(
                    k in v[0] for k in ("brushlabels", "polygonlabels", "rectanglelabels", "keypointlabels", "rle"))
                    for a in obj[:50] for v in a.values()):
                return CocoKind("labelstudio", "a Label Studio JSON-MIN export; read it with "
                                "`segval dataset import format=labelstudio source=<file> images=<folder>`")
        return CocoKind("unknown", "a JSON list; a COCO annotation file is a JSON object with 'images', "
                        "'annotations' and 'categories'")
    if not isinstance(obj, Mapping):
        return CocoKind("unknown", f"a JSON {type(obj).__name__}; a COCO file is a JSON object")
    if "shapes" in obj and ("imagePath" in obj or "imageData" in obj):
        return CocoKind("labelme", "a labelme JSON (one image, 'shapes'); import the labelme folder with "
                        "`segval dataset import format=labelme source=<folder>`")
    if isinstance(obj.get("image"), Mapping) and isinstance(obj.get("annotations"), list) and "categories" not in obj:
        return CocoKind("sa1b", "an SA-1B per-image file (SAM masks: 'image' + class-agnostic RLE 'annotations', no "
                        "categories); segval needs a class per mask: label the masks (e.g. in CVAT / Label Studio) "
                        "or convert them to COCO with 'categories' and a 'category_id' per annotation")
    if is_coco_panoptic(obj):
        return CocoKind("panoptic", "a COCO *panoptic* file ('segments_info' + PNG file names); read it with "
                        "`segval dataset import format=coco_panoptic source=<file.json> ...`")
    anns = obj.get("annotations")
    images = obj.get("images")
    if isinstance(images, list) and anns is None and "categories" not in obj:
        return CocoKind("image_info", "a COCO *image info* file (images only, e.g. image_info_test2017.json: no "
                        "annotations); segval needs the annotation file of the split")
    if isinstance(anns, list) and anns and all(isinstance(a, Mapping) for a in anns[:50]):
        head = anns[:200]
        if all("caption" in a and "segmentation" not in a for a in head):
            return CocoKind("captions", "a COCO *captions* file (captions_*.json); segval needs instance "
                            "segmentation (instances_*.json)")
        if all("keypoints" in a for a in head) and not any(_has_mask(a) for a in head):
            return CocoKind("keypoints", "a COCO *keypoints* file without masks; segval needs instance "
                            "segmentation (instances_*.json)")
        if all(is_bbox_only(a) for a in head) and not any(_has_mask(a) for a in anns):
            return CocoKind("detection", "a COCO *detection* file: every annotation is a box without a "
                            "'segmentation'; segval needs masks (polygons or RLE)")
    if isinstance(images, list) and (isinstance(anns, list) or anns is None):
        return CocoKind("instances")
    return CocoKind("unknown", "not a COCO annotation file: it needs 'images', 'annotations' and 'categories'")


def require_instances(obj: Any, *, path: object | None = None) -> None:
    """Raise a DatasetError saying what the file is unless it is COCO instance segmentation."""
    k = classify_coco(obj)
    if k.kind != "instances":
        raise DatasetError(f"this is {k.message}", path=path)


# ---------------------------------------------------------------------- masks, boxes, polygons
def is_bbox_only(ann: Mapping[str, Any]) -> bool:
    """True for an annotation with a box but no mask (missing / null / empty ``segmentation``).

    >>> is_bbox_only({"bbox": [0, 0, 2, 2], "segmentation": []}), is_bbox_only({"segmentation": [[0, 0, 1, 0, 1, 1]]})
    (True, False)
    """
    seg = ann.get("segmentation")
    empty = seg is None or seg == [] or seg == {} or (isinstance(seg, list) and all(
        isinstance(p, list) and not p for p in seg))
    return bool(empty and isinstance(ann.get("bbox"), Sequence) and len(ann["bbox"]) == 4)


def bbox_ignore_mask(boxes: Sequence[Sequence[float]], height: int, width: int) -> RunLengths:
    """The union of COCO boxes ``[x, y, w, h]`` as run lengths (pixels whose centre lies in a box)."""
    m = np.zeros((height, width), dtype=bool)
    for x, y, w, h in boxes:
        x0, y0 = max(int(math.ceil(x - 0.5)), 0), max(int(math.ceil(y - 0.5)), 0)
        x1, y1 = min(int(math.ceil(x + w - 0.5)), width), min(int(math.ceil(y + h - 0.5)), height)
        if x1 > x0 and y1 > y0:
            m[y0:y1, x0:x1] = True
    return from_mask(m)


def clip_polygon(poly: Sequence[float], width: float, height: float) -> list[float]:
    """Clip a flat polygon ``[x1, y1, x2, y2, ...]`` to the rectangle [0, width] x [0, height].

    Sutherland-Hodgman, so the part inside the image keeps its shape (clamping vertices would not).
    Returns the clipped flat list (fewer than 6 numbers when nothing is left inside).

    >>> clip_polygon([-2, 0, 2, 0, 2, 2], 10, 10)
    [0.0, 0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 1.0]
    """
    pts = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]

    def clip(points, inside, cross):
        out = []
        for i, cur in enumerate(points):
            prev = points[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        return out

    def at_x(x0):
        return lambda p, q: (x0, p[1] + (q[1] - p[1]) * (x0 - p[0]) / (q[0] - p[0]))

    def at_y(y0):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (y0 - p[1]) / (q[1] - p[1]), y0)

    for inside, cross in ((lambda p: p[0] >= 0, at_x(0.0)), (lambda p: p[0] <= width, at_x(float(width))),
                          (lambda p: p[1] >= 0, at_y(0.0)), (lambda p: p[1] <= height, at_y(float(height)))):
        if not pts:
            break
        pts = clip(pts, inside, cross)
    return [float(v) for p in pts for v in p]


def _outside(poly: Sequence[float], width: int, height: int) -> bool:
    xs, ys = poly[0::2], poly[1::2]
    return min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height


def _bbox_of(rl: RunLengths) -> list[float]:
    """[x, y, w, h] of a mask from its column-major runs (no decoding): a run spanning two or more
    columns covers every row."""
    starts, lengths = rl.fg_runs()
    if not len(starts):
        return [0.0, 0.0, 0.0, 0.0]
    h = int(rl.height)
    ends = starts + lengths - 1
    x0, x1 = int(starts[0] // h), int(ends[-1] // h)
    spans = (ends // h) != (starts // h)
    y0 = 0 if spans.any() else int((starts % h).min())
    y1 = h - 1 if spans.any() else int((ends % h).max())
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def _inconsistent(given: Any, actual: float, tol_rel: float = 0.1, tol_abs: float = 2.0) -> bool:
    try:
        g = float(given)
    except (TypeError, ValueError):
        return True
    return not math.isfinite(g) or g < 0 or abs(g - actual) > max(tol_abs, tol_rel * actual)


# ---------------------------------------------------------------------- the whole file
@dataclass
class NormalizedCoco:
    """The outcome of :func:`normalize_coco`.

    Attributes:
        coco: a new dict (the input is not modified) with int ids, bool-as-int ``iscrowd``,
            ``[r, g, b]`` colours, bool ``isthing``, clipped polygons, recomputed area / bbox, and
            without the bbox-only annotations.
        warnings: one line per kind of fix (count and first ids).
        bbox_only: image id -> the boxes ``[x, y, w, h]`` of annotations without a mask (ignore regions).
        category_map: old category id -> new one, for renumbered ids (empty when none was).
    """

    coco: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    bbox_only: dict[int, list[list[float]]] = field(default_factory=dict)
    category_map: dict[int, int] = field(default_factory=dict)


_BBOX_ONLY_TEXT = {
    "ignore_box": "annotations with a box but no mask ('segmentation' missing or empty) become ignore boxes (255 in "
                  "semantic targets where no other annotation lies; bbox_only=drop|error chooses otherwise)",
    "drop": "annotations with a box but no mask ('segmentation' missing or empty) dropped (bbox_only=drop: their "
            "objects are taught as whatever lies under them, usually background)",
    "error": "annotations with a box but no mask ('segmentation' missing or empty) refused (bbox_only=error); segval "
             "needs masks: draw them, or set bbox_only=ignore_box (their boxes become ignore regions) or "
             "bbox_only=drop",
}


class _Kinds:
    def __init__(self) -> None:
        self.kinds: dict[str, tuple[str, list[Any], list[int]]] = {}

    def add(self, kind: str, message: str, ident: Any) -> None:
        msg, ids, n = self.kinds.setdefault(kind, (message, [], [0]))
        n[0] += 1
        if len(ids) < MAX_IDS:
            ids.append(ident)

    def line(self, kind: str) -> str:
        msg, ids, n = self.kinds[kind]
        more = ", ..." if n[0] > len(ids) else ""
        return f"{msg}: {n[0]} (first ids: {', '.join(map(str, ids))}{more})"

    def lines(self) -> list[str]:
        return [self.line(k) for k in self.kinds]


#: what to do with annotations that have a box but no mask (``coco.bbox_only`` / ``data.bbox_only``)
BBOX_ONLY_MODES = ("ignore_box", "drop", "error")


def normalize_coco(coco: Any, *, path: object | None = None, recompute: bool = True,
                   bbox_only: str = "ignore_box") -> NormalizedCoco:
    """Bring a COCO instance-segmentation dict from a real tool to the form segval reads.

    Args:
        coco: the parsed file.
        path: the file, named in errors.
        recompute: check ``area`` / ``bbox`` against the decoded mask and recompute bad ones
            (decodes every mask once).
        bbox_only: annotations with a box but no mask: ``"ignore_box"`` (their box becomes an ignore
            region: returned in :attr:`NormalizedCoco.bbox_only`), ``"drop"`` (left out, with a
            warning) or ``"error"`` (one DatasetError giving the count and the first ids).

    Raises:
        DatasetError: not COCO instance segmentation (says what it is), values that cannot be
            coerced (every such problem listed, with ids), bbox-only annotations with ``bbox_only="error"``.
        ConfigError: an unknown ``bbox_only``.
    """
    from segval.dataset.coco import combine_problems

    if bbox_only not in BBOX_ONLY_MODES:
        raise ConfigError(f"bbox_only must be one of {list(BBOX_ONLY_MODES)}, got {bbox_only!r}")
    require_instances(coco, path=path)
    kinds = _Kinds()
    problems: list[DatasetError] = []

    def bad(msg: str, **ids: Any) -> None:
        problems.append(DatasetError(msg, path=path, **ids))

    # categories
    cats_in = coco.get("categories") or []
    cats: list[dict[str, Any]] = []
    for k, c in enumerate(cats_in if isinstance(cats_in, list) else []):
        if not isinstance(c, Mapping):
            bad(f"category entry {k} is not an object")
            continue
        c = dict(c)
        try:
            cid = coerce_int(c.get("id"))
            if not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
                kinds.add("cat_id_str", "category ids given as strings or floats, read as integers", c.get("id"))
            c["id"] = cid
        except ValueError as err:
            bad(f"category entry {k} ({c.get('name')!r}): id: {err}")
            continue
        if "isthing" in c and c["isthing"] is not None:
            try:
                v = coerce_bool(c["isthing"])
                if not isinstance(c["isthing"], bool) and c["isthing"] not in (0, 1):
                    kinds.add("isthing_str", "categories with 'isthing' as a string, read as a boolean", cid)
                c["isthing"] = int(v)
            except ValueError as err:
                bad(f"category id {cid} ({c.get('name')!r}): isthing: {err}")
        if "color" in c:
            try:
                rgb = parse_color(c["color"])
                if isinstance(c["color"], str):
                    kinds.add("color_hex", "category colours given as strings ('#rrggbb'), read as [r, g, b]", cid)
                if rgb is None:
                    c.pop("color")
                else:
                    c["color"] = list(rgb)
            except ValueError as err:
                bad(f"category id {cid} ({c.get('name')!r}): {err}")
        cats.append(c)
    ids = [c["id"] for c in cats]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        bad(f"category ids {dup} appear more than once in 'categories'")
    category_map: dict[int, int] = {}
    if ids and (max(ids) > 254 or min(ids) < 0):
        category_map = {old: 1 + k for k, old in enumerate(ids)}  # 0 stays free for a background
        for c in cats:
            c["id"] = category_map[c["id"]]
        shown = ", ".join(f"{o}->{n}" for o, n in list(category_map.items())[:MAX_IDS])
        kinds.add("cat_renumber", f"category ids outside 0..254 (label maps are uint8) renumbered in file order "
                  f"({shown}{', ...' if len(category_map) > MAX_IDS else ''})", ids[0])

    # images
    images: list[dict[str, Any]] = []
    sizes: dict[int, tuple[int, int]] = {}
    for k, im in enumerate(coco.get("images") or []):
        if not isinstance(im, Mapping):
            bad(f"image entry {k} is not an object")
            continue
        im = dict(im)
        try:
            for key in ("id", "width", "height"):
                raw = im.get(key)
                im[key] = coerce_int(raw)
                if isinstance(raw, str):
                    kinds.add(f"img_{key}_str", f"image {key}s given as strings, read as integers", im.get("id"))
        except ValueError as err:
            bad(f"image entry {k} ({im.get('file_name')!r}): {err}")
            continue
        sizes[im["id"]] = (im["height"], im["width"])
        images.append(im)

    # annotations
    anns: list[dict[str, Any]] = []
    mode, boxes = bbox_only, {}  # type: dict[int, list[list[float]]]
    for k, a in enumerate(coco.get("annotations") or []):
        if not isinstance(a, Mapping):
            bad(f"annotation entry {k} is not an object")
            continue
        a = dict(a)
        try:
            for key in ("id", "image_id", "category_id"):
                raw = a.get(key)
                a[key] = coerce_int(raw)
                if isinstance(raw, str):
                    kinds.add(f"ann_{key}_str", f"annotation {key}s given as strings, read as integers", a.get("id"))
        except ValueError as err:
            bad(f"annotation entry {k}: {err}", annotation_id=a.get("id") if isinstance(a.get("id"), int) else None)
            continue
        aid = a["id"]
        if category_map:
            if a["category_id"] not in category_map:
                bad(f"category id {a['category_id']} is not in 'categories'", annotation_id=aid)
                continue
            a["category_id"] = category_map[a["category_id"]]
        if "iscrowd" in a:
            raw = a["iscrowd"]
            try:
                a["iscrowd"] = int(coerce_bool(raw if raw is not None else 0))
                if isinstance(raw, str) or raw is None or isinstance(raw, bool):
                    kinds.add("iscrowd_str", "'iscrowd' given as a string / boolean / null, read as 0 / 1", aid)
            except ValueError as err:
                bad(f"iscrowd: {err}", annotation_id=aid)
                continue
        if is_bbox_only(a):
            try:
                box = [float(v) for v in a["bbox"]]
            except (TypeError, ValueError):
                bad(f"bbox {a.get('bbox')!r} is not four numbers", annotation_id=aid)
                continue
            if mode == "ignore_box":
                boxes.setdefault(a["image_id"], []).append(box)
            kinds.add("bbox_only", _BBOX_ONLY_TEXT[mode], aid)
            continue
        size = sizes.get(a["image_id"])
        seg = a.get("segmentation")
        if size is not None and isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
            h, w = size
            try:
                if any(len(p) >= 6 and _outside(p, w, h) for p in seg):
                    clipped = [clip_polygon(p, w, h) for p in seg]
                    clipped = [p for p in clipped if len(p) >= 6]
                    kinds.add("clipped", "polygons reaching outside their image clipped to it", aid)
                    if not clipped:
                        bad("every polygon lies outside the image; fix or drop the annotation",
                            image_id=a["image_id"], annotation_id=aid)
                        continue
                    a["segmentation"] = clipped
            except (TypeError, ValueError, ZeroDivisionError):
                pass  # malformed polygons: decode_segmentation names them below / in the reader
        if recompute and size is not None:
            try:
                rl = decode_segmentation(a, size[0], size[1], path=path, image_id=a["image_id"])
            except DatasetError as err:
                problems.append(err)
                continue
            area = float(rl.area)
            if _inconsistent(a.get("area"), area):
                kinds.add("area", "'area' missing, negative or not the mask's pixel count, recomputed from the mask",
                          aid)
                a["area"] = area
            bb = a.get("bbox")
            box = _bbox_of(rl)
            if not (isinstance(bb, Sequence) and len(bb) == 4 and all(
                    not _inconsistent(g, t, 0.1, 2.0) for g, t in zip(bb, box))):
                kinds.add("bbox", "'bbox' missing, negative or not around the mask, recomputed from the mask", aid)
                a["bbox"] = box
        anns.append(a)
    if mode == "error" and "bbox_only" in kinds.kinds:
        problems.append(DatasetError(kinds.line("bbox_only"), path=path))
    if problems:
        raise combine_problems(problems, f"{path}: {len(problems)} problem(s) in the COCO file", path=path)
    out = dict(coco)
    out.update({"images": images, "annotations": anns, "categories": cats})
    warns = [w for k, w in zip(kinds.kinds, kinds.lines()) if not (mode == "error" and k == "bbox_only")]
    return NormalizedCoco(out, warns, boxes, category_map)
