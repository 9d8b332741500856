"""Cross-checks against independent implementations: plain numpy, scikit-learn, and faithful
re-implementations of MMSegmentation's IoUMetric and Detectron2's SemSegEvaluator.

The upstream functions are transcribed (not imported: neither package is a dependency) from
mmseg/evaluation/metrics/iou_metric.py (IoUMetric.intersect_and_union, total_area_to_metrics,
compute_metrics' summary) and detectron2/evaluation/sem_seg_evaluation.py (SemSegEvaluator.process
and evaluate, main branch), with ``np.float`` spelled ``np.float64`` for numpy 2.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from segval.metrics.functional.semantic import confusion_matrix, semantic_metrics

IGNORE = 255


# ---------------------------------------------------------------- independent numpy implementation
def numpy_confmat(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = IGNORE) -> np.ndarray:
    keep = gt.ravel() != ignore
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (gt.ravel()[keep].astype(np.int64), pred.ravel()[keep].astype(np.int64)), 1)
    return out


# ---------------------------------------------------------------- MMSegmentation IoUMetric (transcribed)
def mmseg_intersect_and_union(pred_label, label, num_classes, ignore_index):
    mask = label != ignore_index
    pred_label = pred_label[mask]
    label = label[mask]
    intersect = pred_label[pred_label == label]
    area_intersect = torch.histc(intersect.float(), bins=(num_classes), min=0, max=num_classes - 1).cpu()
    area_pred_label = torch.histc(pred_label.float(), bins=(num_classes), min=0, max=num_classes - 1).cpu()
    area_label = torch.histc(label.float(), bins=(num_classes), min=0, max=num_classes - 1).cpu()
    area_union = area_pred_label + area_label - area_intersect
    return area_intersect, area_union, area_pred_label, area_label


def mmseg_total_area_to_metrics(
    total_area_intersect, total_area_union, total_area_pred_label, total_area_label, metrics, beta=1
):
    def f_score(precision, recall, beta=1):
        return (1 + beta**2) * (precision * recall) / ((beta**2 * precision) + recall)

    all_acc = total_area_intersect.sum() / total_area_label.sum()
    ret_metrics = OrderedDict({"aAcc": all_acc})
    for metric in metrics:
        if metric == "mIoU":
            ret_metrics["IoU"] = total_area_intersect / total_area_union
            ret_metrics["Acc"] = total_area_intersect / total_area_label
        elif metric == "mDice":
            ret_metrics["Dice"] = 2 * total_area_intersect / (total_area_pred_label + total_area_label)
            ret_metrics["Acc"] = total_area_intersect / total_area_label
        elif metric == "mFscore":
            precision = total_area_intersect / total_area_pred_label
            recall = total_area_intersect / total_area_label
            ret_metrics["Fscore"] = torch.tensor([f_score(x[0], x[1], beta) for x in zip(precision, recall)])
            ret_metrics["Precision"] = precision
            ret_metrics["Recall"] = recall
    return {metric: value.numpy() for metric, value in ret_metrics.items()}


def mmseg_summary(ret_metrics):
    """compute_metrics' printed summary: round(100 * nanmean, 2), 'm' prefix except aAcc."""
    summary = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN vector
        for key, val in ret_metrics.items():
            rounded = np.round(np.nanmean(val) * 100, 2)
            summary[key if key == "aAcc" else "m" + key] = rounded
    return summary


def mmseg_from_areas(intersect, union, pred, label):
    with np.errstate(invalid="ignore", divide="ignore"):
        return mmseg_total_area_to_metrics(intersect, union, pred, label, ["mIoU", "mDice", "mFscore"])


def mmseg_areas_from_confmat(conf: np.ndarray):
    """The four float32 histograms MMSeg would have accumulated for this conf[gt, pred]."""
    conf = torch.as_tensor(conf, dtype=torch.float32)
    intersect = conf.diagonal().clone()
    pred = conf.sum(dim=0)
    label = conf.sum(dim=1)
    return intersect, pred + label - intersect, pred, label


