"""guideline.md / guideline.html (segval.report.guideline): self-contained HTML, escaping of dataset strings,
the drawn crops, on the hand-made package of tests/qa/guideline_package.py."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segval.dataset.package import DatasetPackage
from segval.qa.guideline import build_guideline
from segval.report.guideline import Crop, draw_crop, render_html, render_markdown, write_guideline

from tests.qa.guideline_package import write_package

HOSTILE = "<script>alert(1)</script>*x*|y"
HOSTILE_DESC = '<img src="http://evil.example/x.png" onerror=alert(2)> see [here](https://evil.example) `code`'


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, Path]]:
    base = tmp_path_factory.mktemp("rg")
    pkg = DatasetPackage.open(write_package(base / "pkg", arm_name=HOSTILE, arm_description=HOSTILE_DESC,
                                            file_prefix="<b>&"))
    queue = {"split": "train", "items": [{"rank": 1, "item_id": "a", "image_id": 2, "class": HOSTILE,
                                          "category_id": 1, "annotation_ids": [4], "region": [2, 2, 11, 11],
                                          "reason": "<i>swapped</i> | [x](http://evil.example)"}],
             "label_confusions": [{"pair": sorted(["gripper", HOSTILE]), "annotations": 3,
                                   "directions": {}, "images": [2]}]}
    content = build_guideline(pkg, queue=queue)
    return content.doc, write_guideline(base / "out", content.doc, content.crops)


def test_html_is_self_contained(written) -> None:
    doc, paths = written
    page = paths["html"].read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    imgs = [a for t, a in parser.tags if t == "img"]
    n_crops = sum(len(c["examples"]) + len(c["hard"] or []) for c in doc["classes"]) + len(doc["min_size"]["examples"]) \
        + sum(len(k) for p in doc["pairs"] for k in p["crops"].values())
    assert len(imgs) == n_crops > 10
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    for a in imgs:  # every embedded image decodes
        Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1]))).load()
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, key, value[:60])
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page)
    assert not re.search(r"<link|@import|url\(", page)
    assert [t for t, _ in parser.tags].count("script") == 0


def test_dataset_strings_are_escaped(written) -> None:
    doc, paths = written
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=\"http" not in page and "&lt;img src=&quot;http://evil.example" in page
    assert "<b>&amp;" not in page and "&lt;b&gt;&amp;amp;" not in page and "&lt;b&gt;&amp;train" in page  # file names
    assert "<i>swapped" not in page and "&lt;i&gt;swapped&lt;/i&gt;" in page
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "<script>" not in md and "\\<script\\>alert(1)\\</script\\>\\*x\\*\\|y" in md
    assert "[here](https" not in md and "\\[here\\](https" in md  # no live link to the outside
    assert "\\<b\\>\\&train" in md
    # every '<' is escaped, but for the anchors segval writes itself
    assert not re.search(r"(?<!\\)<", re.sub(r'<a id="class-\d+"></a>', "", md))
    # the table keeps its columns: a '|' in a name is escaped
    row = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert row.count(" | ") - row.count("\\| ") == 8  # 9 cells
    # the markdown's images are the files written beside it
    for ref in re.findall(r"\]\((images/[^)]+)\)", md):
        assert (paths["markdown"].parent / ref).is_file(), ref


def test_documents_carry_the_structure(written) -> None:
    doc, paths = written
    md = paths["markdown"].read_text(encoding="utf-8")
    assert doc["dataset"]["content_hash"] in md and "## Pairs to clarify" in md and "#### Hard examples" in md
    assert "No examples yet: the package has no instance of ghost." in md
    assert '<a id="class-4"></a>' in md and "### Class 4: ghost" in md
    page = paths["html"].read_text(encoding="utf-8")
    assert 'id="class-4"' in page and "No examples yet: the package has no instance of ghost." in page
    assert json.loads(paths["json"].read_text())["dataset"]["content_hash"] == doc["dataset"]["content_hash"]
    # without a run: the hard sections are left out, and the documents say so
    bare = {**doc, "hard_examples": False, "classes": [{**c, "hard": None} for c in doc["classes"]], "pairs": []}
    assert "Hard examples are left out: no run or relabel queue was given." in render_markdown(bare)
    assert "#### Hard examples" not in render_markdown(bare)
    assert "<h4>Hard examples</h4>" not in render_html(bare, {k: b"x" for k in _keys(bare)})


def _keys(doc: dict) -> set[str]:
    return {e["key"] for c in doc["classes"] for e in c["examples"]} | {e["key"] for e in doc["min_size"]["examples"]}


def test_draw_crop_outlines_the_mask() -> None:
    img = np.full((10, 20, 3), 100, np.uint8)
    mask = np.zeros((10, 20), bool)
    mask[2:8, 5:15] = True
    png = draw_crop(Crop(img, [(mask, (250, 0, 0))]), side=40, thickness=2)  # scaled x2
    arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert arr.shape == (20, 40, 3)
    assert (arr[4, 10:30] == 255).all()  # the mask's top row: a 1 px white line outside (this red is dark)
    assert (arr[5:7, 12:28] == [250, 0, 0]).all()  # then the class colour
    assert (arr[8:12, 14:26] == 100).all() and (arr[0:3] == 100).all()  # inside and outside untouched
