"""Read CVAT's XML exports ("CVAT for images 1.1", "CVAT for video 1.1") into an :class:`ImportedDataset`.

Format (docs.cvat.ai "XML annotation format", version 1.1): ``<annotations><version>1.1</version>
<meta>`` with the labels (``<task>`` or ``<project>`` ``<labels><label><name>``, optional ``<color>``
``#rrggbb`` and ``<type>``; skeleton parts carry ``<parent>``), then

* images mode: ``<image id name width height [subset]>`` holding shapes;
* video mode: ``<track id label>`` holding one shape per frame (``frame``, ``outside``, ``keyframe``;
  CVAT writes every frame of a track, interpolated ones too) and ``<original_size>`` in the meta.

Shapes read as masks: ``<polygon points="x0,y0;x1,y1;...">`` (rasterised with pycocotools like a COCO
polygon), ``<mask rle="..." left top width height>`` (CVAT's mask RLE: comma-separated run lengths
over the ``width`` x ``height`` box in row-major order, starting with a run of 0s; the box is placed
at ``left``, ``top``; its sum must be ``width * height`` and the box must lie in the image) and
``<ellipse cx cy rx ry rotation>`` (pixel centres inside; ``rotation`` in degrees, clockwise on
screen). Shapes sharing a ``group_id`` (not 0) and a label form one instance, as CVAT's COCO
export merges them. ``z_order`` decides overlaps: pixels claimed by several shapes go to the one
with the higher ``z_order`` (then the later in the file), as CVAT draws them; a shape left
without pixels is skipped and reported.

Listed as skipped in the report (no mask): ``box``, ``polyline``, ``points``, ``cuboid``,
``skeleton``, ``tag``. A label not declared in ``<meta>`` gets a warning and a new id.

Taxonomy: a label named background (any case) is the background, id 0 (otherwise a stuff class
``background`` is added as id 0; ``background="none"``: no background, uncovered pixels void); the
other declared labels in order get ids 1, 2, ... (types ``skeleton``, ``points``, ``polyline``,
``tag``, ``cuboid``, ``rectangle`` and skeleton parts are left out).

Splits: a project export's ``subset`` attribute names the split (lower-cased; ``default`` -> ``split``).
Images: ``name`` relative to ``images_dir`` (default ``<xml folder>/images`` when it exists, else the
XML's folder), also looked for under ``<images_dir>/<subset>/`` as in project exports. Video frames are
``frame_<6-digit frame>.<png|jpg|jpeg>`` there (the CVAT-for-video layout), with ``video_id`` (the task
id) and ``frame_index``; the track id is kept as ``track_id``.

XML is hostile input: a document declaring a DTD or entities (``<!DOCTYPE``, ``<!ENTITY``) is refused
before parsing (no entity expansion, no external resources).
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

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

__all__ = ["AREA_SHAPES", "SKIPPED_SHAPES", "CvatDocument", "decode_cvat_mask", "frame_instances", "parse_cvat",
           "parse_xml_safely", "read_cvat_xml"]

#: shapes read as masks
AREA_SHAPES = ("polygon", "mask", "ellipse")
#: shapes without a mask, skipped and reported
SKIPPED_SHAPES = ("box", "polyline", "points", "cuboid", "skeleton", "tag")
#: label types left out of the taxonomy (their shapes have no mask)
_NO_AREA_TYPES = ("skeleton", "points", "polyline", "tag", "cuboid", "rectangle")
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_FRAME = re.compile(r"^frame_(\d+)\.(png|jpe?g|bmp)$", re.IGNORECASE)


def parse_xml_safely(path: Path, data: bytes | None = None) -> ET.Element:
    """Parse an XML file (or its ``data``, e.g. read from a zip), refusing DTDs and entity declarations
    (billion laughs, external entities).

    Raises:
        DatasetError: DTD / entity declarations, or malformed / truncated XML (with line and column).
    """
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DatasetError(f"cannot read the XML file ({err})", path=path) from None
    if _DTD.search(data):
        raise DatasetError("the XML declares a DTD or entities (<!DOCTYPE / <!ENTITY); refused, since entity "
                           "expansion is an attack vector and CVAT never writes them: remove the declarations",
                           path=path)
    try:
        return ET.fromstring(data)
    except ET.ParseError as err:
        line, col = getattr(err, "position", (0, 0))
        raise DatasetError(f"malformed or truncated XML at line {line}, column {col + 1} ({err}); re-export "
                           "the annotations", path=path) from None


def decode_cvat_mask(rle: str, left: int, top: int, width: int, height: int, img_h: int, img_w: int) -> np.ndarray:
    """bool[img_h, img_w] of a CVAT ``<mask>``: run lengths (0s first) row-major over the box at (left, top).

    >>> decode_cvat_mask("1, 2, 3", 1, 0, 3, 2, 2, 5).astype(int).tolist()
    [[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]]

    Raises:
        ValueError: non-integer or negative runs, runs not summing to ``width * height``, an empty
            or inverted box, or a box leaving the image.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"mask box is {width}x{height}; width and height must be positive")
    if left < 0 or top < 0 or left + width > img_w or top + height > img_h:
        raise ValueError(f"mask box left={left} top={top} width={width} height={height} leaves the "
                         f"{img_w}x{img_h} image")
    parts = [p.strip() for p in rle.split(",")]
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError("rle must be comma-separated non-negative integers")
    counts = np.asarray([int(p) for p in parts], dtype=np.int64)
    if int(counts.sum()) != width * height:
        raise ValueError(f"rle runs cover {int(counts.sum())} pixels but the {width}x{height} box has "
                         f"{width * height}")
    values = (np.arange(counts.size) % 2).astype(bool)
    box = np.repeat(values, counts).reshape(height, width)
    out = np.zeros((img_h, img_w), dtype=bool)
    out[top:top + height, left:left + width] = box
    return out


