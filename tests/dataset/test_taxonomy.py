"""Taxonomy: train indices, LUT, dataset.yaml form, COCO categories and background handling."""

from __future__ import annotations

import numpy as np
import pytest

from segval.dataset.taxonomy import Category, Taxonomy, palette_color
from segval.errors import DatasetError


def _tax() -> Taxonomy:
    return Taxonomy(
        [
            Category(7, "cable", (1, 2, 3), True, "thin"),
            Category(0, "background", (0, 0, 0), False, "stuff"),
            Category(5, "mug", (200, 30, 30), True, "rigid"),
        ],
        background_id=0,
    )


def test_train_indices_follow_sorted_ids():
    tax = _tax()
    assert tax.ids == [0, 5, 7]
    assert tax.names == ["background", "mug", "cable"]
    assert tax.num_classes == 3
    assert [tax.index_of(i) for i in (0, 5, 7)] == [0, 1, 2]
    assert tax.category(7).name == "cable"
    assert tax.background_index == 0
    with pytest.raises(KeyError, match="category id 3"):
        tax.index_of(3)


def test_lut():
    lut = _tax().lut()
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    expected = np.full(256, 255, np.uint8)
    expected[[0, 5, 7]] = [0, 1, 2]
    np.testing.assert_array_equal(lut, expected)
    label_map = np.array([[0, 5, 7], [255, 3, 5]], np.uint8)
    np.testing.assert_array_equal(lut[label_map], [[0, 1, 2], [255, 255, 1]])


def test_dict_round_trip():
    tax = _tax()
    d = tax.to_dict()
    assert d["background_id"] == 0
    assert d["taxonomy"][1] == {"id": 5, "name": "mug", "color": [200, 30, 30], "isthing": True, "group": "rigid"}
    assert Taxonomy.from_dict(d) == tax


def test_from_dict_fills_defaults_and_names_the_file():
    tax = Taxonomy.from_dict({"background_id": None, "taxonomy": [{"id": 3, "name": "box"}]})
    assert tax.category(3) == Category(3, "box", palette_color(3), True, "rigid")
    assert tax.background_id is None
    with pytest.raises(DatasetError, match=r"dataset.yaml: taxonomy entry 0: .*group"):
        Taxonomy.from_dict({"taxonomy": [{"id": 3, "name": "box", "group": "soft"}]}, path="dataset.yaml")


@pytest.mark.parametrize(
    "cats, msg",
    [
        ([Category(1, "a", (0, 0, 0), True, "rigid"), Category(1, "b", (0, 0, 0), True, "rigid")], "id 1 appears twice"),
        ([Category(1, "a", (0, 0, 0), True, "rigid"), Category(2, "a", (0, 0, 0), True, "rigid")], "'a' appears twice"),
    ],
)
def test_duplicates_rejected(cats, msg):
    with pytest.raises(ValueError, match=msg):
        Taxonomy(cats, None)


def test_bad_category_values():
    with pytest.raises(ValueError, match="0..254"):
        Category(255, "x", (0, 0, 0), True, "rigid")
    with pytest.raises(ValueError, match="group"):
        Category(1, "x", (0, 0, 0), True, "soft")
    with pytest.raises(ValueError, match="background_id 9"):
        Taxonomy([Category(1, "x", (0, 0, 0), True, "rigid")], 9)


def test_palette_is_deterministic_and_distinct():
    colors = [palette_color(i) for i in range(64)]
    assert colors[0] == (0, 0, 0)
    assert len(set(colors)) == 64


# ------------------------------------------------------------------ COCO categories / background
def test_coco_named_background_is_used():
    cats = [{"id": 0, "name": "_background_"}, {"id": 1, "name": "aeroplane"}, {"id": 2, "name": "bicycle"}]
    tax = Taxonomy.from_coco_categories(cats)
    assert tax.background_id == 0 and tax.num_classes == 3
    bg = tax.category(0)
    assert (bg.isthing, bg.group, bg.color) == (False, "stuff", (0, 0, 0))
    assert tax.category(1).isthing and tax.category(1).color == palette_color(1)


def test_coco_background_any_id_and_case():
    tax = Taxonomy.from_coco_categories([{"id": 3, "name": "Background"}, {"id": 1, "name": "mug"}])
    assert tax.background_id == 3


def test_coco_synthetic_background_when_id0_free():
    tax = Taxonomy.from_coco_categories([{"id": 1, "name": "mug"}, {"id": 2, "name": "cable"}])
    assert tax.background_id == 0
    assert tax.names == ["background", "mug", "cable"]
    assert tax.category(0).group == "stuff"


