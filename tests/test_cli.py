"""Bad configuration and failures: one clear message, non-zero exit, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_segval, train_args

pytestmark = pytest.mark.slow


def assert_clean_error(res, code: int, *needles: str) -> None:  # noqa: ANN001
    assert res.returncode == code, res.output
    assert "Traceback" not in res.output, res.output
    for needle in needles:
        assert needle in res.output, res.output


def test_top_level_help_lists_commands(tmp_path: Path) -> None:
    res = run_segval("--help", cwd=tmp_path)
    assert res.returncode == 0
    for cmd in ("train", "eval", "data render", "data check"):
        assert cmd in res.stdout


def test_unknown_command(tmp_path: Path) -> None:
    assert_clean_error(run_segval("trian", cwd=tmp_path), 2, "unknown command")


def test_unknown_config_key(shapes_root: Path, tmp_path: Path) -> None:
    res = run_segval(*train_args(shapes_root, tmp_path / "r", "trainer.max_stepz=3"), cwd=tmp_path)
    assert_clean_error(res, 1, "max_stepz")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_missing_dataset_root(tmp_path: Path) -> None:
    res = run_segval(*train_args(tmp_path / "nowhere", tmp_path / "r"), cwd=tmp_path)
    assert_clean_error(res, 2, "dataset.yaml", str(tmp_path / "nowhere"))


def test_pretrained_directory_missing(shapes_root: Path, tmp_path: Path) -> None:
    res = run_segval(*train_args(shapes_root, tmp_path / "r", f"model.adapter.pretrained={tmp_path}/no_such_dir"),
                     cwd=tmp_path)
    assert_clean_error(res, 2, "no_such_dir", "pretrained=null")


def test_pretrained_hub_id_offline(shapes_root: Path, tmp_path: Path) -> None:
    res = run_segval(*train_args(shapes_root, tmp_path / "r", "model=segformer_b0"), cwd=tmp_path,
                     env={"HF_HOME": str(tmp_path / "hf")})
    assert_clean_error(res, 2, "nvidia/mit-b0", "HF_HUB_OFFLINE")


def test_nan_loss_stops_naming_the_step(shapes_root: Path, tmp_path: Path) -> None:
    res = run_segval(*train_args(shapes_root, tmp_path / "r", "model.optimizer.lr=1e30", steps=6), cwd=tmp_path)
    assert_clean_error(res, 3, "at step")


def test_eval_refuses_a_checkpoint_of_another_taxonomy(shapes_root: Path, tmp_path: Path) -> None:
    import numpy as np

    from segval.dataset.taxonomy import Category, Taxonomy
    from segval.dataset.writer import InstanceMask, PackageWriter

    run = tmp_path / "r"
    assert run_segval(*train_args(shapes_root, run, steps=1), cwd=tmp_path).returncode == 0
    cups = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, "cup", (9, 9, 9), True, "rigid")], 0)
    with PackageWriter(tmp_path / "cups", name="cups", version="1.0.0", taxonomy=cups, splits=["train", "val"]) as w:
        mask = np.zeros((64, 64), bool)
        mask[10:20, 10:20] = True
        for split in ("train", "val"):
            w.add_image(split, np.zeros((64, 64, 3), np.uint8), "a.png", instances=[InstanceMask(1, mask)])
    res = run_segval("eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "data=package",
                     f"data.root={tmp_path / 'cups'}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert_clean_error(res, 2, "cup")