def _polygon_mask(points: str, h: int, w: int) -> np.ndarray:
    try:
        flat = [float(v) for pair in points.strip().split(";") if pair.strip() for v in pair.split(",")]
    except ValueError:
        raise ValueError(f"points {points[:60]!r} are not 'x,y;x,y;...' numbers") from None
    if len(flat) % 2 or len(flat) < 6:
        raise ValueError(f"a polygon needs at least 3 x,y points, got {points[:60]!r}")
    if not all(math.isfinite(v) for v in flat):
        raise ValueError("points hold a non-finite number")
    rle = mask_utils.frPyObjects([flat], h, w)[0]
    return mask_utils.decode(rle).astype(bool)


def _ellipse_mask(el: ET.Element, h: int, w: int) -> np.ndarray:
    try:
        cx, cy, rx, ry = (float(el.attrib[k]) for k in ("cx", "cy", "rx", "ry"))
        rot = math.radians(float(el.attrib.get("rotation", 0) or 0))
    except (KeyError, ValueError):
        raise ValueError("an ellipse needs numeric cx, cy, rx, ry (and rotation)") from None
    if not (rx > 0 and ry > 0) or not all(map(math.isfinite, (cx, cy, rx, ry, rot))):
        raise ValueError(f"ellipse radii must be positive and finite, got rx={rx} ry={ry}")
    ys, xs = np.mgrid[0:h, 0:w]
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    c, s = math.cos(rot), math.sin(rot)
    u, v = dx * c + dy * s, -dx * s + dy * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


@dataclass
class _Shape:
    label: str
    mask: np.ndarray
    z: int
    order: int
    group: int
    where: str
    track: int | None = None


def _shape_mask(el: ET.Element, h: int, w: int) -> np.ndarray:
    if el.tag == "polygon":
        return _polygon_mask(el.attrib.get("points", ""), h, w)
    if el.tag == "ellipse":
        return _ellipse_mask(el, h, w)
    try:
        box = [int(float(el.attrib[k])) for k in ("left", "top", "width", "height")]
    except (KeyError, ValueError):
        raise ValueError("a mask needs integer left, top, width and height") from None
    if "rle" not in el.attrib:
        raise ValueError("a mask needs an 'rle' attribute")
    return decode_cvat_mask(el.attrib["rle"], *box, h, w)


def _int_attr(el: ET.Element, key: str, default: int = 0) -> int:
    v = el.attrib.get(key)
    if v is None or v == "":
        return default
    return int(float(v))


def _labels(meta: ET.Element | None) -> tuple[list[tuple[str, tuple[int, int, int] | None]], list[str]]:
    """Declared area labels (name, colour) in order, and the names of other declared labels."""
    areas: list[tuple[str, tuple[int, int, int] | None]] = []
    others: list[str] = []
    if meta is None:
        return areas, others
    for lab in meta.iter("label"):
        name = (lab.findtext("name") or "").strip()
        if not name:
            continue
        typ = (lab.findtext("type") or "any").strip().lower()
        if lab.find("parent") is not None or typ in _NO_AREA_TYPES:
            others.append(name)
            continue
        try:
            color = parse_color(lab.findtext("color"))
        except ValueError:
            color = None
        if name not in [n for n, _ in areas]:
            areas.append((name, color))
    return areas, others


