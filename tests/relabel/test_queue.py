"""The relabel queue on constructed videos with known errors, and with constructed model evidence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY
from segval.errors import ConfigError
from segval.relabel.queue import build_queue, label_confusions, read_queue, write_queue
from segval.relabel.scoring import Candidate

H, W = 64, 80
# (video, frame) -> error kind; one error per image, as the demo's injector does
ERRORS = {(0, 3): "dilate", (1, 4): "swap", (2, 2): "drop", (3, 2): "shift", (4, 3): "erode"}


def _disc(cy, cx, r):
    yy, xx = np.mgrid[0:H, 0:W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _square(cy, cx, r):
    m = np.zeros((H, W), bool)
    m[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = True
    return m


def _k(r):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def write_moving_package(root: Path, errors=ERRORS, videos: int = 5, frames: int = 6) -> Path:
    """Videos of a moving disc (3 px / frame) and a slowly moving square; ``errors`` corrupt single frames."""
    rng = np.random.default_rng(0)
    with PackageWriter(root, name="moving", version="1.0.0", taxonomy=SHAPES_TAXONOMY, splits=["train", "val"]) as w:
        for v in range(videos):
            for t in range(frames):
                img = rng.integers(90, 140, (H, W, 3), dtype=np.uint8)
                d = _disc(20 + 2 * v, 14 + 3 * t, 9)
                s = _square(44, 40 + t + v, 10) & ~d
                img[d], img[s] = (220, 40, 40), (40, 200, 40)
                inst = [InstanceMask(1, d), InstanceMask(2, s)]
                kind = errors.get((v, t))
                if kind == "dilate":
                    inst[0] = InstanceMask(1, cv2.dilate(d.astype(np.uint8), _k(3)).astype(bool) & ~s)
                elif kind == "swap":
                    inst[1] = InstanceMask(3, s)
                elif kind == "drop":
                    inst = inst[:1]
                elif kind == "shift":
                    inst[0] = InstanceMask(1, np.roll(d, (0, 6), axis=(0, 1)) & ~s)
                elif kind == "erode":
                    inst[1] = InstanceMask(2, cv2.erode(s.astype(np.uint8), _k(3)).astype(bool))
                w.add_image("train", img, f"v{v}/{t:04d}.png", instances=inst,
                            extra={"video_id": v, "frame_index": t})
        w.add_image("val", img, "val0.png", instances=inst)
    return root


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    return write_moving_package(tmp_path_factory.mktemp("q") / "moving")


def _image_of(pkg, v, t):
    return next(r.id for r in pkg.split("train").images if (r.video_id, r.frame_index) == (v, t))


def test_every_injected_error_is_in_the_top_of_the_queue(moving):
    pkg = DatasetPackage.open(moving)
    q = build_queue(pkg, budget=len(ERRORS))
    wrong = {_image_of(pkg, v, t): kind for (v, t), kind in ERRORS.items()}
    images = list(dict.fromkeys(it["image_id"] for it in q["items"]))
    assert set(images) == set(wrong)  # recall 1.0 within the budget
    assert q["images"] == len(ERRORS) and q["budget"] == len(ERRORS)
    assert [it["rank"] for it in q["items"]] == list(range(1, len(q["items"]) + 1))
    by_image = {}
    for it in q["items"]:
        by_image.setdefault(it["image_id"], []).append(it)
    swap = by_image[_image_of(pkg, 1, 4)][0]
    assert swap["class"] == "bar" and swap["evidence"]["temporal_class"] == 1.0
    assert swap["evidence"]["neighbour_class"] == "square" and len(swap["annotation_ids"]) == 1
    drop = by_image[_image_of(pkg, 2, 2)][0]
    assert drop["evidence"]["kind"] == "missing" and drop["class"] == "square" and drop["annotation_ids"] == []
    x, y, w, h = drop["region"]
    assert 28 <= x <= 45 and 30 <= y <= 36 and w >= 18 and h >= 18
    for vt in ((0, 3), (3, 2)):
        it = by_image[_image_of(pkg, *vt)][0]
        assert it["class"] == "disc" and it["evidence"]["temporal_shape"] > 0.4
    erode = by_image[_image_of(pkg, 4, 3)][0]
    assert erode["class"] == "square" and erode["evidence"]["temporal_shape"] > 0.5
    # a clean package gives no temporal evidence at all
    assert all(it["proposal"] is None for it in q["items"])
    # one swapped annotation is a slip, not a guideline question: no label confusion (needs 2)
    assert q["label_confusions"] == []


def test_clean_videos_give_an_empty_queue(tmp_path):
    pkg = DatasetPackage.open(write_moving_package(tmp_path / "clean", errors={}))
    q = build_queue(pkg, budget=10)
    assert q["items"] == [] and q["images"] == 0


def test_model_evidence_ranks_single_images(tmp_path, moving):
    """per_image rows of the queued split + findings: the image the model disagrees with comes first."""
    pkg = DatasetPackage.open(moving)
    ids = [r.id for r in pkg.split("train").images]
    rows = [{"image_id": i, "pixels": 100, "label_quality": 0.9, "top_confused_gt": None, "top_confused_pred": None,
             "top_confused_pixels": 0, "disagree_background": 0, "disagree_disc": 0, "disagree_square": 0,
             "disagree_bar": 0} for i in ids]
    target = _image_of(pkg, 1, 1)  # a clean frame the model dislikes
    rows[ids.index(target)].update(label_quality=0.05, top_confused_gt="disc", top_confused_pred="square",
                                   top_confused_pixels=40, disagree_disc=40)
    findings = {"split": "train", "classes": [
        {"name": "disc", "status": "weak", "causes": [{"cause": "confusion", "evidence": {"partner": "square"}}]},
        {"name": "square", "status": "ok", "causes": []}]}
    ranking = {"weights": {"temporal_shape": 0.0, "temporal_class": 0.0, "missing": 0.0, "geometry": 0.0}}
    q = build_queue(pkg, budget=1, per_image=rows, findings=findings, ranking=ranking)
    assert [it["image_id"] for it in q["items"]] == [target]
    it = q["items"][0]
    assert it["class"] == "disc" and it["evidence"]["confusion"] == 1.0 and it["evidence"]["kind"] == "image"
    assert it["score"] == pytest.approx(0.5 * 1.0 + 0.3 * 1.0 + 0.2 * 1.0)
    assert q["inputs"]["weak_classes"] == ["disc"] and q["inputs"]["per_image_rows_used"] == len(ids)


def test_per_image_of_another_split_is_left_out_with_a_warning(tmp_path, moving):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"split": "val"}))
    (run / "per_image.csv").write_text("image_id,pixels,mIoU,pixel_acc,label_quality,top_confused_gt,"
                                       "top_confused_pred,top_confused_pixels\n31,10,0.5,0.5,0.1,,,0\n")
    warnings = []
    q = build_queue(moving, budget=5, run_dir=run, warn=warnings.append)
    assert any("scores split 'val'" in w for w in warnings)
    assert q["inputs"]["per_image_rows_used"] == 0 and q["inputs"]["per_image_split"] == "val"


def test_write_and_read_queue(tmp_path, moving):
    q = build_queue(moving, budget=3)
    jpath, cpath = write_queue(q, tmp_path / "out")
    back = read_queue(tmp_path / "out")
    assert back["items"] == json.loads(jpath.read_text())["items"]
    with open(cpath, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in rows] == [it["rank"] for it in q["items"]]
    assert rows[0]["annotation_ids"] == " ".join(map(str, q["items"][0]["annotation_ids"]))
    with pytest.raises(ConfigError):
        build_queue(moving, budget=-2)
    with pytest.raises(ConfigError, match="not found"):
        read_queue(tmp_path / "nowhere")


def test_queue_app_in_process(tmp_path, moving):
    """`segval.commands.relabel.run_queue(cfg)` on a composed relabel_queue config, as `segval validate` calls it."""
    from hydra import compose, initialize_config_module

    from segval.commands.relabel import run_queue as queue

    with initialize_config_module(config_module="segval.conf", version_base="1.3"):
        cfg = compose("relabel_queue", overrides=["data=package", f"data.root={moving}", "relabel.budget=2",
                                                  f"output_dir={tmp_path / 'out'}", "relabel.progress=false"])
    q = queue(cfg)
    assert q["budget"] == 2 and q["images"] == 2 and q["split"] == "train"
    assert json.loads((tmp_path / "out" / "queue.json").read_text())["items"] == q["items"]
    assert q["ranking"]["weights"]["temporal_class"] == 1.0


def test_steps_are_not_spikes(tmp_path):
    """An occlusion that starts and stays (area halves from frame 3 on) is a step, not an error: no item."""
    yy, xx = np.mgrid[0:H, 0:W]
    rng = np.random.default_rng(3)
    with PackageWriter(tmp_path / "step", name="step", version="1.0.0", taxonomy=SHAPES_TAXONOMY,
                       splits=["train"]) as w:
        for t in range(7):
            img = rng.integers(90, 140, (H, W, 3), dtype=np.uint8)
            s = _square(30, 30 + t, 12)
            if t >= 3:
                s[:, 30 + t:] = False  # the right half hidden from frame 3 on
            d = _disc(15, 60, 6)
            w.add_image("train", img, f"v/{t:03d}.png", instances=[InstanceMask(2, s), InstanceMask(1, d)],
                        extra={"video_id": 0, "frame_index": t})
    q = build_queue(tmp_path / "step", budget=7)
    assert [it for it in q["items"] if it["evidence"].get("temporal_shape", 0) > 0.3] == []


def test_queue_app_scores_the_queued_split_with_the_runs_checkpoint(tmp_path, moving, monkeypatch):
    """per_image.csv of the run is for val: the app evaluates the run's checkpoint on train first."""
    from hydra import compose, initialize_config_module

    import segval.commands.relabel as app

    pkg = DatasetPackage.open(moving)
    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "best.ckpt"
    ckpt.write_bytes(b"x")
    (run / "metrics.json").write_text(json.dumps({"split": "val", "checkpoint": str(ckpt)}))
    (run / "per_image.csv").write_text("image_id,pixels,mIoU,pixel_acc,label_quality,top_confused_gt,"
                                       "top_confused_pred,top_confused_pixels\n31,10,0.5,0.5,0.1,,,0\n")
    calls = []

    def fake_eval(ck, p, split, out):
        calls.append((ck, split))
        d = out / f"eval_{split}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"split": split}))
        ids = [r.id for r in p.split(split).images]
        (d / "per_image.csv").write_text("image_id,pixels,mIoU,pixel_acc,label_quality,top_confused_gt,"
                                         "top_confused_pred,top_confused_pixels\n"
                                         + "".join(f"{i},100,0.5,0.5,{0.9 - 0.01 * k:.3f},,,0\n"
                                                   for k, i in enumerate(ids)))
        return d / "per_image.csv"

    monkeypatch.setattr(app, "_evaluate_split", fake_eval)
    with initialize_config_module(config_module="segval.conf", version_base="1.3"):
        cfg = compose("relabel_queue", overrides=["data=package", f"data.root={moving}", "relabel.budget=3",
                                                  f"run_dir={run}", f"output_dir={tmp_path / 'out'}",
                                                  "relabel.progress=false"])
    q = app.run_queue(cfg)
    assert calls == [(str(ckpt), "train")]
    assert q["inputs"]["per_image_split"] == "train"
    assert q["inputs"]["per_image_rows_used"] == len(pkg.split("train").images)
    with initialize_config_module(config_module="segval.conf", version_base="1.3"):
        cfg = compose("relabel_queue", overrides=["data=package", f"data.root={moving}", f"run_dir={run}",
                                                  "relabel.evaluate=never", f"output_dir={tmp_path / 'out2'}"])
    calls.clear()
    assert app.run_queue(cfg)["inputs"]["per_image_rows_used"] == 0 and calls == []


