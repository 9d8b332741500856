"""Label Studio: tasks JSON with the current label and SAM 2 proposals as predictions, the matching
labeling config, and reading a Label Studio JSON export back.

Export (``labelstudio/`` in the run directory):

* ``tasks.json``: one task per queued image: ``data`` = ``{"image": URL, "image_id", "file_name",
  "split", "queue_rank", "reasons"}`` and ``predictions``: ``segval-current-label`` (each existing
  annotation as a ``brushlabels`` result, its annotation id in the result ``id`` and ``meta``) and,
  when proposals exist, ``<SAM 2 model id>`` (each proposal as a ``brushlabels`` result with the
  predicted IoU as ``score``). Masks use Label Studio's brush RLE (:mod:`segval.dataset.brush_rle`).
* ``label_config.xml``: an ``Image`` named ``image``, ``BrushLabels`` named ``label`` and
  ``PolygonLabels`` named ``polygon`` over the taxonomy's classes (without the background), each
  label in the class colour.

Images: ``image`` is ``image_url.format(split=..., file_name=...)``; the default
``/data/local-files/?d={split}/{file_name}`` works with Label Studio's local-files serving
(``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``,
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<package>/images``).

Import (:func:`read_export`): a JSON list of tasks; per task the last annotation that was not
cancelled; every ``brushlabels`` (RLE) or ``polygonlabels`` (points in percent of the image)
result is one returned instance. Images are matched by ``data.image_id``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from segval.errors import DatasetError
from segval.dataset.brush_rle import BrushRLEError, decode_mask, encode_mask

__all__ = ["DEFAULT_IMAGE_URL", "ReturnedInstance", "label_config", "read_export", "tasks_for_queue"]

DEFAULT_IMAGE_URL = "/data/local-files/?d={split}/{file_name}"
CURRENT_LABEL_VERSION = "segval-current-label"


class ReturnedInstance:
    """One instance coming back from annotators."""

    __slots__ = ("category_id", "mask", "source")

    def __init__(self, category_id: int, mask: np.ndarray, source: str) -> None:
        self.category_id, self.mask, self.source = int(category_id), mask, source

    def __repr__(self) -> str:
        return f"ReturnedInstance(category_id={self.category_id}, area={int(self.mask.sum())}, source={self.source!r})"


def label_config(taxonomy: Any) -> str:
    """The labeling config XML matching the exported tasks."""
    labels = []
    for c in taxonomy.categories:
        if taxonomy.background_id is not None and c.id == taxonomy.background_id:
            continue
        r, g, b = c.color
        labels.append(f"    <Label value={quoteattr(c.name)} background=\"#{r:02x}{g:02x}{b:02x}\"/>")
    body = "\n".join(labels)
    return ("<View>\n"
            "  <Image name=\"image\" value=\"$image\" zoom=\"true\"/>\n"
            "  <BrushLabels name=\"label\" toName=\"image\">\n" + body + "\n  </BrushLabels>\n"
            "  <PolygonLabels name=\"polygon\" toName=\"image\" strokeWidth=\"2\">\n" + body + "\n  </PolygonLabels>\n"
            "</View>\n")


def _brush(result_id: str, name: str, mask: np.ndarray, *, score: float | None = None,
           meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    h, w = mask.shape
    r: dict[str, Any] = {"id": result_id, "from_name": "label", "to_name": "image", "type": "brushlabels",
                         "original_width": int(w), "original_height": int(h), "image_rotation": 0,
                         "value": {"format": "rle", "rle": encode_mask(mask), "brushlabels": [name]}}
    if score is not None:
        r["score"] = float(score)
    if meta:
        r["meta"] = dict(meta)
    return r


def tasks_for_queue(queue: Mapping[str, Any], split: Any, taxonomy: Any, *, image_url: str = DEFAULT_IMAGE_URL,
                    proposals: Mapping[str, np.ndarray] | None = None, proposal_model: str | None = None,
                    progress=None) -> list[dict[str, Any]]:
    """Label Studio tasks for the queued images (see the module doc).

    Args:
        queue: the queue document (images must be in ``split``).
        split: the :class:`SplitData` of ``queue["split"]``.
        taxonomy: class names and colours.
        image_url: template of ``data.image`` (``{split}``, ``{file_name}``).
        proposals: ``{item_id: bool[H, W]}`` SAM 2 proposal masks.
        proposal_model: the model id named by the proposals' prediction.

    Raises:
        DatasetError: a queued image id that is not in the split (nothing is written by the caller).
    """
    progress = progress or (lambda it: it)
    names = {c.id: c.name for c in taxonomy.categories}
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for it in queue["items"]:
        by_image.setdefault(int(it["image_id"]), []).append(it)
    missing = [i for i in by_image if i not in {r.id for r in split.images}]
    if missing:
        raise DatasetError(f"queued image ids {sorted(missing)[:20]} are not in split {split.name!r} of the dataset; "
                           "export a queue built for this dataset version and split", path=split.annotation_path)
    tasks = []
    for image_id, items in progress(list(by_image.items())):
        rec = split.image(image_id)
        current = []
        for inst in split.instances(rec):
            if taxonomy.background_id is not None and inst.category_id == taxonomy.background_id:
                continue
            current.append(_brush(f"a{inst.annotation_id}", names[inst.category_id], inst.mask,
                                  meta={"annotation_id": inst.annotation_id}))
        preds = [{"model_version": CURRENT_LABEL_VERSION, "score": 1.0, "result": current}]
        sam = []
        for it in items:
            m = (proposals or {}).get(it["item_id"])
            if m is None or it.get("category_id") not in names:
                continue
            sam.append(_brush(f"p{len(sam)}", names[it["category_id"]], m, score=(it.get("proposal") or {}).get("score"),
                              meta={"item_id": it["item_id"]}))
        if sam:
            preds.append({"model_version": proposal_model or "sam2",
                          "score": float(np.mean([r.get("score") or 0.0 for r in sam])), "result": sam})
        tasks.append({
            "data": {"image": image_url.format(split=split.name, file_name=rec.file_name), "image_id": image_id,
                     "file_name": rec.file_name, "split": split.name,
                     "queue_rank": min(int(it["rank"]) for it in items),
                     "reasons": " | ".join(str(it["reason"]) for it in items)},
            "predictions": preds,
        })
    return tasks


def _polygon_mask(points: Sequence[Sequence[float]], h: int, w: int) -> np.ndarray:
    import cv2

    pts = np.array([[float(x) * w / 100.0, float(y) * h / 100.0] for x, y in points], dtype=np.float64)
    out = np.zeros((h, w), np.uint8)
    cv2.fillPoly(out, [np.round(pts).astype(np.int32)], 1)
    return out.astype(bool)


def read_export(path: str | os.PathLike, split: Any, taxonomy: Any) -> dict[int, list[ReturnedInstance]]:
    """Parse a Label Studio JSON export into ``{image_id: [ReturnedInstance]}`` (checked, nothing written).

    Raises:
        DatasetError: invalid / truncated JSON, a task without ``data.image_id``, an image id not in
            the split, a label name not in the taxonomy, a mask of another size than the image, an
            undecodable RLE.
    """
    from segval.dataset.coco import load_json

    p = Path(path)
    if not p.is_file():
        raise DatasetError("Label Studio export not found; export the project as JSON", path=p)
    tasks = load_json(p)
    if isinstance(tasks, Mapping):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise DatasetError("a Label Studio JSON export is a list of tasks", path=p)
    by_name = {c.name: c.id for c in taxonomy.categories}
    ids = {r.id for r in split.images}
    out: dict[int, list[ReturnedInstance]] = {}
    for k, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, Mapping) else None
        image_id = data.get("image_id") if isinstance(data, Mapping) else None
        if isinstance(image_id, str) and image_id.isdigit():
            image_id = int(image_id)
        if not isinstance(image_id, int):
            raise DatasetError(f"task {k} has no integer data.image_id; export tasks made by `segval relabel export`",
                               path=p)
        if image_id not in ids:
            raise DatasetError(f"task {k}: image id {image_id} is not in split {split.name!r} of the dataset", path=p,
                               image_id=image_id)
        rec = split.image(image_id)
        anns = [a for a in (task.get("annotations") or []) if isinstance(a, Mapping) and not a.get("was_cancelled")]
        if not anns:
            continue  # not annotated: the image keeps its labels
        ann = anns[-1]
        insts = []
        for j, r in enumerate(ann.get("result") or []):
            typ, val = r.get("type"), r.get("value") or {}
            if typ not in ("brushlabels", "polygonlabels"):
                continue
            labels = val.get(typ) or []
            if len(labels) != 1:
                raise DatasetError(f"task {k} result {j}: expected one label, got {labels!r}", path=p,
                                   image_id=image_id)
            name = labels[0]
            if name not in by_name:
                raise DatasetError(f"task {k} result {j}: label {name!r} is not a class of the taxonomy "
                                   f"({sorted(by_name)}); fix the labeling config", path=p, image_id=image_id)
            oh, ow = r.get("original_height"), r.get("original_width")
            if (oh is not None and int(oh) != rec.height) or (ow is not None and int(ow) != rec.width):
                raise DatasetError(f"task {k} result {j}: mask of {ow}x{oh}, but the image is {rec.width}x{rec.height}",
                                   path=p, image_id=image_id)
            if typ == "brushlabels":
                if val.get("format", "rle") != "rle" or not isinstance(val.get("rle"), list):
                    raise DatasetError(f"task {k} result {j}: brushlabels without an RLE list", path=p,
                                       image_id=image_id)
                try:
                    mask = decode_mask(val["rle"], rec.height, rec.width)
                except BrushRLEError as err:
                    raise DatasetError(f"task {k} result {j}: {err}", path=p, image_id=image_id) from None
            else:
                pts = val.get("points")
                if not isinstance(pts, list) or len(pts) < 3:
                    raise DatasetError(f"task {k} result {j}: a polygon needs >= 3 points", path=p, image_id=image_id)
                mask = _polygon_mask(pts, rec.height, rec.width)
            if mask.any():
                insts.append(ReturnedInstance(by_name[name], mask, f"labelstudio:{k}:{r.get('id', j)}"))
        out[image_id] = insts
    return out
