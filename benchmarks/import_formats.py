"""Throughput of the export readers (segval.dataset.formats) against pycocotools on the same masks.

For each format, 1,000 images (128 x 96, 5 non-overlapping objects each: boxes and ellipses, 3 classes)
are written in that tool's layout (``coco``: the COCO file of the reference, read through the dialect
normaliser; ``from_coco``: opening that file as ``data check`` / ``train data=coco`` do); the reader (parse + checks + every mask decoded to run lengths,
image headers probed) is timed against pycocotools reading the same masks from a COCO file
(``COCO(json)`` + ``annToMask`` for every annotation). Every reader's masks are checked equal to the
generated ones. Figure: the worst ratio reader time / pycocotools time over the formats. The readers
open 2-3 files per image (the image header, the mask / panoptic PNGs) and check everything, which
``annToMask`` on an in-memory RLE never does; the goal (<= 20x) keeps every reader at a few hundred
images/s at this size on one core.

    python benchmarks/import_formats.py [--images 1000] [--goal 20]

Prints one line per format, then ``import_formats: <worst ratio>x (goal <= <goal>x) PASS|FAIL``; exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segval.dataset.brush_rle import encode_mask
from segval.dataset.formats.coco import read_coco
from segval.dataset.package import DatasetPackage
from segval.dataset.formats.coco_panoptic import read_coco_panoptic
from segval.dataset.formats.cvat import read_cvat_xml
from segval.dataset.formats.cvat_masks import read_cvat_masks
from segval.dataset.formats.labelstudio import read_labelstudio
from segval.dataset.formats.palette import ColorTable, read_voc, voc_colormap

H, W = 96, 128
NAMES = ["background", "cube", "cable", "mug"]
COLORS = [(0, 0, 0), (200, 30, 30), (30, 200, 30), (30, 30, 200)]


def make_objects(rng: np.random.Generator) -> list[tuple[int, np.ndarray, str, tuple]]:
    """5 non-overlapping objects: (class 1..3, bool mask, kind, geometry) in 5 of 6 grid cells."""
    out = []
    cells = rng.permutation(6)[:5]
    ys, xs = np.mgrid[0:H, 0:W]
    for c in cells:
        cy, cx = divmod(int(c), 3)
        y0, x0 = cy * (H // 2), cx * (W // 3)
        ch, cw = H // 2, W // 3
        cls = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            h, w = int(rng.integers(8, ch - 4)), int(rng.integers(8, cw - 4))
            t, l = y0 + int(rng.integers(1, ch - h)), x0 + int(rng.integers(1, cw - w))
            m = np.zeros((H, W), bool)
            m[t:t + h, l:l + w] = True
            out.append((cls, m, "box", (l, t, w, h)))
        else:
            ry, rx = rng.uniform(4, ch / 2 - 2), rng.uniform(4, cw / 2 - 2)
            cy_, cx_ = y0 + ch / 2, x0 + cw / 2
            m = ((ys + 0.5 - cy_) / ry) ** 2 + ((xs + 0.5 - cx_) / rx) ** 2 <= 1
            out.append((cls, m, "ellipse", None))
    return out


def bbox_of(m: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def cvat_rle(m: np.ndarray) -> tuple[str, tuple[int, int, int, int]]:
    l, t, w, h = bbox_of(m)
    flat = m[t:t + h, l:l + w].reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], change, [flat.size])))
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return ", ".join(str(int(c)) for c in counts), (l, t, w, h)


def generate(root: Path, n: int) -> list[list[tuple[int, np.ndarray]]]:
    rng = np.random.default_rng(0)
    truth = []
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": i, "name": n_} for i, n_ in enumerate(NAMES)]}
    pan = {"images": [], "annotations": [], "categories": [
        {"id": i, "name": n_, "isthing": int(i > 0), "color": list(COLORS[i])} for i, n_ in enumerate(NAMES) if i]}
    (root / "panoptic").mkdir()
    cvat = ['<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  <meta><task><labels>']
    cvat += [f"<label><name>{n_}</name><type>any</type></label>" for n_ in NAMES]
    cvat.append("</labels></task></meta>")
    for d in ("SegmentationClass", "SegmentationObject", "JPEGImages", "voc_masks"):
        (root / "cvatm" / d).mkdir(parents=True, exist_ok=True)
    (root / "cvatm" / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{n_}:{c[0]},{c[1]},{c[2]}::\n" for n_, c in zip(NAMES, COLORS)))
    ls_tasks = []
    inst_cmap = voc_colormap(8)
    ann_id = 1
    for k in range(n):
        name = f"img_{k:05d}.png"
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(img_dir / name, compress_level=1)
        objs = make_objects(rng)
        truth.append([(c, m) for c, m, _, _ in objs])
        coco["images"].append({"id": k + 1, "file_name": name, "width": W, "height": H})
        ids = np.zeros((H, W), np.int64)
        cls_map = np.zeros((H, W), np.int64)
        obj_map = np.zeros((H, W), np.int64)
        segs, xml, results = [], [f'<image id="{k}" name="{name}" width="{W}" height="{H}">'], []
        for j, (c, m, kind, geo) in enumerate(objs, start=1):
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            coco["annotations"].append({"id": ann_id, "image_id": k + 1, "category_id": c, "iscrowd": 0,
                                        "segmentation": {"size": [H, W], "counts": rle["counts"].decode()},
                                        "area": int(m.sum()), "bbox": list(bbox_of(m))})
            ann_id += 1
            ids[m] = j
            cls_map[m] = c
            obj_map[m] = j
            segs.append({"id": j, "category_id": c, "iscrowd": 0, "area": int(m.sum()), "bbox": list(bbox_of(m))})
            if kind == "box":
                l, t, w, h = geo
                xml.append(f'<polygon label="{NAMES[c]}" points="{l},{t};{l + w},{t};{l + w},{t + h};{l},{t + h}" '
                           'occluded="0" z_order="0"/>')
                pts = [[x * 100 / W, y * 100 / H] for x, y in ((l, t), (l + w, t), (l + w, t + h), (l, t + h))]
                results.append({"id": f"r{j}", "type": "polygonlabels", "from_name": "poly", "to_name": "image",
                                "original_width": W, "original_height": H,
                                "value": {"points": pts, "polygonlabels": [NAMES[c]]}})
            else:
                s, (l, t, w, h) = cvat_rle(m)
                xml.append(f'<mask label="{NAMES[c]}" rle="{s}" left="{l}" top="{t}" width="{w}" height="{h}" '
                           'occluded="0" z_order="0"/>')
                results.append({"id": f"r{j}", "type": "brushlabels", "from_name": "tag", "to_name": "image",
                                "original_width": W, "original_height": H,
                                "value": {"format": "rle", "rle": encode_mask(m), "brushlabels": [NAMES[c]]}})
        xml.append("</image>")
        cvat += xml
        png = f"img_{k:05d}.png"
        Image.fromarray(np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)).save(
            root / "panoptic" / png, compress_level=1)
        pan["images"].append({"id": k + 1, "file_name": name, "width": W, "height": H})
        pan["annotations"].append({"image_id": k + 1, "file_name": png, "segments_info": segs})
        Image.fromarray(np.asarray(COLORS, np.uint8)[cls_map]).save(root / "cvatm" / "SegmentationClass" / png,
                                                                     compress_level=1)
        Image.fromarray(inst_cmap[obj_map]).save(root / "cvatm" / "SegmentationObject" / png, compress_level=1)
        pal = Image.fromarray(cls_map.astype(np.uint8), mode="P")
        pal.putpalette(np.asarray(COLORS + [(0, 0, 0)] * 252, np.uint8).reshape(-1).tolist())
        pal.save(root / "cvatm" / "voc_masks" / png, compress_level=1)
        ls_tasks.append({"id": k + 1, "data": {"image": f"/data/upload/1/0a1b2c3d-{name}"},
                         "annotations": [{"id": k + 1, "result": results, "was_cancelled": False}]})
    cvat.append("</annotations>")
    (root / "coco.json").write_text(json.dumps(coco))
    (root / "panoptic.json").write_text(json.dumps(pan))
    (root / "annotations.xml").write_text("\n".join(cvat))
    (root / "ls.json").write_text(json.dumps(ls_tasks))
    (root / "cvatm" / "JPEGImages").rmdir()
    (root / "cvatm" / "JPEGImages").symlink_to(img_dir)
    return truth


def time_it(fn, repeat: int = 2):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def coco_reference(path: Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    n = 0
    for a in coco.dataset["annotations"]:
        n += int(coco.annToMask(a).any())
    return n


def check(res, truth, fmt: str) -> None:
    ims = [im for ims in res.splits.values() for im in ims]
    assert len(ims) == len(truth), fmt
    for im, objs in zip(ims, truth):
        got = sorted((i.category_id, i.mask.decode().tobytes()) for i in im.instances)
        want = sorted((c, m.tobytes()) for c, m in objs)
        if fmt in ("cvat_masks_classes", "voc"):  # one instance per class: compare the class unions
            union = {}
            for c, m in objs:
                union[c] = union.get(c, np.zeros_like(m)) | m
            want = sorted((c, m.tobytes()) for c, m in union.items())
        assert got == want, f"{fmt}: masks differ on {im.file_name}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--goal", type=float, default=20.0, help="worst reader / pycocotools time ratio allowed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        truth = generate(root, args.images)
        print(f"generated {args.images} images x 5 objects ({W}x{H}) in {time.perf_counter() - t0:.1f} s")
        ref_t, n = time_it(lambda: coco_reference(root / "coco.json"))
        print(f"pycocotools COCO() + annToMask of {n} masks: {ref_t:.2f} s ({args.images / ref_t:.0f} images/s)")
        table = ColorTable(NAMES, COLORS, source="bench")
        readers = {
            "coco": lambda: read_coco(root / "coco.json", root / "images"),
            "coco_panoptic": lambda: read_coco_panoptic(root / "panoptic.json", root / "panoptic", root / "images"),
            "cvat": lambda: read_cvat_xml(root / "annotations.xml", root / "images"),
            "cvat_masks": lambda: read_cvat_masks(root / "cvatm"),
            "labelstudio": lambda: read_labelstudio(root / "ls.json", root / "images", labels=NAMES),
            "voc": lambda: read_voc(root / "cvatm" / "voc_masks", root / "images", colors=table),
        }
        worst = 0.0
        for fmt, fn in readers.items():
            t, res = time_it(fn)
            check(res, truth, fmt)
            ratio = t / ref_t
            worst = max(worst, ratio)
            print(f"{fmt:14s} {t:6.2f} s  {args.images / t:6.0f} images/s  {ratio:5.2f}x pycocotools  "
                  f"(masks checked equal)")
        # what `data check` / `train data=coco` pay when they open a plain COCO file: the dialect normaliser
        # decodes every mask once to check area / bbox (the masks are decoded again, lazily, when read)
        t, pkg = time_it(lambda: DatasetPackage.from_coco(root / "coco.json", root / "images"))
        assert pkg.warnings == [] and pkg.split("train").num_annotations == 5 * args.images
        worst = max(worst, t / ref_t)
        print(f"{'from_coco':14s} {t:6.2f} s  {args.images / t:6.0f} images/s  {t / ref_t:5.2f}x pycocotools  "
              "(open + dialect checks, no pixels read)")
    ok = worst <= args.goal
    print(f"import_formats: {worst:.2f}x (goal <= {args.goal:g}x) {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