# ---------------------------------------------------------------- Detectron2 SemSegEvaluator (transcribed)
def d2_process(conf_matrix, pred, gt, num_classes, ignore_label):
    gt = np.array(gt, dtype=int)
    pred = np.array(pred, dtype=int)
    gt[gt == ignore_label] = num_classes
    conf_matrix += np.bincount(
        (num_classes + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=conf_matrix.size
    ).reshape(conf_matrix.shape)


def d2_evaluate(conf_matrix, num_classes):
    acc = np.full(num_classes, np.nan, dtype=np.float64)
    iou = np.full(num_classes, np.nan, dtype=np.float64)
    tp = conf_matrix.diagonal()[:-1].astype(np.float64)
    pos_gt = np.sum(conf_matrix[:-1, :-1], axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_weights = pos_gt / np.sum(pos_gt)
        pos_pred = np.sum(conf_matrix[:-1, :-1], axis=1).astype(np.float64)
        acc_valid = pos_gt > 0
        acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
        union = pos_gt + pos_pred - tp
        iou_valid = np.logical_and(acc_valid, union > 0)
        iou[iou_valid] = tp[iou_valid] / union[iou_valid]
        macc = np.sum(acc[acc_valid]) / np.sum(acc_valid)
        miou = np.sum(iou[iou_valid]) / np.sum(iou_valid)
        fiou = np.sum(iou[iou_valid] * class_weights[iou_valid])
        pacc = np.sum(tp) / np.sum(pos_gt)
    return {"mIoU": miou, "fwIoU": fiou, "mACC": macc, "pACC": pacc, "IoU": iou, "ACC": acc}


def d2_matrix_from_confmat(conf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Detectron2's (C+1)x(C+1) conf[pred, gt], with random counts in the ignore column (gt = ignore)."""
    c = conf.shape[0]
    d2 = np.zeros((c + 1, c + 1), dtype=np.int64)
    d2[:c, :c] = conf.T
    d2[:c, c] = rng.integers(0, 50, size=c)  # ignored pixels, whatever was predicted there
    return d2


# ---------------------------------------------------------------- helpers
def random_case(rng: np.random.Generator, num_classes: int, shape, ignore_frac: float, absent=()):
    gt = rng.integers(0, num_classes, size=shape)
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, num_classes, size=shape))
    for c in absent:  # remove class c from GT (it may stay in the predictions)
        gt[gt == c] = (c + 1) % num_classes
    gt[rng.random(shape) < ignore_frac] = IGNORE
    return pred, gt


def random_matrix(rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Random conf[gt, pred] with some zero rows (no GT), zero columns (never predicted) and both."""
    conf = rng.integers(0, 30, size=(num_classes, num_classes)) * (rng.random((num_classes, num_classes)) < 0.7)
    for c in rng.choice(num_classes, size=rng.integers(0, num_classes // 2 + 1), replace=False):
        kind = rng.integers(0, 3)
        if kind in (0, 2):
            conf[c, :] = 0
        if kind in (1, 2):
            conf[:, c] = 0
    return conf.astype(np.int64)


def assert_close_nan(actual, expected, atol):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, equal_nan=True)


def assert_scalar(actual: float, expected: float, atol: float) -> None:
    assert isinstance(actual, float)
    if np.isnan(expected):
        assert np.isnan(actual)
    else:
        assert abs(actual - float(expected)) <= atol, (actual, expected)


# ---------------------------------------------------------------- confusion matrix
@pytest.mark.parametrize("seed", range(6))
def test_confmat_against_numpy_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(1, 12))
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 20)), int(rng.integers(1, 20)))
    pred, gt = random_case(rng, num_classes, shape, ignore_frac=0.15)
    gt = gt.astype(np.uint8)

    ours = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), num_classes)
    np.testing.assert_array_equal(ours.numpy(), numpy_confmat(pred, gt, num_classes))
    keep = gt.ravel() != IGNORE
    sk = sk_confusion_matrix(gt.ravel()[keep], pred.ravel()[keep], labels=list(range(num_classes)))
    np.testing.assert_array_equal(ours.numpy(), sk)
    assert ours.sum().item() == keep.sum()
    np.testing.assert_array_equal(confusion_matrix(pred, gt, num_classes).numpy(), sk)  # numpy input


# ---------------------------------------------------------------- derived metrics vs an independent numpy version
@pytest.mark.parametrize("seed", range(6))
def test_metrics_against_numpy_definitions(seed):
    rng = np.random.default_rng(100 + seed)
    conf = random_matrix(rng, int(rng.integers(1, 10)))
    m = semantic_metrics(torch.from_numpy(conf))
    tp = np.diag(conf).astype(np.float64)
    gt = conf.sum(1).astype(np.float64)
    pr = conf.sum(0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (gt + pr - tp)
        acc = tp / gt
        dice = 2 * tp / (gt + pr)
        prec = tp / pr
    assert_close_nan(m["IoU"].numpy(), iou, 1e-12)
    assert_close_nan(m["Acc"].numpy(), acc, 1e-12)
    assert_close_nan(m["Dice"].numpy(), dice, 1e-12)
    assert_close_nan(m["Precision"].numpy(), prec, 1e-12)
    np.testing.assert_array_equal(m["gt_pixels"].numpy(), gt)
    np.testing.assert_array_equal(m["pred_pixels"].numpy(), pr)
    # the nan-mean convention, written out: NaN classes are skipped, zero-IoU classes count
    iou_defined = [v for v in iou if not np.isnan(v)]
    expected_miou = sum(iou_defined) / len(iou_defined) if iou_defined else float("nan")
    assert_scalar(m["mIoU"], expected_miou, 1e-12)


# ---------------------------------------------------------------- MMSegmentation
@pytest.mark.parametrize("seed", range(8))
def test_against_mmseg_on_random_matrices(seed):
    rng = np.random.default_rng(200 + seed)
    conf = random_matrix(rng, int(rng.integers(1, 10)))
    if seed == 0:
        conf[:] = 0  # no valid pixel at all
    ref = mmseg_from_areas(*mmseg_areas_from_confmat(conf))
    m = semantic_metrics(torch.from_numpy(conf))
    for key in ("IoU", "Acc", "Dice", "Precision"):
        assert_close_nan(m[key].numpy(), ref[key], 1e-6)
    assert_scalar(m["aAcc"], ref["aAcc"], 1e-6)
    summary = mmseg_summary(ref)
    for ours, theirs in (("aAcc", "aAcc"), ("mIoU", "mIoU"), ("mAcc", "mAcc"), ("mDice", "mDice")):
        if np.isnan(summary[theirs]):
            assert np.isnan(m[ours])
        else:  # MMSeg prints round(100 x, 2) in float32
            assert abs(100 * m[ours] - summary[theirs]) <= 0.005 + 1e-4, (ours, m[ours], summary[theirs])
    # and the unrounded nan-means, to 1e-6
    for ours, theirs in (("mIoU", "IoU"), ("mAcc", "Acc"), ("mDice", "Dice")):
        if not np.isnan(ref[theirs]).all():
            assert_scalar(m[ours], np.nanmean(ref[theirs]), 1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_against_mmseg_on_label_maps(seed):
    rng = np.random.default_rng(300 + seed)
    num_classes = int(rng.integers(2, 9))
    absent = [num_classes - 1] if seed % 2 else []  # a class that is predicted but never in GT
    images = [random_case(rng, num_classes, (11, 13), 0.1, absent=absent) for _ in range(3)]
    totals = [torch.zeros(num_classes) for _ in range(4)]
    ours = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for pred, gt in images:
        areas = mmseg_intersect_and_union(torch.from_numpy(pred), torch.from_numpy(gt), num_classes, IGNORE)
        totals = [t + a for t, a in zip(totals, areas)]
        ours += confusion_matrix(pred, gt, num_classes)
    # the histograms MMSeg accumulates are our diagonal / column sums / row sums
    np.testing.assert_array_equal(totals[0].numpy(), ours.diagonal().numpy())
    np.testing.assert_array_equal(totals[2].numpy(), ours.sum(0).numpy())
    np.testing.assert_array_equal(totals[3].numpy(), ours.sum(1).numpy())
    ref = mmseg_from_areas(*totals)
    m = semantic_metrics(ours)
    for key in ("IoU", "Acc", "Dice", "Precision"):
        assert_close_nan(m[key].numpy(), ref[key], 1e-6)
    assert_scalar(m["aAcc"], ref["aAcc"], 1e-6)
    assert_scalar(m["mIoU"], np.nanmean(ref["IoU"]), 1e-6)
    assert_scalar(m["mAcc"], np.nanmean(ref["Acc"]), 1e-6)
    assert_scalar(m["mDice"], np.nanmean(ref["Dice"]), 1e-6)
    if absent:
        assert m["IoU"][absent[0]] == 0.0 and np.isnan(m["Acc"][absent[0]].item())


# ---------------------------------------------------------------- Detectron2
@pytest.mark.parametrize("seed", range(8))
def test_against_detectron2_on_random_matrices(seed):
    rng = np.random.default_rng(400 + seed)
    num_classes = int(rng.integers(1, 10))
    conf = random_matrix(rng, num_classes)
    if seed == 0:
        conf[:] = 0  # no valid pixel: Detectron2 gives fwIoU 0.0, NaN elsewhere
    ref = d2_evaluate(d2_matrix_from_confmat(conf, rng), num_classes)
    m = semantic_metrics(torch.from_numpy(conf))
    assert_scalar(m["fwIoU"], ref["fwIoU"], 1e-12)
    assert_scalar(m["mIoU_detectron2"], ref["mIoU"], 1e-12)
    assert_scalar(m["mAcc"], ref["mACC"], 1e-12)
    assert_scalar(m["aAcc"], ref["pACC"], 1e-12)
    assert_close_nan(m["Acc"].numpy(), ref["ACC"], 1e-12)
    has_gt = conf.sum(1) > 0  # Detectron2 main reports IoU only for classes with GT
    assert_close_nan(m["IoU"].numpy()[has_gt], ref["IoU"][has_gt], 1e-12)
    assert np.isnan(ref["IoU"][~has_gt]).all()


@pytest.mark.parametrize("seed", range(3))
def test_against_detectron2_on_label_maps(seed):
    rng = np.random.default_rng(500 + seed)
    num_classes = int(rng.integers(2, 9))
    d2 = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    ours = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for _ in range(3):
        pred, gt = random_case(rng, num_classes, (9, 14), 0.2, absent=[0] if seed == 1 else [])
        d2_process(d2, pred, gt, num_classes, IGNORE)
        ours += confusion_matrix(pred, gt, num_classes)
    np.testing.assert_array_equal(ours.numpy(), d2[:-1, :-1].T)  # D2 is conf[pred, gt] + ignore row/col
    ref = d2_evaluate(d2, num_classes)
    m = semantic_metrics(ours)
    assert_scalar(m["fwIoU"], ref["fwIoU"], 1e-12)
    assert_scalar(m["mIoU_detectron2"], ref["mIoU"], 1e-12)
    assert_scalar(m["aAcc"], ref["pACC"], 1e-12)
