"""Commands killed with SIGKILL at seeded random moments of their writing leave either the previous state or
the complete new output, never a partial folder a later command reads as valid; a rerun completes.

Each command runs in a subprocess under a small harness that counts its write events (files opened for
writing, renames) and sends itself SIGKILL at the k-th one: a real kill -9, at a moment where something is
being written, chosen from a seeded generator among all the write events of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from segval.dataset.package import DatasetPackage
from segval.demo.shapes import write_shapes_package
from tests.helpers import run_segval

pytestmark = pytest.mark.slow

#: the harness: ``python -c HARNESS <kill at event k, 0 = never> <file for the event count> <segval words...>``
HARNESS = r"""
import builtins, io, os, runpy, signal, sys
kill_at, count_file = int(sys.argv[1]), sys.argv[2]
events = [0]
def tick():
    events[0] += 1
    if events[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
real_open, real_replace, real_rename = builtins.open, os.replace, os.rename
def counting_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        tick()
    return real_open(file, mode, *args, **kwargs)
def counting_replace(*args, **kwargs):
    tick()
    return real_replace(*args, **kwargs)
def counting_rename(*args, **kwargs):
    tick()
    return real_rename(*args, **kwargs)
builtins.open = io.open = counting_open
os.replace, os.rename = counting_replace, counting_rename
def report():
    with real_open(count_file, "w") as f:
        f.write(str(events[0]))
import atexit
atexit.register(report)
sys.argv = ["segval", *sys.argv[3:]]
runpy.run_module("segval.cli", run_name="__main__")
"""

SEED = 18


def run_harness(args: list[str], cwd: Path, kill_at: int) -> tuple[int, int, str]:
    """Run ``segval args`` killing it at write event ``kill_at`` (0: never); returns (exit code, events, output)."""
    count = cwd / f".events-{kill_at}"
    count.unlink(missing_ok=True)
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", HARNESS, str(kill_at), str(count), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    events = int(count.read_text()) if count.is_file() else -1
    return proc.returncode, events, proc.stdout + proc.stderr


def tree(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, bytes]:
    """Every visible file under ``root`` (hidden names and ``skip`` left out): path -> bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts) and not skip(rel):
            out[rel.as_posix()] = p.read_bytes()
    return out


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def kill_points(events: int, n: int = 2) -> list[int]:
    rng = random.Random(SEED + events)
    return sorted(rng.sample(range(1, events + 1), min(n, events)))


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_package(tmp_path_factory.mktemp("data") / "pkg", images={"train": 6, "val": 3},
                                frames_per_video=3)


