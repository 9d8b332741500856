"""The segmentation tasks a dataset package is validated as (one loader and one module serve all three)."""

# semantic: one class per pixel; instance: thing instances (COCO AP); panoptic: things + stuff (PQ)
TASKS = ("semantic", "instance", "panoptic")
