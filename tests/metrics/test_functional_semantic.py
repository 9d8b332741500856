"""segval.metrics.functional.semantic: hand-computed cases, input handling and errors."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

from segval.metrics.functional import semantic as functional
from segval.metrics.functional.semantic import METRIC_DEFINITIONS, confusion_matrix, semantic_metrics

NAN = float("nan")

# 4x4, C = 4: class 0 and 1 normal, class 2 predicted but absent from GT, class 3 absent from both
# (predicted only at an ignored pixel, which must be dropped). 255 = ignore; the prediction 9 at an
# ignored pixel is out of range and must be dropped without complaint.
TARGET = [
    [0, 0, 0, 0],
    [0, 0, 1, 1],
    [1, 1, 1, 255],
    [255, 0, 0, 1],
]
PREDS = [
    [0, 0, 0, 2],
    [0, 1, 1, 1],
    [1, 1, 2, 3],
    [9, 0, 1, 0],
]
# conf[gt, pred], counted by hand
CONF = [
    [5, 2, 1, 0],
    [1, 4, 1, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
]


def assert_same(actual, expected, tol=1e-12):
    """Element-wise equality with NaN == NaN (NaN positions must agree exactly)."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape
    assert torch.equal(torch.isnan(actual), torch.isnan(expected)), (actual, expected)
    finite = ~torch.isnan(expected)
    assert torch.allclose(actual[finite], expected[finite], rtol=0, atol=tol), (actual, expected)


def assert_scalar(actual, expected, tol=1e-12):
    assert isinstance(actual, float)
    if math.isnan(expected):
        assert math.isnan(actual)
    else:
        assert actual == pytest.approx(expected, abs=tol)


def test_hand_built_confusion_matrix():
    conf = confusion_matrix(torch.tensor([PREDS]), torch.tensor([TARGET], dtype=torch.uint8), num_classes=4)
    assert conf.dtype == torch.int64
    assert conf.tolist() == CONF


def test_hand_built_metrics_exact():
    m = semantic_metrics(torch.tensor(CONF))
    # TP = [5, 4, 0, 0], GT = [8, 6, 0, 0], pred = [6, 6, 2, 0]
    assert m["gt_pixels"].tolist() == [8, 6, 0, 0] and m["gt_pixels"].dtype == torch.int64
    assert m["pred_pixels"].tolist() == [6, 6, 2, 0] and m["pred_pixels"].dtype == torch.int64
    for key in ("IoU", "Acc", "Dice", "Precision"):
        assert m[key].dtype == torch.float64 and m[key].shape == (4,)
    assert_same(m["IoU"], [5 / 9, 4 / 8, 0.0, NAN])  # class 2: predicted, no GT -> 0; class 3 -> NaN
    assert_same(m["Acc"], [5 / 8, 4 / 6, NAN, NAN])
    assert_same(m["Dice"], [10 / 14, 8 / 12, 0.0, NAN])
    assert_same(m["Precision"], [5 / 6, 4 / 6, 0.0, NAN])
    assert_scalar(m["aAcc"], 9 / 14)
    assert_scalar(m["mIoU"], (5 / 9 + 1 / 2 + 0) / 3)  # = 19/54, class 2 counts as 0 (MMSeg)
    assert_scalar(m["mAcc"], (5 / 8 + 2 / 3) / 2)  # = 31/48
    assert_scalar(m["mDice"], (5 / 7 + 2 / 3 + 0) / 3)  # = 29/63
    assert_scalar(m["fwIoU"], 5 / 9 * 8 / 14 + 1 / 2 * 6 / 14)  # = 67/126
    assert_scalar(m["mIoU_detectron2"], (5 / 9 + 1 / 2) / 2)  # = 19/36, class 2 left out
    assert m["definitions"] == METRIC_DEFINITIONS
    assert m["definitions"] is not METRIC_DEFINITIONS  # a copy callers may edit


def test_three_classes_exact():
    # C = 3: class 0 normal, class 1 predicted but absent from GT, class 2 absent from both
    target = np.array([[0, 0, 255], [0, 0, 0]], dtype=np.uint8)
    preds = np.array([[0, 1, 2], [1, 0, 0]], dtype=np.int64)
    conf = confusion_matrix(preds, target, num_classes=3)
    assert conf.tolist() == [[3, 2, 0], [0, 0, 0], [0, 0, 0]]
    m = semantic_metrics(conf)
    assert_same(m["IoU"], [3 / 5, 0.0, NAN])
    assert_same(m["Acc"], [3 / 5, NAN, NAN])
    assert_same(m["Dice"], [6 / 8, 0.0, NAN])
    assert_scalar(m["aAcc"], 3 / 5)
    assert_scalar(m["mIoU"], 3 / 10)
    assert_scalar(m["mAcc"], 3 / 5)
    assert_scalar(m["fwIoU"], 3 / 5)
    assert_scalar(m["mIoU_detectron2"], 3 / 5)


def test_no_valid_pixel():
    target = torch.full((2, 3, 3), 255, dtype=torch.uint8)
    preds = torch.randint(0, 3, (2, 3, 3))
    conf = confusion_matrix(preds, target, num_classes=3)
    assert conf.tolist() == [[0] * 3] * 3
    m = semantic_metrics(conf)
    for key in ("IoU", "Acc", "Dice", "Precision"):
        assert torch.isnan(m[key]).all()
    assert math.isnan(m["aAcc"]) and math.isnan(m["mIoU"]) and math.isnan(m["mAcc"]) and math.isnan(m["mDice"])
    assert m["fwIoU"] == 0.0  # as Detectron2
    assert math.isnan(m["mIoU_detectron2"])


