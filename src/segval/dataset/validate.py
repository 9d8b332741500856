"""Eager full check of a dataset package: every image, annotation and label map.

:meth:`DatasetPackage.open` runs only the cheap checks; the pixel-level ones (image readable and
of the size the COCO file says, RLE / polygons decodable at that size, label-map values) run when
an item is read. :func:`validate_package` runs all of them up front and reports every problem at
once, so a user fixes a release in one pass instead of one crash per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

from segval.dataset import segmentation as seg
from segval.dataset.coco import MAX_LISTED_PROBLEMS, combine_problems
from segval.dataset.package import DatasetPackage
from segval.dataset.split import SplitData
from segval.errors import DatasetError


def check_split(split: SplitData, *, decode_images: bool = True, bar: tqdm | None = None) -> list[DatasetError]:
    """All problems of one split (an empty list when it is clean).

    Args:
        split: the split.
        decode_images: also decode every image (finds truncated files); False reads headers only.
        bar: progress bar advanced by one per image.
    """
    problems: list[DatasetError] = []
    for rec in split.images:
        try:
            if decode_images:
                split.read_image(rec)
            else:
                split.check_image_header(rec)
        except DatasetError as err:
            problems.append(err)
        for ann in split.annotations_for(rec.id):
            try:
                seg.decode_segmentation(ann, rec.height, rec.width, path=split.annotation_path, image_id=rec.id)
            except DatasetError as err:
                problems.append(err)
        if split.has_label_maps:
            try:
                split.read_label_map(rec)
            except DatasetError as err:
                problems.append(err)
        if bar is not None:
            bar.update(1)
    return problems


def validate_package(
    pkg: DatasetPackage,
    *,
    splits: Sequence[str] | None = None,
    progress: bool = True,
    decode_images: bool = True,
) -> None:
    """Check every image, annotation and label map of ``pkg``; raise one error listing all problems.

    Args:
        pkg: an opened package (its cheap checks already passed).
        splits: the splits to check (default: all).
        progress: show a progress bar (one step per image).
        decode_images: decode every image (finds truncated files); False checks headers only.

    Raises:
        DatasetError: listing up to 50 problems (and the total), each naming the file, image id
            and annotation id; the full list is in its ``problems`` attribute.
    """
    names = list(pkg.splits if splits is None else splits)
    split_data = [pkg.split(s) for s in names]
    total = sum(len(s.images) for s in split_data)
    problems: list[DatasetError] = []
    with tqdm(total=total, desc=f"checking {pkg.name}", unit="img", disable=not progress) as bar:
        for s in split_data:
            bar.set_postfix_str(s.name)
            problems.extend(check_split(s, decode_images=decode_images, bar=bar))
    if problems:
        raise combine_problems(
            problems,
            f"{len(problems)} problem(s) in dataset {pkg.name!r} ({pkg.root}, splits {names})",
            cap=MAX_LISTED_PROBLEMS,
        )
