"""Annotation sets of the same images (one per annotator): loading them and measuring their agreement.

A set is a COCO file (images resolved under ``images``) or a dataset package folder (one split of it).
:func:`agreement_of_sets` checks that the sets share categories, images and image sizes, then feeds every
image to :class:`~segval.qa.agreement.AgreementAccumulator` (the definition lives there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from segval.dataset.coco import load_json
from segval.dataset.package import DatasetPackage, SplitData
from segval.dataset.taxonomy import GROUPS, Taxonomy
from segval.errors import ConfigError, DatasetError
from segval.qa.agreement import AgreementAccumulator, check_same_images


def load_annotation_set(path: str | Path, *, images: str | Path | None, split: str, background: str) -> SplitData:
    """The :class:`SplitData` of one annotation set: a COCO ``.json`` file (images under ``images``, by
    default beside it) or a package folder (its ``split``).

    Raises:
        DatasetError: ``path`` is neither a file nor a folder.
    """
    p = Path(path)
    if p.is_dir():
        return DatasetPackage.open(p).split(split)
    if not p.is_file():
        raise DatasetError("annotation set not found; give a COCO .json file or a dataset package folder", path=p)
    img_dir = Path(images) if images else p.parent
    return DatasetPackage.from_coco(p, img_dir, background=background).split("train")


def class_groups(tax: Taxonomy, first_set: str | Path, *, taxonomy_package: str | Path | None = None,
                 group_of: Mapping[str, str] | None = None) -> list[str]:
    """The group of each class of ``tax``: ``group_of`` overrides, else the ``taxonomy_package``'s, else the
    COCO category's ``group`` or a ``supercategory`` that is a group name (as PackageWriter writes it) in
    ``first_set``, else the default of a plain COCO file (thing: rigid, stuff: stuff).

    Raises:
        ConfigError: ``group_of`` names an unknown class or group.
    """
    by_name = {c.name: c.group for c in tax.categories}
    if taxonomy_package:
        ref = DatasetPackage.open(taxonomy_package).taxonomy
        by_name.update({c.name: c.group for c in ref.categories if c.name in by_name})
    elif Path(first_set).is_file():
        for c in load_json(Path(first_set)).get("categories") or []:
            g = c.get("group") or c.get("supercategory")
            if isinstance(c, dict) and c.get("name") in by_name and g in GROUPS:
                by_name[c["name"]] = g
    for name, g in (group_of or {}).items():
        if name not in by_name:
            raise ConfigError(f"group_of names class {name!r}, which is not among {list(by_name)}")
        if g not in GROUPS:
            raise ConfigError(f"group_of.{name} must be one of {list(GROUPS)}, got {g!r}")
        by_name[name] = g
    return [by_name[n] for n in tax.names]


def check_same_taxonomy(datas: Sequence[SplitData], set_names: Sequence[str]) -> Taxonomy:
    """The taxonomy all sets share.

    Raises:
        DatasetError: a set's category ids or names differ from the first set's (names the set).
    """
    tax = datas[0].taxonomy
    for name, d in zip(set_names[1:], datas[1:], strict=True):
        if d.taxonomy.names != tax.names or d.taxonomy.ids != tax.ids:
            raise DatasetError(
                f"categories differ from those of {set_names[0]}: {list(zip(d.taxonomy.ids, d.taxonomy.names))} vs "
                f"{list(zip(tax.ids, tax.names))}; the sets must use the same category ids and names", path=name)
    return tax


def agreement_of_sets(datas: Sequence[SplitData], set_names: Sequence[str], groups: Sequence[str | None], *,
                      targets: Mapping[str, float], min_pixels: int,
                      progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it) -> dict[str, Any]:
    """Per-class agreement of the annotation sets ``datas`` (see :mod:`segval.qa.agreement`).

    Raises:
        DatasetError: different categories, image ids, or sizes of one image between sets.
        ConfigError: a target outside (0, 1].
    """
    tax = check_same_taxonomy(datas, set_names)
    ids = check_same_images([[r.id for r in d.images] for d in datas], set_names)
    for g, v in targets.items():
        if not 0.0 < v <= 1.0:
            raise ConfigError(f"targets.{g} must be in (0, 1], got {v}")
    acc = AgreementAccumulator(tax.names, groups, len(datas), set_names=set_names, targets=targets,
                               min_pixels=min_pixels)
    for image_id in progress(ids):
        recs = [d.image(image_id) for d in datas]
        sizes = {(r.width, r.height) for r in recs}
        if len(sizes) != 1:
            raise DatasetError(f"the annotation sets give this image different sizes (width, height): {sorted(sizes)}",
                               image_id=image_id)
        acc.update(image_id, [d.semantic_target(r) for d, r in zip(datas, recs, strict=True)])
    return acc.result()
