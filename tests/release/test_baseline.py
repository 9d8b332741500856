"""Release with its baseline: bundle contents, rebuilding the model, the card's results table, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from segval.release.baseline import baseline_summary, load_baseline
from segval.dataset.package import DatasetPackage
from segval.release.versions import list_releases, release
from segval.demo.shapes import SHAPES_TAXONOMY, write_shapes_package
from segval.errors import DatasetError
from segval.models import SegmentationModule

NAMES = SHAPES_TAXONOMY.names  # background, disc, square, bar
ADAPTER = {"_target_": "segval.models.segformer.SegformerAdapter", "pretrained": None,
           "config": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 64], "num_attention_heads": [1, 1, 2, 2],
                      "decoder_hidden_size": 16, "drop_path_rate": 0.0}}
IOU = [0.9, 0.55, None, 0.25]  # square absent from GT and prediction


def make_run(run_dir: Path, names=NAMES, ids=None, step: int = 40) -> SegmentationModule:
    """A run directory as `segval train` leaves it: checkpoint, metrics.json, confusion matrix, .hydra/."""
    torch.manual_seed(0)
    ids = list(SHAPES_TAXONOMY.ids if ids is None else ids)
    dataset = {"name": "shapes", "version": "1.0.0", "taxonomy_ids": ids, "class_names": list(names)}
    model = SegmentationModule(num_classes=len(names), class_names=list(names), adapter=ADAPTER, dataset=dataset)
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt = run_dir / "checkpoints" / f"best-step{step:06d}.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "global_step": step}, ckpt)
    per_class = [{"name": n, "id": i, "index": k, "IoU": IOU[k], "Acc": None if IOU[k] is None else IOU[k] + 0.05,
                  "Dice": None, "gt_pixels": 0 if IOU[k] is None else 100, "pred_pixels": 0,
                  "status": "absent" if IOU[k] is None else "present"} for k, (n, i) in enumerate(zip(names, ids))]
    metrics = {"schema_version": 1, "dataset": {**dataset, "source": "x"}, "split": "val", "step": step,
               "checkpoint": str(ckpt), "summary": {"mIoU": 0.55, "mAcc": 0.6, "aAcc": 0.875, "fwIoU": 0.7},
               "per_class": per_class, "definitions": {}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    conf = np.zeros((len(names), len(names)), dtype=np.int64)
    conf[0, 0], conf[1, 1], conf[1, 0], conf[3, 3], conf[3, 1] = 90, 55, 45, 25, 75
    np.save(run_dir / "confusion_matrix.npy", conf)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("model:\n  adapter: tiny\nseed: 7\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=7\n")
    return model


@pytest.fixture(scope="module")
def pkg_root(tmp_path_factory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("pkg") / "shapes", images={"train": 4, "val": 2},
                                size=(32, 32))


def test_release_bundles_the_baseline_and_fills_the_card(pkg_root: Path, tmp_path: Path) -> None:
    model = make_run(tmp_path / "run")
    res = release(pkg_root, tmp_path / "releases", baseline=tmp_path / "run", day="2026-01-01")
    base = Path(res["path"]) / "baseline"
    assert sorted(p.name for p in base.iterdir()) == ["config.yaml", "findings.json", "findings.md", "metrics.json",
                                                       "model.json", "model.safetensors", "overrides.yaml"]
    assert res["baseline"]["files"] == sorted(p.name for p in base.iterdir())
    assert (base / "config.yaml").read_text() == "model:\n  adapter: tiny\nseed: 7\n"
    assert json.loads((base / "metrics.json").read_text()) == json.loads((tmp_path / "run" / "metrics.json").read_text())
    meta = json.loads((base / "model.json").read_text())
    assert meta["class_names"] == NAMES and meta["step"] == 40 and meta["num_classes"] == 4
    assert meta["adapter"]["pretrained"] is None and meta["source_checkpoint"] == "best-step000040.ckpt"
    assert meta["sha256"] == hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest()
    # findings computed from the confusion matrix: disc and bar under the 0.40 default? bar only
    findings = json.loads((base / "findings.json").read_text())
    assert findings["summary"]["weak_classes"] == ["bar"]

    # the model rebuilt from safetensors + JSON gives the same logits as the original
    rebuilt = load_baseline(base)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))
    assert rebuilt.loaded_step == 40

    card = (Path(res["path"]) / "README.md").read_text()
    assert "## Baseline results" in card
    assert "| disc | 55.00 | 60.00 |" in card and "| square | n/a | n/a |" in card and "| bar | 25.00 | 30.00 |" in card
    assert "| **mean** | **55.00** | **60.00** |" in card and "aAcc 87.50 %" in card
    assert "step 40" in card and "SegformerAdapter" in card
    assert baseline_summary(base)["summary"]["mIoU"] == 0.55
    # the released version is read-only, the bundle included
    assert not (base.stat().st_mode & 0o222) and not ((base / "model.safetensors").stat().st_mode & 0o222)


def test_findings_of_the_run_are_published_as_written(pkg_root: Path, tmp_path: Path) -> None:
    from segval.analysis.diagnosis import DiagnosisConfig, diagnose

    make_run(tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    written = diagnose(metrics, np.load(tmp_path / "run" / "confusion_matrix.npy"),
                       config=DiagnosisConfig(threshold=0.6))  # as `segval analyze diagnosis.threshold=0.6` would
    written = json.loads(json.dumps(written))
    assert written["summary"]["weak_classes"] == ["bar", "disc"]
    (tmp_path / "run" / "findings.json").write_text(json.dumps(written))
    res = release(pkg_root, tmp_path / "releases", baseline=tmp_path / "run")
    base = Path(res["path"]) / "baseline"
    assert json.loads((base / "findings.json").read_text()) == written
    assert "Weak classes (see `baseline/findings.md`): bar, disc." in (Path(res["path"]) / "README.md").read_text()


@pytest.mark.parametrize("case", ["names", "ids"])
def test_a_run_of_another_taxonomy_is_refused_before_writing(pkg_root: Path, tmp_path: Path, case: str) -> None:
    if case == "names":
        make_run(tmp_path / "run", names=["background", "disc", "cube", "bar"])
    else:
        make_run(tmp_path / "run", ids=[0, 1, 2, 9])
    with pytest.raises(DatasetError, match="cube" if case == "names" else r"\[0, 1, 2, 9\]"):
        release(pkg_root, tmp_path / "releases", baseline=tmp_path / "run")
    assert list_releases(tmp_path / "releases") == [] and not (tmp_path / "releases" / "1.0.0").exists()


def test_a_run_without_config_or_checkpoint_is_refused(pkg_root: Path, tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    (tmp_path / "run" / ".hydra" / "config.yaml").unlink()
    with pytest.raises(DatasetError, match="config"):
        release(pkg_root, tmp_path / "releases", baseline=tmp_path / "run")
    make_run(tmp_path / "run2")
    for p in (tmp_path / "run2" / "checkpoints").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="no checkpoint"):
        release(pkg_root, tmp_path / "releases", baseline=tmp_path / "run2")
    assert not (tmp_path / "releases" / "1.0.0").exists()


def test_domain_gap_goes_to_known_limitations(pkg_root: Path, tmp_path: Path) -> None:
    from segval.analysis.domain_gap import domain_gap

    def payload(split, ious):
        return {"dataset": {"name": "shapes", "version": "1.0.0"}, "split": split, "checkpoint": "c", "step": 1,
                "summary": {"mIoU": float(np.mean(ious)), "mAcc": 0.5, "aAcc": 0.5},
                "per_class": [{"name": n, "index": k, "IoU": v} for k, (n, v) in enumerate(zip(NAMES, ious))]}

    gap = domain_gap(payload("val", [0.9, 0.8, 0.7, 0.8]), payload("robot_cam", [0.9, 0.4, 0.6, 0.1]))
    (tmp_path / "gap.json").write_text(json.dumps(gap))
    res = release(pkg_root, tmp_path / "releases", domain_gap=tmp_path / "gap.json", loaders=False)
    card = (Path(res["path"]) / "README.md").read_text()
    lim = card.split("## Known limitations")[1].split("## Version history")[0]
    assert "mIoU is 80.00% on `val` of shapes 1.0.0 but 50.00% on `robot_cam`" in lim and "(-30.00 points)" in lim
    assert "`bar` 80.00% -> 10.00%, `disc` 80.00% -> 40.00%, `square` 70.00% -> 60.00%" in lim
    assert (Path(res["path"]) / "domain_gap.json").is_file() and not (Path(res["path"]) / "loaders").exists()
    # a gap measured on other classes is refused
    bad = dict(gap, per_class=[dict(r, name="x" + r["name"]) for r in gap["per_class"]], class_order=None)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match="classes"):
        release(pkg_root, tmp_path / "releases", domain_gap=tmp_path / "bad.json", bump="minor")
    assert list_releases(tmp_path / "releases") == ["1.0.0"]


def test_transparent_flag_round_trips_and_is_optional(tmp_path: Path) -> None:
    from segval.dataset.taxonomy import Category, Taxonomy

    meta = {"background_id": 0, "taxonomy": [{"id": 0, "name": "background", "isthing": False},
                                              {"id": 1, "name": "glass", "group": "rigid", "transparent": True},
                                              {"id": 2, "name": "mug"}]}
    tax = Taxonomy.from_dict(meta)
    assert [c.transparent for c in tax] == [False, True, False]
    out = tax.to_dict()["taxonomy"]
    assert out[1]["transparent"] is True and "transparent" not in out[0] and "transparent" not in out[2]
    assert Taxonomy.from_dict(yaml.safe_load(yaml.safe_dump(tax.to_dict()))) == tax
    with pytest.raises(ValueError, match="transparent"):
        Category(3, "x", (0, 0, 0), True, "rigid", "yes")
    # a package written before the flag existed opens unchanged
    pkg = DatasetPackage.open(write_shapes_package(tmp_path / "p", images={"train": 1}, size=(16, 16)))
    assert not any(c.transparent for c in pkg.taxonomy)


def test_an_analyze_output_publishes_its_findings_with_the_analysed_run(pkg_root: Path, tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    an = tmp_path / "an"
    (an / ".hydra").mkdir(parents=True)
    findings = {"schema_version": 1, "summary": {"mIoU": 0.55, "weak_classes": [], "absent_classes": []},
                "classes": [], "split": "val", "step": 40, "data_targets": {"recommendations": ["x"]}}
    (an / "findings.json").write_text(json.dumps(findings))
    (an / ".hydra" / "config.yaml").write_text("run_dir: run\nmosaic_k: 8\n")  # relative to where analyze ran
    (an / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"cwd": str(tmp_path)}}}))
    res = release(pkg_root, tmp_path / "releases", baseline=an, loaders=False)
    base = Path(res["path"]) / "baseline"
    assert json.loads((base / "findings.json").read_text()) == findings
    assert (base / "config.yaml").read_text() == (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert json.loads((base / "model.json").read_text())["step"] == 40
    assert (base / "findings.md").read_text().endswith("## Data targets\n\n- x\n")
