"""`segval analyze`: end to end (train a tiny model on a shapes package, then analyse its run directory, marked
slow) and in process on hand-made run directories (fast)."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from segval.metrics.functional.semantic import semantic_metrics
from segval.report.markdown_safe import md_escape
from segval.metrics.results import metrics_payload, write_results
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError, SegvalError

from tests.helpers import run_segval, train_args

#: a class of the taxonomy that no image contains (and a name that needs escaping everywhere)
NEVER = "<b>&x"
CLASSES = ["background", "disc", "square", "bar", NEVER]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shapes package plus a fifth taxonomy class that never occurs."""
    root = write_shapes_package(tmp_path_factory.mktemp("data") / "shapes5", frames_per_video=2)
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    meta["taxonomy"].append({"id": 9, "name": NEVER, "color": [250, 200, 0], "isthing": True, "group": "deformable"})
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def trained(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "train"
    res = run_segval(*train_args(package, run_dir, steps=4), cwd=run_dir.parent)
    assert res.returncode == 0, res.output
    return run_dir


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_report(out: Path) -> dict:
    """The files every analysis writes; returns findings.json."""
    findings = json.loads((out / "findings.json").read_text())
    assert findings["schema_version"] == 1 and findings["split"] == "val"
    assert [c["name"] for c in findings["classes"]] == CLASSES
    for c in findings["classes"]:
        assert c["status"] in {"weak", "ok", "absent"}
        assert (c["IoU"] is None) == (c["status"] == "absent")
    assert NEVER in findings["summary"]["never_in_training"]
    md = (out / "report" / "report.md").read_text(encoding="utf-8")
    page = (out / "report" / "report.html").read_text(encoding="utf-8")
    parser = _Text()
    parser.feed(page)
    text = "\n".join(parser.text)
    for name in CLASSES:
        assert md_escape(name) in md and name in text
    assert "b" not in parser.tags and "<b>&x" not in page
    plots = {p.name for p in (out / "report" / "plots").glob("*.png")}
    assert {"iou_per_class.png", "confusion_matrix.png", "frequency_vs_iou.png"} <= plots
    for p in (out / "report" / "plots").glob("*.png"):
        Image.open(p).verify()
    return findings


@pytest.mark.slow
def test_analyze_a_train_run(trained: Path) -> None:
    out = trained.parent / "analyze"
    res = run_segval("analyze", f"run_dir={trained}", f"hydra.run.dir={out}", cwd=trained.parent)
    assert res.returncode == 0, res.output
    assert "findings (val" in res.stdout and f"report:    {out / 'report' / 'report.html'}" in res.stdout
    findings = check_report(out)
    assert findings["inputs"]["train_stats"] is True  # the package named in metrics.json was opened
    metrics = json.loads((trained / "metrics.json").read_text())
    assert findings["summary"]["mIoU"] == pytest.approx(metrics["summary"]["mIoU"])
    if (trained / "per_image.csv").is_file():  # written by the analysis callbacks during training
        assert (out / "per_image.csv").read_bytes() == (trained / "per_image.csv").read_bytes()
    assert not (trained / "findings.json").exists()  # the run analysed is left as it was


@pytest.mark.slow
def test_mosaic_predicts_with_the_run_checkpoint(trained: Path, package: Path) -> None:
    """With per-image scores, the worst images are drawn with the checkpoint's predictions."""
    run = trained.parent / "train_with_scores"
    shutil.copytree(trained, run)
    ids = [im["id"] for im in json.loads((package / "annotations" / "val.json").read_text())["images"]]
    names = json.loads((run / "metrics.json").read_text())["dataset"]["class_names"]
    with open(run / "per_image.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "pixels", "mIoU", "pixel_acc", "label_quality", "top_confused_gt", "top_confused_pred",
                    "top_confused_pixels", *[f"disagree_{n}" for n in names]])
        for k, iid in enumerate(ids):
            w.writerow([iid, 4096, 0.1, 0.5, 0.1 * k, "disc", "background", 10, *[k + 1] * len(names)])
    out = trained.parent / "analyze_scores"
    res = run_segval("analyze", f"run_dir={run}", "mosaic_k=3", f"hydra.run.dir={out}", cwd=trained.parent)
    assert res.returncode == 0, res.output
    check_report(out)
    mosaic = out / "report" / "plots" / "worst_images.png"
    assert mosaic.is_file()
    assert "image | ground truth only" not in res.stdout  # the checkpoint of metrics.json gave predictions
    assert (out / "per_image.csv").is_file()


