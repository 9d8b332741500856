"""Scene variants of the demo renderer: their own taxonomies, real assets, and tiny deterministic renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segval.demo.scene import OBJECTS
from segval.demo.scene_variants import VARIANTS, render_variant, variant_taxonomy

TINY = dict(videos={"train": 1, "val": 1}, frames_per_video=2, width=96, height=72, progress=False)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_taxonomy_and_swap_pairs(name):
    v = VARIANTS[name]
    tax = variant_taxonomy(v)
    assert tax.names == ["background", *v.class_names] and tax.ids == list(range(len(v.class_names) + 1))
    assert {n for pair in v.swap_pairs for n in pair} <= set(v.class_names)


def test_report_variants_share_no_object_asset_with_the_standard_set_or_each_other():
    """A render to report on must not contain the objects a method was tuned on."""
    standard = {o.urdf for o in OBJECTS}
    heldout, unseen = ({o.urdf for o in VARIANTS[k].objects} for k in ("heldout", "unseen"))
    assert not standard & heldout and not standard & unseen and not heldout & unseen
    assert VARIANTS["heldout"].arm != VARIANTS["unseen"].arm


@pytest.mark.parametrize("name", ["heldout", "unseen"])
def test_every_object_asset_exists(name):
    pybullet_data = pytest.importorskip("pybullet_data")
    root = Path(pybullet_data.getDataPath())
    assert all((root / o.urdf).is_file() for o in VARIANTS[name].objects)


def test_unseen_render_is_deterministic_and_uses_its_taxonomy(tmp_path):
    pytest.importorskip("pybullet")
    a = render_variant(tmp_path / "a", variant="unseen", seed=4, **TINY)
    b = render_variant(tmp_path / "b", variant="unseen", seed=4, **TINY)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    coco = json.loads((a / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == variant_taxonomy(VARIANTS["unseen"]).names
    assert {x["category_id"] for x in coco["annotations"]} >= {1, 3}  # the table and the arm are always seen
    assert {im["video_id"] for im in coco["images"]} == {0} and len(coco["images"]) == 2
