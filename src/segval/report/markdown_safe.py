"""Dataset-controlled text (class names, file names, notes, annotator ids, descriptions) made safe in Markdown.

A dataset can hold any string: ``<script>alert(1)</script>`` as a class name, ``[x](javascript:…)`` in a
release note. Rendered into a report, a card on the Hugging Face Hub or a CI page, it must show as written,
never run or link. Torch-free, so the QA and gate renderers use it without importing torch.

* :func:`md_escape`: one value in a sentence or table cell (every Markdown / HTML character escaped);
* :func:`md_code`: a value in a code span (file names);
* :func:`md_prose`: text meant as Markdown (a dataset description, a guideline, release notes): its
  formatting is kept, raw HTML is shown as text and links to anything but http(s) / mailto / relative
  targets are disarmed.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["md_code", "md_escape", "md_prose"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~$#])")
# where a link target starts: an inline link / image "](" or a reference definition "[id]: "
_LINK_TARGET = re.compile(r"(\]\(\s*|^\s*\[[^\]\n]+\]:\s*)([a-zA-Z][a-zA-Z0-9+.\-]*):", re.MULTILINE)


def md_escape(text: Any) -> str:
    """``text`` on one line with every Markdown and HTML special character backslash-escaped.

    >>> md_escape("<b>[x](javascript:1)")
    '\\\\<b\\\\>\\\\[x\\\\](javascript:1)'
    """
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def md_code(text: Any) -> str:
    """``text`` as an inline code span (shown verbatim, HTML and links inert), fenced by one more backtick than
    its longest backtick run so no value can close the span early (CommonMark).

    >>> md_code("disc"), md_code("a`b")
    ('`disc`', '``a`b``')
    """
    s = " ".join(str(text).split())
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_prose(text: Any) -> str:
    """Markdown ``text`` with its formatting kept, raw HTML shown as text and unsafe link targets disarmed.

    >>> md_prose("**bold** <script>x</script> [a](javascript:alert(1)) [b](https://e.org)")
    '**bold** &lt;script&gt;x&lt;/script&gt; [a](unsafe-javascript:alert(1)) [b](https://e.org)'
    """
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _LINK_TARGET.sub(_disarm, out)


def _disarm(m: re.Match[str]) -> str:
    scheme = m.group(2)
    if scheme.lower() in ("http", "https", "mailto"):
        return m.group(0)
    return f"{m.group(1)}unsafe-{scheme}:"