@pytest.fixture(scope="module")
def coco_export(pkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segval.dataset.export import export_package

    out = tmp_path_factory.mktemp("export") / "coco"
    export_package(DatasetPackage.open(pkg), out, "coco")
    return out


def check_killed_then_rerun(args: list[str], out: Path, cwd: Path, *, skip: Callable[[Path], bool] = lambda p: False,
                            valid: Callable[[Path], None] | None = None, reset: Callable[[], None] | None = None) -> None:
    """Reference run, then for seeded kill points: killed run -> ``out`` absent or complete -> rerun -> complete."""
    code, events, output = run_harness(args, cwd, 0)
    assert code == 0, output
    assert events > 0
    reference = tree(out, skip)
    for k in kill_points(events):
        (reset or (lambda: __import__("shutil").rmtree(out)))()
        code, _, output = run_harness(args, cwd, k)
        assert code == -signal.SIGKILL, f"not killed at write event {k} of {events}: {output[-2000:]}"
        if out.exists():  # the complete new output, never a partial one
            assert tree(out, skip) == reference, f"partial output after a kill at write event {k} of {events}"
        assert not [n for n in visible(out.parent) if n.startswith(out.name) and n != out.name]
        res = run_segval(*args, cwd=cwd)
        done_before = res.returncode == 2 and "already exists" in res.output
        assert res.returncode == 0 or done_before, res.output
        assert tree(out, skip) == reference
        if valid is not None:
            valid(out)
        # the rerun removed what the killed process left half-written
        assert not [p for p in out.parent.iterdir() if ".segval-" in p.name]


def is_package(root: Path) -> None:
    from segval.dataset.validate import validate_package

    validate_package(DatasetPackage.open(root))


# ------------------------------------------------------------------------------------------------ commands
def test_dataset_import(coco_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported"
    check_killed_then_rerun(["dataset", "import", "format=coco", f"source={coco_export}", f"output={out}",
                             f"paths.log_dir={tmp_path / 'logs'}"], out, tmp_path, valid=is_package)


def test_dataset_export(pkg: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    check_killed_then_rerun(["dataset", "export", f"root={pkg}", "format=panoptic", f"output={out}",
                             f"paths.log_dir={tmp_path / 'logs'}"], out, tmp_path)


def test_dataset_clean(pkg: Path, tmp_path: Path) -> None:
    out = tmp_path / "cleaned"
    check_killed_then_rerun(["dataset", "clean", f"root={pkg}", f"output={out}", f"paths.log_dir={tmp_path / 'logs'}"],
                            out, tmp_path, valid=is_package, skip=lambda p: p.name == "CHANGELOG.md")


def test_dataset_split(pkg: Path, tmp_path: Path) -> None:
    out = tmp_path / "resplit"
    check_killed_then_rerun(["dataset", "split", f"source={pkg}", f"output={out}", "names=[train,val]",
                             "fractions=[0.67,0.33]", "allow=true", f"paths.log_dir={tmp_path / 'logs'}"],
                            out, tmp_path, valid=is_package)


def test_dataset_release(pkg: Path, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    out = releases / "1.0.0"
    args = ["dataset", "release", f"source={pkg}", f"releases={releases}", f"paths.log_dir={tmp_path / 'logs'}"]

    def reset() -> None:
        import shutil

        for p in [releases, *releases.rglob("*")] if releases.exists() else []:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(releases, ignore_errors=True)

    def valid(root: Path) -> None:
        is_package(root)
        assert (releases / "CHANGELOG.md").read_text().count("## 1.0.0 (") == 1
        assert visible(releases) == ["1.0.0", "CHANGELOG.md"]
        assert not os.access(root / "dataset.yaml", os.W_OK) or os.geteuid() == 0

    check_killed_then_rerun(args, out, tmp_path, valid=valid, reset=reset)
    reset()


def test_relabel_import(pkg: Path, tmp_path: Path) -> None:
    import shutil

    base = tmp_path / "rel"
    src = base / "1.0.0"
    shutil.copytree(pkg, src)
    coco = json.loads((src / "annotations" / "train.json").read_text())
    ann = coco["annotations"][0]
    other = next(c["id"] for c in coco["categories"] if c["id"] not in (ann["category_id"], 0))
    ann["category_id"] = other  # the annotator corrected one class
    export = tmp_path / "cvat.json"
    export.write_text(json.dumps(coco))
    out = base / "1.1.0"
    check_killed_then_rerun(["relabel", "import", "format=cvat", f"file={export}", "data=package",
                             f"data.root={src}", f"hydra.run.dir={tmp_path / 'import_run'}"], out, tmp_path,
                            valid=is_package, skip=lambda p: p.name == "CHANGELOG.md",
                            reset=lambda: _rmtree_ro(out))


def _rmtree_ro(path: Path) -> None:
    import shutil

    for p in [path, *path.rglob("*")] if path.exists() else []:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path, ignore_errors=True)


def test_relabel_queue(tmp_path: Path) -> None:
    from tests.commands.test_relabel import _package  # videos with one wrongly labelled frame

    pkg = _package(tmp_path / "moving")
    out = tmp_path / "queue"
    args = ["relabel", "queue", "data=package", f"data.root={pkg}", "relabel.budget=3", "relabel.evaluate=never",
            "relabel.progress=false", f"hydra.run.dir={out}"]

    def valid(root: Path) -> None:
        q = json.loads((root / "queue.json").read_text())
        assert len(q["items"]) >= 1 and (root / "queue.csv").is_file()

    code, events, output = run_harness(args, tmp_path, 0)
    assert code == 0, output
    reference = json.loads((out / "queue.json").read_text())["items"]
    for k in kill_points(events):
        _rmtree_ro(out)
        code, _, output = run_harness(args, tmp_path, k)
        assert code == -signal.SIGKILL, output[-2000:]
        if (out / "queue.json").exists():  # readers open queue.json: complete, with its table
            assert json.loads((out / "queue.json").read_text())["items"] == reference
            assert (out / "queue.csv").is_file()
        res = run_segval(*args, cwd=tmp_path)
        assert res.returncode == 0, res.output
        valid(out)
        assert json.loads((out / "queue.json").read_text())["items"] == reference


def test_relabel_embed(pkg: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["relabel", "embed", "data=package", f"data.root={pkg}", "relabel/sam2=tiny_random",
            f"relabel.cache_dir={cache}", "relabel.progress=false", f"hydra.run.dir={tmp_path / 'run'}"]
    code, events, output = run_harness(args, tmp_path, 0)
    assert code == 0, output
    reference = _entries(cache)
    assert len(reference) == 6  # one entry per train image
    for k in kill_points(events, n=3):
        _rmtree_ro(cache)
        code, _, output = run_harness(args, tmp_path, k)
        assert code == -signal.SIGKILL, output[-2000:]
        left = _entries(cache)  # each entry complete (it loads, checksum and all) and equal to the reference's
        assert all(_same(reference[name], entry) for name, entry in left.items())
        res = run_segval(*args, cwd=tmp_path)
        assert res.returncode == 0, res.output
        assert f"{len(left)} already cached, {6 - len(left)} computed" in res.output
        now = _entries(cache)
        assert now.keys() == reference.keys() and all(_same(reference[n], now[n]) for n in now)


def _entries(cache: Path) -> dict[str, tuple[dict, dict]]:
    """Visible cache entries: name -> (metadata, tensors); a partial file would fail to load."""
    from safetensors import safe_open

    out = {}
    for f in sorted(cache.rglob("*.safetensors")) if cache.exists() else []:
        if not f.name.startswith("."):
            with safe_open(str(f), "pt") as h:
                out[f.relative_to(cache).as_posix()] = (h.metadata(), {k: h.get_tensor(k) for k in h.keys()})
    return out


def _same(a: tuple[dict, dict], b: tuple[dict, dict]) -> bool:
    """Same metadata (checksum included) and the same tensors (float tolerance: batch composition may differ)."""
    import torch

    return a[0] == b[0] and a[1].keys() == b[1].keys() and all(
        torch.allclose(a[1][k], b[1][k], rtol=1e-4, atol=1e-5) for k in a[1])


def test_validate_resumes_the_interrupted_stage_with_the_same_verdict(pkg: Path, tmp_path: Path) -> None:
    out = tmp_path / "validate"
    train = "[" + ",".join(f'"{o}"' for o in (
        "trainer.max_steps=6", "trainer.val_check_interval=3", "data.crop_size=[64,64]", "data.num_workers=0",
        "data.batch_size=2", "data.val_batch_size=2", "logger=csv", "callbacks.model_checkpoint.every_n_train_steps=2",
    )) + "]"
    args = ["validate", "data=package", f"data.root={pkg}", "validate.stages=[qa,train,gate]",
            f"validate.overrides.train={train}", f"hydra.run.dir={out}"]

    def outcome() -> tuple:
        summary = json.loads((out / "validate.json").read_text())
        metrics = json.loads((out / "train" / "seed0" / "metrics.json").read_text())
        metrics.pop("checkpoint", None)
        verdict = json.loads((out / "gate" / "verdict.json").read_text())
        return summary["exit_code"], metrics, verdict.get("decision", verdict.get("verdict"))

    code, events, output = run_harness(args, tmp_path, 0)
    assert code in (0, 1, 2) and (out / "validate.json").is_file(), output
    reference = outcome()
    k = kill_points(events, 1)[0]
    _rmtree_ro(out)
    code, _, output = run_harness(args, tmp_path, k)
    assert code == -signal.SIGKILL, output[-2000:]
    done = [p.parent.relative_to(out).as_posix() for p in out.rglob(".validate_done.json")]
    res = run_segval(*args, cwd=tmp_path)
    assert res.returncode == reference[0], res.output
    for stage in done:  # what finished before the kill is not redone
        assert f"[validate] {stage}: done before" in res.output
    assert outcome() == reference
