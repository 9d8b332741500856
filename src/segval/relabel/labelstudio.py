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

Import (:func:`read_export`): any Label Studio export (JSON or JSON-MIN) of tasks segval exported, read
with the dataset reader's task parser (:func:`segval.dataset.formats.labelstudio.parse_task`: latest
submitted annotation, regions grouped by result id, brush RLE / percent polygons); images matched by
``data.image_id``, else by file name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from segval.errors import DatasetError
from segval.dataset.brush_rle import encode_mask

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


def read_export(path: str | os.PathLike, split: Any, taxonomy: Any, *,
                findings: Any | None = None) -> dict[int, list[ReturnedInstance]]:
    """Parse a Label Studio JSON / JSON-MIN export of tasks segval exported into ``{image_id: [ReturnedInstance]}``
    (checked, nothing written).

    Tasks are read like :func:`segval.dataset.formats.labelstudio.read_labelstudio` reads them (latest
    submitted annotation, regions grouped by result id, brush RLE and percent polygons rasterised by the
    COCO rule, boxes / keypoints skipped). Images are matched by ``data.image_id``, else by file name:
    ``data.file_name``, then the image URL's path (:func:`~segval.dataset.formats.labelstudio.image_candidates`,
    ``file_upload``) as a file name of the split, then as a base name found once in the split.

    Args:
        path: the export.
        split: the :class:`~segval.dataset.split.SplitData` the tasks came from.
        taxonomy: the package's classes (labels are matched by name).
        findings: a :class:`~segval.dataset.formats.result.Findings` that receives the warnings and skipped
            results (for the command's report); a new one when None.

    Raises:
        DatasetError: listing every problem: invalid / truncated JSON, a task whose image is not in the
            split (or matches several), a label not in the taxonomy, a size other than the image's, an
            undecodable RLE, two tasks of one image.
    """
    from segval.dataset.formats.labelstudio import load_tasks, parse_task
    from segval.dataset.formats.result import Findings

    p = Path(path)
    if not p.is_file():
        raise DatasetError("Label Studio export not found; export the project as JSON", path=p)
    f = findings if findings is not None else Findings()
    by_name = {c.name: c.id for c in taxonomy.categories}
    match = ImageMatcher(split)
    out: dict[int, list[ReturnedInstance]] = {}
    task_of: dict[int, str] = {}
    for k, item in enumerate(load_tasks(p)):
        task = parse_task(item, k, f, p)
        if task is None:
            continue
        if task.minimal and not task.regions:
            f.skip("JSON-MIN tasks without a region (the image keeps its labels)", task.where)
            continue
        try:
            rec = match.find(task)
        except DatasetError as err:
            f.add(DatasetError(f"{task.where}: {err}", path=p))
            continue
        bad = task.size_mismatch(rec.width, rec.height)
        if bad:
            f.problem(f"{task.where}: results say the image is {bad[0]}x{bad[1]}, but image id {rec.id} "
                      f"({rec.file_name}) is {rec.width}x{rec.height} (width x height)", path=p, image_id=rec.id)
            continue
        if rec.id in task_of:
            f.problem(f"{task_of[rec.id]} and {task.where} both return image id {rec.id} ({rec.file_name}); keep "
                      "one", path=p, image_id=rec.id)
            continue
        task_of[rec.id] = task.where
        out[rec.id] = _instances(task, rec, by_name, f, p)
    f.raise_if_any(p, "Label Studio export")
    return out


def _instances(task: Any, rec: Any, by_name: Mapping[str, int], f: Any, p: Path) -> list[ReturnedInstance]:
    insts = []
    for reg in task.regions:
        if reg.label not in by_name:
            f.problem(f"{reg.where}: label {reg.label!r} is not a class of the taxonomy ({sorted(by_name)}); fix the "
                      "labeling config", path=p, image_id=rec.id)
            continue
        try:
            mask = reg.mask(rec.height, rec.width)
        except ValueError as err:
            f.problem(f"{reg.where} (label {reg.label!r}): {err}", path=p, image_id=rec.id)
            continue
        if mask.any():
            insts.append(ReturnedInstance(by_name[reg.label], mask, f"labelstudio:{task.id}:{reg.result_id}"))
    return insts


class ImageMatcher:
    """The split's image of a task: ``data.image_id``, else its file name (exact, then a unique base name)."""

    def __init__(self, split: Any) -> None:
        self.split = split
        self.ids = {r.id: r for r in split.images}
        self.by_path = {r.file_name: r for r in split.images}
        self.by_base: dict[str, list[Any]] = {}
        for r in split.images:
            self.by_base.setdefault(PurePosixPath(r.file_name).name, []).append(r)

    def find(self, task: Any) -> Any:
        image_id = task.data.get("image_id")
        if isinstance(image_id, str) and image_id.isdigit():
            image_id = int(image_id)
        if isinstance(image_id, int) and not isinstance(image_id, bool):
            if image_id not in self.ids:
                raise DatasetError(f"image id {image_id} is not in split {self.split.name!r} of the dataset; import "
                                   "into the dataset version and split the tasks were exported from")
            return self.ids[image_id]
        names = ([task.data["file_name"]] if isinstance(task.data.get("file_name"), str) else []) + task.image_names
        if not names:
            raise DatasetError("no data.image_id and no image URL: the task cannot be matched to an image")
        return self.by_names(names, what="no data.image_id, and its image")

    def by_names(self, names: list[str], *, what: str = "image") -> Any:
        """The split's image named by the first of ``names`` that matches: a file name of the split (also after
        a leading ``<split>/``), else a base name found once in the split.

        Raises:
            DatasetError: no match, or a base name found several times.
        """
        names = [n.replace("\\", "/") for n in names]
        prefix = f"{self.split.name}/"
        for n in names:
            for cand in (n, n[len(prefix):] if n.startswith(prefix) else None):
                if cand in self.by_path:
                    return self.by_path[cand]
        for n in names:
            hits = self.by_base.get(PurePosixPath(n).name, [])
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise DatasetError(f"image {PurePosixPath(n).name!r} matches several images of split "
                                   f"{self.split.name!r} ({', '.join(h.file_name for h in hits[:4])}); keep the "
                                   "file names (relative paths) of the export")
        raise DatasetError(f"{what} ({', '.join(repr(n) for n in names)}) matches no image of split "
                           f"{self.split.name!r} by file name")
