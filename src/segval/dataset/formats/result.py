"""What every reader of another tool's export returns, and how it becomes a dataset package.

A reader parses and checks a whole export first and returns an :class:`ImportedDataset`:
the taxonomy, per split a list of :class:`ImportedImage` (source image file, size, extra COCO
image keys such as ``video_id`` / ``frame_index``, instances as run lengths, an optional
*ignore* region), plus one warning per kind of oddity and the count (with the first examples)
of everything it skipped (boxes, points, tags, ...). Nothing is written by a reader.

:func:`write_imported` then writes the package atomically with
:class:`~segval.dataset.writer.PackageWriter` (nothing is left behind on an error).

**Ignore regions** (COCO panoptic crowd and void, VOC's 255 border, bbox-only COCO boxes) must be
255 in semantic targets. The package has one way to say "ignore" for both target sources
(COCO annotations and label maps): pixels that no annotation covers in a package whose taxonomy
has no ``background_id`` (``semantic.rasterize_semantic``). Crowd annotations do not do it
(they are painted with their category). So when an image holds ignore pixels and the taxonomy
has a background class, :func:`write_imported` writes the taxonomy with ``background_id: null``
and gives every image an explicit background (stuff) annotation covering the pixels that are
neither an instance nor ignored, as :func:`segval.dataset.export.import_label_maps` does for void.
Instances always win over ignore pixels (an ignore box does not erase an object inside it).

**Licence**: ``dataset.yaml`` gets the licence given (or the one the export names); without one it
says ``unknown`` and a warning says so.

**Problems**: readers collect every problem (:class:`Findings`) and raise one
:class:`~segval.errors.DatasetError` listing them (:func:`segval.dataset.coco.combine_problems`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from segval.dataset.coco import combine_problems
from segval.dataset.images import DEFAULT_MAX_PIXELS, raise_pil_limit, read_rgb
from segval.dataset.rle import RunLengths, from_mask
from segval.dataset.taxonomy import Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.errors import DatasetError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Findings",
    "ImportedDataset",
    "ImportedImage",
    "ImportedInstance",
    "Skipped",
    "UNKNOWN_LICENSE",
    "merge_imported",
    "probe_image",
    "resolve_inside",
    "taxonomy_from_names",
    "write_imported",
]

#: dataset.yaml licence when neither the caller nor the export names one
UNKNOWN_LICENSE = "unknown"
#: examples kept per skipped / warned kind
MAX_EXAMPLES = 5
_RESERVED = ("id", "file_name", "width", "height")


@dataclass
class ImportedInstance:
    """One object of an imported image.

    Attributes:
        category_id: a category id of the result's taxonomy.
        mask: the pixels, as run lengths of the image size (decode with ``mask.decode()``).
        iscrowd: 0, or 1 for a crowd region kept as an annotation.
        origin: where it came from, for messages (e.g. ``"task 3 result 'a1'"``).
        track_id: the object's track across frames, when the export has one.
    """

    category_id: int
    mask: RunLengths
    iscrowd: int = 0
    origin: str = ""
    track_id: int | None = None

    @classmethod
    def from_mask(cls, category_id: int, mask: np.ndarray, **kw: Any) -> ImportedInstance:
        """Build from a bool[H, W] mask."""
        return cls(int(category_id), from_mask(np.asarray(mask, dtype=bool)), **kw)

    @property
    def area(self) -> int:
        return self.mask.area


@dataclass
class ImportedImage:
    """One image of an imported split.

    Attributes:
        file_name: path inside ``images/<split>/`` of the package ('/' separators).
        width, height: the image size (checked against the file's header by the reader).
        path: the image file to read when writing (or ``pixels``).
        pixels: uint8[H, W, 3] when the image is in memory instead.
        instances: the objects.
        ignore: run lengths of pixels to ignore (255 in semantic targets) where no instance lies.
        extra: more keys of the COCO image entry (``video_id``, ``frame_index``, source ids).
        origin: where it came from, for messages.
    """

    file_name: str
    width: int
    height: int
    path: Path | None = None
    pixels: np.ndarray | None = None
    instances: list[ImportedInstance] = field(default_factory=list)
    ignore: RunLengths | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = ""

    def read_rgb(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """The pixels, uint8[H, W, 3] (header checks before decoding; DatasetError when unreadable)."""
        if self.pixels is not None:
            return self.pixels
        if self.path is None:
            raise DatasetError(f"{self.origin or self.file_name}: no image file and no pixels")
        return read_rgb(self.path, width=self.width, height=self.height, max_pixels=max_pixels)

    def has_ignore(self) -> bool:
        return self.ignore is not None and self.ignore.area > 0


@dataclass
class Skipped:
    """Things a reader left out: how many, and the first few (e.g. ``"img3.jpg: box 2"``)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        more = ", ..." if self.count > len(self.examples) else ""
        return f"{self.count} (e.g. {', '.join(self.examples)}{more})"


@dataclass
class ImportedDataset:
    """A parsed, checked export: what :func:`write_imported` writes.

    Attributes:
        format: the reader (``coco_panoptic``, ``cvat``, ``cvat_masks``, ``labelstudio``, ``voc``).
        source: the file or folder read.
        taxonomy: the classes (ids are label-map values).
        splits: split name -> images, in the order to write.
        warnings: one line per kind of oddity (with a count and the first ids).
        skipped: kind -> :class:`Skipped`.
        license: the licence the export names, if any.
        name: a dataset name the export names, if any.
        max_pixels: the pixel limit used (also when writing).
    """

    format: str
    source: str
    taxonomy: Taxonomy
    splits: dict[str, list[ImportedImage]]
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, Skipped] = field(default_factory=dict)
    license: str | None = None
    name: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def num_images(self) -> int:
        return sum(len(v) for v in self.splits.values())

    @property
    def num_instances(self) -> int:
        return sum(len(im.instances) for v in self.splits.values() for im in v)

    def images(self) -> Iterable[tuple[str, ImportedImage]]:
        """(split, image) over all splits."""
        for s, ims in self.splits.items():
            for im in ims:
                yield s, im

    def report(self) -> list[str]:
        """Human-readable lines: warnings, then ``skipped <kind>: <count> (e.g. ...)``."""
        return [f"warning: {w}" for w in self.warnings] + [f"skipped {k}: {v}" for k, v in self.skipped.items()]

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.source,
            "splits": {s: len(v) for s, v in self.splits.items()},
            "images": self.num_images,
            "instances": self.num_instances,
            "taxonomy": self.taxonomy.names,
            "warnings": list(self.warnings),
            "skipped": {k: {"count": v.count, "examples": list(v.examples)} for k, v in self.skipped.items()},
        }


