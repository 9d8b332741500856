"""Loader snippets written at release: the plain-Python and torch ones run against a generated package."""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.release.versions import release
from segval.demo.shapes import write_shapes_package


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("rel")
    src = write_shapes_package(tmp / "shapes", images={"train": 7, "val": 3}, size=(40, 48), seed=3)
    return Path(release(src, tmp / "releases")["path"])


def _run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_loader_files_are_written_and_named_in_the_card(released: Path) -> None:
    names = sorted(p.name for p in (released / "loaders").iterdir())
    assert names == ["README.md", "coco_visualize.py", "detectron2_register.py", "mmseg_config.py", "torch_dataset.py"]
    assert "loaders/README.md" in (released / "README.md").read_text()


def test_coco_visualize_lists_masks_and_writes_5_overlays(released: Path, tmp_path: Path) -> None:
    proc = _run(released / "loaders" / "coco_visualize.py", cwd=tmp_path)  # package found next to the script
    assert proc.returncode == 0, proc.stderr
    pkg = DatasetPackage.open(released)
    train = pkg.split("train")
    first5 = sorted(r.id for r in train.images)[:5]
    expected = []
    for image_id in first5:
        rec = train.image(image_id)
        # the script lists annotations by decreasing area: the same order here
        for ann, rl in sorted(train.masks(rec), key=lambda m: -m[0]["area"]):
            expected.append(f"{rec.file_name}: annotation {ann['id']} {pkg.taxonomy.category(ann['category_id']).name} "
                            f"{rl.area} px")
    listed = [line for line in proc.stdout.splitlines() if ": annotation " in line]
    assert listed == expected
    pngs = sorted((tmp_path / "preview").glob("*.png"))
    assert len(pngs) == 5
    from PIL import Image

    assert Image.open(pngs[0]).size == (48, 40)


def test_torch_dataset_matches_segval_targets(released: Path, tmp_path: Path) -> None:
    proc = _run(released / "loaders" / "torch_dataset.py", str(released), "val", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "3 images; batch (2, 3, 40, 48) (2, 40, 48)" in proc.stdout
    # the Dataset class, imported without running its demo, against segval's own rasterisation
    ns = runpy.run_path(str(released / "loaders" / "torch_dataset.py"), run_name="loaders")
    pkg = DatasetPackage.open(released)
    for split in pkg.splits:
        ds = ns["SegDataset"](released, split)
        sd = pkg.split(split)
        recs = sorted(sd.images, key=lambda r: r.id)
        assert len(ds) == len(recs)
        for i, rec in enumerate(recs):
            x, target = ds[i]
            assert target.numpy().tolist() == sd.semantic_target(rec).astype(np.int64).tolist()
            assert np.allclose(x.permute(1, 2, 0).numpy() * 255, sd.read_image(rec), atol=1e-3)


def test_mmseg_fragment_and_detectron2_snippet(released: Path) -> None:
    ns = runpy.run_path(str(released / "loaders" / "mmseg_config.py"))
    pkg = DatasetPackage.open(released)
    assert ns["metainfo"]["classes"] == tuple(pkg.taxonomy.names)
    assert ns["metainfo"]["palette"] == [list(c) for c in pkg.taxonomy.colors]
    assert ns["num_classes"] == 4 and ns["segval_label_map"] == {0: 0, 1: 1, 2: 2, 3: 3}
    assert ns["train_dataset"]["data_prefix"] == {"img_path": "images/train", "seg_map_path": "label_maps/train"}
    assert ns["img_suffix"] == ".png"
    tree = ast.parse((released / "loaders" / "detectron2_register.py").read_text())
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "register_coco_instances" in calls
    src = (released / "loaders" / "detectron2_register.py").read_text()
    assert "SPLITS = ['train', 'val']" in src and "NAME = 'shapes'" in src
