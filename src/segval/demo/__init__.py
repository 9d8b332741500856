"""Demo data: pybullet tabletop videos with exact per-pixel ground truth (optional ``pybullet`` extra).

``render_dataset(root)`` writes a dataset package; ``DEMO_TAXONOMY`` is its class list. pybullet is
imported only when rendering starts.
"""

from __future__ import annotations

from segval.demo.render import DEMO_TAXONOMY, render_dataset

__all__ = ["DEMO_TAXONOMY", "render_dataset"]
