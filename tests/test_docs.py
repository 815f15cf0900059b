"""Examples in the docs are run: a broken doc example is a bug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize("index,code", list(enumerate(_python_blocks(ROOT / "README.md"))))
def test_readme_python_examples_run(index, code, capsys):
    exec(compile(code, f"README.md[python block {index}]", "exec"), {})
    assert capsys.readouterr().out.strip(), "the example printed nothing"