def test_perfect_prediction():
    target = torch.tensor([[0, 1], [2, 255]])
    m = semantic_metrics(confusion_matrix(target.clamp(max=2), target, num_classes=3))
    assert_same(m["IoU"], [1.0, 1.0, 1.0])
    assert m["mIoU"] == m["aAcc"] == m["fwIoU"] == m["mDice"] == 1.0


def test_logits_equal_argmax():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (2, 7, 9), generator=g)
    target[:, 0, :3] = 255
    logits = torch.randn(2, 5, 7, 9, generator=g)
    by_logits = confusion_matrix(logits, target, num_classes=5)
    by_labels = confusion_matrix(logits.argmax(dim=1), target, num_classes=5)
    assert torch.equal(by_logits, by_labels)
    assert by_logits.sum() == target.numel() - 6
    # numpy logits and float64 too
    assert torch.equal(confusion_matrix(logits.double().numpy(), target.numpy(), 5), by_labels)


def test_hand_built_logits():
    preds = torch.tensor([PREDS]).clamp(max=3)  # the 9 sits on an ignored pixel
    logits = torch.nn.functional.one_hot(preds, 4).permute(0, 3, 1, 2).float()  # (1, 4, 4, 4)
    assert confusion_matrix(logits, torch.tensor([TARGET]), num_classes=4).tolist() == CONF


def test_numpy_and_dtypes():
    target = np.array([TARGET], dtype=np.uint8)
    for dtype in (np.uint8, np.int32, np.int64, np.uint16):
        preds = np.array([PREDS], dtype=dtype)
        assert confusion_matrix(preds, target, 4).tolist() == CONF
    # negative strides (flipped views) are copied, not refused
    flipped = confusion_matrix(np.array(PREDS)[:, ::-1], np.array(TARGET)[:, ::-1], 4)
    assert flipped.tolist() == CONF
    # any shape equal to target: flat vectors, no batch dimension
    assert confusion_matrix(torch.tensor(PREDS).flatten(), torch.tensor(TARGET).flatten(), 4).tolist() == CONF
    # nested lists
    assert confusion_matrix(PREDS, TARGET, 4).tolist() == CONF


def test_ignore_index_options():
    target = torch.tensor([0, 1, 255, -1])
    preds = torch.tensor([0, 1, 1, 1])
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(preds, target, 2, ignore_index=-1)  # 255 is no longer ignored
    conf = confusion_matrix(preds[[0, 1, 3]], target[[0, 1, 3]], 2, ignore_index=-1)
    assert conf.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 255]), 2, ignore_index=None)
    assert confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 2, ignore_index=None).tolist() == [
        [1, 0],
        [0, 1],
    ]


def test_bad_target_values_named():
    target = torch.tensor([[0, 1, 7], [-3, 255, 7]])
    preds = torch.zeros_like(target)
    with pytest.raises(ValueError, match=r"target.*\[-3, 7\]"):
        confusion_matrix(preds, target, num_classes=3)


def test_bad_pred_values_named():
    target = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"preds.*\[5\]"):
        confusion_matrix(torch.tensor([[0, 5, 2]]), target, num_classes=3)
    with pytest.raises(ValueError, match=r"preds.*\[-1\]"):
        confusion_matrix(torch.tensor([[0, -1, 2]]), target, num_classes=3)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*\(2, 4, 5\)"):
        confusion_matrix(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 4, 5\)"):
        confusion_matrix(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\(2, 4, 4, 4\).*num_classes=3"):  # logits with C != num_classes
        confusion_matrix(torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="integer"):  # float labels of the target's shape are ambiguous
        confusion_matrix(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="target must hold integer"):
        confusion_matrix(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4), 3)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3", None])
def test_num_classes_validated(bad):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got"):
        confusion_matrix(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), bad)


def test_num_classes_error_names_value():
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 1, got 0"):
        confusion_matrix([0], [0], 0)
    assert confusion_matrix([0], [0], np.int64(1)).tolist() == [[1]]


def test_semantic_metrics_input_checks():
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        semantic_metrics(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative"):
        semantic_metrics(torch.tensor([[1, -1], [0, 1]]))
    m = semantic_metrics(np.array(CONF))  # numpy accepted
    assert_same(m["IoU"], [5 / 9, 4 / 8, 0.0, NAN])


def test_large_counts_stay_exact():
    # above 2^24 a float32 histogram (MMSeg) rounds; int64 counts do not
    big = 2**24 + 1
    conf = torch.tensor([[big, 1], [0, big]], dtype=torch.int64)
    m = semantic_metrics(conf)
    assert m["gt_pixels"].tolist() == [big + 1, big]
    assert_same(m["IoU"], [big / (big + 1), big / (big + 1)], tol=0)
    assert torch.tensor(float(big), dtype=torch.float32).item() != big  # what float32 would have done


def test_doctests():
    result = doctest.testmod(functional, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_inputs_not_modified():
    target = torch.tensor([TARGET])
    preds = torch.tensor([PREDS])
    t0, p0 = target.clone(), preds.clone()
    for ignore in (255, None):
        if ignore is None:
            confusion_matrix(preds.clamp(max=3), target.clamp(max=3), 4, ignore_index=ignore)
        else:
            confusion_matrix(preds, target, 4, ignore_index=ignore)
    assert torch.equal(target, t0) and torch.equal(preds, p0)
