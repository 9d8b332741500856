"""`segval relabel queue | export | import` as a user runs them (new processes, offline)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.demo.shapes import SHAPES_TAXONOMY

from tests.helpers import run_segval

H, W = 48, 64


def _package(root: Path) -> Path:
    """Two videos of a disc moving 3 px / frame; frame 2 of video 0 has the disc labelled as a bar."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    with PackageWriter(root, name="moving", version="1.0.0", taxonomy=SHAPES_TAXONOMY, splits=["train", "val"]) as w:
        for v in range(2):
            for t in range(5):
                img = rng.integers(90, 140, (H, W, 3), dtype=np.uint8)
                d = (yy - 18 - 4 * v) ** 2 + (xx - 12 - 3 * t) ** 2 <= 64
                s = (abs(yy - 36) <= 6) & (abs(xx - 45) <= 6)
                img[d], img[s] = (220, 40, 40), (40, 200, 40)
                cat = 3 if (v, t) == (0, 2) else 1
                w.add_image("train", img, f"v{v}/{t:03d}.png", instances=[InstanceMask(cat, d), InstanceMask(2, s)],
                            extra={"video_id": v, "frame_index": t})
        w.add_image("val", img, "val.png", instances=[InstanceMask(1, d)])
    return root


def _hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_queue_export_import_round_trip(tmp_path):
    pkg_root = _package(tmp_path / "releases" / "1.0.0")
    before = _hash(pkg_root)
    q_dir, e_dir, i_dir = tmp_path / "queue", tmp_path / "export", tmp_path / "import"
    r = run_segval("relabel", "queue", "data=package", f"data.root={pkg_root}", "relabel.budget=2",
                   "relabel/sam2=tiny_random", f"relabel.cache_dir={tmp_path / 'cache'}", "relabel.progress=false",
                   f"hydra.run.dir={q_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert "RANDOM-INIT" in r.output and f"queue: {q_dir / 'queue.json'}" in r.output
    q = json.loads((q_dir / "queue.json").read_text())
    bad = next(i.id for i in DatasetPackage.open(pkg_root).split("train").images
               if (i.video_id, i.frame_index) == (0, 2))
    assert q["items"][0]["image_id"] == bad and q["items"][0]["class"] == "bar"
    assert q["items"][0]["proposal"]["random_init"] is True
    assert (q_dir / "queue.csv").is_file() and (q_dir / "proposals.json").is_file()
    assert (q_dir / "propagation.json").is_file() and q["video_propagation"]["items_added"] == 0

    r = run_segval("relabel", "export", f"queue={q_dir}", "data=package", f"data.root={pkg_root}",
                   f"hydra.run.dir={e_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.output
    tasks = json.loads((e_dir / "labelstudio" / "tasks.json").read_text())
    assert (e_dir / "labelstudio" / "label_config.xml").is_file() and (e_dir / "cvat" / "cvat_coco.zip").is_file()

    # the annotator fixes the class of the wrongly labelled disc and accepts everything else
    export = []
    for task in tasks:
        res = copy.deepcopy(task["predictions"][0]["result"])
        if task["data"]["image_id"] == bad:
            for x in res:
                if x["value"]["brushlabels"] == ["bar"]:
                    x["value"]["brushlabels"] = ["disc"]
        export.append({"data": task["data"], "annotations": [{"result": res, "was_cancelled": False}]})
    f = tmp_path / "ls_export.json"
    f.write_text(json.dumps(export))
    r = run_segval("relabel", "import", "format=labelstudio", f"file={f}", "data=package", f"data.root={pkg_root}",
                   f"hydra.run.dir={i_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.output
    new_root = pkg_root.parent / "1.1.0"
    assert "new version 1.1.0" in r.output and str(new_root) in r.output
    summary = json.loads((i_dir / "import_summary.json").read_text())
    # a class change is no mask match: the bar is deprecated and a disc added with a new id
    assert len(summary["deprecated"]) == 1 and len(summary["added"]) == 1 and summary["corrected"] == []
    assert _hash(pkg_root) == before
    new = DatasetPackage.open(new_root)
    cats = sorted(i.category_id for i in new.split("train").instances(new.split("train").image(bad)))
    assert cats == [1, 2]
    # importing again would overwrite 1.1.0: refused, exit 2, nothing changed
    after = _hash(new_root)
    r = run_segval("relabel", "import", "format=labelstudio", f"file={f}", "data=package", f"data.root={pkg_root}",
                   f"hydra.run.dir={tmp_path / 'again'}", cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.output
    assert _hash(new_root) == after and _hash(pkg_root) == before


@pytest.mark.slow
def test_import_cvat_for_images_xml(tmp_path):
    """The annotator fixes the mislabelled disc in CVAT and exports "CVAT for images 1.1"; boxes are reported."""
    from tests.relabel.test_import_back import _cvat_images_xml

    pkg_root = _package(tmp_path / "releases" / "1.0.0")
    pkg = DatasetPackage.open(pkg_root)
    sd = pkg.split("train")
    bad = next(i.id for i in sd.images if (i.video_id, i.frame_index) == (0, 2))
    xml = tmp_path / "annotations.xml"
    xml.write_text(_cvat_images_xml(pkg, sd, [bad], lambda i, shapes: [
        ("disc" if n == "bar" else n, m) for n, m in shapes]))
    r = run_segval("relabel", "import", "format=cvat", f"file={xml}", "data=package", f"data.root={pkg_root}",
                   f"hydra.run.dir={tmp_path / 'import'}", cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert "skipped box: 1 (e.g. image 'v0/002.png' (id 0) <box>" in r.stdout and "new version 1.1.0" in r.stdout
    new = DatasetPackage.open(pkg_root.parent / "1.1.0").split("train")
    assert sorted(i.category_id for i in new.instances(new.image(bad))) == [1, 2]
