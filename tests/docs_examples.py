"""The examples of README.md and docs/*.md, as code to run (tests/e2e/test_docs_examples.py).

Fenced blocks are read in the order of the page:

- ```sh / ```bash blocks are shell examples: all of one page run, in order, in one bash script
  (`set -euo pipefail`), so a variable set in one block (`ID=$(jobfleet submit ...)`) is there in
  the next, as in one terminal;
- ```python blocks are Python examples: all of one page run, in order, in one interpreter;
- a ```yaml or ```json block whose first line is a comment naming a file (`# jobs.yaml`) is
  written to that file first, so that the examples after it can use it;
- everything else (```console transcripts, untagged synopses, ```sql, ```mermaid) is prose.

A block that is not meant to run here says so, with a reason people can read, either in its
info-string (```sh no-run: needs a second machine) or in an HTML comment on the line before it
(<!-- docs-test: skip: needs a second machine -->). Keep those few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = frozenset({"sh", "bash", "shell"})
PYTHON = frozenset({"python", "py"})
FILES = frozenset({"yaml", "yml", "json"})

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\b(?P<why>.*?)-->\s*$")
_FILE_COMMENT = re.compile(r"^(#|//)\s*(?P<name>[\w.-]+\.(ya?ml|json))\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None  # why it does not run here, or None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        if self.lang in SHELL:
            return "shell"
        if self.lang in PYTHON:
            return "python"
        if self.lang in FILES and self.file_name:
            return "file"
        return "prose"

    @property
    def file_name(self) -> str | None:
        first = self.code.split("\n", 1)[0].strip()
        m = _FILE_COMMENT.match(first)
        return m.group("name") if m else None


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of the page, with its language and skip marker."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).split("\n")
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        words = info.split(None, 1)
        lang = words[0].lower() if words else ""
        skip = None
        rest = words[1] if len(words) > 1 else ""
        if rest.startswith("no-run"):
            skip = rest.removeprefix("no-run").lstrip(": ").strip() or "no-run"
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0 and (s := _SKIP.match(lines[before].strip())):
            skip = s.group("why").lstrip(": ").strip() or "skipped"
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            body.append(lines[j])
            j += 1
        out.append(Block(page, i + 1, lang, "\n".join(body) + "\n", skip))
        i = j + 1
    return out


def runnable(page: Path, text: str | None = None) -> list[Block]:
    """The blocks of a page that run (shell, python) or set up files, in page order."""
    return [b for b in blocks(page, text) if b.kind != "prose" and b.skip is None]


def shell_script(found: list[Block]) -> str:
    """One bash script running every shell block of a page, each announced on stderr."""
    parts = ["set -euo pipefail"]
    for block in found:
        if block.kind == "shell":
            parts.append(f"echo '>>> docs example {block.where}' >&2")
            parts.append(block.code)
    return "\n".join(parts) + "\n"


def python_script(found: list[Block]) -> str:
    """One Python program running every python block of a page in one namespace; a traceback
    names the page and line of the block."""
    codes = [(b.where, b.code) for b in found if b.kind == "python"]
    return (
        "import sys\n"
        f"_blocks = {codes!r}\n"
        "_ns = {'__name__': '__main__'}\n"
        "for _where, _code in _blocks:\n"
        "    print('>>> docs example', _where, file=sys.stderr, flush=True)\n"
        "    exec(compile(_code, _where, 'exec'), _ns)\n"
    )
