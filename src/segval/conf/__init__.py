"""Hydra configs of segval (shipped inside the wheel)."""