def test_coco_id0_taken_without_background_is_an_error():
    cats = [{"id": 0, "name": "table"}, {"id": 1, "name": "mug"}]
    with pytest.raises(DatasetError, match=r"background=<category name>.*background='none'"):
        Taxonomy.from_coco_categories(cats, path="x.json")
    tax = Taxonomy.from_coco_categories(cats, background="table")
    assert tax.background_id == 0 and tax.category(0).group == "stuff"
    tax = Taxonomy.from_coco_categories(cats, background="none")
    assert tax.background_id is None and tax.num_classes == 2


def test_coco_unknown_background_name():
    with pytest.raises(DatasetError, match="'floor' is not a category name"):
        Taxonomy.from_coco_categories([{"id": 1, "name": "mug"}], background="floor")


def test_coco_keeps_given_colors_and_isthing():
    tax = Taxonomy.from_coco_categories(
        [{"id": 1, "name": "wall", "isthing": 0, "color": [1, 2, 3]}, {"id": 2, "name": "mug"}], background="none"
    )
    assert tax.category(1) == Category(1, "wall", (1, 2, 3), False, "stuff")


def test_docstring_examples():
    import doctest

    from segval.dataset import semantic, taxonomy

    for mod in (taxonomy, semantic):
        assert doctest.testmod(mod).failed == 0


def test_group_read_from_a_group_named_supercategory() -> None:
    # segval's writer stores the group as COCO supercategory; other supercategories are not groups
    t = Taxonomy.from_coco_categories(
        [{"id": 1, "name": "bar", "supercategory": "thin"}, {"id": 2, "name": "cup", "supercategory": "kitchen"}]
    )
    assert {c.name: c.group for c in t.categories} == {"background": "stuff", "bar": "thin", "cup": "rigid"}


def test_description_and_part_of_round_trip_through_the_writer(tmp_path) -> None:
    from segval.dataset.package import DatasetPackage
    from segval.dataset.writer import PackageWriter

    tax = Taxonomy([
        Category(0, "background", (0, 0, 0), False, "stuff"),
        Category(1, "robot_arm", (10, 20, 30), True, "rigid", description="links and joints of the arm"),
        Category(2, "gripper", (40, 50, 60), True, "rigid", description="  fingers and palm\n", part_of="robot_arm"),
    ], background_id=0)
    assert tax.category(2).description == "fingers and palm" and tax.category(2).part_of == "robot_arm"
    d = tax.to_dict()["taxonomy"]
    assert d[1]["description"] == "links and joints of the arm" and "part_of" not in d[1]
    assert d[2]["part_of"] == "robot_arm"
    assert "description" not in d[0] and "part_of" not in d[0]  # unset keys are not written
    with PackageWriter(tmp_path / "pkg", name="p", version="1.0.0", taxonomy=tax, splits=["train"]) as w:
        w.add_image("train", np.zeros((4, 4, 3), np.uint8), "a.png", instances=[])
    back = DatasetPackage.open(tmp_path / "pkg").taxonomy
    assert back == tax
    assert back.category(2).part_of == "robot_arm" and back.category(1).description == "links and joints of the arm"


def test_part_of_must_name_another_class_without_cycles() -> None:
    bg = Category(0, "background", (0, 0, 0), False, "stuff")
    with pytest.raises(ValueError, match="part_of 'robot_arm' is not a class of the taxonomy"):
        Taxonomy([bg, Category(2, "gripper", (1, 1, 1), True, "rigid", part_of="robot_arm")], background_id=0)
    with pytest.raises(ValueError, match="part_of names the class itself"):
        Category(2, "gripper", (1, 1, 1), True, "rigid", part_of="gripper")
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        Taxonomy([bg, Category(1, "a", (1, 1, 1), True, "rigid", part_of="b"),
                  Category(2, "b", (2, 2, 2), True, "rigid", part_of="a")], background_id=0)
    with pytest.raises(ValueError, match="description must be a string"):
        Category(1, "a", (1, 1, 1), True, "rigid", description=3)
    with pytest.raises(DatasetError, match="part_of 'arm' is not a class"):
        Taxonomy.from_dict({"taxonomy": [{"id": 0, "name": "background"},
                                         {"id": 1, "name": "gripper", "part_of": "arm"}]}, path="dataset.yaml")
