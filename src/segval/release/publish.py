"""Publish a released dataset version to the Hugging Face Hub (``segval dataset publish``).

A version ``<releases>/<X.Y.Z>/`` (written by ``segval dataset release``, card README.md included)
goes to a Hub *dataset* repository:

1. checks, before any upload: the folder is a released package (dataset.yaml + README.md, version
   X.Y.Z), ``HF_HUB_OFFLINE`` is not set, a token is found (``token=``, ``HF_TOKEN`` or
   ``huggingface-cli login``), the Hub answers (``whoami``), and the tag ``<version>`` does not exist
   in the repository yet (a published version is never overwritten);
2. ``create_repo(repo_type="dataset", exist_ok=True)``;
3. one commit on ``main`` holding exactly the version's files (``upload_folder`` with
   ``delete_patterns="*"``: files of the previous version that are gone are removed in the same
   commit; the Hub keeps ``.gitattributes``). A commit is atomic on the Hub: an upload that fails
   leaves ``main`` as it was;
4. the tag ``<version>`` on that commit, so every version stays loadable as a revision:
   ``load_dataset(repo_id, revision="1.2.0")`` / ``snapshot_download(repo_id, repo_type="dataset",
   revision="1.2.0")``.

``dry_run=True`` does step 1's local checks only and returns the plan: the files (relative paths
and sizes), repository, revision and tag; nothing is contacted or written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from segval.errors import ConfigError, DatasetError, SegvalError

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
TRUE = ("1", "true", "yes", "on")


class PublishError(SegvalError):
    """The upload cannot be done (no token, no network, the version is on the Hub already)."""


def upload_plan(version_dir: str | os.PathLike, repo_id: str) -> dict[str, Any]:
    """What :func:`publish` would upload: ``{repo_id, repo_type, revision, tag, name, version, root,
    files: [{path, bytes}], num_files, total_bytes}`` (files sorted, hidden files left out).

    Raises:
        ConfigError: a malformed ``repo_id``.
        DatasetError: not a released version (no dataset.yaml / README.md, or a version that is not X.Y.Z).
    """
    from segval.dataset.package import DatasetPackage
    from segval.dataset.versioning import VERSION_RE

    if not isinstance(repo_id, str) or not REPO_ID_RE.match(repo_id):
        raise ConfigError(f"repo_id must be '<user or organisation>/<name>' (e.g. my-lab/tabletop), got {repo_id!r}")
    root = Path(version_dir).expanduser().resolve()
    pkg = DatasetPackage.open(root)
    if not VERSION_RE.match(str(pkg.version)):
        raise DatasetError(f"version {pkg.version!r} is not X.Y.Z: publish a version written by "
                           "`segval dataset release`", path=root / "dataset.yaml")
    if not (root / "README.md").is_file():
        raise DatasetError("no dataset card (README.md): publish a version written by `segval dataset release`",
                           path=root / "README.md")
    files = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            files.append({"path": rel.as_posix(), "bytes": p.stat().st_size})
    return {"repo_id": repo_id, "repo_type": "dataset", "revision": "main", "tag": str(pkg.version),
            "name": pkg.name, "version": str(pkg.version), "root": str(root), "files": files,
            "num_files": len(files), "total_bytes": sum(f["bytes"] for f in files)}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (in the environment now, or when huggingface_hub was imported)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE or bool(constants.HF_HUB_OFFLINE)


def resolve_token(token: str | None) -> str | None:
    """``token``, else ``HF_TOKEN`` / the token saved by ``huggingface-cli login`` (None if there is none)."""
    if token:
        return str(token)
    from huggingface_hub import get_token

    return get_token()


def publish(version_dir: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool = False,
            dry_run: bool = False, api: Any = None) -> dict[str, Any]:
    """Upload a released version (see the module doc); returns the plan plus ``commit`` / ``url`` when uploaded.

    Args:
        version_dir: ``<releases>/<X.Y.Z>``.
        repo_id: the Hub dataset repository, ``<user or organisation>/<name>``.
        token: a Hub token (default: ``HF_TOKEN`` or the saved login).
        private: create the repository private (when it does not exist yet).
        dry_run: only list what would be uploaded.
        api: an ``huggingface_hub.HfApi`` (default: a new one with ``token``).

    Raises:
        PublishError: offline, no token, the Hub cannot be reached, or the version's tag exists already.
            Raised before anything is uploaded.
    """
    plan = upload_plan(version_dir, repo_id)
    if dry_run:
        return {**plan, "dry_run": True}
    if hub_offline():
        raise PublishError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it (and connect to the network) "
                           "to publish, or run with publish.dry_run=true to list the files. Nothing was uploaded.")
    token = resolve_token(token)
    if not token:
        raise PublishError("no Hugging Face token: run `huggingface-cli login` or set HF_TOKEN (never on the command "
                           "line); a token with write access is needed. Nothing was uploaded.")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        return _upload(plan, repo_id, api, token, private)
    except PublishError as err:  # the token never reaches a message, a log or publish.json
        raise PublishError(str(err).replace(token, "***")) from None


def _upload(plan: dict[str, Any], repo_id: str, api: Any, token: str, private: bool) -> dict[str, Any]:
    try:
        user = api.whoami(token=token)
    except Exception as err:
        raise PublishError(f"cannot reach the Hugging Face Hub or the token is not valid ({type(err).__name__}: "
                           f"{err}). Nothing was uploaded.") from err
    tag = plan["tag"]
    try:
        refs = api.list_repo_refs(repo_id, repo_type="dataset", token=token)
        tags = {t.name for t in refs.tags}
    except Exception as err:
        from huggingface_hub.errors import RepositoryNotFoundError

        if not isinstance(err, RepositoryNotFoundError):
            raise PublishError(f"cannot read the tags of {repo_id} ({type(err).__name__}: {err}). "
                               "Nothing was uploaded.") from err
        tags = set()
    if tag in tags:
        raise PublishError(f"version {tag} is already published in {repo_id} (tag {tag!r}); a published version is "
                           "never overwritten: release a new version first. Nothing was uploaded.")
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True, token=token)
        commit = api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=plan["root"], revision="main", token=token,
            commit_message=f"{plan['name']} {tag}", commit_description=f"Released with segval: {plan['num_files']} "
            f"files, {plan['total_bytes']} bytes.", ignore_patterns=[".*", "**/.*"], delete_patterns="*")
    except Exception as err:
        raise PublishError(f"the upload to {repo_id} failed ({type(err).__name__}: {err}); the Hub applies a commit "
                           "whole or not at all, so main is unchanged. Retry the same command.") from err
    oid = getattr(commit, "oid", None)
    try:
        api.create_tag(repo_id, tag=tag, revision=oid or "main", repo_type="dataset", token=token,
                       tag_message=f"{plan['name']} {tag}")
    except Exception as err:
        raise PublishError(f"the files of {tag} are on main of {repo_id} (commit {oid}) but tagging them failed "
                           f"({type(err).__name__}: {err}); tag that commit with `huggingface-cli tag {repo_id} {tag} "
                           f"--repo-type dataset --revision {oid}`.") from err
    name = user.get("name") if isinstance(user, dict) else None
    return {**plan, "dry_run": False, "commit": oid, "user": name,
            "url": f"https://huggingface.co/datasets/{repo_id}/tree/{tag}"}


def format_plan(plan: dict[str, Any], *, max_listed: int = 200) -> str:
    """The file list of a plan as text (one line per file, then the totals)."""
    lines = [f"{'would upload' if plan.get('dry_run') else 'uploaded'} {plan['name']} {plan['version']} -> "
             f"{plan['repo_type']} repo {plan['repo_id']} (revision {plan['revision']}, tag {plan['tag']}):"]
    for f in plan["files"][:max_listed]:
        lines.append(f"  {f['bytes']:>12,d}  {f['path']}")
    if plan["num_files"] > max_listed:
        lines.append(f"  ... {plan['num_files'] - max_listed} more (all in publish.json)")
    lines.append(f"{plan['num_files']} files, {plan['total_bytes']:,d} bytes")
    return "\n".join(lines)
