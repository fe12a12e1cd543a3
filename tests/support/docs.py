"""Reading the documentation as data: its code blocks and tables, for the tests that keep the
README and ``docs/`` honest (``tests/test_docs_examples.py``, ``tests/test_docs_reference.py``).

::

    for block in code_blocks():                  # every fenced block of README.md and docs/*.md
        block.lang, block.title, block.text      # "python", 'POST /llm/chat' or None, the code
    rows = table_rows(DOCS / "errors.md", "code")  # the first table whose first header is "code"
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .servers import PROJECT_ROOT

__all__ = [
    "DOCS",
    "NOT_RUN",
    "README",
    "CodeBlock",
    "code_blocks",
    "doc_files",
    "inline_codes",
    "table_rows",
]

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"

#: The first line of a Python block that is shown but not executed (it is still compiled).
NOT_RUN = "# not run:"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>.*)$")
_TITLE = re.compile(r"""title=(?:"([^"]*)"|'([^']*)')""")
_CODE_SPAN = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block: where it is, its language, its ``title="..."``, its text."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(PROJECT_ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every page of the manual."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def code_blocks(paths: list[Path] | None = None) -> Iterator[CodeBlock]:
    """Every fenced block, with the fence's indentation removed from its lines (blocks inside
    list items are indented)."""
    for path in doc_files() if paths is None else paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            opening = _FENCE.match(lines[i])
            if opening is None:
                i += 1
                continue
            indent, ticks, info = opening["indent"], opening["ticks"], opening["info"].strip()
            lang = info.split()[0] if info else ""
            title = _TITLE.search(info)
            body: list[str] = []
            j = i + 1
            while j < len(lines) and lines[j].strip() != ticks:
                line = lines[j]
                body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
                j += 1
            yield CodeBlock(
                path=path,
                line=i + 1,
                lang=lang,
                title=(title[1] or title[2]) if title else None,
                text="\n".join(body) + "\n",
            )
            i = j + 1


def table_rows(path: Path, first_header: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``path`` whose first header cell is
    ``first_header``, as lists of stripped cells (escaped pipes ``\\|`` kept inside cells)."""
    rows: list[list[str]] = []
    in_table = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            if in_table:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not in_table:
            in_table = cells[0] == first_header
            continue
        if all(set(c) <= set(":-") for c in cells):
            continue  # the |---|---| line
        rows.append(cells)
    if not rows:
        raise AssertionError(f"no table with first header {first_header!r} in {path}")
    return rows


def inline_codes(cell: str) -> list[str]:
    """The `code spans` of a table cell, in order."""
    return _CODE_SPAN.findall(cell)
