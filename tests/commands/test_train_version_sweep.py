"""Dataset versions as a sweep axis: `segval train -m data.version=1.0.0,1.1.0` gives one W&B run per job,
all in the sweep's group, each tagged with its version and carrying the version's content hash; `segval
validate` of 1.1.0 compares it with the sweep's 1.0.0 run and exits with the gate's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from segval.dataset.content_hash import package_content_hash
from segval.release.versions import release
from segval.demo.shapes import write_shapes_package
from segval.tracking.offline import offline_runs

from tests.helpers import run_segval

pytestmark = pytest.mark.slow

TINY = ["data.crop_size=[64,64]", "data.num_workers=0", "data.batch_size=2", "data.val_batch_size=2",
        "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
        "callbacks=none", "evaluate_best=false"]


def make_releases(folder: Path) -> Path:
    """Two releases of a shapes package: 1.0.0, and 1.1.0 with three masks relabelled."""
    work = write_shapes_package(folder / "work", images={"train": 4, "val": 2}, size=(64, 64))
    release(work, folder / "releases", notes="first")
    ann_path = work / "annotations" / "train.json"
    ann = json.loads(ann_path.read_text())
    for a in ann["annotations"][:3]:
        a["category_id"] = 2 if a["category_id"] == 1 else 1
    ann_path.write_text(json.dumps(ann))
    shutil.rmtree(work / "label_maps")
    release(work, folder / "releases", bump="minor", notes="relabelled 3 masks")
    return folder / "releases"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_releases(tmp_path_factory.mktemp("versions"))


@pytest.fixture(scope="module")
def sweep(releases: Path) -> Path:
    """``segval train -m`` over the two versions (one seed each) into a folder named version-study."""
    sweep = releases.parent / "version-study"
    res = run_segval("train", "-m", "data=package", f"data.releases={releases}", "data.version=1.0.0,1.1.0",
                     *TINY, f"hydra.sweep.dir={sweep}", cwd=releases.parent)
    assert res.returncode == 0, res.output[-3000:]
    return sweep


def test_multirun_over_two_versions_gives_two_tagged_runs_in_one_group(releases: Path, sweep: Path) -> None:
    hashes = {v: package_content_hash(releases / v) for v in ("1.0.0", "1.1.0")}
    assert hashes["1.0.0"] != hashes["1.1.0"]
    for job, version in (("0", "1.0.0"), ("1", "1.1.0")):
        ds = json.loads((sweep / job / "metrics.json").read_text())["dataset"]
        assert (ds["name"], ds["version"], ds["content_hash"]) == ("shapes", version, hashes[version])
        assert Path(ds["source"]) == releases / version

    runs = offline_runs(sweep)
    assert len(runs) == 2  # one run per job, none shared, none left open
    assert {r["group"] for r in runs} == {"version-study"}
    assert len({r["id"] for r in runs}) == 2
    by_version = {}
    for r in runs:
        versions = [t for t in r["tags"] if t.startswith("v")]
        assert len(versions) == 1 and "shapes" in r["tags"]
        by_version[versions[0]] = r
    assert sorted(by_version) == ["v1.0.0", "v1.1.0"]
    for tag, r in by_version.items():
        version = tag[1:]
        # the config is logged, with the content hash of the version the job read
        assert json.loads(r["config"]["dataset"])["content_hash"] == hashes[version]
        assert json.loads(r["config"]["data"])["version"] == version
        art = [a for a in r["artifacts"] if a["type"] == "dataset"]
        assert len(art) == 1 and art[0]["name"] == "shapes" and f"v{version}" in art[0]["aliases"]
        assert all(ref.startswith(f"file://{releases / version}") for ref in art[0]["references"])
        assert json.loads(art[0]["metadata"])["content_hash"] == hashes[version]


def test_version_resolution_and_errors(releases: Path) -> None:
    from segval.errors import ConfigError
    from segval.release.resolvers import package_datamodule, release_root

    assert release_root(str(releases), "1.0.0") == str(releases / "1.0.0")
    assert release_root(str(releases), None) == str(releases / "1.1.0")  # the newest
    assert release_root(None, "1.0.0") is None
    dm = package_datamodule(releases=str(releases), version="1.1.0", root=release_root(str(releases), "1.1.0"))
    assert dm.dataset_info()["version"] == "1.1.0"
    with pytest.raises(ConfigError, match=r"data.version=2.0.0 is not released .*1.0.0.*1.1.0"):
        package_datamodule(releases=str(releases), version="2.0.0", root=release_root(str(releases), "2.0.0"))
    with pytest.raises(ConfigError, match="says version 1.0.0 but data.version=1.1.0"):
        package_datamodule(version="1.1.0", root=str(releases / "1.0.0"))
    with pytest.raises(ConfigError, match="data.releases=<releases folder> data.version=X.Y.Z"):
        package_datamodule(root=None)
    with pytest.raises(ConfigError, match="holds no release"):
        release_root(str(releases / "1.0.0" / "images"), None)


def test_validate_compares_with_the_previous_version_and_exits_with_the_gate(releases: Path, sweep: Path,
                                                                             tmp_path: Path) -> None:
    """`segval validate` with the real commands: QA, training, compare against the 1.0.0 run of the sweep, gate."""
    train = ",".join(f'"{o}"' for o in TINY if not o.startswith("data."))
    res = run_segval("validate", f"data.releases={releases}", "data.version=1.1.0",
                     *(o for o in TINY if o.startswith("data.")), f"validate.overrides.train=[{train}]",
                     "validate.stages=[qa,train,compare,gate]", f"validate.previous=[{sweep / '0'}]",
                     cwd=tmp_path, env={"SEGVAL_ROOT": str(tmp_path)})
    out = tmp_path / "outputs" / "validate" / "shapes-1.1.0"  # one folder per version: running again resumes
    assert (out / "validate.json").is_file(), res.output[-3000:]
    summary = json.loads((out / "validate.json").read_text())
    assert summary["ran"] == ["qa", "train/seed0", "compare", "gate"], res.output[-3000:]
    markers = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob(".validate_done.json"))
    assert markers == ["compare", "gate", "qa", "train/seed0"]  # each stage done, in its own folder
    assert (out / "qa" / "qa.json").is_file() and (out / "train" / "seed0" / "metrics.json").is_file()
    compare = json.loads((out / "compare" / "compare.json").read_text())
    assert compare["baseline"] == "1.0.0" and [g["label"] for g in compare["groups"]] == ["1.0.0", "1.1.0"]
    verdict = json.loads((out / "gate" / "verdict.json").read_text())
    assert verdict["candidate"]["dataset"]["version"] == "1.1.0"
    assert res.returncode == verdict["exit_code"] == summary["exit_code"]
    # (resuming without redoing finished stages: tests/unit/test_validate.py counts the calls)
