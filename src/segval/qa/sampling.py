"""A reproducible QA review sample of images, stratified by class and annotator (``segval qa sample``).

* **Unit**: an image of the split. Its **stratum** is (main class, main annotator): the category
  with the largest annotated area in the image (ties: the lower category id; ``none`` for an image
  without annotations) and the annotator with the most annotations in it (ties: the name first in
  sort order; ``unknown`` when none is named; see :mod:`segval.qa.annotators`). ``by=["class"]``
  or ``by=["annotator"]`` stratifies on one of them only.
* **Size**: ``size`` images, or ``round(fraction x N)`` (default 15 %), at least 1. A size larger
  than the split (or a fraction outside (0, 1]) is an error, raised before anything is written.
* **Allocation**: proportional, by largest remainder: each stratum gets ``floor(n x N_s / N)``,
  the remaining images go to the strata with the largest fractional parts (ties: larger stratum,
  then stratum order), so every stratum's share matches the split's to within one image.
* **Draw**: within a stratum, a permutation of its image ids (sorted) by
  ``numpy.random.default_rng([seed, stratum number])``: the same seed, split and package give the
  same sample, and changing one stratum does not reshuffle the others. With ``spread_videos`` (the guideline
  pilot) the permutation is reordered so a stratum takes one image of each video before a second of any
  (an image without ``video_id`` is its own video).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from segval.errors import ConfigError
from segval.qa.annotators import UNKNOWN, annotator_index, annotator_of

BY = ("class", "annotator")
DEFAULT_FRACTION = 0.15


def image_stratum(anns: Sequence[dict[str, Any]], names: dict[int, str], by: Sequence[str]) -> tuple[str, ...]:
    """The stratum of an image from its annotations (see the module doc)."""
    key = []
    if "class" in by:
        area: Counter = Counter()
        for a in anns:
            area[int(a["category_id"])] += float(a.get("area") or 0.0)
        key.append(names.get(min(area, key=lambda c: (-area[c], c)), "none") if area else "none")
    if "annotator" in by:
        who = Counter(annotator_of(a) or UNKNOWN for a in anns)
        key.append(min(who, key=lambda w: (-who[w], w)) if who else UNKNOWN)
    return tuple(key)


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Largest-remainder proportional allocation of ``n`` over strata of ``sizes`` (module doc)."""
    total = sum(sizes)
    exact = [n * s / total for s in sizes]
    out = [int(np.floor(e)) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - out[i]), -sizes[i], i))
    for i in order[: n - sum(out)]:
        out[i] += 1
    return out


def spread_over_videos(order: Sequence[int], video_of: Sequence[Any]) -> list[int]:
    """``order`` (positions) reordered so each video's first position comes before any video's second, and so
    on, keeping ``order`` within each round.

    >>> spread_over_videos([0, 1, 2, 3], ["a", "a", "b", "c"])
    [0, 2, 3, 1]
    """
    seen: Counter = Counter()
    rounds = []
    for pos, i in enumerate(order):
        rounds.append((seen[video_of[i]], pos, i))
        seen[video_of[i]] += 1
    return [i for _, _, i in sorted(rounds)]


