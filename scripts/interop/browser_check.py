"""segval's HTML pages in a real browser: headless Chromium (Debian's ``chromium``) over the DevTools Protocol.

The pages are made by the real commands on a small generated package whose taxonomy holds hostile class names
(``<script>alert(1)</script>`` and ``](javascript:alert(1))``): two tiny trainings (versions 1.0.0 and 1.1.0),
``segval analyze`` (``report.html``), ``segval compare`` (``compare.html``), ``segval gate`` (``verdict.md``),
``segval dataset release`` (the card, ``README.md``), ``segval dataset guideline`` (``guideline.html``). Markdown
documents are rendered to HTML as the Hub / GitHub
render them (CommonMark + tables, raw HTML kept: ``md_page.py``, markdown-it-py in the throwaway venv
``.interop/venvs/browser``).

Each page must load with no console error, no JavaScript dialog (a script from the data that ran), no request
other than ``file:`` / ``data:`` (self-contained), every ``<img>`` decoded (``naturalWidth > 0``), no
``<script>`` element or ``javascript:`` link in the DOM, and the hostile names in the page's text (shown as
text). Screenshots (full page PNG) are kept in ``<run folder>/screenshots/``.

    python scripts/interop/browser_check.py [--out DIR]

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; ``make interop`` installs it). Prints one line per
page and ends with ``browser_check: <pages clean>/<pages> (goal all) PASS|FAIL``; exit 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, ensure_venv, run_folder, segval, segval_env, verdict  # noqa: E402
from cdp import CHROMIUM, Chromium, PageResult  # noqa: E402

sys.path.insert(0, str(REPO / "src"))
HOSTILE = {1: "<script>alert(1)</script>", 2: "](javascript:alert(1))"}
MD_PAGE = Path(__file__).resolve().parent / "md_page.py"


def train(pkg: Path, run: Path, seed: int, log: Path) -> Path:
    run.parent.mkdir(parents=True, exist_ok=True)
    segval("train", "data=package", f"data.root={pkg}", "data.crop_size=[64,64]", "data.num_workers=0",
           "data.batch_size=2", "data.val_batch_size=2", "trainer.max_steps=4", "trainer.val_check_interval=2",
           "trainer.log_every_n_steps=1", "logger=csv", f"seed={seed}", f"hydra.run.dir={run}", cwd=run.parent,
           log=log)
    return run


def build_pages(out: Path, log: Path) -> tuple[dict[str, Path], list[str]]:
    """Run the commands; ``{page name: HTML file}`` and notes (pages skipped)."""
    from segval.demo.shapes import write_shapes_package

    v1 = write_shapes_package(out / "releases" / "1.0.0", images={"train": 6, "val": 4}, size=(64, 64), seed=0,
                              name="hostile", class_names=HOSTILE)
    v2 = write_shapes_package(out / "candidate" / "1.1.0", images={"train": 6, "val": 4}, size=(64, 64), seed=1,
                              name="hostile", version="1.1.0", class_names=HOSTILE)
    r1, r2 = train(v1, out / "runs" / "v1", 0, log), train(v2, out / "runs" / "v2", 1, log)
    segval("analyze", f"run_dir={r1}", f"hydra.run.dir={out / 'analyze'}", cwd=out, log=log)
    segval("compare", f"runs=[{r1},{r2}]", f"hydra.run.dir={out / 'compare'}", cwd=out, log=log)
    gate = subprocess.run([sys.executable, "-m", "segval.cli", "gate", f"candidate=[{r2}]", f"baseline=[{r1}]",
                           f"hydra.run.dir={out / 'gate'}"], cwd=out, env=segval_env(), capture_output=True,
                          text=True, timeout=600)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ segval gate (exit {gate.returncode})\n{gate.stdout}{gate.stderr}\n")
    segval("dataset", "release", f"source={v1}", f"releases={out / 'published'}", "loaders=false",
           f"hydra.run.dir={out / 'release'}", cwd=out, log=log)
    card = next((out / "published").glob("*/README.md"))
    py = ensure_venv("browser", ["markdown-it-py>=3,<5"])
    pages = {"report.html": out / "analyze" / "report" / "report.html", "compare.html": out / "compare" / "compare.html"}
    (out / "pages").mkdir(exist_ok=True)
    for name, md in (("card.html", card), ("verdict.html", out / "gate" / "verdict.md")):
        subprocess.run([str(py), str(MD_PAGE), str(md), str(out / "pages" / name)], check=True, timeout=120)
        pages[name] = out / "pages" / name
    segval("dataset", "guideline", "data=package", f"data.root={v1}", f"run_dir={out / 'analyze'}",
           f"hydra.run.dir={out / 'guideline'}", cwd=out, log=log)
    pages["guideline.html"] = out / "guideline" / "guideline.html"
    return pages, []


def describe(r: PageResult, hostile: tuple[str, ...]) -> str:
    ext = len(r.external_requests)
    shown = len(hostile) - len(r.texts_missing)
    return (f"{r.name}: {'loaded' if r.loaded else 'NOT loaded'}, {len(r.requests)} requests ({ext} external), "
            f"{r.images - len(r.images_broken)}/{r.images} images decoded, {len(r.console_errors)} console errors, "
            f"{len(r.dialogs)} dialogs, hostile names as text {shown}/{len(hostile)}, "
            f"{'clean' if not r.errors else f'{len(r.errors)} errors'}; screenshot {r.screenshot}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="run folder (default outputs/interop/browser/<date>_<time>)")
    args = ap.parse_args()
    t0 = time.monotonic()
    out = run_folder("browser", args.out)
    log = out / "commands.log"
    print(f"run folder: {out}", flush=True)
    problems, results = [], []
    try:
        if not Path(CHROMIUM).is_file():
            raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install -y chromium (or `make interop`)")
        pages, notes = build_pages(out, log)
        for n in notes:
            print(f"note: {n}")
        hostile = tuple(HOSTILE.values())
        with Chromium() as browser:
            for name, path in pages.items():
                if not path.is_file():
                    problems.append(f"{name}: {path} was not written")
                    continue
                texts = hostile if name != "verdict.html" else ()
                r = browser.check_page(name, path, texts=texts, screenshot=out / "screenshots" / f"{name}.png")
                results.append(r)
                print(describe(r, texts), flush=True)
                problems += [f"{name}: {e}" for e in r.errors]
    except Exception as err:  # noqa: BLE001 - every failure ends in the FAIL line
        problems.append(f"{type(err).__name__}: {err}")
    for p in problems:
        print(f"  problem: {p}")
    clean = sum(not r.errors for r in results)
    print(f"pages loaded {sum(r.loaded for r in results)}/{len(results)}, errors found {len(problems)}; "
          f"wall time {time.monotonic() - t0:.1f} s; log: {log}")
    ok = not problems and bool(results)
    verdict("browser_check", f"{clean}/{len(results)} pages clean, {len(problems)} errors", "all pages clean", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
