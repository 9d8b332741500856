"""Untrusted files of a dataset: PNG label maps and panoptic PNGs are refused over the pixel limit before
anything is decoded; YAML never constructs Python objects."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segval.dataset import images as imio
from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from segval.errors import DatasetError

SRC = Path(__file__).resolve().parents[2] / "src" / "segval"


def no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Pillow decodes pixels."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("decoded before the pixel limit was checked")

    from PIL import ImageFile

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_label_map_over_the_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lm.png"
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    no_decode(monkeypatch)
    with pytest.raises(DatasetError, match=r"label map is 50x40 = 2000 pixels, over the limit of 1000 \(checked before"):
        imio.read_label_map(path, width=50, height=40, valid=np.ones(256, bool), max_pixels=1000)


def test_package_label_maps_follow_the_package_limit(tmp_path: Path) -> None:
    root = write_shapes_package(tmp_path / "pkg", images={"train": 1, "val": 1}, size=(32, 40))
    split = DatasetPackage.open(root, max_pixels=1000).split("train")  # 32 x 40 = 1280 pixels
    assert split.has_label_maps
    with pytest.raises(DatasetError, match="over the limit of 1000"):
        split.read_label_map(split.images[0])


def test_panoptic_png_over_the_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segval.dataset.export import export_package
    from segval.dataset.panoptic import PanopticSplit

    import shutil

    root = write_shapes_package(tmp_path / "pkg", images={"train": 1, "val": 1}, size=(32, 40))
    export_package(DatasetPackage.open(root), tmp_path / "pan", "panoptic")
    shutil.copytree(tmp_path / "pan" / "panoptic", root / "panoptic")  # a package with its panoptic PNGs
    for j in (tmp_path / "pan" / "annotations").glob("panoptic_*.json"):
        shutil.copy(j, root / "annotations" / j.name)
    split = DatasetPackage.open(root, max_pixels=1000).split("train")
    pan = PanopticSplit.for_split(split, root)
    assert pan.png_dir is not None  # read from the PNGs, not built from COCO
    no_decode(monkeypatch)
    with pytest.raises(DatasetError, match="over the limit of 1000"):
        pan.target(split.images[0])


def test_label_map_import_checks_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segval.dataset.export import import_label_maps

    (tmp_path / "lm").mkdir()
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "lm" / "a.png")
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "img" / "a.png")
    (tmp_path / "tax.yaml").write_text("taxonomy:\n  - {id: 0, name: background}\n  - {id: 1, name: cube}\n"
                                       "background_id: 0\n")
    monkeypatch.setattr(imio, "DEFAULT_MAX_PIXELS", 1000)
    monkeypatch.setattr(imio.open_image, "__defaults__", None)
    monkeypatch.setattr(imio.open_image, "__kwdefaults__", {"max_pixels": 1000, "what": "image"})
    with pytest.raises(DatasetError, match="over the limit of 1000"):
        import_label_maps(tmp_path / "lm", tmp_path / "out", name="x", version="1.0.0", images=tmp_path / "img",
                          taxonomy=tmp_path / "tax.yaml")
    assert not (tmp_path / "out").exists()


def test_yaml_never_builds_python_objects(tmp_path: Path) -> None:
    root = write_shapes_package(tmp_path / "pkg", images={"train": 1, "val": 1})
    flag = tmp_path / "PWNED"
    with open(root / "dataset.yaml", "a") as f:
        f.write(f'\nevil: !!python/object/apply:os.system ["touch {flag}"]\n')
    with pytest.raises(DatasetError, match="could not determine a constructor"):
        DatasetPackage.open(root)
    assert not flag.exists()


def test_no_unsafe_yaml_load_in_the_sources() -> None:
    unsafe = re.compile(r"yaml\.(load|unsafe_load|full_load|load_all)\(|Loader\s*=|yaml\.Loader\b|UnsafeLoader")
    hits = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if unsafe.search(line)]
    assert hits == []
