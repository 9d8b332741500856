"""The offline W&B run reader used to check sweeps: records split over 32 KiB blocks, groups, tags, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segval.release.resolvers import sweep_group
from segval.tracking.offline import offline_runs
from segval.tracking.run import log_dataset_artifact


def test_reader_sees_what_wandb_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = tmp_path / "pkg"
    (data / "images").mkdir(parents=True)
    (data / "dataset.yaml").write_text("name: d\n")
    (data / "images" / "a.png").write_bytes(b"x")
    big = {f"key{i:05d}": "v" * 40 for i in range(3000)}  # ~150 KB: the config record spans several blocks
    run = wandb.init(project="p", dir=str(tmp_path), mode="offline", group="g", tags=["d", "v1.0.0"], config=big,
                     name="train-d-1.0.0-seed0", job_type="train")
    info = {"name": "d", "version": "1.0.0", "content_hash": "ab" * 32, "source": str(data), "class_names": ["x"]}
    log_dataset_artifact(run, info)
    run.finish()
    (rec,) = offline_runs(tmp_path)
    assert (rec["group"], rec["tags"], rec["name"], rec["job_type"]) == ("g", ["d", "v1.0.0"], "train-d-1.0.0-seed0",
                                                                         "train")
    assert all(json.loads(rec["config"][k]) == v for k, v in big.items())
    (art,) = [a for a in rec["artifacts"] if a["type"] == "dataset"]
    assert art["name"] == "d" and "v1.0.0" in art["aliases"]
    assert sorted(art["references"]) == [f"file://{data.resolve()}/dataset.yaml", f"file://{data.resolve()}/images/a.png"]
    assert json.loads(art["metadata"])["content_hash"] == "ab" * 32


def test_sweep_group_without_hydra() -> None:
    assert sweep_group("explicit") == "explicit"
    assert sweep_group(None) is None  # no Hydra job running: a single run has no group
