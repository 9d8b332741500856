"""CVAT's importer in the loop: segval's CVAT package read by Datumaro, and Datumaro's exports read by segval.

CVAT imports and exports "COCO 1.0" and "CVAT for images 1.1" through Datumaro, so Datumaro stands in for CVAT
here. Datumaro is installed into a throwaway venv (``.interop/venvs/datumaro``, never a segval dependency); its
half of the work runs there (``_datumaro_side.py``), masks travel back as ``.npz``.

1. A small generated package (``write_shapes_package``, videos of moving shapes) -> ``segval relabel queue``
   (model-free evidence) -> ``segval relabel export format=cvat``. Datumaro's COCO importer (``coco_instances``)
   must read ``cvat/``: the same images (file names, sizes, files found), the same labels, the same masks
   (IoU 1.0 after decoding, per annotation id).
2. "The annotator" corrects one image in Datumaro (one mask gets another class, a stroke of another mask is
   erased), and Datumaro exports the task as "COCO 1.0" (``coco_instances``: masks as RLE, and in the default
   mode as polygons) and "CVAT for images 1.1" (``cvat``). Then segval reads them back:
   * ``segval relabel import format=cvat`` of the RLE export: the new version holds exactly the two corrections
     (the relabelled annotation deprecated and re-added with its new class and the same pixels, the erased one
     corrected to its mask minus the stroke), every other annotation unchanged;
   * ``segval dataset import format=coco`` of the polygon export: every mask and label as Datumaro itself reads
     that file back (IoU 1.0);
   * the CVAT XML: ``segval dataset import format=cvat`` when this checkout has it, else
     ``segval.dataset.formats.read_cvat_xml`` + ``write_imported`` (said in the output): every mask and label as
     Datumaro reads the XML, overlaps resolved as CVAT draws them (the later shape wins).

    python scripts/interop/datumaro_check.py [--out DIR]

Prints the figures and ends with ``datumaro_check: <figure> (goal ...) PASS|FAIL``; exit 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, ensure_venv, run_folder, segval, verdict  # noqa: E402

sys.path.insert(0, str(REPO / "src"))
DATUMARO = ["datumaro>=1.10,<2"]
SIDE = Path(__file__).resolve().parent / "_datumaro_side.py"


def dm(py: Path, *args: str, log: Path) -> None:
    proc = subprocess.run([str(py), str(SIDE), *args], capture_output=True, text=True, timeout=600)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ datumaro-side {' '.join(args)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"datumaro side {args[0]} failed:\n" + "\n".join(proc.stderr.splitlines()[-20:]))


def load_read(path: Path) -> dict[str, dict]:
    """Datumaro's reading: ``{file name without extension: item}``, each annotation with its ``mask``."""
    z = np.load(path)
    idx = json.loads(str(z["index"]))
    items = {}
    for it in idx["items"]:
        for a in it["annotations"]:
            a["mask"] = z[a["key"]]
        items[it["id"]] = it
    return items


def package_instances(root: Path, split: str = "train") -> dict[str, dict]:
    """segval's reading of a package: ``{file name without extension: {"rec", "instances": [(name, mask, id,
    iscrowd)]}}`` (background annotations left out)."""
    from segval.dataset.package import DatasetPackage

    pkg = DatasetPackage.open(root)
    sd, tax = pkg.split(split), pkg.taxonomy
    names = {c.id: c.name for c in tax.categories}
    out = {}
    for rec in sd.images:
        insts = [(names[i.category_id], i.mask, i.annotation_id, i.iscrowd) for i in sd.instances(rec)
                 if tax.background_id is None or i.category_id != tax.background_id]
        out[str(Path(rec.file_name).with_suffix(""))] = {"rec": rec, "path": sd.image_path(rec), "instances": insts}
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = int((a | b).sum())
    return float((a & b).sum() / u) if u else 1.0


def compare(expected: dict[str, list[tuple[str, np.ndarray]]], got: dict[str, list[tuple[str, np.ndarray]]],
            what: str) -> tuple[list[str], float, int]:
    """Problems between two readings ``{image: [(label, mask)]}`` (matched by label, then best IoU, one to one);
    the smallest IoU of a match and the number of instances compared."""
    problems, worst, n = [], 1.0, 0
    if sorted(expected) != sorted(got):
        problems.append(f"{what}: images {sorted(expected)} != {sorted(got)}")
    for image in sorted(set(expected) & set(got)):
        left = list(got[image])
        for label, m in expected[image]:
            cands = [(iou(m, g), k) for k, (gl, g) in enumerate(left) if gl == label]
            if not cands:
                problems.append(f"{what}: {image}: no {label!r} instance left to match")
                continue
            v, k = max(cands)
            left.pop(k)
            worst, n = min(worst, v), n + 1
            if v < 1.0:
                problems.append(f"{what}: {image}: {label!r} mask IoU {v:.4f}")
        problems += [f"{what}: {image}: extra {gl!r} instance" for gl, _ in left]
    return problems, worst, n