def merge_imported(parts: Iterable[ImportedDataset]) -> ImportedDataset:
    """One dataset from per-split reads of one export (same taxonomy; split names must differ).

    Raises:
        DatasetError: taxonomies differ, or a split name repeats.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_imported needs at least one dataset")
    first = parts[0]
    splits: dict[str, list[ImportedImage]] = {}
    warns: list[str] = []
    skipped: dict[str, Skipped] = {}
    for p in parts:
        if p.taxonomy != first.taxonomy:
            raise DatasetError(f"{p.source}: its classes {p.taxonomy.names} differ from those of {first.source} "
                               f"({first.taxonomy.names}); the splits of one package share one taxonomy")
        for s, ims in p.splits.items():
            if s in splits:
                raise DatasetError(f"split {s!r} comes from both {first.source} and {p.source}; name them apart")
            splits[s] = ims
        warns += [w for w in p.warnings if w not in warns]
        for k, v in p.skipped.items():
            t = skipped.setdefault(k, Skipped())
            t.count += v.count
            t.examples = (t.examples + v.examples)[:MAX_EXAMPLES]
    return ImportedDataset(first.format, ", ".join(p.source for p in parts), first.taxonomy, splits, warns, skipped,
                           license=first.license, name=first.name, max_pixels=first.max_pixels)


class Findings:
    """Collects the problems, warnings and skipped items of one read.

    Warnings are grouped by kind: :meth:`warn` many times with one kind gives one line
    ``"<message> (<count>: <first examples>)"``.
    """

    def __init__(self) -> None:
        self.problems: list[DatasetError] = []
        self.skipped: dict[str, Skipped] = {}
        self._warn: dict[str, tuple[str, Skipped]] = {}
        self._notes: list[str] = []

    def problem(self, message: str, *, path: object | None = None, image_id: int | None = None,
                annotation_id: int | None = None) -> None:
        self.problems.append(DatasetError(message, path=path, image_id=image_id, annotation_id=annotation_id))

    def add(self, err: DatasetError) -> None:
        self.problems.append(err)

    def skip(self, kind: str, example: str) -> None:
        s = self.skipped.setdefault(kind, Skipped())
        s.count += 1
        if len(s.examples) < MAX_EXAMPLES:
            s.examples.append(example)

    def warn(self, kind: str, message: str, example: str | None = None) -> None:
        """One warning line per ``kind``; ``example`` (an id) is counted and the first few listed."""
        msg, s = self._warn.setdefault(kind, (message, Skipped()))
        if example is not None:
            s.count += 1
            if len(s.examples) < MAX_EXAMPLES:
                s.examples.append(example)

    def note(self, message: str) -> None:
        """A single warning line, as it is."""
        self._notes.append(message)

    def warnings(self) -> list[str]:
        out = list(self._notes)
        for msg, s in self._warn.values():
            out.append(f"{msg} ({s})" if s.count else msg)
        return out

    def raise_if_any(self, source: object, what: str) -> None:
        """Raise one DatasetError listing every problem (nothing to write then)."""
        if self.problems:
            raise combine_problems(
                self.problems, f"{source}: {len(self.problems)} problem(s) in the {what}; nothing was written",
                path=source,
            )


def taxonomy_from_names(names: list[tuple[str, tuple[int, int, int] | None]], background: str | None = "auto",
                        *, source: object | None = None) -> Taxonomy:
    """A taxonomy from class names (and colours) in order: the background class gets id 0, the others 1, 2, ...

    Args:
        names: (name, colour or None) per class; a missing colour is the palette colour of the id.
        background: ``"auto"``: a name in BACKGROUND_NAMES (any case) is the background, otherwise a
            stuff class ``background`` is added as id 0; ``"none"`` / None: no background (uncovered
            pixels are void); another string: the class of that name is the background.

    Raises:
        DatasetError: ``background`` names no class, or more than 255 classes.
    """
    from segval.dataset.taxonomy import BACKGROUND_NAMES, Category, palette_color

    plain = [n for n, _ in names]
    if background is None or str(background).lower() == "none":
        bg_name = None
    elif background == "auto":
        bg_name = next((n for n in plain if n.lower() in BACKGROUND_NAMES), "")
    else:
        if background not in plain:
            raise DatasetError(f"background={background!r} is not a class of the export ({plain})", path=source)
        bg_name = background
    cats = []
    next_id = 1
    for n, c in names:
        if n == bg_name:
            cats.append(Category(0, n, c or (0, 0, 0), False, "stuff"))
        else:
            cats.append(Category(next_id, n, c or palette_color(next_id), True, "rigid"))
            next_id += 1
    if bg_name == "":
        name = "background" if "background" not in plain else "_background_"
        cats.append(Category(0, name, (0, 0, 0), False, "stuff"))
    if len(cats) > 255 or next_id > 255:
        raise DatasetError(f"{len(cats)} classes; at most 255 fit a uint8 label map (ids 0..254)", path=source)
    return Taxonomy(cats, None if bg_name is None else 0)


# ---------------------------------------------------------------------- safe paths and images
_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_inside(root: Path, name: str, *, what: str = "file name") -> Path:
    """``root / name`` resolved, refusing absolute paths, ``..`` and links leaving ``root``.

    Raises:
        ValueError: naming the problem (callers add the file and item to the message).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if p.is_absolute() or _DRIVE.match(norm) or ".." in p.parts:
        raise ValueError(f"{what} {name!r} must be a relative path inside {root} without '..'")
    root_r = root.resolve()
    full = (root_r / p).resolve()
    if not full.is_relative_to(root_r):
        raise ValueError(f"{what} {name!r} resolves to {full}, outside {root_r}; file names must stay inside it")
    return full


