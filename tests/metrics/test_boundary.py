"""segval.metrics.functional.boundary: Boundary IoU against an independent per-class OpenCV implementation.

The reference below transcribes the paper's code (bowenc0221/boundary-iou-api,
``boundary_iou_api/utils/boundary_utils.py``: ``mask_to_boundary`` and ``boundary_iou``) and runs it
per image and per class; the only addition is the void rule segval documents: a void pixel is
background of the ground-truth mask and the prediction there is dropped (background of the
predicted mask too).
"""

from __future__ import annotations

import doctest
import math

import cv2
import numpy as np
import pytest
import torch

from segval.metrics import boundary
from segval.metrics.boundary import BoundaryIoU
from segval.metrics.functional.boundary import boundary_counts, boundary_dilation, boundary_iou_from_counts

IGNORE = 255


# ---------------------------------------------------------------- independent reference (numpy + OpenCV)
def ref_mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """boundary_utils.mask_to_boundary of the Boundary IoU API, verbatim apart from names."""
    h, w = mask.shape
    img_diag = np.sqrt(h**2 + w**2)
    dilation = int(round(dilation_ratio * img_diag))
    if dilation < 1:
        dilation = 1
    new_mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    kernel = np.ones((3, 3), dtype=np.uint8)
    new_mask_erode = cv2.erode(new_mask, kernel, iterations=dilation)
    mask_erode = new_mask_erode[1 : h + 1, 1 : w + 1]
    return mask - mask_erode