def _split_name(subset: str | None, default: str) -> str:
    if not subset or subset.strip().lower() == "default":
        return default
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", subset.strip().lower()).strip("_.-")
    return s or default


@dataclass
class CvatDocument:
    """The parsed shapes of a CVAT XML, per frame, before any pixel is read.

    Attributes:
        declared: (name, colour) of the declared area labels, in order.
        names: every area label in use or declared (undeclared ones appended, with a warning).
        frames: (split, frame id) -> ``{"name", "width", "height", "subset", "id", "shapes"}``; ``name`` is
            None for a video frame; ``shapes`` are the area shapes for :func:`frame_instances`.
        tracks: whether the document has video tracks.
        meta: the ``<meta>`` element (or None).
    """

    declared: list[tuple[str, tuple[int, int, int] | None]]
    names: list[str]
    frames: dict[tuple[str, int], dict[str, Any]]
    tracks: bool
    meta: ET.Element | None


def parse_cvat(xml_path: Path, *, split: str = "train", findings: Findings, data: bytes | None = None,
               progress: Callable[[Any], Any] | None = None) -> CvatDocument:
    """Parse a CVAT XML (``data``: its bytes, e.g. from a zip) into shapes per frame; problems, skipped shapes
    and warnings go to ``findings``.

    Raises:
        DatasetError: not XML, a DTD / entities, or not a CVAT export (root element).
    """
    f = findings
    root = parse_xml_safely(xml_path, data)
    if root.tag != "annotations":
        raise DatasetError(f"not a CVAT XML export: the root element is <{root.tag}>, not <annotations>",
                           path=xml_path)
    version = (root.findtext("version") or "").strip()
    if version != "1.1":
        f.note(f"XML format version {version or '(none)'}; this reader follows version 1.1")
    meta = root.find("meta")
    declared, _ = _labels(meta)
    names = [n for n, _ in declared]
    frames: dict[tuple[str, int], dict[str, Any]] = {}  # (split, frame id) -> image info + shapes
    images = root.findall("image")
    tracks = root.findall("track")
    items: list[ET.Element] = images + tracks
    order = 0
    for el in (progress(items) if progress else items):
        if el.tag == "image":
            try:
                fid = _int_attr(el, "id")
                w, h = _int_attr(el, "width", -1), _int_attr(el, "height", -1)
            except ValueError:
                f.problem(f"<image name={el.attrib.get('name')!r}>: id, width and height must be integers",
                          path=xml_path)
                continue
            s = _split_name(el.attrib.get("subset"), split)
            key = (s, fid)
            if key in frames:
                f.problem(f"image id {fid} appears twice (split {s!r})", path=xml_path)
                continue
            info = frames[key] = {"name": el.attrib.get("name"), "width": w, "height": h, "shapes": [],
                                  "subset": el.attrib.get("subset"), "id": fid}
            for k, sh in enumerate(el):
                order += 1
                _collect(sh, info, k, None, order, names, f, xml_path)
        else:  # a track of CVAT for video
            order = _track(el, frames, split, order, names, f, xml_path)
    return CvatDocument(declared, names, frames, bool(tracks), meta)


def _track(el: ET.Element, frames: dict[tuple[str, int], dict[str, Any]], split: str, order: int, names: list[str],
           f: Findings, xml_path: Path) -> int:
    try:
        tid = _int_attr(el, "id")
    except ValueError:
        f.problem(f"<track id={el.attrib.get('id')!r}>: id must be an integer", path=xml_path)
        return order
    label = el.attrib.get("label", "")
    for k, sh in enumerate(el):
        if sh.tag == "track":  # skeleton parts
            f.skip("skeleton", f"track {tid}")
            continue
        if sh.attrib.get("outside") == "1":
            continue
        try:
            fid = _int_attr(sh, "frame", -1)
        except ValueError:
            f.problem(f"track {tid} shape {k}: frame must be an integer", path=xml_path)
            continue
        if fid < 0:
            f.problem(f"track {tid} shape {k}: no frame attribute", path=xml_path)
            continue
        info = frames.setdefault((split, fid), {"name": None, "width": -1, "height": -1, "shapes": [],
                                                "subset": None, "id": fid})
        sh.attrib.setdefault("label", label)
        order += 1
        _collect(sh, info, k, tid, order, names, f, xml_path)
    return order