@pytest.mark.slow
def test_analyze_a_checkpoint_evaluates_first(trained: Path, package: Path) -> None:
    best = next((trained / "checkpoints").glob("best-step*.ckpt"))
    out = trained.parent / "analyze_ckpt"
    res = run_segval("analyze", f"ckpt_path={best}", "data=package", f"data.root={package}", "data.num_workers=0",
                     f"hydra.run.dir={out}", cwd=trained.parent)
    assert res.returncode == 0, res.output
    for name in ("metrics.json", "confusion_matrix.npy", "per_image.csv", "boundary_iou.json", "class_table.csv"):
        assert (out / name).is_file(), name  # the evaluation ran with the analysis callbacks
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checkpoint"] == str(best.resolve()) and metrics["split"] == "val"
    findings = check_report(out)
    assert findings["inputs"] == {"train_stats": True, "boundary_iou": True, "per_image": True, "agreement": False}
    assert (out / "report" / "plots" / "boundary_vs_iou.png").is_file()
    if findings["summary"]["weak_classes"]:
        assert (out / "report" / "plots" / "worst_images.png").is_file()
        assert "image | ground truth only" not in res.stdout


@pytest.mark.slow
def test_missing_run_files_are_named_with_the_fix(trained: Path, tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(trained / "metrics.json", half / "metrics.json")
    res = run_segval("analyze", f"run_dir={half}", f"hydra.run.dir={tmp_path / 'out1'}", cwd=tmp_path)
    assert res.returncode == 2
    assert "confusion_matrix.npy not found" in res.stderr and "segval eval ckpt_path=" in res.stderr
    assert "Traceback" not in res.output
    res = run_segval("analyze", f"run_dir={tmp_path / 'out1'}", f"hydra.run.dir={tmp_path / 'out2'}", cwd=tmp_path)
    assert res.returncode == 2 and "metrics.json not found" in res.stderr
    res = run_segval("analyze", f"hydra.run.dir={tmp_path / 'out3'}", cwd=tmp_path)
    assert res.returncode == 2 and "run_dir=" in res.stderr and "ckpt_path=" in res.stderr


@pytest.mark.slow
def test_a_checkpoint_of_other_classes_is_refused(trained: Path, shapes_root: Path) -> None:
    best = next((trained / "checkpoints").glob("best-step*.ckpt"))  # 5 classes; shapes_root has 4
    out = trained.parent / "analyze_other"
    res = run_segval("analyze", f"ckpt_path={best}", "data=package", f"data.root={shapes_root}", "data.num_workers=0",
                     f"hydra.run.dir={out}", cwd=trained.parent)
    assert res.returncode == 2 and "classes" in res.stderr and "same taxonomy" in res.stderr
    assert not (out / "findings.json").exists()


# ---------------------------------------------------------------------------------------- in process, fast
def fake_run(run_dir: Path, data_root: Path, conf: np.ndarray, *, split: str = "train") -> Path:
    """A run directory as `segval eval` writes it, from a hand-made confusion matrix (no model)."""
    names = ["background", "cube", "cable"]
    payload = metrics_payload(
        semantic_metrics(conf), names, class_ids=[0, 1, 4], split=split, checkpoint=None, step=7,
        dataset={"name": "fixture", "version": "1.0.0", "source": str(data_root), "taxonomy_ids": [0, 1, 4],
                 "class_names": names},
    )
    write_results(payload, conf, run_dir)
    return run_dir


def compose(tmp_path: Path, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("segval.conf", version_base="1.3"):
        return hydra_compose("analyze", overrides=[
            f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}", "data.val_split=train", *overrides])


def test_analyze_in_process_without_checkpoint(make_coco_package, tmp_path: Path, capsys) -> None:
    from segval.commands.analyze import run as analyze

    root = make_coco_package()
    # cube (index 1) is mostly predicted as background; cable never appears (absent, not 0)
    conf = np.array([[20, 2, 0], [15, 5, 0], [0, 0, 0]])
    run = fake_run(tmp_path / "run", root, conf)
    with open(run / "per_image.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "pixels", "mIoU", "pixel_acc", "label_quality", "top_confused_gt", "top_confused_pred",
                    "top_confused_pixels", "disagree_background", "disagree_cube", "disagree_cable"])
        w.writerow([1, 48, 0.3, 0.5, 0.2, "cube", "background", 15, 2, 15, 0])
    findings = analyze(compose(tmp_path, f"run_dir={run}"))
    out = tmp_path / "out"
    by_name = {c["name"]: c for c in findings["classes"]}
    assert by_name["cable"]["status"] == "absent" and by_name["cable"]["IoU"] is None
    assert by_name["cube"]["status"] == "weak"
    assert {"confusion", "small_objects"} <= {c["cause"] for c in by_name["cube"]["causes"]}  # train stats were used
    assert [w["image_id"] for w in by_name["cube"]["worst_images"]] == [1]
    assert json.loads((out / "findings.json").read_text())["classes"][2]["status"] == "absent"
    assert (out / "per_image.csv").read_text() == (run / "per_image.csv").read_text()
    md = (out / "report" / "report.md").read_text()
    cable_row = next(line for line in md.splitlines() if line.startswith("| cable |")).strip("| ").split(" | ")
    assert cable_row[3] == "absent"
    assert (out / "report" / "plots" / "worst_images.png").is_file()  # image | ground truth only
    printed = capsys.readouterr().out
    assert "image | ground truth only: no checkpoint recorded in metrics.json" in printed
    assert "no boundary_iou.json" in printed and f"report:    {out / 'report' / 'report.html'}" in printed


def test_analyze_goes_on_without_the_dataset(tmp_path: Path, capsys) -> None:
    from segval.commands.analyze import run as analyze

    run = fake_run(tmp_path / "run", tmp_path / "gone", np.array([[20, 2, 0], [15, 5, 0], [0, 1, 3]]))
    findings = analyze(compose(tmp_path, f"run_dir={run}", f"data.root={tmp_path / 'gone'}"))
    assert findings["inputs"]["train_stats"] is False
    printed = capsys.readouterr().out
    assert "could not be opened" in printed and "few-examples" in printed
    assert (tmp_path / "out" / "report" / "report.html").is_file()
    assert not (tmp_path / "out" / "report" / "plots" / "worst_images.png").exists()


def test_run_dir_problems_are_clear(tmp_path: Path) -> None:
    from segval.analysis.run_files import load_run
    from segval.commands.analyze import _checks

    with pytest.raises(ConfigError, match="not a directory"):
        load_run(tmp_path / "nope")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SegvalError, match=r"metrics.json not found.*segval eval ckpt_path="):
        load_run(run)
    conf = np.array([[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    fake_run(run, tmp_path, conf)
    np.save(run / "confusion_matrix.npy", np.zeros((2, 2), np.int64))
    with pytest.raises(SegvalError, match="different runs"):
        load_run(run)
    (run / "confusion_matrix.npy").unlink()
    with pytest.raises(SegvalError, match="confusion_matrix.npy not found"):
        load_run(run)
    fake_run(run, tmp_path, np.zeros((3, 3), np.int64))  # an empty split: no labelled pixel at all
    with pytest.raises(SegvalError, match="no labelled pixel"):
        _checks(load_run(run), [])


def test_per_image_agreement_and_diagnosis_settings(tmp_path: Path) -> None:
    from segval.metrics.per_image_csv import read_per_image_csv as read_per_image
    from segval.analysis.run_files import load_agreement
    from segval.commands.analyze import diagnosis_config

    p = tmp_path / "per_image.csv"
    p.write_text("image_id,mIoU,label_quality,top_confused_gt,top_confused_pred,disagree_a\n"
                 "3,0.5,,a,b,12\n4,nan,0.25,,,0\n")
    rows = read_per_image(p)
    assert rows[0] == {"image_id": 3, "mIoU": 0.5, "label_quality": None, "top_confused_gt": "a",
                       "top_confused_pred": "b", "disagree_a": 12}
    assert np.isnan(rows[1]["mIoU"]) and rows[1]["top_confused_gt"] is None
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SegvalError, match="image_id"):
        read_per_image(tmp_path / "bad.csv")

    assert load_agreement(None) is None
    with pytest.raises(ConfigError, match="not found"):
        load_agreement(str(tmp_path / "none.json"))
    (tmp_path / "agree.json").write_text(json.dumps({"cube": 0.5}))
    with pytest.raises(ConfigError, match="per_class"):
        load_agreement(str(tmp_path / "agree.json"))
    (tmp_path / "agree.json").write_text(json.dumps({"per_class": {"cube": 0.5}}))
    assert load_agreement(str(tmp_path / "agree.json")) == {"per_class": {"cube": 0.5}}

    assert diagnosis_config({"threshold": 0.3}).threshold == 0.3
    with pytest.raises(ConfigError, match="threshlod"):
        diagnosis_config({"threshlod": 0.3})
    with pytest.raises(ConfigError, match="threshold"):
        diagnosis_config({"threshold": 3})