def probe_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image from its header, checked against ``max_pixels`` before decoding.

    Raises:
        DatasetError: missing / unreadable file, or over the pixel limit.
    """
    raise_pil_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except FileNotFoundError:
        raise DatasetError("image file not found", path=path) from None
    except Exception as err:  # UnidentifiedImageError, IsADirectoryError, DecompressionBombError, ...
        raise DatasetError(f"cannot read the image header ({err}); replace the file", path=path) from None
    if w * h > max_pixels:
        raise DatasetError(f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} (checked before "
                           "decoding); raise max_pixels if this image is genuine", path=path)
    return int(w), int(h)


def read_png_array(path: Path, *, max_pixels: int, width: int, height: int, what: str) -> Image.Image:
    """Open and decode a mask / panoptic PNG after the pixel-limit and size checks (from the header).

    Raises:
        DatasetError: missing, unreadable, over the limit, or not ``width`` x ``height``.
    """
    raise_pil_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise DatasetError(f"{what} not found", path=path) from None
    except Exception as err:
        raise DatasetError(f"cannot read the {what} ({err}); re-export it", path=path) from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise DatasetError(f"{what} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} (checked before "
                           "decoding); raise max_pixels if it is genuine", path=path)
    if (w, h) != (width, height):
        im.close()
        raise DatasetError(f"{what} is {w}x{h} (width x height) but its image is {width}x{height}; "
                           f"re-export the {what} at the image size", path=path)
    try:
        im.load()
    except Exception as err:
        im.close()
        raise DatasetError(f"cannot decode the {what} (truncated or corrupt: {err}); re-export it", path=path) from None
    return im


#: image extensions the package stores (others are written as PNG)
PACKAGE_IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def package_file_name(rel: str) -> str:
    """The package ``file_name`` for a source image path: '/' separators, ``.png`` for formats the
    package does not store (``.bmp``, ``.tif``, ``.webp``, ...; the pixels are re-encoded losslessly)."""
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.suffix.lower() not in PACKAGE_IMAGE_EXTS:
        p = p.with_name(p.name + ".png") if not p.suffix else p.with_suffix(".png")
    return p.as_posix()


def check_unique_names(findings: Findings, split: str, images: list[ImportedImage], source: object) -> None:
    """A problem for two images of a split with the same file name (or the same name without extension,
    which would share a label map)."""
    seen: dict[str, str] = {}
    for im in images:
        stem = PurePosixPath(im.file_name).with_suffix("").as_posix()
        if stem in seen:
            findings.problem(f"{im.origin} and {seen[stem]} both become {stem!r} (+ extension) in split {split!r}; "
                             "rename one of the images", path=source)
        else:
            seen[stem] = im.origin or im.file_name


# ---------------------------------------------------------------------- writing
def _background_for_ignore(result: ImportedDataset) -> tuple[Taxonomy, int | None]:
    """The taxonomy to write and the id of the explicit background annotation (or None)."""
    tax = result.taxonomy
    if tax.background_id is None or not any(im.has_ignore() for _, im in result.images()):
        return tax, None
    return Taxonomy(tax.categories, None), tax.background_id


def write_imported(
    result: ImportedDataset,
    output: str | os.PathLike,
    *,
    name: str | None = None,
    version: str = "1.0.0",
    license: str | None = None,  # noqa: A002 - the dataset.yaml key
    description: str = "",
    overwrite: bool = False,
    progress: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Write ``result`` as a dataset package at ``output`` (atomic; refuses an existing folder).

    Args:
        result: what a reader returned.
        output: the package folder to create.
        name: dataset name (default: the export's, else the output folder name).
        version: semver version.
        license: licence identifier for dataset.yaml (default: the export's, else ``unknown``
            with a warning).
        description: free text (default: the source read).
        overwrite: replace an existing ``output``.
        progress: wraps the image iterator (e.g. ``tqdm``).

    Returns:
        ``result.summary()`` plus ``output``, ``license``, ``background_annotation`` (whether an
        explicit background annotation carries the background, see the module doc).

    Raises:
        DatasetError: an image that cannot be decoded or written (named); nothing is left behind.
    """
    out = Path(output)
    warns = list(result.warnings)
    lic = license or result.license
    if not lic:
        lic = UNKNOWN_LICENSE
        warns.append("no licence given and the export names none: dataset.yaml says `license: unknown`; "
                      "pass license=<SPDX id> (e.g. CC-BY-4.0) when you know it")
    tax, bg_annotation = _background_for_ignore(result)
    if bg_annotation is not None:
        warns.append("images hold ignore regions (crowd / void / border / boxes without masks): the package has no "
                     "background id and the background is an explicit stuff annotation, so those pixels stay 255")
    items = list(result.images())
    it = progress(items) if progress else items
    n_inst = 0
    with PackageWriter(out, name=name or result.name or out.name, version=version, taxonomy=tax,
                       splits=list(result.splits), license=lic,
                       description=description or f"imported from {result.format} {result.source}",
                       overwrite=overwrite) as w:
        for split, im in it:
            rgb = im.read_rgb(result.max_pixels)
            masks = [InstanceMask(i.category_id, i.mask.decode(), int(i.iscrowd)) for i in im.instances]
            if bg_annotation is not None:
                covered = np.zeros((im.height, im.width), dtype=bool)
                for m in masks:
                    covered |= m.mask
                if im.ignore is not None:
                    covered |= im.ignore.decode()
                if not covered.all():
                    masks.append(InstanceMask(bg_annotation, ~covered, 0))
            extra = {k: v for k, v in im.extra.items() if k not in _RESERVED}
            try:
                w.add_image(split, rgb, im.file_name, instances=masks, extra=extra)
            except ValueError as err:
                raise DatasetError(f"{im.origin}: {err}" if im.origin else str(err), path=im.path) from None
            n_inst += len(masks)
    summary = result.summary()
    summary.update({"output": str(out), "license": lic, "warnings": warns, "annotations": n_inst,
                    "background_annotation": bg_annotation is not None})
    return summary
