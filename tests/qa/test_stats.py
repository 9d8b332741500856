"""Dataset statistics, plots and mosaic (segval.qa.stats)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segval.dataset.package import DatasetPackage
from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.errors import ConfigError
from segval.qa.stats import compute_stats, mosaic, write_report


@pytest.fixture
def pkg(tmp_path: Path) -> DatasetPackage:
    tax = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"),
                    Category(1, "mug", (200, 30, 30), True, "rigid"),
                    Category(2, "cloth", (30, 200, 30), True, "deformable"),
                    Category(3, "rare", (30, 30, 200), True, "thin")], background_id=0)
    rng = np.random.default_rng(0)
    with PackageWriter(tmp_path / "pkg", name="toy", version="1.0.0", taxonomy=tax, splits=["train", "val"]) as w:
        for k in range(4):
            mug = np.zeros((10, 10), bool)
            mug[0:4, 0:4] = True  # 16 px
            insts = [InstanceMask(1, mug)]
            if k % 2 == 0:
                cloth = np.zeros((10, 10), bool)
                cloth[5:10, 0:10] = True  # 50 px
                insts.append(InstanceMask(2, cloth, iscrowd=int(k == 0)))
            w.add_image("train", rng.integers(0, 255, (10, 10, 3), dtype=np.uint8), f"t{k}", instances=insts)
        hidden = np.zeros((10, 10), bool)
        hidden[1:3, 1:3] = True
        big = np.zeros((10, 10), bool)
        big[0:6, 0:6] = True
        # "rare" lies on the bigger mug; smaller instances are painted on top, so it stays visible
        w.add_image("val", rng.integers(0, 255, (10, 10, 3), dtype=np.uint8), "v0",
                    instances=[InstanceMask(1, big), InstanceMask(3, hidden)])
    return DatasetPackage.open(tmp_path / "pkg")


def test_train_stats(pkg: DatasetPackage) -> None:
    st = compute_stats(pkg, size_bins=[0, 20, 100])["splits"]["train"]
    assert st["images"] == 4 and st["pixels"] == 400
    assert st["pixel_share"] == {"background": pytest.approx((400 - 64 - 100) / 400), "mug": 64 / 400,
                                 "cloth": 100 / 400, "rare": 0.0}
    assert st["void_share"] == 0.0
    assert st["instances"] == {"background": 0, "mug": 4, "cloth": 2, "rare": 0}
    assert st["crowd"]["cloth"] == 1
    assert st["size_bins"] == ["0-20", "20-100", ">=100"]
    assert st["size_histogram"]["mug"] == [4, 0, 0] and st["size_histogram"]["cloth"] == [0, 2, 0]
    assert st["images_per_class"] == {"background": 4, "mug": 4, "cloth": 2, "rare": 0}
    c = np.asarray(st["cooccurrence"])
    assert (c == c.T).all() and c[1, 2] == 2 and c[0, 1] == 4 and c[3].sum() == 0
    assert np.array_equal(np.diag(c), [4, 4, 2, 0])


def test_val_stats_and_split_choice(pkg: DatasetPackage) -> None:
    stats = compute_stats(pkg, ["val"])
    assert list(stats["splits"]) == ["val"]
    st = stats["splits"]["val"]
    assert st["pixel_share"]["rare"] == 4 / 100 and st["pixel_share"]["mug"] == 32 / 100
    with pytest.raises(ConfigError, match="split 'test'"):
        compute_stats(pkg, ["test"])


def test_report_files_and_deterministic_mosaic(pkg: DatasetPackage, tmp_path: Path) -> None:
    stats = compute_stats(pkg)
    files = write_report(stats, pkg, tmp_path / "out", mosaic_n=3, seed=1)
    out = tmp_path / "out"
    assert {p.name for p in out.glob("*.png")} == {
        f"{s}_{k}.png" for s in ("train", "val")
        for k in ("pixel_share", "instances", "images_per_class", "size_histogram", "cooccurrence")
    } | {"mosaic.png"}
    data = json.loads((out / "stats.json").read_text())
    assert data["splits"]["train"]["instances"]["mug"] == 4 and len(data["mosaic_images"]) == 3
    md = (out / "stats.md").read_text()
    assert "## train: 4 images" in md and "| mug | 16.00 | 4 | 0 | 4 |" in md
    assert Image.open(files["mosaic"]).mode in ("RGBA", "RGB")
    a = mosaic(pkg, tmp_path / "m1.png", n=3, seed=1)
    b = mosaic(pkg, tmp_path / "m2.png", n=3, seed=1)
    assert a["images"] == b["images"] == data["mosaic_images"]
    assert (tmp_path / "m1.png").read_bytes() == (tmp_path / "m2.png").read_bytes()
    assert mosaic(pkg, tmp_path / "m3.png", n=50, seed=0)["images"].__len__() == 5  # capped at the pool
    with pytest.raises(ConfigError, match="n >= 1"):
        mosaic(pkg, tmp_path / "m4.png", n=0)
