"""`segval dataset split` end to end: a new package, ids kept, no video leaks, ±5 %, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package

from tests.helpers import Result, run_segval

pytestmark = pytest.mark.slow


def run_split(*args: str, cwd: Path) -> Result:
    """`segval dataset split <args>`, as a user runs it."""
    return run_segval("dataset", "split", *args, cwd=cwd)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("src") / "pkg", images={"train": 96, "val": 24},
                                frames_per_video=4, size=(48, 48), seed=1)


def _shares(split) -> np.ndarray:
    k = split.taxonomy.num_classes
    pix = np.zeros(k, np.int64)
    for rec in split.images:
        t = split.semantic_target(rec)
        pix += np.bincount(t[t != 255].ravel(), minlength=k)[:k]
    return pix


def test_split_writes_a_new_package_without_leaks(source, tmp_path):
    out = tmp_path / "resplit"
    r = run_split(f"source={source}", f"output={out}", "fractions=[0.8,0.1,0.1]", "seed=3",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "criteria met" in r.stdout and str(out) in r.stdout
    src = DatasetPackage.open(source)
    new = DatasetPackage.open(out)
    assert new.splits == ["train", "val", "test"] and new.taxonomy == src.taxonomy
    # ids, file names and video ids unchanged; every image exactly once
    old = {rec.id: rec for s in src.splits for rec in src.split(s).images}
    seen: dict[int, str] = {}
    video_split: dict[int, str] = {}
    for s in new.splits:
        sp = new.split(s)
        for rec in sp.images:
            assert rec.id not in seen
            seen[rec.id] = s
            assert (rec.file_name, rec.video_id, rec.frame_index) == (old[rec.id].file_name, old[rec.id].video_id,
                                                                      old[rec.id].frame_index)
            assert video_split.setdefault(rec.video_id, s) == s, f"video {rec.video_id} leaks"
            src_split = next(x for x in src.splits if rec.id in {i.id for i in src.split(x).images})
            assert sp.semantic_target(rec).tobytes() == src.split(src_split).semantic_target(old[rec.id]).tobytes()
            assert sp.image_path(rec).read_bytes() == src.split(src_split).image_path(old[rec.id]).read_bytes()
    assert set(seen) == set(old)
    # ±5 % (relative, classes >= 1 % of the pixels) in every split, recomputed from the written package
    total = sum(_shares(src.split(s)) for s in src.splits)
    p = total / total.sum()
    for s in new.splits:
        pix = _shares(new.split(s))
        assert np.all(np.abs(pix / pix.sum() - p) <= 0.05 * np.maximum(p, 0.01) + 1e-12), s
    report = json.loads((tmp_path / "run" / "split_report.json").read_text())
    assert report["ok"] and report["written"] and report["seed"] == 3
    assert [sp["name"] for sp in report["splits"]] == ["train", "val", "test"]
    # the same command again refuses to overwrite the package
    r2 = run_split(f"source={source}", f"output={out}", f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert r2.returncode != 0 and "already exists" in r2.stderr and "Traceback" not in r2.stderr


def test_split_that_cannot_keep_videos_whole_fails_clearly(tmp_path):
    src = write_shapes_package(tmp_path / "few", images={"train": 8}, frames_per_video=4, size=(32, 32))
    out = tmp_path / "out"
    r = run_split(f"source={src}", f"output={out}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2, r.stdout
    assert "cannot keep videos whole: 2 video" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_unmet_tolerance_names_the_class_and_writes_only_with_allow(source, tmp_path):
    out = tmp_path / "out"
    args = [f"source={source}", f"output={out}", "tolerance=0.001", "trials=2"]
    r = run_split(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert r.returncode == 2 and "class '" in r.stderr and "allow=true" in r.stderr, r.stderr
    assert not out.exists()
    report = json.loads((tmp_path / "run" / "split_report.json").read_text())
    assert report["ok"] is False and report["written"] is False and report["worst"]["class"]
    r = run_split(*args, "allow=true", f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert r.returncode == 0 and "CRITERIA NOT MET" in r.stdout
    assert DatasetPackage.open(out).splits == ["train", "val", "test"]
