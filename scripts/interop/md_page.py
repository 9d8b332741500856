"""A Markdown document (the dataset card, the gate's verdict.md) as the HTML page a person reads: CommonMark +
GFM tables with raw HTML passed through, as the Hugging Face Hub and GitHub render it (before their sanitiser),
so markup that a class name smuggles into the Markdown shows up here. YAML front matter is left out (the Hub
shows it as metadata). Needs ``markdown-it-py``.

    python md_page.py IN.md OUT.html
"""

from __future__ import annotations

import html
import sys
from pathlib import Path


def render(markdown_text: str, title: str) -> str:
    """The page: ``<!doctype html>`` + the rendered Markdown (raw HTML in it kept, as CommonMark does)."""
    from markdown_it import MarkdownIt

    text = markdown_text
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        text = text[4:].split("\n---\n", 1)[1]
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}</style></head>\n"
            f"<body>\n{body}</body></html>\n")


if __name__ == "__main__":
    src, dst = map(Path, sys.argv[1:3])
    dst.write_text(render(src.read_text(encoding="utf-8"), src.name), encoding="utf-8")
