"""segval.metrics.training_dynamics: the margin of the labelled class, void left out."""

from __future__ import annotations

import doctest

import torch

from segval.metrics import training_dynamics
from segval.metrics.training_dynamics import pixel_margins


def test_pixel_margins_and_void() -> None:
    z = torch.zeros(1, 3, 1, 2)
    z[0, :, 0, 0] = torch.tensor([1.0, 3.0, 0.0])
    m, other, nll = pixel_margins(z, torch.tensor([[[0, 255]]]))
    assert m.tolist() == [[[-2.0, 0.0]]] and int(other[0, 0, 0]) == 1 and float(nll[0, 0, 1]) == 0.0


def test_doctests() -> None:
    assert doctest.testmod(training_dynamics, raise_on_error=False).failed == 0
