"""ImportedDataset / write_imported: licence, ignore regions, names, safe paths; and the dependency rule."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import segval.dataset.formats as formats_pkg
from segval.dataset import Category, DatasetPackage, Taxonomy
from segval.dataset.formats import ImportedDataset, ImportedImage, ImportedInstance, merge_imported, write_imported
from segval.dataset.formats.result import (
    Findings,
    check_unique_names,
    package_file_name,
    probe_image,
    resolve_inside,
    taxonomy_from_names,
)
from segval.dataset.rle import from_mask
from segval.errors import DatasetError

from .helpers import box, write_rgb

H, W = 6, 8
TAX = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "cube", (9, 9, 9), True, "rigid")],
               background_id=0)


def _result(tmp_path, *, ignore=None, tax=TAX):
    write_rgb(tmp_path / "src" / "a.png", H, W)
    im = ImportedImage("a.png", W, H, path=tmp_path / "src" / "a.png",
                       instances=[ImportedInstance.from_mask(1, box(H, W, 1, 4, 1, 4))],
                       ignore=None if ignore is None else from_mask(ignore), extra={"video_id": 3})
    return ImportedDataset("test", "src", tax, {"train": [im]})


def test_licence_unknown_with_a_warning(tmp_path):
    s = write_imported(_result(tmp_path), tmp_path / "pkg", name="t")
    meta = yaml.safe_load((tmp_path / "pkg" / "dataset.yaml").read_text())
    assert meta["license"] == "unknown" and s["license"] == "unknown"
    assert any("license: unknown" in w for w in s["warnings"])
    s = write_imported(_result(tmp_path), tmp_path / "pkg2", name="t", license="CC-BY-4.0")
    assert yaml.safe_load((tmp_path / "pkg2" / "dataset.yaml").read_text())["license"] == "CC-BY-4.0"
    assert not any("licen" in w for w in s["warnings"])


def test_ignore_without_background_class(tmp_path):
    tax = Taxonomy([Category(1, "cube", (9, 9, 9), True, "rigid")], background_id=None)
    ign = box(H, W, 0, 6, 6, 8)
    s = write_imported(_result(tmp_path, ignore=ign, tax=tax), tmp_path / "pkg", name="t")
    assert not s["background_annotation"]
    split = DatasetPackage.open(tmp_path / "pkg").split("train")
    lm = split.read_label_map(split.images[0])
    assert (lm == np.where(box(H, W, 1, 4, 1, 4), 1, 255)).all()
    assert split.num_annotations == 1


def test_ignore_wins_only_where_no_instance(tmp_path):
    ign = box(H, W, 0, 3, 0, 8)  # overlaps the cube's top rows
    s = write_imported(_result(tmp_path, ignore=ign), tmp_path / "pkg", name="t")
    assert s["background_annotation"]
    pkg = DatasetPackage.open(tmp_path / "pkg")
    assert pkg.taxonomy.background_id is None and pkg.taxonomy.ids == [0, 1]
    split = pkg.split("train")
    lm = split.read_label_map(split.images[0])
    cube = box(H, W, 1, 4, 1, 4)
    expect = np.where(cube, 1, np.where(ign, 255, 0))
    assert lm.tolist() == expect.tolist()
    assert (split.semantic_target(split.images[0]) == pkg.taxonomy.lut()[expect]).all()  # COCO path agrees
    assert split.images[0].video_id == 3


def test_taxonomy_from_names():
    t = taxonomy_from_names([("cube", None), ("Background", (1, 2, 3)), ("cable", None)])
    assert [(c.id, c.name, c.isthing) for c in t] == [(0, "Background", False), (1, "cube", True), (2, "cable", True)]
    assert t.background_id == 0 and t.category(0).color == (1, 2, 3)
    t = taxonomy_from_names([("cube", None)])
    assert t.names == ["background", "cube"]
    assert taxonomy_from_names([("cube", None)], "none").background_id is None
    with pytest.raises(DatasetError, match="background='table' is not a class"):
        taxonomy_from_names([("cube", None)], "table")


def test_names_and_paths(tmp_path):
    assert package_file_name("a\\b.bmp") == "a/b.png" and package_file_name("x.JPG") == "x.JPG"
    assert package_file_name("noext") == "noext.png"
    (tmp_path / "root").mkdir()
    (tmp_path / "outside.png").write_bytes(b"x")
    os.symlink(tmp_path / "outside.png", tmp_path / "root" / "link.png")
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(tmp_path / "root", "link.png")
    for bad in ("../outside.png", "/etc/passwd", "C:/x.png"):
        with pytest.raises(ValueError):
            resolve_inside(tmp_path / "root", bad)
    write_rgb(tmp_path / "big.png", 20, 30)
    with pytest.raises(DatasetError, match="over the limit of 100"):
        probe_image(tmp_path / "big.png", max_pixels=100)
    f = Findings()
    ims = [ImportedImage("a.png", 1, 1, origin="task 1"), ImportedImage("a.jpg", 1, 1, origin="task 2")]
    check_unique_names(f, "train", ims, "x.json")
    assert "task 2 and task 1 both become 'a'" in str(f.problems[0])


def test_merge(tmp_path):
    a = _result(tmp_path)
    b = ImportedDataset("test", "other", TAX, {"val": []})
    assert list(merge_imported([a, b]).splits) == ["train", "val"]
    with pytest.raises(DatasetError, match="split 'train' comes from both"):
        merge_imported([a, a])
    c = ImportedDataset("test", "c", Taxonomy([Category(1, "x", (1, 1, 1), True, "rigid")], None), {"x": []})
    with pytest.raises(DatasetError, match="differ"):
        merge_imported([a, c])


def test_unreadable_image_at_write_leaves_nothing(tmp_path):
    res = _result(tmp_path)
    (tmp_path / "src" / "a.png").write_bytes((tmp_path / "src" / "a.png").read_bytes()[:60])
    with pytest.raises(DatasetError, match="a.png"):
        write_imported(res, tmp_path / "pkg", name="t")
    assert not (tmp_path / "pkg").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".pkg")]


ALLOWED = ("segval.dataset", "segval.errors", "segval.io")


def test_readers_import_only_the_dataset_layer():
    """The dependency rule: these modules import segval.dataset / errors / io and third-party code only."""
    src = Path(formats_pkg.__file__).parent
    files = sorted(src.glob("*.py")) + [src.parent / "coco_dialects.py", src.parent / "brush_rle.py"]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                if n.startswith("segval"):
                    assert n.startswith(ALLOWED), f"{f.name} imports {n}"
