"""Archives of exports: entries escaping the target (zip-slip / tar-slip), links and bombs are refused
before anything is read or written; a good archive unpacks whole."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from segval.dataset.archive import checked_members, extract, read_member
from segval.errors import DatasetError


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def make_tar(path: Path, entries: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            t.addfile(info)
    return path


@pytest.mark.parametrize("bad", ["../../evil.json", "/etc/evil.json", "annotations/../../../evil.json",
                                 "..\\..\\evil.json"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_entries_escaping_the_target_are_refused(tmp_path: Path, bad: str, kind: str) -> None:
    entries = {"annotations/instances_default.json": b"{}", bad: b"x"}
    archive = (make_zip if kind == "zip" else make_tar)(tmp_path / f"a.{kind}", entries)
    with pytest.raises(DatasetError, match=r"slip\); refusing the archive") as err:
        checked_members(archive)
    assert str(archive) in str(err.value) and repr(bad) in str(err.value)
    with pytest.raises(DatasetError):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.json").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "a.tar", {"a.json": b"{}"}, link=("images/x.png", "/etc/passwd"))
    with pytest.raises(DatasetError, match="a link or special file"):
        checked_members(archive)
    z = tmp_path / "l.zip"
    with zipfile.ZipFile(z, "w") as f:
        info = zipfile.ZipInfo("images/x.png")
        info.external_attr = (0o120777 << 16)
        f.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link"):
        checked_members(z)


def test_a_bomb_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "b.zip", {"big.json": b"0" * 10_000})
    with pytest.raises(DatasetError, match="over the limit of 1000"):
        checked_members(archive, max_bytes=1000)


def test_a_good_archive_unpacks_whole(tmp_path: Path) -> None:
    entries = {"annotations/instances_default.json": b'{"images": []}', "images/a/b.png": b"png"}
    for kind, make in (("zip", make_zip), ("tar", make_tar)):
        archive = make(tmp_path / f"ok.{kind}", entries)
        assert sorted(checked_members(archive)) == sorted(entries)
        assert read_member(archive, "images/a/b.png") == b"png"
        out = extract(archive, tmp_path / f"out_{kind}")
        assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == entries


def test_cvat_import_refuses_a_zip_slip_archive(tmp_path: Path, shapes_root: Path) -> None:
    from segval.dataset.package import DatasetPackage
    from segval.relabel.cvat import read_export

    pkg = DatasetPackage.open(shapes_root)
    archive = make_zip(tmp_path / "cvat_coco.zip", {"annotations/instances_default.json": b"{}",
                                                     "images/../../../.bashrc": b"echo pwned"})
    with pytest.raises(DatasetError, match="zip-slip"):
        read_export(archive, pkg.split("train"), pkg.taxonomy)