def ref_counts(preds: np.ndarray, target: np.ndarray, num_classes: int, ignore: int | None = IGNORE,
               dilation_ratio: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (intersection, union) summed over images, one binary mask per class and image."""
    inter = np.zeros(num_classes, np.int64)
    union = np.zeros(num_classes, np.int64)
    for p, t in zip(preds, target):
        valid = t != ignore if ignore is not None else np.ones(t.shape, bool)
        for c in range(num_classes):
            gb = ref_mask_to_boundary((t == c).astype(np.uint8), dilation_ratio)
            pb = ref_mask_to_boundary(((p == c) & valid).astype(np.uint8), dilation_ratio)
            inter[c] += int(((gb * pb) > 0).sum())
            union[c] += int(((gb + pb) > 0).sum())
    return inter, union


def blobby_labels(rng: np.random.Generator, n: int, h: int, w: int, num_classes: int, cell: int = 4,
                  void: float = 0.0) -> np.ndarray:
    """int64[n, h, w] label maps made of blocks (nearest upsampling of a coarse random map) plus noise."""
    coarse = rng.integers(0, num_classes, (n, -(-h // cell), -(-w // cell)))
    lab = np.repeat(np.repeat(coarse, cell, axis=1), cell, axis=2)[:, :h, :w].copy()
    noise = rng.random((n, h, w)) < 0.03
    lab[noise] = rng.integers(0, num_classes, int(noise.sum()))
    if void:
        lab[rng.random((n, h, w)) < void] = IGNORE
        lab[:, h // 3 : h // 2, w // 4 : w // 2] = IGNORE  # a void region as well as scattered void pixels
    return lab


def perturb(rng: np.random.Generator, target: np.ndarray, num_classes: int, share: float = 0.2) -> np.ndarray:
    """A prediction: the target shifted by one pixel, some pixels relabelled, anything at void."""
    pred = np.roll(np.where(target == IGNORE, 0, target), 1, axis=2)
    flip = rng.random(target.shape) < share
    pred[flip] = rng.integers(0, num_classes, int(flip.sum()))
    return pred


def test_doctests() -> None:
    assert doctest.testmod(boundary, raise_on_error=False).failed == 0


def test_reference_itself_on_a_square() -> None:
    """The transcribed reference: the boundary of a 4x4 square with d = 1 is its ring of 12 pixels."""
    m = np.zeros((6, 6), np.uint8)
    m[1:5, 1:5] = 1
    b = ref_mask_to_boundary(m)
    assert b.sum() == 12 and b[2:4, 2:4].sum() == 0


# ---------------------------------------------------------------- hand-built cases, exact values
def test_two_squares_exact() -> None:
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, 1:5, 1:5] = 1
    preds = target.clone()
    preds[0, 1, 1:5] = 0  # the top row of the square is missed
    inter, union = boundary_counts(preds, target, num_classes=3)
    # class 0: GT = the 20-pixel frame (all on the border), pred = frame + row 1 (24, all boundary)
    # class 1: GT ring 12; pred 3x4 block whose boundary is 10 pixels; shared 8; class 2: absent
    assert inter.tolist() == [20, 8, 0] and union.tolist() == [24, 14, 0]
    assert inter.dtype == torch.int64 and union.dtype == torch.int64
    iou = boundary_iou_from_counts(inter, union)
    assert iou.dtype == torch.float64
    assert iou[:2].tolist() == [20 / 24, 8 / 14] and math.isnan(iou[2])


def test_high_index_next_to_low_index() -> None:
    """Where class 5 meets class 3 both sides are boundary (min-eroding label values would miss class 3's)."""
    target = torch.full((1, 5, 8), 5, dtype=torch.long)
    target[0, :, 4:] = 3
    inter, union = boundary_counts(target, target, num_classes=6)
    # d = round(0.02 * 9.4) -> 1: each half is 5x4, its interior not touching the border or the seam
    # is rows 1..3 x (cols 1..2 for class 5, cols 5..6 for class 3) -> 6 pixels; boundary 20 - 6 = 14
    assert inter.tolist() == [0, 0, 0, 14, 0, 14]
    assert union.tolist() == [0, 0, 0, 14, 0, 14]
    np.testing.assert_array_equal(ref_counts(target.numpy(), target.numpy(), 6)[0], inter.numpy())


def test_dilation_depth() -> None:
    assert boundary_dilation(240, 320) == int(round(0.02 * 400)) == 8
    assert boundary_dilation(512, 1024) == int(round(0.02 * math.hypot(512, 1024)))
    assert boundary_dilation(10, 10) == 1  # round(0.28) = 0 -> at least 1
    # a 20x20 square inside a 64x64 image with d = 2: boundary = 20^2 - 16^2
    target = torch.zeros(1, 64, 64, dtype=torch.long)
    target[0, 10:30, 10:30] = 1
    _, union = boundary_counts(target, target, 2)
    assert boundary_dilation(64, 64) == 2
    assert union[1] == 400 - 256
    # a larger ratio: d = round(0.1 * 90.5) = 9 -> interior 2x2
    _, union = boundary_counts(target, target, 2, dilation_ratio=0.1)
    assert union[1] == 400 - 4


def test_perfect_prediction_and_absent_class() -> None:
    rng = np.random.default_rng(0)
    target = torch.from_numpy(blobby_labels(rng, 2, 24, 30, 4, void=0.05))
    preds = target.masked_fill(target == IGNORE, 0)
    metric = BoundaryIoU(num_classes=6)
    metric.update(preds, target)
    iou = metric.compute()
    assert iou[:4].tolist() == [1.0] * 4 and torch.isnan(iou[4:]).all()


# ---------------------------------------------------------------- against the reference
@pytest.mark.parametrize(
    ("num_classes", "shape", "cell", "void", "ratio"),
    [
        (23, (3, 37, 53), 5, 0.0, 0.02),  # > 16 classes: any uint8 index would wrap
        (23, (2, 40, 31), 3, 0.08, 0.02),  # void pixels and a void region
        (300, (2, 30, 30), 2, 0.0, 0.02),  # labels above 255 (and no void value then)
        (5, (2, 120, 160), 8, 0.02, 0.02),  # d = 4
        (7, (1, 3, 4), 1, 0.0, 1.0),  # window far larger than the image: everything is boundary
        (4, (2, 1, 9), 1, 0.0, 0.02),  # a one-row image
    ],
)
def test_matches_reference(num_classes: int, shape: tuple[int, int, int], cell: int, void: float, ratio: float) -> None:
    rng = np.random.default_rng(num_classes + shape[1])
    target = blobby_labels(rng, *shape, num_classes, cell=cell, void=void)
    preds = perturb(rng, target, num_classes)
    ignore = IGNORE if num_classes <= IGNORE else None
    inter, union = boundary_counts(torch.from_numpy(preds), torch.from_numpy(target), num_classes,
                                   ignore_index=ignore, dilation_ratio=ratio)
    r_inter, r_union = ref_counts(preds, target, num_classes, ignore=ignore, dilation_ratio=ratio)
    np.testing.assert_array_equal(inter.numpy(), r_inter)
    np.testing.assert_array_equal(union.numpy(), r_union)
    assert union.sum() > 0 and (inter <= union).all()


def test_no_ignore_index() -> None:
    rng = np.random.default_rng(3)
    target = blobby_labels(rng, 2, 20, 25, 17, cell=3)
    preds = perturb(rng, target, 17)
    inter, union = boundary_counts(torch.from_numpy(preds), torch.from_numpy(target), 17, ignore_index=None)
    r_inter, r_union = ref_counts(preds, target, 17, ignore=None)
    np.testing.assert_array_equal(inter.numpy(), r_inter)
    np.testing.assert_array_equal(union.numpy(), r_union)


def test_uint8_and_numpy_inputs_and_unbatched() -> None:
    rng = np.random.default_rng(4)
    target = blobby_labels(rng, 1, 16, 16, 20, cell=4, void=0.05)
    preds = perturb(rng, target, 20)
    expected = boundary_counts(torch.from_numpy(preds), torch.from_numpy(target), 20)
    as_uint8 = boundary_counts(torch.from_numpy(preds.astype(np.uint8)), torch.from_numpy(target.astype(np.uint8)), 20)
    as_numpy = boundary_counts(preds, target, 20)
    unbatched = boundary_counts(torch.from_numpy(preds[0]), torch.from_numpy(target[0]), 20)
    for got in (as_uint8, as_numpy, unbatched):
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


# ---------------------------------------------------------------- void handling
def test_prediction_at_void_pixels_is_dropped() -> None:
    rng = np.random.default_rng(5)
    target = torch.from_numpy(blobby_labels(rng, 2, 24, 24, 21, cell=4, void=0.1))
    preds = torch.from_numpy(perturb(rng, target.numpy(), 21))
    void = target == IGNORE
    other = preds.masked_scatter(void, torch.randint(0, 21, (int(void.sum()),)))
    a, b = boundary_counts(preds, target, 21), boundary_counts(other, target, 21)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # a prediction at void pixels may even be out of range (e.g. an "unlabeled" output)
    c = boundary_counts(preds.masked_fill(void, 99), target, 21)
    assert torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])


