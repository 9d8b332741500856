"""`segval relabel find` as a user runs it: one in-sample training, or cross-fitting folds whose manifest shows no
image was scored by a model that trained on it; resumable; clear errors for impossible folds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from segval.demo.shapes import write_shapes_package
from tests.helpers import run_segval

pytestmark = pytest.mark.slow

TRAIN = 'find.train=["model=segformer_tiny","trainer.max_steps=4","trainer.val_check_interval=2",' \
        '"data.crop_size=[64,64]","data.num_workers=0","data.batch_size=2","data.val_batch_size=2","logger=csv"]'


@pytest.fixture(scope="module")
def stills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("find") / "shapes", images={"train": 8, "val": 2})


def _find(pkg: Path, out: Path, *extra: str):
    return run_segval("relabel", "find", "data=package", f"data.root={pkg}", TRAIN, "relabel.budget=8",
                      f"hydra.run.dir={out}", *extra, cwd=out.parent, timeout=900)


def test_in_sample_find_writes_a_queue_that_says_where_its_evidence_comes_from(stills: Path, tmp_path: Path) -> None:
    out = tmp_path / "find"
    res = _find(stills, out)
    assert res.returncode == 0, res.output
    q = json.loads((out / "queue.json").read_text())
    assert q["model_evidence"]["kind"] == "in-sample" and q["model_evidence"]["runs"] == [str(out / "train")]
    se = q["inputs"]["still_evidence"]
    assert se["images"] == 8 and {"edge_gain", "appearance_colour", "appearance_margin", "model_missing"} <= set(se["fused"])
    assert q["items"] and all(it["evidence"]["model_evidence"] == "in-sample" for it in q["items"])
    assert (out / "queue.csv").is_file()
    assert "model evidence: in-sample" in res.stdout and f"queue: {out / 'queue.json'}" in res.stdout
    again = _find(stills, out)  # a finished training is not trained again
    assert again.returncode == 0 and "not trained again" in again.stdout, again.output
    assert json.loads((out / "queue.json").read_text())["items"] == q["items"]


def test_cross_fitting_never_scores_an_image_with_a_model_that_trained_on_it(stills: Path, tmp_path: Path) -> None:
    out = tmp_path / "folds"
    res = _find(stills, out, "find.folds=2")
    assert res.returncode == 0, res.output
    manifest = json.loads((out / "folds.json").read_text())
    assert manifest["kind"] == "cross-fit" and manifest["k"] == 2
    scored_by = {}
    for f in manifest["folds"]:
        run = Path(f["run"])
        cfg = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        excluded = set(json.loads(Path(cfg["data"]["exclude_train_ids"]).read_text()))
        assert excluded == set(f["scored_images"])  # the fold's model never trained on what it scores
        scored_by.update(dict.fromkeys(f["scored_images"], f["fold"]))
    assert len(scored_by) == 8
    q = json.loads((out / "queue.json").read_text())
    for it in q["items"]:
        assert it["evidence"]["model_evidence"] == f"out-of-sample (fold {scored_by[it['image_id']]})"

    # interrupted after the first fold: the rerun keeps it and trains the second only
    import shutil

    shutil.rmtree(out / "fold1")
    (out / "queue.json").unlink()
    res = _find(stills, out, "find.folds=2")
    assert res.returncode == 0, res.output
    assert "fold 1/2" in res.stdout and "not trained again" in res.stdout.split("fold 2/2")[0]
    assert (out / "fold1" / "metrics.json").is_file() and (out / "queue.json").is_file()


def test_more_folds_than_images_is_a_clear_error_before_training(stills: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad"
    res = _find(stills, out, "find.folds=9")
    assert res.returncode == 2 and "find.folds=9 but the split has only 8" in res.stderr, res.output
    assert not (out / "fold0").exists()
