"""segval.io: atomic writers under faults (full disk, no permission, a kill between renames), the
temporaries of killed processes, and the folder lock."""

from __future__ import annotations

import errno
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segval import io as sio
from segval.errors import LockedError, OutputError


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def eacces(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize("fault, advice", [(enospc, "no space left"), (eacces, "permission denied")])
def test_a_failing_rename_leaves_the_old_file_and_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 fault, advice: str) -> None:
    target = tmp_path / "out" / "metrics.json"
    sio.write_json(target, {"v": 1})
    monkeypatch.setattr(os, "replace", fault)
    with pytest.raises(OutputError, match=advice) as err:
        sio.write_json(target, {"v": 2})
    assert err.value.path == str(target)
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_a_failing_write_inside_a_folder_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "pkg"
    with pytest.raises(OutputError, match="no space left"):
        with sio.atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("x")
            enospc()
    assert list(tmp_path.iterdir()) == []


def test_read_only_parent_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "mkdtemp", eacces)  # a read-only folder (the tests may run as root)
    with pytest.raises(OutputError, match=r"pkg: cannot write \(permission denied"):
        with sio.atomic_dir(tmp_path / "pkg"):
            pass
    assert not (tmp_path / "pkg").exists()


def test_overwrite_swaps_the_folder_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "report"
    with sio.atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("1")
    with sio.atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("2")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_kill_between_the_two_renames_is_undone(tmp_path: Path) -> None:
    # what the fallback leaves when killed after moving the old folder aside: only .report.old
    (tmp_path / ".report.old").mkdir()
    (tmp_path / ".report.old" / "old.txt").write_text("1")
    sio.remove_stale_temporaries(tmp_path, "report")
    assert (tmp_path / "report" / "old.txt").read_text() == "1"


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_temporaries_of_killed_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f".pkg.segval-{sio._HOST}-{_dead_pid()}-abc.partial"
    live = tmp_path / f"{sio.temp_prefix('pkg')}def.partial"
    other = tmp_path / f".other.segval-{sio._HOST}-{_dead_pid()}-x.tmp"
    for p in (dead, live):
        p.mkdir()
        (p / "half.json").write_text("{")
    other.write_text("x")
    with sio.atomic_dir(tmp_path / "pkg") as tmp:
        (tmp / "ok").write_text("1")
    assert not dead.exists() and live.exists() and other.exists()  # only the target's temporaries
    sio.write_text(tmp_path / "other", "y")
    assert not other.exists()


def test_files_get_the_usual_permissions(tmp_path: Path) -> None:
    p = sio.write_text(tmp_path / "a.txt", "x")
    assert p.stat().st_mode & 0o777 == sio.FILE_MODE
    with sio.atomic_dir(tmp_path / "d"):
        pass
    assert (tmp_path / "d").stat().st_mode & 0o777 == sio.DIR_MODE


def _hold(folder: str, ready, release) -> None:
    with sio.folder_lock(folder, "segval dataset release"):
        ready.set()
        release.wait(30)


def test_folder_lock_refuses_a_second_writer_and_is_freed_when_the_holder_ends(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(LockedError, match=rf"being written by segval dataset release \(pid {holder.pid}") as err:
            with sio.folder_lock(tmp_path, "segval dataset release"):
                pass
        assert err.value.exit_code == 75
    finally:
        release.set()
        holder.join(30)
    with sio.folder_lock(tmp_path, "segval dataset release") as lock:  # free again
        assert lock == tmp_path / ".segval.lock"


def test_a_folder_created_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "1.1.0"
    with pytest.raises(FileExistsError, match="created by another process"):
        with sio.atomic_dir(target) as tmp:
            (tmp / "mine").write_text("1")
            target.mkdir()
            (target / "theirs").write_text("2")
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["1.1.0"]


def test_errors_name_the_target_not_the_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", enospc)
    with pytest.raises(OutputError) as err:
        with sio.atomic_dir(tmp_path / "pkg") as tmp:
            sio.write_text(tmp / "sub" / "a.json", "{}")
    assert err.value.path == str(tmp_path / "pkg" / "sub" / "a.json")
