"""segval.metrics.semantic: the torchmetrics classes (single process)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

from segval.metrics import ConfusionMatrix, SemanticMetrics, confusion_matrix, semantic_metrics
from segval.metrics import semantic as metrics


def batches(seed: int, num_classes: int, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        b, h, w = 2, int(torch.randint(3, 12, (1,), generator=g)), int(torch.randint(3, 12, (1,), generator=g))
        target = torch.randint(0, num_classes, (b, h, w), generator=g)
        target[torch.rand(b, h, w, generator=g) < 0.1] = 255
        logits = torch.randn(b, num_classes, h, w, generator=g)
        out.append((logits, target.to(torch.uint8)))
    return out


def test_attributes_and_state():
    metric = ConfusionMatrix(num_classes=3)
    assert metric.num_classes == 3 and metric.ignore_index == 255
    assert metric.full_state_update is False
    assert metric.is_differentiable is False
    assert metric.higher_is_better is None
    assert metric.confmat.dtype == torch.int64 and metric.confmat.shape == (3, 3)
    assert metric._reductions["confmat"].__name__ == "dim_zero_sum"
    assert not metric.confmat.any()


def test_accumulation_equals_one_big_call():
    data = batches(0, 5)
    metric = ConfusionMatrix(num_classes=5)
    for logits, target in data:
        metric.update(logits, target)
    # one call on everything (flattened, as the shapes differ between batches)
    all_preds = torch.cat([lg.argmax(1).flatten() for lg, _ in data])
    all_target = torch.cat([t.flatten() for _, t in data])
    expected = confusion_matrix(all_preds, all_target, 5)
    result = metric.compute()
    assert result.dtype == torch.int64
    assert torch.equal(result, expected)


def test_logits_equal_labels():
    data = batches(1, 4)
    by_logits, by_labels = ConfusionMatrix(4), ConfusionMatrix(4)
    for logits, target in data:
        by_logits.update(logits, target)
        by_labels.update(logits.argmax(dim=1), target)
    assert torch.equal(by_logits.compute(), by_labels.compute())


def test_forward_returns_batch_and_accumulates():
    (l1, t1), (l2, t2) = batches(2, 3, n=2)
    metric = ConfusionMatrix(3)
    b1 = metric(l1, t1)
    b2 = metric(l2, t2)
    assert torch.equal(b1, confusion_matrix(l1, t1, 3))
    assert torch.equal(b2, confusion_matrix(l2, t2, 3))
    assert torch.equal(metric.compute(), b1 + b2)


def test_reset_and_numpy_inputs():
    metric = ConfusionMatrix(2, ignore_index=None)
    metric.update(np.array([1, 1, 0])[::-1], np.array([1, 0, 0])[::-1])  # negative-stride views
    assert metric.compute().tolist() == [[1, 1], [0, 1]]
    metric.reset()
    assert metric.confmat.tolist() == [[0, 0], [0, 0]] and metric.confmat.dtype == torch.int64


def test_custom_ignore_index():
    metric = ConfusionMatrix(2, ignore_index=-1)
    metric.update(torch.tensor([1, 0, 1]), torch.tensor([1, -1, 0]))
    assert metric.compute().tolist() == [[0, 1], [0, 1]]


def test_update_errors_propagate():
    metric = ConfusionMatrix(2)
    with pytest.raises(ValueError, match=r"\[2\]"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 2]))
    assert not metric.confmat.any()  # nothing half-added


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", None])
def test_num_classes_validated(bad):
    with pytest.raises(ValueError, match=rf"num_classes must be an integer >= 1, got {bad!r}"):
        ConfusionMatrix(num_classes=bad)


def test_ignore_index_validated():
    with pytest.raises(ValueError, match=r"ignore_index.*'x'"):
        ConfusionMatrix(num_classes=2, ignore_index="x")


def test_semantic_metrics_class():
    data = batches(3, 4)
    metric = SemanticMetrics(num_classes=4)
    for logits, target in data:
        metric.update(logits, target)
    out = metric.compute()
    conf = out["confmat"]
    expected = semantic_metrics(conf)
    assert conf.dtype == torch.int64 and int(conf.sum()) == sum(int((t != 255).sum()) for _, t in data)
    assert torch.equal(out["IoU"].isnan(), expected["IoU"].isnan())
    assert torch.allclose(out["IoU"], expected["IoU"], equal_nan=True)
    for key in ("aAcc", "mIoU", "mAcc", "mDice", "fwIoU", "mIoU_detectron2"):
        assert out[key] == expected[key] or (math.isnan(out[key]) and math.isnan(expected[key]))
    assert "mIoU" in out["definitions"]


def test_doctests():
    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
