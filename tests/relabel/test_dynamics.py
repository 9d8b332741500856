"""segval.relabel.dynamics: per-annotation evidence from recorded training dynamics (hand-made records)."""

from __future__ import annotations

import numpy as np

from segval.metrics.training_dynamics import Dynamics
from segval.relabel.dynamics import dynamics_evidence


class _Split:
    """The two methods dynamics_evidence reads, for one 8x8 image with one annotation."""

    class _Rec:
        id, height, width = 1, 8, 8

    class _Inst:
        def __init__(self, aid: int, cat: int, mask: np.ndarray) -> None:
            self.annotation_id, self.category_id, self.mask, self.iscrowd = aid, cat, mask, False

    def __init__(self, insts: list) -> None:
        self.images, self._insts = [self._Rec()], insts

    def instances(self, rec):
        return self._insts


def test_dynamics_region_and_missing() -> None:
    target = np.zeros((8, 8), np.uint8)
    a = np.zeros((8, 8), bool)
    a[1:5, 1:5] = True
    target[a] = 1
    aum = np.full((8, 8), 2.0, np.float16)
    aum[a] = -1.0  # the label of annotation 7 is never learned: a swap candidate
    aum[6:8, 5:8] = -3.0  # background the model gives to class 2: a dropped object
    other = np.zeros((8, 8), np.uint8)
    other[a] = 2
    other[6:8, 5:8] = 2
    px = {"aum": aum, "learned": np.zeros((8, 8), np.uint8), "first": np.zeros((8, 8), np.int16),
          "other": other, "target": target}
    dyn = Dynamics(np.array([1]), np.array([1]), np.zeros((1, 1), np.float32), {1: px}, {})
    ev = dynamics_evidence(_Split([_Split._Inst(7, 1, a)]), dyn, background_id=0, index_of=lambda c: c)
    (row,) = ev["region"]
    assert row.value == 1.0 and row.suggested == 2
    (miss,) = ev["missing"]
    assert miss.annotation_id is None and miss.suggested == 2 and miss.info["dyn_missing_pixels"] == 6