def _cand(image_id, cat, to=None, anns=(1,)):
    ev = {"temporal_class": 1.0, "neighbour_class": to} if to else {"temporal_shape": 0.7}
    return Candidate(image_id, "annotation", cat, list(anns), None, ev, "r", 10.0, 0)


def test_label_confusions_count_class_pairs_across_frames():
    names = {1: "lego", 2: "cube", 3: "duck"}
    cands = [_cand(10, 1, "cube"), _cand(11, 1, "cube"), _cand(12, 2, "lego"), _cand(13, 3, "lego"),
             _cand(14, 2), _cand(15, 2, "lego", anns=(5, 6))]
    out = label_confusions(cands, names)
    # cube <-> lego: 2 (lego->cube) + 1 + 2 (cube->lego, one candidate of two annotations); duck->lego once: left out
    assert out == [{"pair": ["cube", "lego"], "annotations": 5, "directions": {"cube->lego": 3, "lego->cube": 2},
                    "images": [10, 11, 12, 15]}]
    assert label_confusions(cands, names, min_annotations=1)[1]["pair"] == ["duck", "lego"]


def test_queue_app_reads_a_plain_coco_export(tmp_path, moving):
    """data=coco (annotations + images, as train reads an export) queues the same images as the package."""
    from hydra import compose, initialize_config_module

    from segval.commands.relabel import run_queue as queue

    over = ["relabel.budget=2", "relabel.progress=false"]
    with initialize_config_module(config_module="segval.conf", version_base="1.3"):
        from_pkg = compose("relabel_queue", overrides=["data=package", f"data.root={moving}",
                                                       f"output_dir={tmp_path / 'a'}", *over])
        from_coco = compose("relabel_queue", overrides=[
            "data=coco", f"data.annotations={moving / 'annotations' / 'train.json'}",
            f"data.images={moving / 'images' / 'train'}", f"output_dir={tmp_path / 'b'}", *over])
    a, b = queue(from_pkg), queue(from_coco)
    assert [it["image_id"] for it in b["items"]] == [it["image_id"] for it in a["items"]]
    assert b["images"] == 2
