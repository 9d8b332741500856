"""segval.release.versions: semver, releases (never overwritten, read-only, ids kept) and diffs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from segval.dataset.package import DatasetPackage
from segval.release.versions import (bump_version, diff_packages, format_diff, list_releases, next_version,
                                     parse_version, release)
from segval.demo.shapes import write_shapes_package
from segval.errors import ConfigError, DatasetError


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    return write_shapes_package(tmp_path / "work", images={"train": 3, "val": 2}, size=(32, 32))


def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _edit_yaml(path: Path, **kw) -> None:
    meta = yaml.safe_load(path.read_text())
    meta.update(kw)
    path.write_text(yaml.safe_dump(meta, sort_keys=False))


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_semver():
    assert parse_version("1.2.3") == (1, 2, 3)
    assert bump_version("1.2.3", "major") == "2.0.0"
    assert bump_version("1.2.3", "minor") == "1.3.0"
    assert bump_version("1.2.3", "patch") == "1.2.4"
    assert next_version("0.3.0", [], bump="minor", version=None) == "0.3.0"  # first release: source's version
    assert next_version("0.3.0", ["1.0.0", "1.4.0"], bump="patch", version=None) == "1.4.1"
    with pytest.raises(ConfigError, match="not a semantic version"):
        parse_version("v1.2")
    with pytest.raises(ConfigError, match="bump="):
        bump_version("1.0.0", "huge")
    with pytest.raises(ConfigError, match="not newer than the latest release 1.4.0"):
        next_version("1.0.0", ["1.4.0"], bump=None, version="1.3.9")


def test_release_writes_read_only_version_with_card_and_changelog(work, tmp_path):
    rel = tmp_path / "releases"
    res = release(work, rel, notes="initial labels", day="2026-01-01")
    target = rel / "1.0.0"
    assert res["version"] == "1.0.0" and res["previous"] is None and Path(res["path"]) == target
    assert list_releases(rel) == ["1.0.0"]
    assert DatasetPackage.open(target).version == "1.0.0"
    log = (target / "CHANGELOG.md").read_text()
    assert "## 1.0.0 (2026-01-01)" in log and "initial labels" in log and "first release" in log
    assert (rel / "CHANGELOG.md").read_text() == log
    assert (target / "README.md").read_text().startswith("---\n")
    for p in [target, *target.rglob("*")]:
        assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), p
        assert p.stat().st_mode & stat.S_IROTH, p
    assert not list(rel.glob(".*partial"))


def test_release_refuses_to_overwrite(work, tmp_path):
    rel = tmp_path / "releases"
    release(work, rel, version="1.0.0")
    before = _snapshot(rel)
    _edit_json(work / "annotations" / "train.json", lambda d: d["annotations"][0].update(category_id=3))
    with pytest.raises(DatasetError, match=r"1\.0\.0 is already released; a release is never overwritten"):
        release(work, rel, version="1.0.0")
    # a folder of that name that is no release (e.g. copied by hand) is not overwritten either
    (rel / "1.1.0").mkdir()
    with pytest.raises(DatasetError, match="already released"):
        release(work, rel, bump="minor")
    (rel / "1.1.0").rmdir()
    assert _snapshot(rel) == before
    assert sorted(p.name for p in rel.iterdir()) == [".segval.lock", "1.0.0", "CHANGELOG.md"]  # the lock stays


def test_deleted_id_must_be_deprecated(work, tmp_path):
    rel = tmp_path / "releases"
    release(work, rel)
    gone: list[int] = []
    _edit_json(work / "annotations" / "train.json", lambda d: gone.append(d["annotations"].pop(1)["id"]))
    with pytest.raises(DatasetError, match=rf"split 'train': annotation ids {gone[0]}\b.*deprecated"):
        release(work, rel, bump="minor")
    assert list_releases(rel) == ["1.0.0"]
    _edit_yaml(work / "dataset.yaml", deprecated={"annotations": gone})
    res = release(work, rel, bump="minor", notes="dropped a duplicate", day="2026-02-01")
    assert res["version"] == "1.1.0" and res["previous"] == "1.0.0"
    assert res["diff"]["splits"]["train"]["annotations"]["deprecated"] == gone
    log = (rel / "1.1.0" / "CHANGELOG.md").read_text()
    assert log.index("## 1.1.0") < log.index("## 1.0.0")  # newest first, history kept
    assert f"train deprecated: {gone[0]}" in log and "dropped a duplicate" in log
    assert "## 1.1.0" in (rel / "1.1.0" / "README.md").read_text().replace("###", "##")


def test_per_split_deprecated_and_bad_deprecated(work, tmp_path):
    rel = tmp_path / "releases"
    release(work, rel)
    val = work / "annotations" / "val.json"
    data = json.loads(val.read_text())
    first = data["images"].pop(0)["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != first]
    val.write_text(json.dumps(data))
    _edit_yaml(work / "dataset.yaml", deprecated={"val": {"images": [first]}})
    with pytest.raises(DatasetError, match=r"split 'val': annotation ids"):
        release(work, rel, bump="patch")
    _edit_yaml(work / "dataset.yaml", deprecated={"images": "all"})
    with pytest.raises(DatasetError, match="must be a list of integer ids"):
        release(work, rel, bump="patch")
    _edit_yaml(work / "dataset.yaml", deprecated={"test": {"images": [1]}})
    with pytest.raises(DatasetError, match="unknown key 'test'"):
        release(work, rel, bump="patch")
    prev = json.loads((rel / "1.0.0" / "annotations" / "val.json").read_text())
    gone = sorted({a["id"] for a in prev["annotations"]} - {a["id"] for a in data["annotations"]})
    _edit_yaml(work / "dataset.yaml", deprecated={"val": {"images": [first], "annotations": gone}})
    res = release(work, rel, bump="patch")
    assert res["version"] == "1.0.1"
    assert res["diff"]["splits"]["val"]["images"]["deprecated"] == [first]
    assert res["diff"]["splits"]["train"]["images"]["deprecated"] == []


def test_diff_added_changed_deprecated_removed_and_pixels(work, tmp_path):
    a = tmp_path / "a"
    write_shapes_package(a, images={"train": 3, "val": 2}, size=(32, 32))
    train = work / "annotations" / "train.json"
    data = json.loads(train.read_text())
    changed = data["annotations"][0]
    changed["category_id"] = 3 if changed["category_id"] != 3 else 1
    removed = data["annotations"].pop(1)["id"]
    deprecated = data["annotations"].pop(1)["id"]
    new = dict(data["annotations"][0], id=999)
    data["annotations"].append(new)
    train.write_text(json.dumps(data))
    _edit_yaml(work / "dataset.yaml", deprecated={"train": {"annotations": [deprecated]}})
    diff = diff_packages(DatasetPackage.open(a), DatasetPackage.open(work))
    ann = diff["splits"]["train"]["annotations"]
    assert ann == {"added": [999], "changed": [changed["id"]], "deprecated": [deprecated], "removed": [removed]}
    assert diff["splits"]["val"]["annotations"] == {"added": [], "changed": [], "deprecated": [], "removed": []}
    assert diff["totals"]["annotations"] == {"added": 1, "changed": 1, "deprecated": 1, "removed": 1}
    px = diff["pixels"]
    assert sum(v["gained"] for v in px.values()) == sum(v["lost"] for v in px.values()) > 0
    assert diff["splits"]["train"]["images_compared"] >= 1
    md = format_diff(diff)
    assert "annotations removed (1)" in md and "| class | gained | lost | net |" in md
    same = diff_packages(DatasetPackage.open(a), DatasetPackage.open(a))
    assert all(v == 0 for t in same["totals"].values() for v in t.values())
    assert all(v == {"gained": 0, "lost": 0} for v in same["pixels"].values())


def _release_in_child(work: str, rel: str, barrier, results) -> None:
    from segval.errors import LockedError

    barrier.wait(30)
    try:
        results.put(release(work, rel, bump="minor")["version"])
    except LockedError as err:
        results.put(f"locked: {err}")


def test_concurrent_releases_get_one_version_each_or_are_refused(work, tmp_path):
    import multiprocessing

    rel = tmp_path / "releases"
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_release_in_child, args=(str(work), str(rel), barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in procs]
    versions = sorted(o for o in outcomes if not o.startswith("locked"))
    refused = [o for o in outcomes if o.startswith("locked")]
    assert versions and len(versions) + len(refused) == 3
    assert len(set(versions)) == len(versions)  # never two releases of one version
    # the holder names itself once it has the lock; a contender in that instant sees "another process"
    assert all("is being written by" in r and "wait until it has finished" in r for r in refused)
    assert list_releases(rel) == versions
    top = (rel / "CHANGELOG.md").read_text()
    assert all(top.count(f"## {v} (") == 1 for v in versions)
    assert not [p for p in rel.iterdir() if p.name.startswith(".") and p.name != ".segval.lock"]


def test_the_next_release_finishes_one_killed_after_its_rename(work, tmp_path):
    rel = tmp_path / "releases"
    release(work, rel, day="2026-01-01")
    # what a kill right after the version folder was renamed into place leaves: writable, no top entry
    for p in [rel / "1.0.0", *(rel / "1.0.0").rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    (rel / "CHANGELOG.md").unlink()
    release(work, rel, bump="minor", day="2026-01-02")
    for p in [rel / "1.0.0", *(rel / "1.0.0").rglob("*")]:
        assert not p.stat().st_mode & stat.S_IWUSR, p
    top = (rel / "CHANGELOG.md").read_text()
    assert top.index("## 1.1.0 (2026-01-02)") < top.index("## 1.0.0 (2026-01-01)")
