"""Readers of other tools' exports: parse and check everything, return an :class:`ImportedDataset`,
then :func:`write_imported` writes a dataset package (atomically).

Entry points (one module per tool):

* :func:`read_coco` / :func:`read_coco_folder` (:mod:`.coco`): COCO as tools write it (dialects normalised);
* :func:`read_coco_panoptic` (:mod:`.coco_panoptic`): panopticapi JSON + PNG folder;
* :func:`read_cvat_xml` (:mod:`.cvat`): "CVAT for images 1.1" / "CVAT for video 1.1" XML;
* :func:`read_cvat_masks` (:mod:`.cvat_masks`): CVAT "Segmentation mask 1.1" folder;
* :func:`read_labelstudio` (:mod:`.labelstudio`): Label Studio JSON (full tasks or JSON-MIN);
* :func:`read_voc` (:mod:`.palette`): VOC-style colour / palette PNG label maps with a colour table;
* :func:`find_coco_splits` (:mod:`.folders`): the split files of a COCO / Roboflow / mmdet folder;
* :func:`identify` (:mod:`.detect`): what an export is, so ``data check`` can say how to read it;
* :func:`read_export` (:mod:`.read`): the reader of a ``format=`` with the folders its layout implies
  (``segval dataset import``).

Modules here import only ``segval.dataset``, ``segval.errors``, ``segval.io`` and third-party libraries.
"""

from __future__ import annotations

from segval.dataset.formats.result import (
    ImportedDataset,
    ImportedImage,
    ImportedInstance,
    Skipped,
    merge_imported,
    write_imported,
)

__all__ = [
    "ImportedDataset",
    "ImportedImage",
    "ImportedInstance",
    "Skipped",
    "find_coco_splits",
    "identify",
    "merge_imported",
    "read_coco",
    "read_coco_folder",
    "read_coco_panoptic",
    "read_cvat_masks",
    "read_cvat_xml",
    "read_export",
    "read_labelstudio",
    "read_voc",
    "write_imported",
]


def __getattr__(name: str):  # lazy: importing one reader does not import the others
    import importlib

    where = {
        "read_coco": "coco",
        "read_coco_folder": "coco",
        "read_coco_panoptic": "coco_panoptic",
        "read_cvat_xml": "cvat",
        "read_cvat_masks": "cvat_masks",
        "read_labelstudio": "labelstudio",
        "read_voc": "palette",
        "find_coco_splits": "folders",
        "identify": "detect",
        "read_export": "read",
    }
    if name in where:
        return getattr(importlib.import_module(f"segval.dataset.formats.{where[name]}"), name)
    raise AttributeError(name)
