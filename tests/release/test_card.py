"""segval.release.card: the Hugging Face dataset card, its front matter and runnable loading snippets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segval.release.card import limitations, render_card, size_category, write_card
from segval.dataset.package import DatasetPackage
from segval.dataset.summary import summarize
from segval.demo.shapes import write_shapes_package


@pytest.fixture(scope="module")
def pkg(tmp_path_factory) -> DatasetPackage:
    root = write_shapes_package(tmp_path_factory.mktemp("card") / "shapes", images={"train": 4, "val": 2},
                                size=(32, 32))
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    meta.update(guideline="Label every disc, square and bar; bars thinner than 2 px are left out.",
                limitations=["Synthetic images: no lighting changes."], pretty_name="Shapes demo")
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## 1.0.0 (2026-01-01)\n\n- first release\n")
    return DatasetPackage.open(root)


def test_size_category():
    assert size_category(0) == "n<1K"
    assert size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K"
    assert size_category(250_000) == "100K<n<1M"


def test_card_front_matter_and_sections(pkg):
    target = write_card(pkg, pkg.root / "README.md")
    text = target.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "cc-by-4.0"
    assert front["task_categories"] == ["image-segmentation"]
    assert front["task_ids"] == ["semantic-segmentation", "instance-segmentation"]
    assert front["size_categories"] == ["n<1K"] and front["pretty_name"] == "Shapes demo"
    assert "robotics" in front["tags"]
    heads = re.findall(r"^## (.+)$", text, flags=re.M)
    assert heads == ["Dataset summary", "Classes", "Splits", "How to load", "Annotation guideline",
                     "Known limitations", "Version history"]
    assert "| 3 | bar | thin | thing | `#283cdc` |" in text
    assert "| train | 4 |" in text and "| val | 2 |" in text
    assert "bars thinner than 2 px" in text and "- Synthetic images: no lighting changes." in text
    assert "### 1.0.0 (2026-01-01)" in text


def test_card_snippets_run(pkg):
    text = write_card(pkg, pkg.root / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    outputs = []
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=pkg.root, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert "pixels" in outputs[0]
    assert "torch.Size([2, 3, 32, 32]) torch.Size([2, 32, 32])" in outputs[1]


def test_torch_snippet_matches_segval_targets(pkg):
    """The card's Dataset builds the same targets as segval's own rule."""
    import numpy as np

    code = re.findall(r"```python\n(.*?)```", render_card(pkg, summarize(pkg)), flags=re.S)[1]
    code = code.split("\nloader = ")[0]
    ns: dict = {}
    cwd = Path.cwd()
    os.chdir(pkg.root)
    try:
        exec(compile(code, "card", "exec"), ns)  # noqa: S102
        ds = ns["SegDataset"](".", "train")
        split = pkg.split("train")
        for i, rec in enumerate(sorted(split.images, key=lambda r: r.id)):
            np.testing.assert_array_equal(ds[i][1].numpy(), split.semantic_target(rec).astype(np.int64))
    finally:
        os.chdir(cwd)


def test_automatic_limitations(pkg):
    summary = summarize(pkg)
    summary["splits"]["val"]["instances"]["bar"] = 0
    summary["splits"]["val"]["pixel_share"]["bar"] = 0.0
    lim = limitations(pkg, summary, rare_share=0.5)
    assert lim[0] == "Synthetic images: no lighting changes."
    assert any("`disc` covers" in x and "under 50%" in x for x in lim)
    assert any("`bar` is absent from split(s) val" in x for x in lim)
    assert not any("`background`" in x for x in lim)  # the background is no limitation
    text = render_card(pkg, summary, rare_share=0.5)
    assert "`bar` is absent from split(s) val" in text


HOSTILE = ["<script>alert(1)</script>", "](javascript:alert(1))", "a`b|c"]


@pytest.fixture(scope="module")
def hostile_pkg(tmp_path_factory) -> DatasetPackage:
    """The shapes package with its class names replaced by hostile ones (HTML, a Markdown link, backtick + pipe)."""
    root = write_shapes_package(tmp_path_factory.mktemp("hostile") / "shapes", images={"train": 2, "val": 1},
                                size=(32, 32), class_names=dict(enumerate(HOSTILE, start=1)))
    return DatasetPackage.open(root)


def test_card_escapes_hostile_class_names(hostile_pkg):
    summary = summarize(hostile_pkg)
    summary["splits"]["val"]["instances"][HOSTILE[2]] = 0
    summary["splits"]["val"]["pixel_share"][HOSTILE[2]] = 0.0
    text = render_card(hostile_pkg, summary, rare_share=0.99)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert not any(re.search(r"(?<!\\)[<\]`]", line.replace("`#", "").replace("` |", "")) for line in table)
    assert r"| \<script\>alert(1)\</script\> |" in text  # Classes table: escaped, one cell
    assert r"| \](javascript:alert(1)) |" in text  # no link: the bracket is escaped
    assert r"| a\`b\|c |" in text
    assert "Class ``a`b|c`` is absent from split(s) val" in text  # a code span the backtick cannot close


def test_card_renders_hostile_names_as_text(hostile_pkg):
    """Rendered as CommonMark with raw HTML allowed (as the Hub renders cards), every name is text, no markup."""
    markdown_it = pytest.importorskip("markdown_it")
    from html.parser import HTMLParser

    page = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(
        render_card(hostile_pkg, summarize(hostile_pkg), rare_share=0.99))

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags, self.hrefs, self.cells, self.text = [], [], [], []
            self._cell = None

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.hrefs += [v for k, v in attrs if k == "href"]
            if tag == "td":
                self._cell = []

        def handle_endtag(self, tag):
            if tag == "td":
                self.cells.append("".join(self._cell))
                self._cell = None

        def handle_data(self, data):
            self.text.append(data)
            if self._cell is not None:
                self._cell.append(data)

    p = Collect()
    p.feed(page)
    assert "script" not in p.tags and not any("javascript" in h for h in p.hrefs)
    for name in HOSTILE:
        assert name in p.cells  # the Classes table shows each name as written, in one cell
    assert "<script>alert(1)</script>" in "".join(p.text)
