"""`import host` is the API a game uses (docs/EMBEDDING.md); the reference game and the guide use it
and nothing below it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_exported_name_resolves_and_import_is_cheap():
    code = ("import sys, host as relic\n"
            "heavy = sorted(m for m in ('lupa', 'cffi', 'host.llama', 'host.runtime') if m in sys.modules)\n"
            "names = [n for n in relic.__all__ if n not in ('imgui_layer', 'ImGuiOverlay')]\n"
            "missing = [n for n in names if getattr(relic, n, None) is None]\n"
            "import host.startup, host.app\n"          # importing the submodule must not break relic.prepare
            "print(heavy, missing, callable(relic.prepare), relic.Config.__name__, relic.create_host.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] [] True Config create_host"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_reference_game_uses_only_the_public_api():
    for name in ("main.py", "game.py", "world.py", "render.py"):
        relic = {m for m in _imports(ROOT / "examples" / "market" / name) if m == "host" or m.startswith("host.")}
        assert relic <= {"host"}, (name, relic)
    game = (ROOT / "examples" / "market" / "game.py").read_text() + (ROOT / "examples" / "market" / "main.py").read_text()
    for private in (".public", ".providers", "add_provider", ".call(", "host.ui.", "host.game"):
        assert private not in game, private


def test_the_embedding_guide_uses_only_the_public_api():
    text = (ROOT / "docs" / "EMBEDDING.md").read_text()
    for block in re.findall(r"```(?:python)?\n(.*?)```", text, re.S):
        for line in block.splitlines():
            assert not re.match(r"\s*(from|import) host\.", line), line
