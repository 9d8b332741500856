"""segval.relabel.fusion: tail p-values, the truncated product per annotation, Sidak per image, label quality."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats

from segval.relabel import fusion
from segval.relabel.annotations import AnnotationScore, class_excess
from segval.relabel.fusion import fuse_still, tail_pvalues, truncated_product


def test_tail_pvalues_ties_and_missing_values() -> None:
    assert tail_pvalues([3.0, 1.0, 2.0]).tolist() == pytest.approx([1 / 3, 1.0, 2 / 3])
    assert tail_pvalues([1.0, 1.0, float("nan")]).tolist() == [2 / 3, 2 / 3, 1.0]
    assert tail_pvalues([]).size == 0


def test_truncated_product_is_chi2_of_the_two_best_with_a_pair_correction() -> None:
    p1, p2, p3 = 0.01, 0.05, 0.5
    x = [-math.log(p1), -math.log(p2), -math.log(p3)]
    expected = stats.chi2.sf(-2 * (math.log(p1) + math.log(p2)), 4) * 3  # C(3, 2) pairs
    assert truncated_product(x, 3) == pytest.approx(expected)
    assert truncated_product([0.0], 5) == 1.0  # nothing: p = 1
    assert truncated_product([50.0, 50.0], 2) < 1e-40


def test_class_excess_puts_the_outlier_first() -> None:
    rows = [AnnotationScore(i, i, 1 + i % 2, v) for i, v in enumerate([0.1, 0.2, 0.1, 0.3, 0.1, 0.2, 5.0, 0.2])]
    assert int(np.argmax(class_excess(rows))) == 6


def _rows(strong: dict[tuple[int, int], float], kinds=("a", "b", "c"), images=10, per_image=3):
    rows = {k: [] for k in kinds}
    for img in range(images):
        for j in range(per_image):
            for n, k in enumerate(kinds):
                base = 0.1 * ((img * 7 + j * 3 + n * 5) % 11)  # a spread of ordinary values
                rows[k].append(AnnotationScore(img, img * 10 + j, 1, strong.get((img, j), {}).get(k, base)))
    return rows


def test_one_strong_kind_lifts_its_image_to_the_top() -> None:
    rows = _rows({(4, 1): {"a": 9.0}})
    r = fuse_still(rows, range(10), weights={"a": 1.0, "b": 1.0, "c": 1.0}, raw=("a", "b", "c"))
    assert max(r.scores, key=r.scores.get) == 4
    best = r.best[4][0]
    assert best.annotation_id == 41 and best.top_kinds(1) == ["a"]
    assert set(r.kinds) == {"a", "b", "c"}


def test_two_corroborating_kinds_beat_one_kind_as_strong() -> None:
    # image 2: one annotation strong in a and b; image 7: as strong in a only
    rows = _rows({(2, 0): {"a": 9.0, "b": 9.0}, (7, 0): {"a": 9.5}})
    r = fuse_still(rows, range(10), weights={"a": 1.0, "b": 1.0, "c": 1.0}, raw=("a", "b", "c"))
    assert r.scores[2] > r.scores[7] > max(v for i, v in r.scores.items() if i not in (2, 7))


def test_a_weight_of_zero_leaves_the_kind_out_and_label_quality_counts() -> None:
    rows = _rows({(3, 2): {"c": 9.0}})
    r = fuse_still(rows, range(10), weights={"a": 1.0, "b": 1.0, "c": 0.0}, raw=("a", "b", "c"))
    assert "c" not in r.kinds and max(r.scores, key=r.scores.get) != 3
    lq = {i: 0.9 for i in range(10)}
    lq[8] = 0.01  # the model disagrees with image 8's labels
    with_lq = fuse_still(rows, range(10), weights={"a": 1.0, "b": 1.0}, raw=("a", "b"), label_quality=lq)
    assert with_lq.scores[8] - r.scores[8] > 1.0


def test_sidak_does_not_rank_an_image_up_for_its_number_of_annotations() -> None:
    # identical per-annotation evidence; image 0 has 30 annotations, image 1 one: the many-object image is
    # not ranked above a single annotation whose p-value is as small
    rows = {"a": [AnnotationScore(0, k, 1, 0.5 + 0.001 * k) for k in range(30)] + [AnnotationScore(1, 99, 1, 0.53)]}
    r = fuse_still(rows, [0, 1], weights={"a": 1.0}, raw=("a",))
    assert r.scores[1] >= r.scores[0]


def test_regions_without_annotation_are_items_of_their_own() -> None:
    rows = {"m": [AnnotationScore(1, None, 3, 5.0, {"region": [1, 2, 3, 4]}, 3),
                  AnnotationScore(2, None, 3, 0.1), AnnotationScore(3, None, 3, 0.2)]}
    r = fuse_still(rows, [1, 2, 3], weights={"m": 1.0}, raw=("m",))
    assert r.best[1][0].annotation_id is None and r.best[1][0].suggested == 3
    assert max(r.scores, key=r.scores.get) == 1


def test_a_region_has_one_kind_and_is_corrected_for_the_kinds_not_the_pairs() -> None:
    """A region (drop candidate) scored by kind m at p = 1/20 among 4 kinds: p = 4/20, not the pair-corrected
    truncated product of one p-value (6 pairs x chi2(4) survival at -2 log(1/20) = 1.0 after clipping)."""
    rows = {"m": [AnnotationScore(i, None, 3, float(20 - i)) for i in range(20)],
            **{k: [AnnotationScore(i, 100 + i, 1, 0.0) for i in range(20)] for k in ("a", "b", "c")}}
    r = fuse_still(rows, range(20), weights=dict.fromkeys("mabc", 1.0), raw=tuple("mabc"))
    region = next(e for e in r.best[0] if e.annotation_id is None)
    assert region.p == pytest.approx(4 / 20)
    assert truncated_product([math.log(20)], 4) == 1.0
    assert max(r.scores, key=r.scores.get) == 0


def test_doctests() -> None:
    assert doctest.testmod(fusion, raise_on_error=False).failed == 0
