"""The repository's code, tests and docs stand on their own: no comment, docstring or doc cites
an issue number or a file outside the repository (a reader of a clone has neither)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\b[Ii]ssues? ?#?\d+|\bthe issue\b|\.\./shared|/work/|sandbox-checklist|\bchecklist "
                     r"(?:class(?:es)? )?\d|\bLUA_API\.md|\bARCHITECTURE\.md|\bSTYLE\.md|\bBRIEFING")


def _text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in out.splitlines():
        if name.startswith("bench/results/"):   # recorded runs: their text is what the run printed
            continue
        if name.endswith((".py", ".lua", ".md", ".toml", ".cfg", ".sh")) or name == "Makefile":
            yield ROOT / name


def test_no_text_refers_outside_the_repository():
    found = []
    for path in _text_files():
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path.name != "test_repo_text.py":
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not found, "\n".join(found)
