"""Instance AP (COCOeval segm): perfect predictions, a hand-computed perturbation, pycocotools directly."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segval.dataset.rle import encode_coco_rle
from segval.metrics.functional.instance import coco_ground_truth, evaluate_segm, instance_results
from segval.dataset.package import DatasetPackage


def box(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def gt_dict(objects: list[tuple[int, int, np.ndarray, int]], cats: dict[int, str]) -> dict:
    """objects: (image_id, category_id, mask, iscrowd)."""
    images = [{"id": i, "width": 40, "height": 40, "file_name": f"{i}.png"} for i in sorted({o[0] for o in objects})]
    anns = []
    for k, (img, cat, m, crowd) in enumerate(objects, start=1):
        anns.append({"id": k, "image_id": img, "category_id": cat, "segmentation": encode_coco_rle(m)[0],
                     "area": float(m.sum()), "bbox": [0, 0, 1, 1], "iscrowd": crowd})
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": n} for c, n in cats.items()]}


OBJECTS = [
    (1, 1, box(2, 10, 2, 10), 0), (1, 1, box(20, 30, 20, 36), 0), (1, 2, box(12, 18, 0, 40), 0),
    (2, 1, box(0, 5, 0, 5), 0), (2, 2, box(5, 35, 5, 40), 0),
]
CATS = {1: "cube", 2: "plate"}


def test_perfect_predictions_give_ap_one() -> None:
    gt = gt_dict(OBJECTS, CATS)
    res = [{"image_id": i, "category_id": c, "segmentation": encode_coco_rle(m)[0], "score": 0.9} for i, c, m, _ in OBJECTS]
    out = evaluate_segm(gt, res)
    for key in ("AP", "AP50", "AP75"):
        assert out[key] == pytest.approx(1.0)
    assert out["per_class"] == {"cube": pytest.approx(1.0), "plate": pytest.approx(1.0)}
    # areas from the masks: 64 / 160 / 240 / 25 px are small (< 32^2), 1050 medium, none large (> 96^2)
    assert out["APs"] == pytest.approx(1.0) and out["APm"] == pytest.approx(1.0) and math.isnan(out["APl"])


def test_a_false_positive_ranked_first_and_a_miss_give_the_hand_computed_ap() -> None:
    # one class, two objects; the best-scored prediction is a false positive, one object is found, one missed:
    # precision 0.5 up to recall 0.5 -> 51 of COCO's 101 recall points at 0.5 -> AP = 25.5 / 101 at every IoU
    a, b = box(0, 10, 0, 10), box(20, 30, 20, 30)
    gt = gt_dict([(1, 1, a, 0), (1, 1, b, 0)], {1: "cube"})
    res = [{"image_id": 1, "category_id": 1, "segmentation": encode_coco_rle(box(0, 5, 30, 40))[0], "score": 0.95},
           {"image_id": 1, "category_id": 1, "segmentation": encode_coco_rle(a)[0], "score": 0.9}]
    out = evaluate_segm(gt, res)
    assert out["AP"] == pytest.approx(25.5 / 101) and out["AP50"] == pytest.approx(25.5 / 101)
    assert out["per_class"]["cube"] == pytest.approx(25.5 / 101)


def test_a_perturbation_equals_pycocotools_run_directly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gt = gt_dict(OBJECTS, CATS)
    res = []
    for i, c, m, _ in OBJECTS:
        shifted = np.roll(m, int(rng.integers(0, 4)), axis=1)  # IoU between about .6 and 1
        res.append({"image_id": i, "category_id": c, "segmentation": encode_coco_rle(shifted)[0],
                    "score": float(rng.uniform(0.3, 1))})
    res.append({"image_id": 2, "category_id": 1, "segmentation": encode_coco_rle(box(30, 40, 30, 40))[0], "score": 0.99})
    out = evaluate_segm(gt, res)
    # pycocotools alone, from files, as its README runs it (results carry no bbox)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        cgt = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(cgt, cgt.loadRes(str(tmp_path / "dt.json")), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for k, key in enumerate(("AP", "AP50", "AP75", "APs", "APm")):
        assert out[key] == pytest.approx(ev.stats[k], abs=1e-12)
    assert 0 < out["AP"] < 1


def test_crowd_only_class_has_no_ap_and_predictions_on_crowd_are_not_false_positives() -> None:
    crowd = box(0, 20, 0, 20)
    gt = gt_dict([(1, 1, box(25, 35, 25, 35), 0), (1, 2, crowd, 1)], CATS)
    res = [{"image_id": 1, "category_id": 1, "segmentation": encode_coco_rle(box(25, 35, 25, 35))[0], "score": 0.5},
           # high-scored plate prediction inside the crowd region: ignored, not a false positive
           {"image_id": 1, "category_id": 2, "segmentation": encode_coco_rle(box(2, 8, 2, 8))[0], "score": 0.99}]
    out = evaluate_segm(gt, res)
    assert math.isnan(out["per_class"]["plate"])  # no non-crowd instance: undefined, out of the mean
    assert out["per_class"]["cube"] == pytest.approx(1.0) and out["AP"] == pytest.approx(1.0)


def test_no_prediction_scores_zero_and_unknown_images_are_refused() -> None:
    gt = gt_dict(OBJECTS, CATS)
    out = evaluate_segm(gt, [])
    assert out["AP"] == 0.0 and out["per_class"] == {"cube": 0.0, "plate": 0.0}
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_segm(gt, [{"image_id": 99, "category_id": 1, "segmentation": encode_coco_rle(box(0, 2, 0, 2))[0],
                            "score": 1.0}])


def test_ground_truth_from_the_package_keeps_things_and_crowd(make_coco_package) -> None:
    cube, cable = make_coco_package.masks()
    root = make_coco_package(annotations=[
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": make_coco_package.rle(cube), "area": 20,
         "bbox": [1, 1, 5, 4], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 4, "segmentation": make_coco_package.rle(cable), "area": 8,
         "bbox": [0, 3, 8, 1], "iscrowd": 1},
        {"id": 12, "image_id": 1, "category_id": 0, "segmentation": make_coco_package.rle(~cube), "area": 28,
         "bbox": [0, 0, 8, 6], "iscrowd": 0},
    ])
    split = DatasetPackage.open(root).split("train")
    gt = coco_ground_truth(split, split.images)
    assert [c["name"] for c in gt["categories"]] == ["cube", "cable"]  # background is stuff
    assert [(a["id"], a["category_id"], a["area"], a["iscrowd"]) for a in gt["annotations"]] == [
        (10, 1, 20.0, 0), (11, 4, 8.0, 1)]
    pred = {"masks": np.stack([cube, cable]), "labels": np.array([1, 2]), "scores": np.array([0.8, 0.7])}
    res = instance_results(1, pred, split.taxonomy.ids)
    assert [(r["category_id"], r["score"]) for r in res] == [(1, 0.8), (4, 0.7)] and "bbox" not in res[0]
    out = evaluate_segm(gt, res)
    assert out["per_class"]["cube"] == pytest.approx(1.0) and math.isnan(out["per_class"]["cable"])


def test_metrics_json_blocks_and_findings_carry_per_class_ap() -> None:
    import torch

    from segval.analysis.diagnosis import diagnose
    from segval.metrics.functional.semantic import semantic_metrics
    from segval.metrics.results import format_class_table, metrics_payload

    conf = torch.tensor([[50, 2, 0], [10, 30, 0], [0, 0, 8]])
    sem = semantic_metrics(conf)
    ap = {"AP": 0.5, "AP50": 0.75, "AP75": 0.5, "APs": math.nan, "APm": 0.5, "APl": math.nan,
          "per_class": {"cube": 0.25, "cable": math.nan}}
    payload = metrics_payload({**sem, "task": "instance", "instance": ap}, ["background", "cube", "cable"])
    assert payload["task"] == "instance" and payload["instance"]["APs"] is None
    assert payload["instance"]["per_class"] == {"cube": 0.25, "cable": None}
    assert "AP 50.00  AP50 75.00" in format_class_table(payload)
    json.dumps(payload, allow_nan=False)  # no NaN in the JSON
    classes = {c["name"]: c for c in diagnose(payload, conf)["classes"]}
    assert classes["cube"]["AP"] == 0.25 and classes["cable"]["AP"] is None and classes["background"]["AP"] is None
    semantic = metrics_payload({**sem, "task": "semantic"}, ["background", "cube", "cable"])
    assert "instance" not in semantic and all(c["AP"] is None for c in diagnose(semantic, conf)["classes"])


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    from segval.metrics.instance import gather_results
    from segval.metrics.panoptic import PanopticQualityStats

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        res = [{"image_id": i, "category_id": c, "segmentation": encode_coco_rle(m)[0], "score": 0.5 + k / 10}
               for k, (i, c, m, _) in enumerate(OBJECTS)][rank::2]  # rank 0: 3 results, rank 1: 2
        gathered = gather_results(res)
        pq = PanopticQualityStats([1])
        ids = np.array([[1, 1, 0, 0]])
        pq.update(ids, [{"id": 1, "category_id": 1}], ids if rank == 0 else 0 * ids,
                  [{"id": 1, "category_id": 1}] if rank == 0 else [])
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(
            {"results": gathered, "stats": pq.compute().tolist()}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_gather_every_prediction_and_sum_pq_stats(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    outs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert outs[0] == outs[1]  # every rank holds the whole evaluation
    assert sorted(r["score"] for r in outs[0]["results"]) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    # rank 0: a perfect match (IoU 1); rank 1: a missed segment -> summed (IoU 1, TP 1, FP 0, FN 1)
    assert outs[0]["stats"] == [[1.0, 1.0, 0.0, 1.0]]
    assert evaluate_segm(gt_dict(OBJECTS, CATS), outs[0]["results"])["AP"] == pytest.approx(1.0)
