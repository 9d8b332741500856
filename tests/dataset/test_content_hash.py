"""The dataset content hash: stable, independent of where the package lies, sensitive to one pixel."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segval.dataset.content_hash import coco_content_hash, package_content_hash, package_files
from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from segval.errors import DatasetError


@pytest.fixture(scope="module")
def pkg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("hash") / "shapes", images={"train": 3, "val": 2},
                                size=(16, 16))


def reference_hash(root: Path) -> str:
    """An independent computation: the documented byte layout, built from a plain sorted listing."""
    rel = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    data = sorted((r for r in rel if r.split("/")[0] in {"annotations", "label_maps", "panoptic"}), key=str.encode)
    images = sorted((r for r in rel if r.startswith("images/")), key=str.encode)
    h = hashlib.sha256()
    for r in ["dataset.yaml", *data, *images]:
        content = (root / r).read_bytes()
        h.update(f"{r}\0{len(content)}\0".encode() + content)
    return h.hexdigest()


def copy(root: Path, dst: Path) -> Path:
    shutil.copytree(root, dst)
    return dst


def test_hash_is_the_documented_sha256_and_stable(pkg_root: Path, tmp_path: Path) -> None:
    digest = package_content_hash(pkg_root)
    assert len(digest) == 64 and digest == reference_hash(pkg_root)
    assert package_content_hash(pkg_root) == digest
    # the same bytes elsewhere, and the same package written again from the same seed: same hash
    assert package_content_hash(copy(pkg_root, tmp_path / "moved")) == digest
    again = write_shapes_package(tmp_path / "again", images={"train": 3, "val": 2}, size=(16, 16))
    assert package_content_hash(again) == digest
    names = [n for n, _ in package_files(pkg_root)]
    assert names[0] == "dataset.yaml" and names[-1].startswith("images/val/")
    assert any(n.startswith("label_maps/") for n in names) and "annotations/train.json" in names


def test_one_changed_pixel_changes_the_hash(pkg_root: Path, tmp_path: Path) -> None:
    base = package_content_hash(pkg_root)
    for sub in ("images", "label_maps"):
        root = copy(pkg_root, tmp_path / sub)
        path = sorted((root / sub / "val").rglob("*.png"))[-1]
        arr = np.array(Image.open(path))
        arr[0, 0] ^= 1  # flip the lowest bit of one pixel
        Image.fromarray(arr).save(path)
        assert package_content_hash(root) != base, sub


def test_annotations_names_and_metadata_count_but_the_card_does_not(pkg_root: Path, tmp_path: Path) -> None:
    base = package_content_hash(pkg_root)
    root = copy(pkg_root, tmp_path / "card")
    (root / "README.md").write_text("# a new card\n")
    (root / "CHANGELOG.md").write_text("## 9.9.9\n")
    (root / ".DS_Store").write_text("x")
    assert package_content_hash(root) == base
    root = copy(pkg_root, tmp_path / "ann")
    ann = root / "annotations" / "train.json"
    text = ann.read_text()
    assert '"iscrowd":0' in text
    ann.write_text(text.replace('"iscrowd":0', '"iscrowd":1', 1))
    assert package_content_hash(root) != base
    root = copy(pkg_root, tmp_path / "renamed")
    first = sorted((root / "images" / "train").rglob("*.png"))[0]
    first.rename(first.with_name("z" + first.name))
    assert package_content_hash(root) != base
    root = copy(pkg_root, tmp_path / "version")
    meta = root / "dataset.yaml"
    meta.write_text(meta.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    assert package_content_hash(root) != base


def test_plain_coco_and_opened_package(pkg_root: Path, make_coco_package) -> None:
    from segval.dataset.content_hash import dataset_content_hash

    pkg = DatasetPackage.open(pkg_root)
    assert dataset_content_hash(pkg) == package_content_hash(pkg_root)
    root = make_coco_package()
    coco = DatasetPackage.from_coco(root / "annotations" / "train.json", root / "images" / "train")
    ann, img = root / "annotations" / "train.json", root / "images" / "train" / "a.png"
    h = hashlib.sha256()
    for name, p in (("train.json", ann), ("images/a.png", img)):
        h.update(f"{name}\0{p.stat().st_size}\0".encode() + p.read_bytes())
    assert dataset_content_hash(coco) == h.hexdigest() == coco_content_hash(ann, img.parent, ["a.png"])


def test_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset.yaml not found"):
        package_content_hash(tmp_path)


def test_datamodule_records_the_hash(pkg_root: Path) -> None:
    from segval.datamodules import SegmentationDataModule

    info = SegmentationDataModule(root=pkg_root).dataset_info()
    assert info["content_hash"] == package_content_hash(pkg_root)