def check_segval_to_datumaro(read: dict[str, dict], pkg: Path, queued: list[str]) -> tuple[list[str], dict]:
    """Step 1: Datumaro's reading of segval's CVAT package against the package itself."""
    from PIL import Image

    ours = package_instances(pkg)
    problems = []
    if sorted(read) != sorted(queued):
        problems.append(f"images: Datumaro read {sorted(read)}, the queue holds {sorted(queued)}")
    n, worst, labels_ok = 0, 1.0, 0
    for image, it in read.items():
        mine = ours[image]
        if not it["exists"]:
            problems.append(f"{image}: Datumaro did not find the image file ({it['path']})")
        elif not np.array_equal(np.asarray(Image.open(it["path"])), np.asarray(Image.open(mine["path"]))):
            problems.append(f"{image}: the image Datumaro found differs from the package's")
        if (it["height"], it["width"]) != (mine["rec"].height, mine["rec"].width):
            problems.append(f"{image}: size {it['width']}x{it['height']} != {mine['rec'].width}x{mine['rec'].height}")
        by_id = {aid: (name, m) for name, m, aid, _ in mine["instances"]}
        if sorted(a["id"] for a in it["annotations"]) != sorted(by_id):
            problems.append(f"{image}: annotation ids {sorted(a['id'] for a in it['annotations'])} != {sorted(by_id)}")
        for a in it["annotations"]:
            if a["id"] not in by_id:
                continue
            name, m = by_id[a["id"]]
            labels_ok += a["label"] == name
            if a["label"] != name:
                problems.append(f"{image}: annotation {a['id']} is {a['label']!r} in Datumaro, {name!r} in segval")
            v = iou(a["mask"], m)
            worst, n = min(worst, v), n + 1
    return problems, {"images": len(read), "annotations": n, "labels_equal": labels_ok, "min_iou": worst}


