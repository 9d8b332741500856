"""`segval dataset publish`: dry run lists the files; offline / no token is a clear error with nothing done."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from segval.release.publish import PublishError, publish, upload_plan
from segval.release.versions import release
from segval.demo.shapes import write_shapes_package

from tests.helpers import run_segval


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pub")
    src = write_shapes_package(tmp / "shapes", images={"train": 3, "val": 2}, size=(16, 16))
    release(src, tmp / "releases")
    return tmp / "releases"


def _all_files(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = p.stat().st_size
    return out


def test_dry_run_lists_every_file_of_the_version(releases: Path, tmp_path: Path) -> None:
    run = run_segval("dataset", "publish", f"releases={releases}", "repo_id=my-lab/shapes", "publish.dry_run=true",
                     f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    assert run.returncode == 0, run.output
    plan = json.loads((tmp_path / "r" / "publish.json").read_text())
    files = _all_files(releases / "1.0.0")
    assert {f["path"]: f["bytes"] for f in plan["files"]} == files
    assert plan["num_files"] == len(files) and plan["total_bytes"] == sum(files.values())
    assert plan["tag"] == "1.0.0" and plan["repo_type"] == "dataset" and plan["dry_run"] is True
    for name in ("README.md", "dataset.yaml", "annotations/train.json", "loaders/torch_dataset.py"):
        assert name in files and f"  {name}" in run.stdout
    assert "would upload" in run.stdout and "nothing was uploaded" in run.stdout


@pytest.mark.parametrize("offline", ["1", "0"])
def test_offline_or_no_token_is_a_clear_error_and_nothing_is_written(releases: Path, tmp_path: Path,
                                                                     offline: str) -> None:
    env = {"HF_HUB_OFFLINE": offline, "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": ""}
    run = run_segval("dataset", "publish", f"root={releases / '1.0.0'}", "repo_id=my-lab/shapes",
                     f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, env=env)
    assert run.returncode == 2, run.output
    assert ("HF_HUB_OFFLINE is set" if offline == "1" else "no Hugging Face token") in run.stderr
    assert "Nothing was uploaded" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r" / "publish.json").exists()


def test_bad_repo_id_and_unreleased_folder(releases: Path, tmp_path: Path) -> None:
    run = run_segval("dataset", "publish", f"releases={releases}", "repo_id=shapes", "publish.dry_run=true",
                     f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert run.returncode == 2 and "repo_id" in run.stderr
    run = run_segval("dataset", "publish", f"releases={releases}", "version=9.0.0", "repo_id=a/b",
                     "publish.dry_run=true", f"hydra.run.dir={tmp_path / 'r2'}", cwd=tmp_path)
    assert run.returncode == 2 and "9.0.0 is not released" in run.stderr


class RecordingApi:
    """Stands in for HfApi: records the calls publish() makes, in order (the Hub is not reachable here)."""

    def __init__(self, tags=(), fail_upload=False):
        self.calls: list[tuple[str, dict]] = []
        self.tags = list(tags)
        self.fail_upload = fail_upload

    def whoami(self, token=None):
        self.calls.append(("whoami", {"token": token}))
        return {"name": "me"}

    def list_repo_refs(self, repo_id, **kw):
        self.calls.append(("list_repo_refs", {"repo_id": repo_id, **kw}))
        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in self.tags])

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        if self.fail_upload:
            raise ConnectionError("network down")
        return SimpleNamespace(oid="abc123")

    def create_tag(self, repo_id, **kw):
        self.calls.append(("create_tag", {"repo_id": repo_id, **kw}))


def test_upload_is_one_commit_on_main_then_a_tag(releases: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        pytest.skip("huggingface_hub was imported with HF_HUB_OFFLINE set")
    api = RecordingApi(tags=["0.9.0"])
    res = publish(releases / "1.0.0", "my-lab/shapes", token="t0k", api=api)
    assert [c[0] for c in api.calls] == ["whoami", "list_repo_refs", "create_repo", "upload_folder", "create_tag"]
    up = api.calls[3][1]
    assert up["repo_type"] == "dataset" and up["revision"] == "main" and up["delete_patterns"] == "*"
    assert Path(up["folder_path"]) == (releases / "1.0.0").resolve()
    assert api.calls[4][1]["tag"] == "1.0.0" and api.calls[4][1]["revision"] == "abc123"
    assert res["commit"] == "abc123" and res["url"].endswith("/datasets/my-lab/shapes/tree/1.0.0")
    assert res["num_files"] == len(upload_plan(releases / "1.0.0", "my-lab/shapes")["files"])

    # a version already on the Hub is never overwritten: refused before any upload
    api = RecordingApi(tags=["1.0.0"])
    with pytest.raises(PublishError, match="already published"):
        publish(releases / "1.0.0", "my-lab/shapes", token="t0k", api=api)
    assert [c[0] for c in api.calls] == ["whoami", "list_repo_refs"]
    # a failed upload is reported and no tag is made
    api = RecordingApi(fail_upload=True)
    with pytest.raises(PublishError, match="main is unchanged"):
        publish(releases / "1.0.0", "my-lab/shapes", token="t0k", api=api)
    assert "create_tag" not in [c[0] for c in api.calls]


@pytest.mark.parametrize("override", ["publish.token=hf_SECRET123", "+publish.token=hf_SECRET123",
                                      "++logger.wandb.api_key=hf_SECRET123"])
def test_a_token_on_the_command_line_is_refused_before_anything_is_written(releases: Path, tmp_path: Path,
                                                                         override: str) -> None:
    run = run_segval("dataset", "publish", f"root={releases / '1.0.0'}", "repo_id=my-lab/shapes", override,
                     f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    assert run.returncode == 2, run.output
    assert "on the command line would be written to .hydra/overrides.yaml" in run.stderr and "HF_TOKEN" in run.stderr
    assert "hf_SECRET123" not in run.output
    assert not (tmp_path / "r").exists()  # no .hydra/overrides.yaml holding it


class LeakyApi(RecordingApi):
    def whoami(self, token=None):
        raise ConnectionError(f"401 for https://huggingface.co/api/whoami-v2 with Authorization: Bearer {token}")


def test_the_token_never_reaches_an_error_message(releases: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_SECRET123")
    with pytest.raises(PublishError) as err:
        publish(releases / "1.0.0", "my-lab/shapes", api=LeakyApi())
    assert "hf_SECRET123" not in str(err.value) and "Bearer ***" in str(err.value)
    assert err.value.__cause__ is None