def read_cvat_xml(
    xml_path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    *,
    split: str = "train",
    background: str | None = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Any], Any] | None = None,
) -> ImportedDataset:
    """Parse and check a CVAT XML export (see the module doc). Nothing is written.

    Args:
        xml_path: ``annotations.xml`` (or the unzipped export folder holding it).
        images_dir: folder the image names are relative to (default: see the module doc).
        split: split name (project exports: the ``subset`` of each image instead).
        background: ``"auto"``, ``"none"`` or a label name (see the module doc).
        max_pixels: limit on width * height, checked from the headers before decoding.
        progress: wraps the per-image loop.

    Raises:
        DatasetError: listing every problem (file, image name / id, shape index and label).
    """
    xml_path = Path(xml_path)
    if xml_path.is_dir():
        xml_path = xml_path / "annotations.xml"
    if not xml_path.is_file():
        raise DatasetError("CVAT XML not found (export 'CVAT for images 1.1' and unzip it)", path=xml_path)
    f = Findings()
    doc = parse_cvat(xml_path, split=split, findings=f, progress=progress)
    if images_dir is None:
        images_dir = xml_path.parent / "images" if (xml_path.parent / "images").is_dir() else xml_path.parent
    img_root = Path(images_dir)
    if not img_root.is_dir():
        raise DatasetError("image folder not found; pass images_dir=<folder the image names are relative to>",
                           path=img_root)
    f.raise_if_any(xml_path, "CVAT XML")
    declared, names, frames, tracks, meta = doc.declared, doc.names, doc.frames, doc.tracks, doc.meta
    undeclared = [n for n in names if n not in [d for d, _ in declared]]
    tax = taxonomy_from_names(declared + [(n, None) for n in undeclared], background, source=xml_path)
    by_name = {c.name: c.id for c in tax}

    video_files: dict[int, Path] = {}
    if tracks:
        for p in sorted(img_root.iterdir()):
            m = _FRAME.match(p.name)
            if m and p.is_file():
                video_files.setdefault(int(m.group(1)), p)
        for fid, p in video_files.items():
            frames.setdefault((split, fid), {"name": None, "width": -1, "height": -1, "shapes": [], "subset": None,
                                             "id": fid})
    size = _original_size(meta)
    task_id = _task_id(meta)

    out: dict[str, list[ImportedImage]] = {}
    for (s, fid), info in sorted(frames.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        try:
            im = _image(info, s, fid, img_root, video_files, size, task_id, by_name, max_pixels, f, xml_path,
                        bool(tracks))
        except DatasetError as err:
            f.add(err)
            continue
        if im is not None:
            out.setdefault(s, []).append(im)
    for s, ims in out.items():
        check_unique_names(f, s, ims, xml_path)
    f.raise_if_any(xml_path, "CVAT export")
    if not out:
        out = {split: []}
    return ImportedDataset("cvat", str(xml_path), tax, out, f.warnings(), f.skipped, max_pixels=max_pixels)


def _collect(sh: ET.Element, info: dict[str, Any], k: int, track: int | None, order: int, names: list[str],
             f: Findings, xml_path: Path) -> None:
    where = (f"image {info['name']!r} (id {info['id']}) " if info["name"] else f"frame {info['id']} ") + \
        (f"track {track} " if track is not None else "") + f"<{sh.tag}> {k}"
    if sh.tag in SKIPPED_SHAPES:
        f.skip(sh.tag, where)
        return
    if sh.tag not in AREA_SHAPES:
        if sh.tag != "attribute":
            f.skip(f"unknown element <{sh.tag}>", where)
        return
    label = (sh.attrib.get("label") or "").strip()
    if not label:
        f.problem(f"{where} has no label; give it one in CVAT", path=xml_path)
        return
    if label not in names:
        names.append(label)
        f.warn("undeclared", "labels used by shapes but not declared in <meta> (added to the taxonomy)", label)
    try:
        z, group = _int_attr(sh, "z_order"), _int_attr(sh, "group_id")
    except ValueError:
        f.problem(f"{where}: z_order and group_id must be integers", path=xml_path)
        return
    info["shapes"].append((sh, label, z, group, order, where, track))


def _original_size(meta: ET.Element | None) -> tuple[int, int] | None:
    if meta is None:
        return None
    el = next(meta.iter("original_size"), None)
    if el is None:
        return None
    try:
        return int(el.findtext("width") or ""), int(el.findtext("height") or "")
    except ValueError:
        return None


def _task_id(meta: ET.Element | None) -> int:
    if meta is None:
        return 0
    task = meta.find("task")
    try:
        return int((task.findtext("id") if task is not None else None) or 0)
    except ValueError:
        return 0


def _image(info: dict[str, Any], split: str, fid: int, img_root: Path, video_files: dict[int, Path],
           size: tuple[int, int] | None, task_id: int, by_name: dict[str, int], max_pixels: int, f: Findings,
           xml_path: Path, video: bool) -> ImportedImage | None:
    name = info["name"]
    extra: dict[str, Any] = {"cvat_frame": fid}
    if name is not None:
        try:
            path = resolve_inside(img_root, name, what="image name")
            if not path.is_file() and info["subset"]:
                alt = resolve_inside(img_root, f"{info['subset']}/{name}", what="image name")
                path = alt if alt.is_file() else path
        except ValueError as err:
            raise DatasetError(f"image id {fid}: {err}", path=xml_path) from None
        if not path.is_file():
            raise DatasetError(f"image {name!r} (CVAT image id {fid}) not found in {img_root}; pass the folder the "
                               "image names are relative to (the export's images/ when saved with images)",
                               path=xml_path)
        rel = name
    else:
        path = video_files.get(fid)
        if path is None:
            raise DatasetError(f"frame {fid} has shapes but no image frame_{fid:06d}.png/.jpg in {img_root} (CVAT for "
                               "video names frames so; export with images, or pass their folder)", path=xml_path)
        rel = path.name
        extra = {"video_id": task_id, "frame_index": fid}
    w, h = probe_image(path, max_pixels=max_pixels)
    want = (info["width"], info["height"]) if info["width"] > 0 else size
    if want is not None and want != (w, h):
        what = f"image {name!r} (id {fid})" if name else f"frame {fid}"
        raise DatasetError(f"{what} is {w}x{h} but the XML says {want[0]}x{want[1]} (width x height)", path=xml_path)
    instances = frame_instances(info["shapes"], h, w, by_name, f, xml_path)
    origin = f"image {name!r} (CVAT id {fid})" if name else f"frame {fid}"
    return ImportedImage(package_file_name(rel), w, h, path=path, instances=instances, extra=extra, origin=origin)


def frame_instances(shapes: list[tuple[Any, ...]], h: int, w: int, by_name: dict[str, int], f: Findings,
                    xml_path: Path) -> list[ImportedInstance]:
    """The instances of one frame's area shapes (:attr:`CvatDocument.frames` ``shapes``) in an ``h`` x ``w`` image:
    masks decoded, shapes of one label and one ``group_id`` merged, overlaps given to the higher ``z_order``
    (then the later shape), in file order. Bad geometry is a problem in ``f``."""
    decoded: list[_Shape] = []
    for sh, label, z, group, order, where, track in shapes:
        try:
            m = _shape_mask(sh, h, w)
        except ValueError as err:
            f.problem(f"{where} (label {label!r}): {err}", path=xml_path)
            continue
        if sh.tag == "polygon" and _leaves(sh.attrib.get("points", ""), w, h):
            f.warn("polygon_outside", "polygons reaching outside their image, clipped to it", where)
        decoded.append(_Shape(label, m, z, order, group, where, track))
    # groups: shapes with one label and one group_id > 0 are one object
    merged: dict[tuple[str, int], _Shape] = {}
    flat: list[_Shape] = []
    for s in decoded:
        if s.group:
            key = (s.label, s.group)
            if key in merged:
                g = merged[key]
                g.mask = g.mask | s.mask
                g.z, g.order = max(g.z, s.z), max(g.order, s.order)
                f.warn("grouped", "shapes sharing a group_id and a label merged into one instance", s.where)
                continue
            merged[key] = s
        flat.append(s)
    # z_order: higher z (then later in the file) owns overlapping pixels
    flat.sort(key=lambda s: (s.z, s.order))
    taken = np.zeros((h, w), dtype=bool)
    visible: list[tuple[int, ImportedInstance]] = []
    for s in reversed(flat):
        vis = s.mask & ~taken
        if (s.mask & taken).any():
            f.warn("overlap", "overlapping shapes: shared pixels given to the higher z_order (then the later shape), "
                   "as CVAT draws them", s.where)
        taken |= s.mask
        if not vis.any():
            f.skip("shapes without visible pixels", s.where)
            continue
        visible.append((s.order, ImportedInstance(by_name[s.label], from_mask(vis), 0, origin=s.where,
                                                  track_id=s.track)))
    return [inst for _, inst in sorted(visible, key=lambda t: t[0])]  # file order


def _leaves(points: str, w: int, h: int) -> bool:
    try:
        vals = [float(v) for pair in points.split(";") if pair.strip() for v in pair.split(",")]
    except ValueError:
        return False
    xs, ys = vals[0::2], vals[1::2]
    return bool(xs) and (min(xs) < 0 or min(ys) < 0 or max(xs) > w or max(ys) > h)