def choose_edit(read: dict[str, dict]) -> dict:
    """The annotator's correction: in the first image with >= 2 masks, the largest mask loses two rows through
    its middle (a stroke erased; what is left stays a solid shape) and the smallest gets another class."""
    labels = sorted({a["label"] for it in read.values() for a in it["annotations"]})
    image = next(k for k in sorted(read) if len(read[k]["annotations"]) >= 2)
    anns = read[image]["annotations"]
    by_area = sorted(range(len(anns)), key=lambda k: int(anns[k]["mask"].sum()))
    small, large = by_area[0], by_area[-1]
    new_label = next(lb for lb in labels if lb != anns[small]["label"])
    rows = np.flatnonzero(anns[large]["mask"].any(1))
    mid = int(rows[len(rows) // 2])
    return {"item_id": image, "relabel": small, "new_label": new_label, "erase": large,
            "erase_rows": [mid, mid + 2], "relabel_ann": anns[small], "erase_ann": anns[large]}


def check_relabel_import(summary: dict, new_pkg: Path, old_pkg: Path, edit: dict) -> tuple[list[str], int]:
    """Step 2a: the new version holds exactly the two corrections; the number of corrections found in it."""
    old, new = package_instances(old_pkg), package_instances(new_pkg)
    image, r_id, e_id = edit["item_id"], edit["relabel_ann"]["id"], edit["erase_ann"]["id"]
    problems, found = [], 0
    erased = edit["erase_ann"]["mask"].copy()
    y0, y1 = edit["erase_rows"]
    erased[y0:y1] = False
    new_by_id = {aid: (name, m) for name, m, aid, _ in new[image]["instances"]}
    added = [aid for aid in new_by_id if aid not in {a for _, _, a, _ in old[image]["instances"]}]
    if summary["deprecated"] == [r_id] and r_id not in new_by_id and len(added) == 1 and summary["added"] == added \
            and new_by_id[added[0]][0] == edit["new_label"] \
            and np.array_equal(new_by_id[added[0]][1], edit["relabel_ann"]["mask"]):
        found += 1
    else:
        problems.append(f"class change of annotation {r_id} to {edit['new_label']!r} not imported as made "
                        f"(deprecated {summary['deprecated']}, added {summary['added']})")
    if summary["corrected"] == [e_id] and e_id in new_by_id and np.array_equal(new_by_id[e_id][1], erased):
        found += 1
    else:
        problems.append(f"erased stroke of annotation {e_id} not imported as made (corrected {summary['corrected']})")
    for k in sorted(set(old) | set(new)):  # every other annotation unchanged
        a = {(aid, name, o.tobytes()) for name, o, aid, _ in old.get(k, {"instances": []})["instances"]
             if aid not in (r_id, e_id)}
        b = {(aid, name, o.tobytes()) for name, o, aid, _ in new.get(k, {"instances": []})["instances"]
             if aid not in (r_id, e_id) and aid not in added}
        if a != b:
            problems.append(f"{k}: annotations other than the corrected ones changed")
    return problems, found


def cvat_drawn(items: dict[str, dict]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Datumaro's reading of a CVAT XML with overlaps resolved as CVAT draws shapes (same z_order: the later
    shape in the file wins), the rule segval's reader documents."""
    out = {}
    for image, masks in labelled(items).items():
        masks = [(lb, m.copy()) for lb, m in masks]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                masks[i][1][masks[j][1]] = False
        out[image] = [(lb, m) for lb, m in masks if m.any()]
    return out


def labelled(reading: dict[str, dict]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{image: [(label, mask)]}``, the parts of one instance (same non-zero group and label: the polygons of
    one COCO annotation, which Datumaro reads as one Polygon each) merged."""
    out = {}
    for k, it in reading.items():
        merged: dict[tuple, tuple[str, np.ndarray]] = {}
        for n, a in enumerate(it["annotations"]):
            key = (a["group"], a["label"]) if a["group"] else (None, n)
            lb, m = merged.get(key, (a["label"], np.zeros_like(a["mask"])))
            merged[key] = (lb, m | a["mask"])
        out[k] = list(merged.values())
    return out


def in_package(root: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    return {k: [(name, m) for name, m, _, _ in v["instances"]] for k, v in package_instances(root).items()}


def import_cvat_xml(xml: Path, images: Path, out: Path, log: Path) -> str:
    """The CVAT XML -> a package, through ``dataset import format=cvat`` when wired, else the reader."""
    from segval.commands.dataset import IMPORT_FORMATS

    if "cvat" in IMPORT_FORMATS:
        segval("dataset", "import", "format=cvat", f"source={xml}", f"output={out}", f"hydra.run.dir={out}_run",
               cwd=out.parent, log=log)
        return "segval dataset import format=cvat"
    from segval.dataset.formats import read_cvat_xml, write_imported

    write_imported(read_cvat_xml(xml, images), out, name="from-datumaro-cvat", license="CC0-1.0")
    return "read_cvat_xml + write_imported (`dataset import format=cvat` is not wired in this checkout)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="run folder (default outputs/interop/datumaro/<date>_<time>)")
    args = ap.parse_args()
    t0 = time.monotonic()
    out = run_folder("datumaro", args.out)
    log = out / "commands.log"
    print(f"run folder: {out}", flush=True)
    problems: list[str] = []
    try:
        py = ensure_venv("datumaro", DATUMARO)
        ver = subprocess.run([str(py), "-c", "import datumaro; print(datumaro.__version__)"], capture_output=True,
                             text=True).stdout.strip()
        print(f"Datumaro {ver} ({py})", flush=True)
        from segval.demo.shapes import write_shapes_package

        pkg = write_shapes_package(out / "releases" / "1.0.0", images={"train": 8, "val": 2}, size=(64, 80),
                                   frames_per_video=4)
        segval("relabel", "queue", "data=package", f"data.root={pkg}", "relabel.budget=4", "relabel.progress=false",
               f"hydra.run.dir={out / 'queue'}", cwd=out, log=log)
        segval("relabel", "export", f"queue={out / 'queue'}", "format=cvat", "data=package", f"data.root={pkg}",
               f"hydra.run.dir={out / 'export'}", cwd=out, log=log)
        queued = sorted({str(Path(i["file_name"]).with_suffix(""))
                         for i in json.loads((out / "queue" / "queue.json").read_text())["items"]})

        # 1. segval -> Datumaro's COCO importer
        cvat_dir = out / "export" / "cvat"
        dm(py, "read", "coco_instances", str(cvat_dir), str(out / "dm_read_export.npz"), log=log)
        read = load_read(out / "dm_read_export.npz")
        p1, f1 = check_segval_to_datumaro(read, pkg, queued)
        problems += p1
        print(f"1. segval relabel export format=cvat -> Datumaro coco_instances: {f1['images']} images, "
              f"{f1['annotations']} masks, labels equal {f1['labels_equal']}/{f1['annotations']}, "
              f"min mask IoU {f1['min_iou']:.4f}", flush=True)

        # 2. an annotator's correction in Datumaro, exported as COCO 1.0 and CVAT for images 1.1
        edit = choose_edit(read)
        (out / "edit.json").write_text(json.dumps({k: v for k, v in edit.items() if not k.endswith("_ann")}))
        dmx = out / "datumaro_export"
        dm(py, "edit-export", str(cvat_dir), str(dmx), str(out / "edit.json"), log=log)
        done = json.loads((dmx / "edit_done.json").read_text())
        print(f"2. correction made in Datumaro on {edit['item_id']}: annotation {done['relabelled_id']} "
              f"{edit['relabel_ann']['label']} -> {edit['new_label']}, {done['erased_pixels']} px erased from "
              f"annotation {done['erased_id']}; exported as coco_instances (RLE, polygons) and cvat", flush=True)

        # 2a. COCO 1.0 (RLE) -> segval relabel import
        new_version = out / "releases" / "1.1.0"
        segval("relabel", "import", "format=cvat", f"file={dmx / 'coco_mask' / 'annotations' / 'instances_default.json'}",
               "data=package", f"data.root={pkg}", f"hydra.run.dir={out / 'import'}", cwd=out, log=log)
        summary = json.loads((out / "import" / "import_summary.json").read_text())
        p2, found = check_relabel_import(summary, new_version, pkg, edit)
        problems += p2
        print(f"   segval relabel import format=cvat (COCO 1.0, RLE): corrections imported {found} / made 2 "
              f"(corrected {summary['corrected']}, added {summary['added']}, deprecated {summary['deprecated']}), "
              f"new version {summary['version']}", flush=True)

        # 2b. COCO 1.0 (polygons) -> segval dataset import format=coco
        dm(py, "read", "coco_instances", str(dmx / "coco_guess"), str(out / "dm_read_coco.npz"), log=log)
        coco_pkg = out / "from_coco"
        segval("dataset", "import", "format=coco",
               f"source={dmx / 'coco_guess' / 'annotations' / 'instances_default.json'}",
               f"coco.images={dmx / 'coco_guess' / 'images' / 'default'}", f"output={coco_pkg}",
               f"hydra.run.dir={out / 'import_coco'}", cwd=out, log=log)
        p3, w3, n3 = compare(labelled(load_read(out / "dm_read_coco.npz")), in_package(coco_pkg), "COCO 1.0 polygons")
        problems += p3
        print(f"   segval dataset import format=coco (COCO 1.0, polygons): {n3} masks, min IoU {w3:.4f} against "
              "Datumaro's own reading", flush=True)

        # 2c. CVAT for images 1.1 -> segval
        xml = dmx / "cvat" / "default.xml"
        dm(py, "read", "cvat", str(dmx / "cvat"), str(out / "dm_read_cvat.npz"), log=log)
        how = import_cvat_xml(xml, dmx / "cvat" / "images", out / "from_cvat", log)
        p4, w4, n4 = compare(cvat_drawn(load_read(out / "dm_read_cvat.npz")), in_package(out / "from_cvat"),
                             "CVAT for images 1.1")
        problems += p4
        print(f"   CVAT for images 1.1 via {how}: {n4} masks, min IoU {w4:.4f} against Datumaro's reading", flush=True)
        figure = (f"Datumaro read segval's export: {f1['annotations']} masks, min IoU {f1['min_iou']:.3f}; segval read "
                  f"Datumaro's COCO RLE (corrections {found}/2), COCO polygons ({n3} masks, min IoU {w3:.3f}), "
                  f"CVAT XML ({n4} masks, min IoU {w4:.3f})")
    except Exception as err:  # noqa: BLE001 - every failure ends in the FAIL line
        problems.append(f"{type(err).__name__}: {err}")
        figure = "did not finish"
    for p in problems:
        print(f"  problem: {p}")
    print(f"wall time {time.monotonic() - t0:.1f} s; log: {log}")
    ok = not problems
    verdict("datumaro_check", figure + f", {len(problems)} problems", "0 problems, IoU 1.0", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