def review_sample(pkg: Any, split: str, *, fraction: float | None = DEFAULT_FRACTION, size: int | None = None,
                  seed: int = 0, by: Sequence[str] = BY, annotator_missing: str = "error",
                  spread_videos: bool = False) -> dict[str, Any]:
    """Draw the review sample (see the module doc).

    Returns:
        ``{"dataset", "split", "seed", "by", "fraction", "size", "population", "strata": [{stratum, population,
        sampled}], "items": [{image_id, file_name, stratum, video_id, frame_index}]}`` (items sorted by image id).

    Raises:
        ConfigError: a bad fraction / size / by, or a sample larger than the split.
        DatasetError: some annotations name an annotator and others do not (``annotator_missing="error"``,
            see :func:`segval.qa.annotators.annotator_index`).
    """
    by = [str(b) for b in by]
    if not by or any(b not in BY for b in by):
        raise ConfigError(f"by must be a non-empty subset of {list(BY)}, got {by}")
    sd = pkg.split(split)
    if "annotator" in by:
        annotator_index(pkg, [split], missing=annotator_missing)
    n_pop = len(sd.images)
    if n_pop == 0:
        raise ConfigError(f"split {split!r} has no images; nothing to sample")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"size must be an integer >= 1, got {size!r}")
        if size > n_pop:
            raise ConfigError(f"a review sample of {size} images is larger than split {split!r} ({n_pop} images); "
                              f"use size <= {n_pop} or a fraction")
        n = size
    else:
        if fraction is None or isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise ConfigError(f"fraction must be a number in (0, 1], got {fraction!r}")
        if fraction > 1:
            raise ConfigError(f"a review sample of fraction {fraction} is larger than split {split!r} "
                              f"({n_pop} images); use a fraction in (0, 1]")
        if fraction <= 0:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        n = max(1, int(round(fraction * n_pop)))
    names = {c.id: c.name for c in pkg.taxonomy}
    strata: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for rec in sd.images:
        strata[image_stratum(sd.annotations_for(rec.id), names, by)].append(rec.id)
    keys = sorted(strata)
    counts = allocate([len(strata[k]) for k in keys], n)
    chosen: dict[int, tuple[str, ...]] = {}
    rows = []
    for number, (k, m) in enumerate(zip(keys, counts, strict=True)):
        ids = sorted(strata[k])
        rng = np.random.default_rng([int(seed), number])
        order = [int(i) for i in rng.permutation(len(ids))]
        if spread_videos:
            videos = [sd.image(i).video_id if sd.image(i).video_id is not None else ("image", i) for i in ids]
            order = spread_over_videos(order, videos)
        for i in order[:m]:
            chosen[ids[i]] = k
        rows.append({"stratum": dict(zip(by, k, strict=True)), "population": len(ids), "sampled": m})
    items = []
    for image_id in sorted(chosen):
        rec = sd.image(image_id)
        items.append({"image_id": image_id, "file_name": rec.file_name,
                      "stratum": dict(zip(by, chosen[image_id], strict=True)),
                      "video_id": rec.video_id, "frame_index": rec.frame_index})
    return {"dataset": {"name": pkg.name, "version": str(pkg.version), "root": str(pkg.root)}, "split": split,
            "seed": int(seed), "by": by, "fraction": None if size is not None else float(fraction),
            "size": n, "population": n_pop, "strata": rows, "items": items}


def format_sample(sample: dict[str, Any]) -> str:
    """sample.md: the strata table and the image list."""
    d = sample["dataset"]
    by = sample["by"]
    lines = [f"# Review sample: {d['name']} {d['version']} / {sample['split']}", "",
             f"{sample['size']} of {sample['population']} images (seed {sample['seed']}), stratified by "
             f"{' and '.join(by)}.", "", "| " + " | ".join(by) + " | images | sampled |",
             "|" + "---|" * len(by) + "---:|---:|"]
    for r in sample["strata"]:
        lines.append("| " + " | ".join(str(r["stratum"][b]) for b in by) + f" | {r['population']} | {r['sampled']} |")
    lines += ["", "## Images", ""]
    lines += [f"- {it['image_id']}: `{it['file_name']}` (" + ", ".join(f"{b} {it['stratum'][b]}" for b in by) + ")"
              for it in sample["items"]]
    return "\n".join(lines) + "\n"


def sample_csv(sample: dict[str, Any]) -> str:
    """sample.csv: one row per sampled image."""
    import csv
    import io

    buf = io.StringIO()
    cols = ["image_id", "file_name", *sample["by"], "video_id", "frame_index"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for it in sample["items"]:
        w.writerow({"image_id": it["image_id"], "file_name": it["file_name"], **it["stratum"],
                    "video_id": "" if it["video_id"] is None else it["video_id"],
                    "frame_index": "" if it["frame_index"] is None else it["frame_index"]})
    return buf.getvalue()
