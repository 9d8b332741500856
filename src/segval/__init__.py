"""segval: validate robotics segmentation datasets by training on them."""

__version__ = "0.1.0"
