"""LightningDataModules, Datasets and transforms over a segval dataset package."""

from segval.datamodules.datamodule import SegmentationDataModule

__all__ = ["SegmentationDataModule"]
