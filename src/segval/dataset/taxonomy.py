"""The class taxonomy of a dataset: category ids, names, colours, thing/stuff and group.

A category id is the COCO ``category_id`` and the pixel value in label maps (so ids are < 255;
255 means ignore). The *train index* of a category is its position in the id-sorted taxonomy
(0..C-1); models see train indices, files hold category ids. :meth:`Taxonomy.lut` maps one to the
other.

Example:
    >>> tax = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"),
    ...                 Category(5, "mug", (200, 30, 30), True, "rigid")], background_id=0)
    >>> tax.num_classes, tax.names, tax.index_of(5)
    (2, ['background', 'mug'], 1)
    >>> int(tax.lut()[5]), int(tax.lut()[255]), int(tax.lut()[7])
    (1, 255, 255)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segval.errors import DatasetError

#: the tasks a taxonomy can be validated as: semantic (a class per pixel), instance (thing instances, COCO AP),
#: panoptic (things + stuff, PQ); one loader and one module serve all three
TASKS = ("semantic", "instance", "panoptic")

#: Allowed values of :attr:`Category.group`.
GROUPS = ("rigid", "deformable", "thin", "stuff")
#: Label-map / semantic-target value meaning "ignore this pixel".
IGNORE = 255
#: Category names recognised as background by ``from_coco_categories(background="auto")``
#: (compared case-insensitively).
BACKGROUND_NAMES = ("background", "_background_", "__background__")


def palette_color(cat_id: int) -> tuple[int, int, int]:
    """Deterministic colour for a category id (the PASCAL VOC bit-interleaved palette).

    Id 0 is black; neighbouring ids get well separated colours.

    >>> palette_color(0), palette_color(1), palette_color(15)
    ((0, 0, 0), (128, 0, 0), (192, 128, 128))
    """
    r = g = b = 0
    c = int(cat_id)
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return (r, g, b)


@dataclass(frozen=True)
class Category:
    """One class of the taxonomy.

    Args:
        id: COCO category id and label-map pixel value, 0 <= id < 255.
        name: unique class name.
        color: RGB display colour, three ints in 0..255.
        isthing: True for countable objects (instances), False for stuff (background, table, ...).
        group: one of ``rigid``, ``deformable``, ``thin``, ``stuff`` (groups carry QA targets).
        transparent: optional flag (dataset.yaml ``transparent: true``) for glass, clear plastic and
            other see-through classes, which need more examples (:mod:`segval.qa.targets`); written to
            dataset.yaml only when True, so existing files are unchanged.
        description: optional one-paragraph definition of the class for annotators (dataset.yaml
            ``description:``; shown in the annotation guideline); written only when set.
        part_of: optional name of the class this one is a part of (``gripper`` part_of ``robot_arm``):
            the guideline gets the split rule for the pair; the taxonomy checks it names another class.
            Written only when set.
    """

    id: int
    name: str
    color: tuple[int, int, int]
    isthing: bool
    group: str
    transparent: bool = False
    description: str | None = None
    part_of: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, (int, np.integer)):
            raise ValueError(f"category id must be an int, got {self.id!r} (name {self.name!r})")
        object.__setattr__(self, "id", int(self.id))
        if not 0 <= self.id < IGNORE:
            raise ValueError(
                f"category {self.name!r}: id {self.id} is out of range; ids must be in 0..254 "
                "because they are label-map pixel values and 255 means ignore"
            )
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"category id {self.id}: name must be a non-empty string, got {self.name!r}")
        color = tuple(int(c) for c in self.color)
        if len(color) != 3 or any(not 0 <= c <= 255 for c in color):
            raise ValueError(
                f"category {self.name!r} (id {self.id}): color must be three ints in 0..255, got {self.color!r}"
            )
        object.__setattr__(self, "color", color)
        object.__setattr__(self, "isthing", bool(self.isthing))
        if not isinstance(self.transparent, (bool, np.bool_)):
            raise ValueError(f"category {self.name!r} (id {self.id}): transparent must be true or false, "
                             f"got {self.transparent!r}")
        object.__setattr__(self, "transparent", bool(self.transparent))
        if self.group not in GROUPS:
            raise ValueError(
                f"category {self.name!r} (id {self.id}): group must be one of {list(GROUPS)}, got {self.group!r}"
            )
        for key in ("description", "part_of"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"category {self.name!r} (id {self.id}): {key} must be a string, got {value!r}")
            object.__setattr__(self, key, value.strip() or None if isinstance(value, str) else None)
        if self.part_of is not None and self.part_of == self.name:
            raise ValueError(f"category {self.name!r} (id {self.id}): part_of names the class itself; "
                             "name the class it is a part of (e.g. gripper part_of robot_arm)")

    def to_dict(self) -> dict[str, Any]:
        """The dataset.yaml form: ``{id, name, color, isthing, group}`` (+ ``transparent: true``, ``description``,
        ``part_of`` when set)."""
        out = {
            "id": self.id,
            "name": self.name,
            "color": list(self.color),
            "isthing": self.isthing,
            "group": self.group,
        }
        if self.transparent:
            out["transparent"] = True
        if self.description is not None:
            out["description"] = self.description
        if self.part_of is not None:
            out["part_of"] = self.part_of
        return out


class Taxonomy:
    """An id-sorted list of :class:`Category` plus the background id.

    Args:
        categories: the classes, in any order (they are sorted by id); ids and names unique.
        background_id: category id given to pixels that no annotation covers, or None (those
            pixels are ignored, 255). Must be one of the category ids.

    Raises:
        ValueError: duplicate ids or names, or ``background_id`` not among the ids.
    """

    def __init__(self, categories: Iterable[Category], background_id: int | None) -> None:
        cats = sorted(categories, key=lambda c: c.id)
        if not cats:
            raise ValueError("a taxonomy needs at least one category")
        seen_ids: set[int] = set()
        seen_names: set[str] = set()
        for c in cats:
            if not isinstance(c, Category):
                raise ValueError(f"taxonomy entries must be Category objects, got {type(c).__name__}")
            if c.id in seen_ids:
                raise ValueError(f"category id {c.id} appears twice in the taxonomy")
            if c.name in seen_names:
                raise ValueError(f"category name {c.name!r} appears twice in the taxonomy")
            seen_ids.add(c.id)
            seen_names.add(c.name)
        for c in cats:
            if c.part_of is not None and c.part_of not in seen_names:
                raise ValueError(
                    f"category {c.name!r} (id {c.id}): part_of {c.part_of!r} is not a class of the taxonomy "
                    f"(classes: {sorted(seen_names)}); name the whole it is a part of, or drop part_of"
                )
        whole_of = {c.name: c.part_of for c in cats if c.part_of is not None}
        for name in whole_of:
            chain, cur = [name], whole_of[name]
            while cur is not None:
                if cur in chain:
                    raise ValueError(f"part_of forms a cycle: {' -> '.join([*chain, cur])}; a part cannot contain "
                                     "its whole")
                chain.append(cur)
                cur = whole_of.get(cur)
        if background_id is not None:
            background_id = int(background_id)
            if background_id not in seen_ids:
                raise ValueError(
                    f"background_id {background_id} is not a category id of the taxonomy "
                    f"(ids: {sorted(seen_ids)}); add that category or set background_id to null"
                )
        self._categories: tuple[Category, ...] = tuple(cats)
        self.background_id: int | None = background_id
        self._index = {c.id: i for i, c in enumerate(cats)}
        lut = np.full(256, IGNORE, dtype=np.uint8)
        for i, c in enumerate(cats):
            lut[c.id] = i
        lut.setflags(write=False)
        self._lut = lut

    # ------------------------------------------------------------------ accessors
    @property
    def categories(self) -> list[Category]:
        """The categories in train-index (id-sorted) order."""
        return list(self._categories)

    @property
    def num_classes(self) -> int:
        """Number of classes C (train indices are 0..C-1)."""
        return len(self._categories)

    @property
    def names(self) -> list[str]:
        """Class names in train-index order."""
        return [c.name for c in self._categories]

    @property
    def ids(self) -> list[int]:
        """Category ids in train-index order (ascending)."""
        return [c.id for c in self._categories]

    @property
    def colors(self) -> list[tuple[int, int, int]]:
        """Display colours in train-index order."""
        return [c.color for c in self._categories]

    @property
    def background_index(self) -> int | None:
        """Train index of the background category, or None."""
        return None if self.background_id is None else self._index[self.background_id]

    def index_of(self, cat_id: int) -> int:
        """Train index of category id ``cat_id``.

        Raises:
            KeyError: ``cat_id`` is not in the taxonomy.
        """
        try:
            return self._index[int(cat_id)]
        except (KeyError, TypeError, ValueError):
            raise KeyError(f"category id {cat_id!r} is not in the taxonomy (ids: {self.ids})") from None

    def category(self, cat_id: int) -> Category:
        """The :class:`Category` with id ``cat_id`` (KeyError if absent)."""
        return self._categories[self.index_of(cat_id)]

    def __contains__(self, cat_id: object) -> bool:
        try:
            return int(cat_id) in self._index  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def lut(self) -> np.ndarray:
        """Lookup table category id -> train index.

        Returns:
            uint8[256] (read-only): ``lut[id]`` is the train index of category ``id``;
            ``lut[255] == 255``; values that are no category id map to 255 (ignore).
            Apply with ``lut[label_map]``.
        """
        return self._lut

    def __len__(self) -> int:
        return len(self._categories)

    def __iter__(self) -> Iterator[Category]:
        return iter(self._categories)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Taxonomy):
            return NotImplemented
        return self._categories == other._categories and self.background_id == other.background_id

    def __hash__(self) -> int:
        return hash((self._categories, self.background_id))

    def __repr__(self) -> str:
        return f"Taxonomy(num_classes={self.num_classes}, background_id={self.background_id}, names={self.names})"

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The dataset.yaml form: ``{"background_id": id | None, "taxonomy": [category dicts]}``."""
        return {"background_id": self.background_id, "taxonomy": [c.to_dict() for c in self._categories]}

    def coco_categories(self) -> list[dict[str, Any]]:
        """COCO ``categories`` entries (id, name, supercategory=group, isthing, color)."""
        return [
            {"id": c.id, "name": c.name, "supercategory": c.group, "isthing": int(c.isthing), "color": list(c.color)}
            for c in self._categories
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: object | None = None) -> Taxonomy:
        """Build from the dataset.yaml form (a whole dataset.yaml mapping works too).

        Missing ``color`` gets :func:`palette_color`; missing ``isthing`` is True except for the
        background; missing ``group`` is ``stuff`` for stuff classes and ``rigid`` for things.

        Raises:
            DatasetError: a key is missing or a value is invalid (``path`` names the file).
        """
        if not isinstance(data, Mapping) or "taxonomy" not in data:
            raise DatasetError(
                "no 'taxonomy' list found; dataset.yaml needs `taxonomy: [{id, name, color, isthing, group}, ...]`",
                path=path,
            )
        entries = data["taxonomy"]
        if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
            raise DatasetError(f"'taxonomy' must be a list of categories, got {type(entries).__name__}", path=path)
        if "background_id" in data:
            background_id = data["background_id"]
        else:  # not written: a category named background is the background, else none
            background_id = next((e["id"] for e in entries if _is_bg_entry(e) and "id" in e), None)
        cats = []
        for i, e in enumerate(entries):
            if not isinstance(e, Mapping) or "id" not in e or "name" not in e:
                raise DatasetError(f"taxonomy entry {i} must be a mapping with at least 'id' and 'name', got {e!r}", path=path)
            try:
                cats.append(_category_from_mapping(e, is_background=e["id"] == background_id))
            except ValueError as err:
                raise DatasetError(f"taxonomy entry {i}: {err}", path=path) from None
        try:
            return cls(cats, background_id)
        except ValueError as err:
            raise DatasetError(str(err), path=path) from None

    @classmethod
    def from_coco_categories(
        cls, categories: Sequence[Mapping[str, Any]], background: str | None = "auto", *, path: object | None = None
    ) -> Taxonomy:
        """Build a taxonomy from COCO ``categories`` (plain exports: labelme, Label Studio, CVAT).

        Args:
            categories: COCO category dicts (``id``, ``name``; optional ``color``, ``isthing``,
                ``group``).
            background: ``"auto"``: a category named background / _background_ / __background__
                (any case) becomes the background; without one, a synthetic stuff class
                ``{id: 0, name: background}`` is added when id 0 is free, else an error asks you to
                choose. ``"none"`` (or None): no background, uncovered pixels are ignored (255).
                Any other string: the name of the category to use as background.
            path: file named in errors.

        Raises:
            DatasetError: bad categories, or no way to pick the background.
        """
        if not isinstance(categories, Sequence) or not categories:
            raise DatasetError(
                "the COCO file has no 'categories'; it needs at least one category (a labelme JSON with 'shapes' "
                "is not COCO: convert a labelme folder with labelme's labelme2coco.py first)",
                path=path,
            )
        for i, c in enumerate(categories):
            if not isinstance(c, Mapping) or "id" not in c or "name" not in c:
                raise DatasetError(f"COCO category {i} must have 'id' and 'name', got {c!r}", path=path)
        by_name = {str(c["name"]): c for c in categories}
        bg_entry: Mapping[str, Any] | None = None
        synthetic = False
        if background is None or (isinstance(background, str) and background.lower() == "none"):
            pass
        elif background == "auto":
            found = [c for c in categories if str(c["name"]).lower() in BACKGROUND_NAMES]
            if len(found) > 1:
                raise DatasetError(
                    f"several categories look like background ({[c['name'] for c in found]}); "
                    "pass background=<name> to choose one",
                    path=path,
                )
            if found:
                bg_entry = found[0]
            elif any(int(c["id"]) == 0 for c in categories):
                name0 = next(c["name"] for c in categories if int(c["id"]) == 0)
                raise DatasetError(
                    f"no background category found and id 0 is taken by {name0!r}, so no synthetic "
                    "background can be added; pass background=<category name> to make one category "
                    "the background, or background='none' to ignore unannotated pixels",
                    path=path,
                )
            else:
                synthetic = True
        else:
            if background not in by_name:
                raise DatasetError(
                    f"background={background!r} is not a category name; names: {sorted(by_name)}",
                    path=path,
                )
            bg_entry = by_name[background]

        bg_id = None if bg_entry is None else int(bg_entry["id"])
        cats = []
        try:
            for c in categories:
                cats.append(_category_from_mapping(c, is_background=bg_id is not None and int(c["id"]) == bg_id))
            if synthetic:
                bg_id = 0
                cats.append(Category(0, _free_name("background", by_name), (0, 0, 0), False, "stuff"))
            return cls(cats, bg_id)
        except ValueError as err:
            raise DatasetError(str(err), path=path) from None


def _is_bg_entry(e: object) -> bool:
    return isinstance(e, Mapping) and str(e.get("name", "")).lower() in BACKGROUND_NAMES


def _free_name(name: str, taken: Mapping[str, Any]) -> str:
    while name in taken:
        name = "_" + name + "_"
    return name


def _category_from_mapping(e: Mapping[str, Any], *, is_background: bool) -> Category:
    cat_id = e["id"]
    if isinstance(cat_id, float) and cat_id.is_integer():
        cat_id = int(cat_id)
    color = e.get("color")
    if color is None:
        color = (0, 0, 0) if is_background else palette_color(int(cat_id)) if isinstance(cat_id, int) else (0, 0, 0)
    isthing = e.get("isthing")
    isthing = (not is_background) if isthing is None else bool(isthing)
    group = e.get("group")
    if group is None and e.get("supercategory") in GROUPS:  # segval's writer keeps the group there
        group = e["supercategory"]
    if group is None:
        group = "rigid" if isthing else "stuff"
    transparent = e.get("transparent", False)
    return Category(cat_id, str(e["name"]), tuple(color), isthing, group,
                    False if transparent is None else transparent, e.get("description"), e.get("part_of"))
