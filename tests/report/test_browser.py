"""The HTML pages in a real browser (CI-sized ``scripts/interop/browser_check.py``): headless Chromium over the
DevTools Protocol opens ``report.html``, ``compare.html`` and the card rendered as the Hub renders it, made with
hostile class names. Skipped where ``/usr/bin/chromium`` is missing; installs nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from segval.dataset.package import DatasetPackage
from segval.dataset.summary import summarize
from segval.demo.shapes import write_shapes_package
from segval.release.card import render_card
from segval.report import mosaic as mz
from segval.report import plots
from segval.report.analyze import ReportInputs, write_report

from tests.experiments.run_dirs import make_run
from tests.helpers import run_segval

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "interop"))
from cdp import CHROMIUM, Chromium  # noqa: E402

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} not installed")

HOSTILE = ["<script>alert(1)</script>", "](javascript:alert(1))"]
NAMES = ["background", *HOSTILE]


def _findings() -> dict:
    classes = []
    for i, (name, iou) in enumerate(zip(NAMES, [0.9, 0.2, 0.6])):
        weak = iou < 0.4
        classes.append({
            "name": name, "id": i, "index": i, "group": "stuff" if i == 0 else "rigid",
            "status": "weak" if weak else "ok", "IoU": iou, "Acc": 0.8, "boundary_IoU": iou / 2, "threshold": 0.4,
            "causes": [{"cause": "confusion", "strength": 0.7, "evidence": {},
                        "summary": f"{name} loses 70% to {NAMES[2]}"}] if weak else [],
            "worst_images": [{"image_id": 3, "score": 40.0, "label_quality": 0.1, "reason": f"40 px of {name}"}]
            if weak else [],
            "actions": [f"clarify the guideline between {name} and {NAMES[2]}"] if weak else [],
        })
    return {"schema_version": 1, "dataset": {"name": "hostile", "version": "1.0.0"}, "split": "val", "step": 4,
            "thresholds": {"default": 0.4, "by_group": {}},
            "summary": {"mIoU": 0.57, "weak_classes": [HOSTILE[0]], "absent_classes": [], "never_in_training": []},
            "classes": classes}


def _report(out: Path) -> tuple[Path, int]:
    """``report.html`` of hand-made inputs; its path and how many images it embeds (plots + the mosaic)."""
    findings = _findings()
    conf = np.array([[900, 50, 50], [30, 20, 50], [10, 10, 80]])
    rng = np.random.default_rng(0)
    gt = np.zeros((60, 80), np.uint8)
    gt[10:40, 20:60] = 1
    item = mz.MosaicItem(3, rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), gt, np.where(gt == 1, 2, 0), HOSTILE[0])
    inputs = ReportInputs(findings=findings, plots=plots.report_plots(findings, conf),
                          mosaic=mz.render_mosaic([item], NAMES, [(0, 0, 0), (220, 40, 40), (40, 200, 40)]),
                          notes=[f"hand-made inputs with the class {HOSTILE[1]}"], source=str(out))
    return write_report(out / "report", inputs)["html"], len(inputs.plots) + 1


def _compare(out: Path) -> Path:
    conf_a = np.array([[1000, 0, 0], [40, 60, 0], [20, 0, 80]])
    conf_b = np.array([[1000, 0, 0], [20, 80, 0], [30, 0, 70]])
    runs = [make_run(out / f"run{k}", c, version=v, name="hostile", classes=NAMES)
            for k, (c, v) in enumerate([(conf_a, "1.0.0"), (conf_b, "1.1.0")])]
    r = run_segval("compare", f"runs=[{runs[0]},{runs[1]}]", f"hydra.run.dir={out / 'compare'}", cwd=out)
    assert r.returncode == 0, r.output
    return out / "compare" / "compare.html"


def _card(out: Path) -> Path:
    from md_page import render

    pytest.importorskip("markdown_it")
    pkg = DatasetPackage.open(write_shapes_package(out / "pkg", images={"train": 2, "val": 1}, size=(32, 32),
                                                   class_names=dict(enumerate(HOSTILE, start=1))))
    page = out / "card.html"
    page.write_text(render(render_card(pkg, summarize(pkg)), "README.md"), encoding="utf-8")
    return page


@pytest.mark.slow
def test_pages_in_chromium_are_self_contained_and_show_hostile_names_as_text(tmp_path):
    report, n_images = _report(tmp_path)
    pages = {"report.html": report, "compare.html": _compare(tmp_path), "card.html": _card(tmp_path)}
    bad = tmp_path / "bad.html"  # the checker itself must see what an unescaped name would do
    bad.write_text(f"<html><body><p>{HOSTILE[0]}</p><a href=\"javascript:alert(2)\">x</a>"
                   "<img src=\"http://127.0.0.1:9/x.png\"></body></html>")
    with Chromium() as browser:
        results = {n: browser.check_page(n, p, texts=tuple(HOSTILE), screenshot=tmp_path / "shots" / f"{n}.png")
                   for n, p in pages.items()}
        control = browser.check_page("bad.html", bad, texts=(HOSTILE[0],))
    for name, r in results.items():
        assert r.loaded and r.errors == [], (name, r.errors)
        # the page itself, then only its inline data: images
        assert [u for u in r.requests if not u.startswith("data:image/png;base64,")] == [pages[name].resolve().as_uri()]
        assert Path(r.screenshot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["report.html"].images == n_images >= 3 and results["compare.html"].images >= 1
    assert control.dialogs == ["1"] and control.texts_missing == [HOSTILE[0]] and control.scripts == 1
    assert control.javascript_links == 1 and control.external_requests == ["http://127.0.0.1:9/x.png"]
    assert control.images_broken == ["http://127.0.0.1:9/x.png"]