def test_void_acts_like_the_image_border() -> None:
    """Padding a batch with void gives the counts of the unpadded image (same dilation depth)."""
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, 1:5, 1:5] = 1
    preds = target.clone()
    preds[0, 1, 1:5] = 0
    padded_t = torch.full((1, 9, 7), IGNORE, dtype=torch.long)
    padded_t[0, :6, :6] = target[0]
    padded_p = torch.randint(0, 2, (1, 9, 7))
    padded_p[0, :6, :6] = preds[0]
    assert boundary_dilation(9, 7) == boundary_dilation(6, 6) == 1
    inter, union = boundary_counts(padded_p, padded_t, 2)
    assert inter.tolist() == [20, 8] and union.tolist() == [24, 14]


def test_void_region_inside_a_class() -> None:
    """A void hole in a class makes its rim boundary of both the GT and the (correct) prediction."""
    target = torch.ones(1, 9, 9, dtype=torch.long)
    target[0, 4, 4] = IGNORE
    inter, union = boundary_counts(torch.ones_like(target), target, 2)
    # d = 1: frame of 32 pixels + the 8 neighbours of the hole
    assert inter.tolist() == [0, 40] and union.tolist() == [0, 40]


# ---------------------------------------------------------------- accumulation and the Metric class
def test_accumulation_equals_one_big_call() -> None:
    rng = np.random.default_rng(6)
    target = torch.from_numpy(blobby_labels(rng, 6, 20, 28, 24, cell=3, void=0.05))
    preds = torch.from_numpy(perturb(rng, target.numpy(), 24))
    big = boundary_counts(preds, target, 24)
    metric = BoundaryIoU(24)
    parts = [torch.zeros(24, dtype=torch.int64)] * 2
    for sl in (slice(0, 1), slice(1, 4), slice(4, 6)):
        i, u = boundary_counts(preds[sl], target[sl], 24)
        parts = [parts[0] + i, parts[1] + u]
        metric.update(preds[sl], target[sl])
    assert torch.equal(parts[0], big[0]) and torch.equal(parts[1], big[1])
    assert torch.equal(metric.intersection, big[0]) and torch.equal(metric.union, big[1])
    expected = big[0].double() / big[1].double()
    torch.testing.assert_close(metric.compute(), expected, equal_nan=True, rtol=0, atol=0)
    metric.reset()
    assert not metric.union.any()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert torch.isnan(metric.compute()).all()


