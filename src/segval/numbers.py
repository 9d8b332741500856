"""Numbers as metrics.json holds them: undefined figures (NaN) are null. Torch-free, so `segval gate` starts fast."""

from __future__ import annotations

import math
from typing import Any


def optional_float(x: Any) -> float | None:
    """A python float, or None for what is undefined: NaN (a class absent from ground truth and
    prediction), None, or a value that is not a number. NaN is written as null in JSON."""
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x
