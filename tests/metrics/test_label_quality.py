"""segval.metrics.functional.label_quality: per-image figures against an independent numpy implementation, the CSV writer
and the merge of rank part files.

The label-quality reference is written here in numpy from cleanlab's definition
(``cleanlab.segmentation.rank.get_label_quality_scores(method="softmin")``: per-pixel
self-confidence, then ``multilabel_scorer.softmin`` = ``einsum(s, softmax((1 - s) / T))``);
cleanlab itself is not a dependency, the last test compares with it when it is installed.
"""

from __future__ import annotations

import csv
import doctest
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from segval.metrics.functional import label_quality as per_image
from segval.metrics.functional.label_quality import per_image_confusion, per_image_scores
from segval.metrics.per_image_csv import BASE_COLUMNS, PerImageCsvWriter, merge_parts, per_image_columns, read_per_image_csv

IGNORE = 255


# ---------------------------------------------------------------- independent numpy reference
def np_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def ref_image(logits: np.ndarray, target: np.ndarray, temperature: float = 0.1) -> dict:
    """The figures of one image (logits [C, H, W], target [H, W]) with plain numpy loops over classes."""
    c = logits.shape[0]
    pred = logits.argmax(axis=0)
    valid = target != IGNORE
    t, p = target[valid].astype(np.int64), pred[valid]
    conf = np.zeros((c, c), np.int64)
    np.add.at(conf, (t, p), 1)
    ious = []
    for k in range(c):
        inter = int(((t == k) & (p == k)).sum())
        union = int(((t == k) | (p == k)).sum())
        if union:
            ious.append(inter / union)
    off = conf.copy()
    np.fill_diagonal(off, 0)
    flat = int(off.argmax())
    probs = np_softmax(logits)
    s = np.take_along_axis(probs, np.where(valid, target, 0)[None].astype(np.int64), axis=0)[0][valid]
    w = np.exp(-s / temperature)
    return {
        "pixels": int(valid.sum()),
        "mIoU": float(np.mean(ious)) if ious else math.nan,
        "pixel_acc": float((t == p).mean()) if t.size else math.nan,
        "label_quality": float((s * w).sum() / w.sum()) if s.size else math.nan,
        "top_confused_gt": flat // c if off.max() > 0 else None,
        "top_confused_pred": flat % c if off.max() > 0 else None,
        "top_confused_pixels": int(off.max()),
        "disagree": [int(conf[k].sum() - conf[k, k]) for k in range(c)],
    }


def random_batch(seed: int, b: int, c: int, h: int, w: int, void: float = 0.1, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g) * scale
    target = torch.randint(0, c, (b, h, w), generator=g)
    # make the prediction right on about half of the pixels, so the figures are not all near 0
    right = torch.rand(b, h, w, generator=g) < 0.5
    target = torch.where(right, logits.argmax(1), target)
    target[torch.rand(b, h, w, generator=g) < void] = IGNORE
    return logits, target


def assert_rows_equal(got: dict, ref: dict) -> None:
    for key in ("pixels", "top_confused_gt", "top_confused_pred", "top_confused_pixels", "disagree"):
        assert got[key] == ref[key], key
    for key in ("mIoU", "pixel_acc", "label_quality"):
        if math.isnan(ref[key]):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), key


def test_doctests() -> None:
    assert doctest.testmod(per_image, raise_on_error=False).failed == 0


# ---------------------------------------------------------------- figures
@pytest.mark.parametrize(("b", "c", "h", "w", "void"), [(3, 21, 13, 17, 0.1), (2, 4, 8, 8, 0.0), (1, 30, 5, 40, 0.3)])
def test_matches_numpy_reference(b: int, c: int, h: int, w: int, void: float) -> None:
    logits, target = random_batch(b * c + h, b, c, h, w, void)
    rows = per_image_scores(logits, target)
    assert len(rows) == b
    for i in range(b):
        assert_rows_equal(rows[i], ref_image(logits[i].numpy(), target[i].numpy()))


def test_per_image_confusion_sums_to_the_batch_matrix() -> None:
    from segval.metrics.functional.semantic import confusion_matrix

    logits, target = random_batch(1, 4, 20, 9, 11)
    conf = per_image_confusion(logits.argmax(1), target, 20)
    assert conf.shape == (4, 20, 20) and conf.dtype == torch.int64
    assert torch.equal(conf.sum(0), confusion_matrix(logits, target, 20))
    for i in range(4):
        assert torch.equal(conf[i], confusion_matrix(logits[i : i + 1], target[i : i + 1], 20))


