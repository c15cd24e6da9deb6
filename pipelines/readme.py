"""Regenerate a marked section of README.md from a command's output (figures are never typed)."""
from __future__ import annotations

from pathlib import Path

from .checkpoints import PROJECT_ROOT


def replace_section(name: str, text: str, path: str | Path = PROJECT_ROOT / "README.md") -> None:
    """Replace what lies between `<!-- name:start -->` and `<!-- name:end -->` (appended if absent)."""
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.strip()}\n{end}"
    if start in body and end in body:
        head, rest = body.split(start, 1)
        body = head + block + rest.split(end, 1)[1]
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    path.write_text(body)


def read_section(name: str, path: str | Path = PROJECT_ROOT / "README.md") -> str:
    """The text between `<!-- name:start -->` and `<!-- name:end -->`, or "" if there is none."""
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.exists() else ""
    if start not in body or end not in body:
        return ""
    return body.split(start, 1)[1].split(end, 1)[0].strip()