def test_metric_state_and_attributes() -> None:
    metric = BoundaryIoU(num_classes=5, dilation_ratio=0.05)
    assert metric.num_classes == 5 and metric.ignore_index == IGNORE and metric.dilation_ratio == 0.05
    for name in ("intersection", "union"):
        state = getattr(metric, name)
        assert state.dtype == torch.int64 and state.shape == (5,)
        assert metric._reductions[name].__name__ == "dim_zero_sum"
    assert metric.full_state_update is False and metric.higher_is_better is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    rng = np.random.default_rng(7)
    target = torch.from_numpy(blobby_labels(rng, 4, 60, 80, 30, cell=5, void=0.05))
    preds = torch.from_numpy(perturb(rng, target.numpy(), 30))
    cpu = boundary_counts(preds, target, 30)
    gpu = boundary_counts(preds.cuda(), target.cuda(), 30)
    assert gpu[0].is_cuda
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
    metric = BoundaryIoU(30).cuda()
    metric.update(preds.cuda(), target.cuda())
    torch.testing.assert_close(metric.compute(), boundary_iou_from_counts(*cpu), equal_nan=True)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preds": torch.zeros(1, 4, 4, dtype=torch.long), "target": torch.zeros(1, 4, 5, dtype=torch.long)},
         "must be equal"),
        ({"preds": torch.zeros(1, 4, 4), "target": torch.zeros(1, 4, 4, dtype=torch.long)}, "integer labels"),
        ({"preds": torch.zeros(4, dtype=torch.long), "target": torch.zeros(4, dtype=torch.long)}, r"\[B, H, W\]"),
        ({"preds": torch.zeros(1, 2, 2, dtype=torch.long), "target": torch.tensor([[[0, 3], [0, 0]]])},
         r"target holds values outside \[0, 3\).*\[3\]"),
        ({"preds": torch.tensor([[[0, -1], [0, 0]]]), "target": torch.zeros(1, 2, 2, dtype=torch.long)},
         r"preds holds labels outside \[0, 3\).*\[-1\]"),
        ({"preds": torch.zeros(1, 2, 2, dtype=torch.long), "target": torch.zeros(1, 2, 2, dtype=torch.long),
          "dilation_ratio": 0}, "dilation_ratio must be"),
        ({"preds": torch.zeros(1, 2, 2, dtype=torch.long), "target": torch.zeros(1, 2, 2, dtype=torch.long),
          "num_classes": 0}, "num_classes must be"),
    ],
)
def test_errors(kwargs: dict, match: str) -> None:
    kwargs = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        boundary_counts(**kwargs)


def test_target_equal_to_num_classes_is_an_error_even_with_void() -> None:
    target = torch.tensor([[[0, 2], [IGNORE, 1]]])
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        boundary_counts(torch.zeros_like(target), target, num_classes=2)


def test_empty_batch() -> None:
    inter, union = boundary_counts(torch.zeros(0, 4, 4, dtype=torch.long), torch.zeros(0, 4, 4, dtype=torch.long), 3)
    assert inter.tolist() == [0, 0, 0] and union.tolist() == [0, 0, 0]