def test_hand_built_images() -> None:
    c = 3
    logits = torch.full((3, c, 2, 3), -10.0)
    # image 0: every pixel right and confident
    target0 = torch.tensor([[0, 1, 2], [2, 1, 0]])
    logits[0].scatter_(0, target0[None], 10.0)
    # image 1: class 2 everywhere; the GT has two pixels of 1 and one of 0
    logits[1, 2] = 10.0
    target1 = torch.tensor([[1, 1, 2], [2, 0, 2]])
    # image 2: all void
    target2 = torch.full((2, 3), IGNORE)
    rows = per_image_scores(logits, torch.stack([target0, target1, target2]))

    r0, r1, r2 = rows
    assert r0["pixels"] == 6 and r0["mIoU"] == 1.0 and r0["pixel_acc"] == 1.0
    assert r0["top_confused_gt"] is None and r0["top_confused_pred"] is None and r0["top_confused_pixels"] == 0
    assert r0["disagree"] == [0, 0, 0]
    assert r0["label_quality"] == pytest.approx(1.0, abs=1e-7)

    # IoU: class 0 -> 0 (in GT, never predicted), class 1 -> 0, class 2 -> 3 / 6
    assert r1["pixels"] == 6 and r1["mIoU"] == pytest.approx(0.5 / 3) and r1["pixel_acc"] == 0.5
    assert (r1["top_confused_gt"], r1["top_confused_pred"], r1["top_confused_pixels"]) == (1, 2, 2)
    assert r1["disagree"] == [1, 2, 0]
    # three right pixels (s ~ 1, weight e^-10) and three wrong ones (s ~ e^-20, weight ~ 1)
    s_right, s_wrong = 1 / (1 + 2 * math.exp(-20)), math.exp(-20) / (1 + 2 * math.exp(-20))
    w_right = math.exp(-(s_right - s_wrong) / 0.1)
    assert r1["label_quality"] == pytest.approx((s_right * w_right + s_wrong) / (w_right + 1), rel=1e-5)
    assert r1["label_quality"] < 1e-4

    assert r2["pixels"] == 0 and r2["disagree"] == [0, 0, 0] and r2["top_confused_pixels"] == 0
    assert math.isnan(r2["mIoU"]) and math.isnan(r2["pixel_acc"]) and math.isnan(r2["label_quality"])


def test_label_quality_softmin_properties() -> None:
    # one doubtful pixel among 99 confident ones pulls the score far below the mean confidence
    s = torch.full((1, 10, 10), 0.99, dtype=torch.float64)
    s[0, 0, 0] = 0.05
    logits = torch.stack([s.log(), (1 - s).log()], dim=1)  # softmax gives back (s, 1 - s)
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    q = per_image_scores(logits, target)[0]["label_quality"]
    w = np.exp(-np.array([0.05] + [0.99] * 99) / 0.1)
    scores = np.array([0.05] + [0.99] * 99)
    assert q == pytest.approx(float((scores * w).sum() / w.sum()), rel=1e-6)  # logits scored in float32
    assert q < 0.97 < float(s.mean())
    # a large temperature tends to the mean, a tiny one to the minimum (no underflow: weights shifted)
    mean_like = per_image_scores(logits, target, temperature=1e4)[0]["label_quality"]
    assert mean_like == pytest.approx(float(s.mean()), rel=1e-4)
    assert per_image_scores(logits, target, temperature=1e-4)[0]["label_quality"] == pytest.approx(0.05, rel=1e-6)


def test_preds_argument_half_logits_and_no_ignore() -> None:
    logits, target = random_batch(5, 2, 6, 7, 9, void=0.0)
    ref = per_image_scores(logits, target)
    assert per_image_scores(logits, target, preds=logits.argmax(1)) == ref
    half = per_image_scores(logits.half(), target, ignore_index=None)
    for a, b in zip(half, per_image_scores(logits.half().float(), target)):
        assert_rows_equal(a, b)


@pytest.mark.parametrize(
    ("logits", "target", "kwargs", "match"),
    [
        (torch.zeros(1, 3, 4), torch.zeros(1, 4, dtype=torch.long), {}, r"float\[B, C, H, W\]"),
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long), {}, "does not match"),
        (torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 3], [0, 0]]]), {}, r"outside \[0, 3\).*\[3\]"),
        (torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), {"temperature": 0}, "temperature"),
    ],
)
def test_errors(logits: torch.Tensor, target: torch.Tensor, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        per_image_scores(logits, target, **kwargs)


# ---------------------------------------------------------------- CSV writer
NAMES = ["background", "tv/monitor", 'odd, "name"']


def test_writer_columns_values_and_atomicity(tmp_path: Path) -> None:
    path = tmp_path / "out" / "per_image.csv"
    path.parent.mkdir()
    path.write_text("old\n")
    logits, target = random_batch(7, 4, 3, 6, 6)
    target[3] = IGNORE
    rows = per_image_scores(logits, target)
    writer = PerImageCsvWriter(path, NAMES)
    assert writer.columns == [*BASE_COLUMNS, "disagree_background", "disagree_tv_monitor", 'disagree_odd, "name"']
    writer.write_rows(torch.tensor([40, 12]), rows[:2])
    writer.write_rows([7, 9], rows[2:])
    assert path.read_text() == "old\n"  # nothing visible until close
    assert writer.close() == path and writer.rows_written == 4
    assert not list(path.parent.glob(".per_image.csv.*"))  # the temporary file was renamed

    with open(path, newline="") as f:
        header = next(csv.reader(f))
    assert header == per_image_columns(["background", "tv_monitor", 'odd, "name"'])
    back = read_per_image_csv(path)
    assert [r["image_id"] for r in back] == [40, 12, 7, 9]  # arrival order: merge_parts sorts
    for rec, row in zip(back, rows):
        assert rec["pixels"] == row["pixels"] and rec["top_confused_pixels"] == row["top_confused_pixels"]
        for key in ("mIoU", "pixel_acc", "label_quality"):  # repr round-trips exactly
            assert (math.isnan(rec[key]) and math.isnan(row[key])) or rec[key] == row[key]
        names = [None if row[k] is None else NAMES[row[k]] for k in ("top_confused_gt", "top_confused_pred")]
        assert [rec["top_confused_gt"], rec["top_confused_pred"]] == names
        assert [rec[f"disagree_{n}"] for n in ("background", "tv_monitor", 'odd, "name"')] == row["disagree"]
    assert back[3]["pixels"] == 0 and "nan" in path.read_text().splitlines()[4]


def test_writer_abort_on_error(tmp_path: Path) -> None:
    path = tmp_path / "per_image.csv"
    path.write_text("old\n")
    logits, target = random_batch(8, 1, 3, 4, 4)
    with pytest.raises(RuntimeError), PerImageCsvWriter(path, NAMES) as writer:
        writer.write_rows([1], per_image_scores(logits, target))
        raise RuntimeError("boom")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="2 image ids for 1 rows"), PerImageCsvWriter(path, NAMES) as writer:
        writer.write_rows([1, 2], per_image_scores(logits, target))
    with pytest.raises(ValueError, match="metric_names has 1 names for 3 classes"):
        PerImageCsvWriter(path, NAMES, metric_names=["a"])


