"""`segval demo run` end to end on a tiny rendered package, and the demo commands' bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage

from tests.helpers import run_segval
from tests.qa.guideline_package import write_package

TINY_RENDER = ["render.videos.train=3", "render.videos.val=1", "render.frames_per_video=4", "render.width=96",
               "render.height=72"]
TINY_TRAIN = ["experiment=demo", "logger=csv", "trainer.max_steps=4", "trainer.val_check_interval=2",
              "trainer.log_every_n_steps=1", "data.crop_size=[72,96]", "data.num_workers=0", "data.batch_size=2",
              "data.val_batch_size=2"]


def _hydra_list(items: list[str]) -> str:
    """A Hydra override list of strings (quoted: they hold '=')."""
    return "[" + ",".join(f"'{x}'" for x in items) + "]"


@pytest.mark.slow
def test_demo_loop_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("pybullet")
    work = tmp_path / "demo"
    res = run_segval(
        "demo", "run", f"work={work}", f"clean={tmp_path / 'clean'}", f"hydra.run.dir={work}",
        f"stages.render.extra={_hydra_list(TINY_RENDER)}", f"train={_hydra_list(TINY_TRAIN)}",
        "inject.rate=0.5", "inject.min_pixels=16", "inject.boundary_px=2",
        "budget=4",
        cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.output[-3000:]
    summary = json.loads((work / "demo.json").read_text())
    manifest = json.loads((work / "errors.json").read_text())
    injected = {it["image_id"] for it in manifest["items"]}
    assert summary["errors_injected"] == len(injected) == 6  # 0.5 x 12 train frames, one error each
    out = res.stdout
    assert "errors injected:" in out and "errors found in queue:" in out and "mIoU before -> after:" in out
    assert "gate verdict:" in out and "summary:" in out
    # the loop ends with the guideline of the relabelled package, from the analyze run and the queue
    assert summary["guideline"]["html"] == str(work / "guideline" / "guideline.html")
    assert (work / "guideline" / "guideline.html").is_file() and "annotation guideline:" in out
    for key in ("mIoU_before", "mIoU_after"):
        assert 0.0 <= summary[key] <= 1.0

    # the oracle + import changed the queued images only, and those now hold the clean truth
    queue = json.loads((work / "queue" / "queue.json").read_text())
    queued = {int(it["image_id"]) for it in queue["items"]}
    assert 0 < len(queued) <= 4
    assert summary["errors_found_in_queue"] == len(queued & injected)
    clean = DatasetPackage.open(tmp_path / "clean").split("train")
    corrupted = DatasetPackage.open(work / "data" / "corrupted").split("train")
    fixed_pkg = DatasetPackage.open(work / "data" / "relabelled")
    assert fixed_pkg.version == "1.2.0"
    fixed = fixed_pkg.split("train")
    for rec in corrupted.images:
        before = corrupted.semantic_target(rec)
        after = fixed.semantic_target(fixed.image(rec.id))
        if rec.id in queued:
            assert np.array_equal(after, clean.semantic_target(clean.image(rec.id))), rec.id
        else:
            assert np.array_equal(after, before), rec.id
            assert [a["id"] for a in corrupted.annotations_for(rec.id)] == \
                [a["id"] for a in fixed.annotations_for(rec.id)]


def test_demo_bad_input(tmp_path: Path, shapes_root: Path) -> None:
    res = run_segval("demo", "inject", f"root={shapes_root}", f"output={tmp_path / 'x'}",
                     f"manifest={tmp_path / 'e.json'}", "inject.rate=1.5", "inject.swap_pairs=[[disc,square]]",
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert res.returncode == 2 and "inject.rate=1.5 is over 1" in res.stderr, res.output[-2000:]
    assert not (tmp_path / "x").exists()
    ok = run_segval("demo", "inject", f"root={shapes_root}", f"output={tmp_path / 'corrupted'}",
                    f"manifest={tmp_path / 'errors.json'}", "inject.rate=0.5", "inject.min_pixels=16",
                    "inject.swap_pairs=[[disc,square]]", f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert ok.returncode == 0, ok.output[-2000:]
    assert "injected 4 errors into 4 of 8 train images" in ok.stdout
    manifest = json.loads((tmp_path / "errors.json").read_text())
    # a queue built on another version than the manifest's corrupted one
    queue = {"schema_version": 1, "dataset": {"name": "shapes", "version": "1.0.0", "root": str(shapes_root)},
             "split": "train", "budget": 1, "items": [{"rank": 1, "item_id": "a", "image_id": 1}]}
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    bad = run_segval("demo", "oracle", f"queue={tmp_path / 'queue.json'}", f"manifest={tmp_path / 'errors.json'}",
                     f"hydra.run.dir={tmp_path / 'run3'}", cwd=tmp_path)
    assert bad.returncode == 2 and "version 1.0.0" in bad.stderr and "version 1.1.0" in bad.stderr, bad.output[-2000:]
    # the right version, but an image that is not queued
    queue["dataset"] = {"name": "shapes", "version": "1.1.0", "root": str(tmp_path / "corrupted")}
    (tmp_path / "queue.json").write_text(json.dumps(queue))
    other = 2 if manifest["items"][0]["image_id"] != 2 else 3
    bad = run_segval("demo", "oracle", f"queue={tmp_path / 'queue.json'}", f"manifest={tmp_path / 'errors.json'}",
                     f"images=[{other}]", f"hydra.run.dir={tmp_path / 'run4'}", cwd=tmp_path)
    assert bad.returncode == 2 and f"image ids [{other}] are not in the queue" in bad.stderr, bad.output[-2000:]
    good = run_segval("demo", "oracle", f"queue={tmp_path / 'queue.json'}", f"manifest={tmp_path / 'errors.json'}",
                      f"output={tmp_path / 'cvat.json'}", f"hydra.run.dir={tmp_path / 'run5'}", cwd=tmp_path)
    assert good.returncode == 0 and "oracle answered 1 of 1 queued images" in good.stdout, good.output[-2000:]
    assert len(json.loads((tmp_path / "cvat.json").read_text())["images"]) == 1


def test_demo_trains_each_side_once_per_seed(tmp_path: Path) -> None:
    """Training stages expand to one command per seed (into <stage>/seed<k>); the evidence comes from the first."""
    from hydra import compose, initialize_config_module

    from segval.commands.demo import demo_seeds, seed_args, stage_args
    from segval.errors import ConfigError

    work = tmp_path / "demo"
    with initialize_config_module(config_module="segval.conf", version_base="1.3"):
        cfg = compose("demo_run", overrides=[f"work={work}", "seeds=[3,5]"])
        bad = [compose("demo_run", overrides=[f"work={work}", f"seeds={v}"]) for v in ("[]", "[1,1]", "[a]")]
    assert demo_seeds(cfg) == [3, 5]
    for b in bad:
        with pytest.raises(ConfigError, match="distinct integers"):
            demo_seeds(b)
    per_seed = [n for n in cfg.stages if cfg.stages[n].get("per_seed", False)]
    assert per_seed == ["train_before", "train_after"]
    args = seed_args(stage_args(cfg, "train_before"), 5)
    assert args[:3] == ["train", "experiment=demo", "logger=csv"] and args[-1] == "seed=5"
    assert f"hydra.run.dir={work}/train_before/seed5" in args
    assert stage_args(cfg, "analyze")[1] == f"run_dir={work}/train_before/seed3"
    (work / "train_before" / "seed3").mkdir(parents=True)
    (work / "train_before" / "seed3" / "metrics.json").write_text(json.dumps({"checkpoint": "/x/best.ckpt"}))
    assert "ckpt_path=/x/best.ckpt" in stage_args(cfg, "eval_train")
    assert stage_args(cfg, "gate")[1:3] == [f"candidate=[{work}/train_after]", f"baseline=[{work}/train_before]"]


def test_demo_guideline_stage(tmp_path: Path) -> None:
    """The guideline stage as `segval demo run` builds and runs it, on what the analyze and queue stages leave."""
    from hydra import compose, initialize_config_module

    from segval.commands.demo import stage_args
    from segval.demo.loop import format_summary, run_stage, summarize

    root = write_package(tmp_path / "relabelled")
    work = tmp_path / "demo"
    (work / "analyze").mkdir(parents=True)
    (work / "analyze" / "findings.json").write_text(json.dumps({
        "split": "val", "dataset": {"class_names": ["background", "robot_arm", "gripper", "cable", "ghost"],
                                    "taxonomy_ids": [0, 1, 2, 3, 4], "version": "1.1.0"},
        "classes": [{"name": "cable", "status": "weak", "worst_images": [{"image_id": 8, "reason": "missed"}],
                     "causes": []}]}))
    (work / "queue").mkdir()
    (work / "queue" / "queue.json").write_text(json.dumps({
        "schema_version": 1, "dataset": {"name": "arms", "version": "1.1.0"}, "split": "train",
        "items": [{"rank": 1, "item_id": "i", "image_id": 2, "file_name": "train1.png", "class": "gripper",
                   "category_id": 2, "annotation_ids": [5], "region": None, "reason": "a swap"}],
        "label_confusions": [{"pair": ["gripper", "robot_arm"], "annotations": 2, "directions": {}, "images": [2]}]}))
    with initialize_config_module(config_module="segval.conf", version_base="1.3"):
        cfg = compose("demo_run", overrides=[f"work={work}", f"relabelled={root}"])
    names = list(cfg.stages)
    assert names[-1] == "guideline" and names.index("guideline") > names.index("queue") > names.index("analyze")
    args = stage_args(cfg, "guideline")
    assert args == ["dataset", "guideline", f"data.root={root}", f"run_dir={work}/analyze",
                    f"queue={work}/queue/queue.json", f"hydra.run.dir={work}/guideline"]
    run_stage("guideline", args, ok=list(cfg.stages.guideline.ok), log_dir=work / "logs")
    md = (work / "guideline" / "guideline.md").read_text()
    assert "relabel queue rank 1: a swap" in md and "### gripper vs robot\\_arm" in md
    assert "the run was made on version 1.1.0" in md  # the queue / run are of the version before the relabelling
    (work / "errors.json").write_text(json.dumps({"images": 7, "counts": {}, "items": []}))
    s = summarize({"manifest": work / "errors.json", "guideline": work / "guideline"})
    assert s["guideline"] == {"html": str(work / "guideline" / "guideline.html"),
                              "markdown": str(work / "guideline" / "guideline.md")}
    assert f"annotation guideline:   {work / 'guideline' / 'guideline.html'} (+ guideline.md)" in format_summary(s)
