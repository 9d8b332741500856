"""`segval dataset import|export|stats` as a user runs them (new processes, module entry points)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_segval

pytestmark = pytest.mark.slow


def _labelme_folder(root: Path, *, bad: bool = False) -> Path:
    import base64
    import io

    import numpy as np
    from PIL import Image

    root.mkdir(parents=True)
    for k in range(3):
        buf = io.BytesIO()
        Image.fromarray(np.full((30, 40, 3), 40 * k, np.uint8)).save(buf, format="PNG")
        shapes = [{"label": "box", "points": [[2, 2], [12 + k, 12]], "shape_type": "rectangle", "group_id": None},
                  {"label": "ring", "points": [[30, 15], [30, 20]], "shape_type": "circle", "group_id": None}]
        if bad and k == 1:
            shapes.append({"label": "cable", "points": [[0, 0], [5, 5]], "shape_type": "spline", "group_id": None})
        (root / f"img_{k}.json").write_text(json.dumps({
            "shapes": shapes, "imagePath": f"img_{k}.png", "imageData": base64.b64encode(buf.getvalue()).decode(),
            "imageHeight": 30, "imageWidth": 40}))
    (root / "label_names.txt").write_text("_background_\nbox\nring\n")
    return root


def test_import_export_stats_round_trip(tmp_path: Path) -> None:
    src = _labelme_folder(tmp_path / "lm")
    r = run_segval("dataset", "import", f"source={src}", f"output={tmp_path / 'pkg'}", "name=lm",
                   "version=1.0.0", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "imported 3 images, 6 instances" in r.stdout and "package written" in r.stdout
    for fmt in ("coco", "label_maps", "panoptic"):
        r = run_segval("dataset", "export", f"root={tmp_path / 'pkg'}", f"format={fmt}",
                       f"output={tmp_path / ('e_' + fmt)}", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert f"as {fmt}" in r.stdout
    r = run_segval("dataset", "import", "format=coco", f"source={tmp_path / 'e_coco'}",
                   f"output={tmp_path / 'pkg2'}", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_segval("dataset", "export", f"root={tmp_path / 'pkg2'}", "format=coco",
                   f"output={tmp_path / 'e2'}", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    files = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file()}  # noqa: E731
    assert files(tmp_path / "e_coco") == files(tmp_path / "e2")
    r = run_segval("dataset", "stats", f"root={tmp_path / 'pkg'}", "mosaic.n=2",
                   f"hydra.run.dir={tmp_path / 'stats'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "train: 3 images, 6 instances" in r.stdout
    st = json.loads((tmp_path / "stats/stats.json").read_text())
    assert st["splits"]["train"]["images_per_class"] == {"_background_": 3, "box": 3, "ring": 3}
    assert (tmp_path / "stats/mosaic.png").is_file() and (tmp_path / "stats/stats.md").is_file()


def test_unknown_shape_type_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    src = _labelme_folder(tmp_path / "lm", bad=True)
    r = run_segval("dataset", "import", f"source={src}", f"output={tmp_path / 'pkg'}",
                   f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 2
    assert "img_1.json: shape 2 (label 'cable'): unknown shape_type 'spline'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "pkg").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pkg")]


def test_refuses_existing_output_and_missing_args(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    r = run_segval("dataset", "import", f"source={tmp_path}", f"output={tmp_path / 'pkg'}",
                   f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    r = run_segval("dataset", "export", "format=coco", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert r.returncode == 2 and "missing root=..., output=..." in r.stderr
    r = run_segval("dataset", "frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command 'dataset frobnicate'" in r.stderr