# ---------------------------------------------------------------- merging rank parts
def write_part(path: Path, ids: list[int], seed: int) -> list[dict]:
    logits, target = random_batch(seed, len(ids), 3, 5, 5)
    rows = per_image_scores(logits, target)
    with PerImageCsvWriter(path, NAMES) as w:
        w.write_rows(ids, rows)
    return rows


@pytest.mark.parametrize("ordered", [True, False])
def test_merge_parts_sorted_and_deduplicated(tmp_path: Path, ordered: bool) -> None:
    # DistributedSampler order: rank 0 takes 1, 3, 5; rank 1 takes 2, 4 and pads with 1 again
    ids0, ids1 = ([1, 3, 5], [2, 4, 1]) if not ordered else ([1, 3, 5], [2, 4, 6])
    p0, p1 = tmp_path / ".part0.csv", tmp_path / ".part1.csv"
    rows0 = write_part(p0, ids0, 0)
    rows1 = write_part(p1, ids1, 1)
    out = tmp_path / "per_image.csv"
    n = merge_parts([p0, p1], out)
    back = read_per_image_csv(out)
    expected_ids = sorted(set(ids0 + ids1))
    assert n == len(expected_ids) and [r["image_id"] for r in back] == expected_ids
    assert not p0.exists() and not p1.exists()
    # the duplicate keeps rank 0's row
    assert back[0]["label_quality"] == rows0[0]["label_quality"]
    assert back[1]["label_quality"] == rows1[0]["label_quality"]


def test_merge_parts_errors(tmp_path: Path) -> None:
    p0, p1 = tmp_path / "a.csv", tmp_path / "b.csv"
    write_part(p0, [1], 0)
    p1.write_text("image_id,other\n2,3\n")
    with pytest.raises(ValueError, match="columns differ"):
        merge_parts([p0, p1], tmp_path / "out.csv")
    assert p0.exists() and not (tmp_path / "out.csv").exists()
    with pytest.raises(ValueError, match="at least one part"):
        merge_parts([], tmp_path / "out.csv")


# ---------------------------------------------------------------- cleanlab itself, when installed
def test_label_quality_equals_cleanlab() -> None:
    rank = pytest.importorskip("cleanlab.segmentation.rank")
    logits, target = random_batch(11, 4, 14, 12, 16, void=0.0)
    probs = torch.softmax(logits.double(), dim=1).numpy()
    ref, _ = rank.get_label_quality_scores(target.numpy(), probs, method="softmin", downsample=1, verbose=False)
    got = np.array([r["label_quality"] for r in per_image_scores(logits, target)])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu() -> None:
    logits, target = random_batch(12, 3, 19, 30, 40)
    cpu = per_image_scores(logits, target)
    gpu = per_image_scores(logits.cuda(), target.cuda())
    for a, b in zip(gpu, cpu):
        assert_rows_equal(a, b)
    nll = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    for a, b in zip(per_image_scores(logits.cuda(), target.cuda(), nll=nll.cuda()), cpu):
        assert_rows_equal(a, b)


def test_given_nll_equals_computed() -> None:
    logits, target = random_batch(13, 2, 7, 9, 11)
    nll = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    for a, b in zip(per_image_scores(logits, target, nll=nll), per_image_scores(logits, target)):
        assert_rows_equal(a, b)
    with pytest.raises(ValueError, match="nll shape"):
        per_image_scores(logits, target, nll=nll[:, :3])
