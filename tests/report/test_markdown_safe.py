"""Hostile dataset strings (class names, file names, notes, annotator ids, descriptions holding HTML or
Markdown links) in every report: rendered by a CommonMark renderer that lets raw HTML through (as GitHub and
the Hub do for some tags), nothing runs and nothing links to a script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from segval.dataset.package import DatasetPackage
from segval.dataset.taxonomy import Category, Taxonomy
from segval.dataset.writer import InstanceMask, PackageWriter
from segval.report.markdown_safe import md_code, md_escape, md_prose

markdown_it = pytest.importorskip("markdown_it")

TAG = "<script>alert(1)</script>"
LINK = "[x](javascript:alert(1))"
IMG = "<img src=x onerror=alert(1)>"


def rendered(md: str) -> str:
    """HTML of ``md`` by CommonMark with raw HTML allowed (the permissive case)."""
    return markdown_it.MarkdownIt("commonmark", {"html": True}).render(md)


def assert_harmless(text: str, *, markdown: bool = True) -> None:
    page = rendered(text) if markdown else text
    assert not re.search(r"<\s*(script|iframe|object|embed)\b", page, re.I), page
    assert not re.search(r"<[^>]*\son\w+\s*=", page, re.I), page  # no event handler in any tag
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*(javascript|vbscript|data:text):""", page, re.I), page
    for src in re.findall(r"""<img[^>]*\ssrc\s*=\s*["']([^"']*)""", page, re.I):  # only the report's own images
        assert src.startswith(("plots/", "data:image/png;base64,")), src


def test_helpers() -> None:
    for fn in (md_escape, md_code, md_prose):
        assert_harmless(fn(f"{TAG} {LINK} {IMG}"))
    assert "alert(1)" in rendered(md_escape(TAG))  # shown as written, not dropped
    assert rendered(md_prose("**kept** [ok](https://example.org)")) == \
        '<p><strong>kept</strong> <a href="https://example.org">ok</a></p>\n'


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package whose class names, file name, name, description, guideline and notes are hostile."""
    tax = Taxonomy([Category(0, "background", (0, 0, 0), False, "stuff"), Category(1, TAG, (200, 0, 0), True, "rigid"),
                    Category(2, LINK, (0, 200, 0), True, "rigid"), Category(3, "rare", (0, 0, 200), True, "thin")],
                   background_id=0)
    root = tmp_path_factory.mktemp("hostile") / "pkg"
    with PackageWriter(root, name="shapes", version="1.0.0", taxonomy=tax, splits=["train", "val"]) as w:
        for split in ("train", "val"):
            for i in range(2):
                a, b = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
                a[2:8, 2:8], b[9:14, 9:14] = True, True
                b[0, 15] = True  # a second component: a QA finding naming the class and the file
                w.add_image(split, np.full((16, 16, 3), 90, np.uint8), f"{IMG}{i}.png",
                            instances=[InstanceMask(1, a), InstanceMask(2, b)], extra={"annotator": TAG})
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    meta.update(description=f"About {TAG} and {LINK}.", guideline=f"Label {IMG} as {LINK}", license=TAG,
                limitations=[f"{LINK} {TAG}"])
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta))
    return root


def test_card(hostile: Path) -> None:
    from segval.dataset.summary import summarize
    from segval.release.card import render_card
    from segval.release.versions import changelog_entry

    pkg = DatasetPackage.open(hostile)
    card = render_card(pkg, summarize(pkg), changelog=changelog_entry("1.0.0", f"notes {TAG} {LINK}", None))
    assert_harmless(card.split("---\n", 2)[2])
    yaml.safe_load(card.split("---\n", 2)[1])  # the front matter stays valid YAML


def test_qa_markdown(hostile: Path) -> None:
    from segval.qa.runner import QAConfig, format_markdown, run_qa

    report = run_qa(DatasetPackage.open(hostile), QAConfig.from_mapping({}), progress=False)
    md = format_markdown(report)
    assert report["images"] and md_code(f"train/{IMG}0.png") in md  # the file name shown as written
    assert_harmless(md)


def test_gate_markdown() -> None:
    from segval.experiments.gate import render_markdown

    verdict = {"status": "fail", "exit_code": 1, "policy": {"name": TAG}, "counts": {"rules": 1, "passed": 0, "failed": 1},
               "candidate": {"dataset": {"name": LINK, "version": TAG}},
               "rules": [{"name": f"IoU of {TAG}", "status": "fail", "reason": f"{LINK} fell", "kind": "class"}]}
    assert_harmless(render_markdown(verdict))


def test_compare_markdown_and_html(tmp_path: Path) -> None:
    from segval.experiments.compare import compare_runs
    from segval.experiments.runs import discover_runs
    from segval.report.compare import render_compare_html, render_compare_markdown
    from tests.experiments.run_dirs import confmat_for, make_run

    classes = ["background", TAG, LINK]
    runs = [make_run(tmp_path / f"{v}_{s}", confmat_for(0.5 + 0.1 * s), version=v, seed=s, classes=classes,
                     name=IMG) for v in ("1.0.0", "1.1.0") for s in range(2)]
    result = compare_runs(discover_runs(runs))
    assert_harmless(render_compare_markdown(result))
    page = render_compare_html(result)
    assert_harmless(page, markdown=False)
    assert "&lt;script&gt;" in page


def test_analyze_markdown_and_html() -> None:
    from segval.report.analyze import render_html, render_markdown
    from tests.report.test_analyze import _inputs

    inputs = _inputs()
    f = inputs.findings
    for c in f["classes"][:2]:
        c["name"] = TAG if c is f["classes"][0] else LINK
    inputs.notes.append(f"note {IMG} {LINK}")
    assert_harmless(render_markdown(inputs))
    assert_harmless(render_html(inputs), markdown=False)


def test_annotator_ids_in_qa(hostile: Path) -> None:
    from segval.qa.annotators import format_annotators

    block = {"source": f"field {TAG}", "rows": [
        {"annotator": LINK, "annotations": 2, "flagged_annotations": 1, "flag_rate": 0.5, "images": 1,
         "image_flag_rate": 1.0, "agreement": None, "corrected": None, "correction_rate": None}]}
    assert_harmless(format_annotators(block))
    assert json.dumps(block)  # plain data
