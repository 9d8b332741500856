"""What the interop scripts share: throwaway virtual environments for the real tools, running ``segval`` as a
user does, a free loopback port, the run folder and the closing figures.

The tools (Label Studio, Datumaro, ...) are never segval dependencies: each goes into its own venv under
``.interop/venvs/<name>`` at the repository root (ignored by git; ``SEGVAL_INTEROP_DIR`` moves it), created on
first use with the ordinary ``pip`` client and reused afterwards (a marker file names the packages installed).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INTEROP_DIR = Path(os.environ.get("SEGVAL_INTEROP_DIR", REPO / ".interop"))


def ensure_venv(name: str, packages: Sequence[str], *, timeout: float = 1800) -> Path:
    """The python of the throwaway venv ``name`` with ``packages`` installed (created and installed when missing).

    Raises:
        RuntimeError: pip failed (its last output lines are in the message).
    """
    root = INTEROP_DIR / "venvs" / name
    py = root / "bin" / "python"
    marker = root / ".segval-installed"
    want = "\n".join(packages)
    if py.is_file() and marker.is_file() and marker.read_text() == want:
        return py
    if not py.is_file():
        print(f"[{name}] creating the throwaway venv {root}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    print(f"[{name}] pip install {' '.join(packages)} (once; cached in {root})", flush=True)
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"pip install {' '.join(packages)} into {root} failed:\n{tail}")
    marker.write_text(want)
    return py


def segval_env() -> dict[str, str]:
    """The environment of a ``segval`` subprocess: this checkout's ``src`` first, offline."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
                "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONWARNINGS": "ignore"})
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def segval(*args: str, cwd: Path, log: Path | None = None, timeout: float = 900) -> str:
    """Run ``segval <args>`` with this interpreter (which has segval's dependencies); its output.

    Raises:
        RuntimeError: a non-zero exit (the command and the end of its output in the message).
    """
    cmd = [sys.executable, "-m", "segval.cli", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=segval_env(), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"$ segval {' '.join(args)}\n{out}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"segval {' '.join(args)} exited {proc.returncode}:\n" + "\n".join(out.splitlines()[-25:]))
    return out


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_folder(name: str, given: str | None = None) -> Path:
    """``given``, else ``outputs/interop/<name>/<date>_<time>`` under the repository (created)."""
    out = Path(given) if given else REPO / "outputs" / "interop" / name / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()


def verdict(name: str, figure: str, goal: str, ok: bool) -> None:
    """The closing line: ``<name>: <figure> (goal <goal>) PASS|FAIL``."""
    print(f"{name}: {figure} (goal {goal}) {'PASS' if ok else 'FAIL'}", flush=True)
