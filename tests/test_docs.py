"""Examples in the docs are run: a broken doc example is a bug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize("index,code", [
    pytest.param(i, code, marks=[pytest.mark.needs_model] if "model" in code or "build_host" in code else [])
    for i, code in enumerate(_python_blocks(ROOT / "README.md"))])
def test_readme_python_examples_run(index, code, capsys):
    exec(compile(code, f"README.md[python block {index}]", "exec"), {})
    assert capsys.readouterr().out.strip(), "the example printed nothing"


def _lua_blocks(path: Path):
    return re.findall(r"```lua\n(.*?)```", path.read_text(), re.S)


def test_modding_guide_examples_run_as_mods(tmp_path, model):
    """Every lua block of docs/MODDING.md is a complete init.lua; all run in one real host."""
    import time

    from host.app import build_host
    from host.runtime.grants import Grant
    from host.worker import WorkerConfig
    from modhost_util import Console, read_log, write_mod

    blocks = _lua_blocks(ROOT / "docs" / "MODDING.md")
    assert len(blocks) >= 8
    mods = tmp_path / "mods"
    ids = []
    grants = {}
    for i, code in enumerate(blocks):
        mod_id = f"doc{i:02d}"
        if code.startswith("-- granted: trusted"):
            grants[mod_id] = Grant(trusted=True)
        write_mod(mods, mod_id, code)
        ids.append(mod_id)
    console = Console()
    host = build_host(mods, model=model, worker_config=WorkerConfig(n_ctx=1024, n_seq_max=4),
                      console=console, load=False, grants=grants)

    class Market:       # the game of MODDING.md's "The game's API", for its Observe/Override block
        gold = 10

        def buy(self, item):
            return self.gold

    market = Market()
    host.expose("Market", market)
    market.buy = host.hookable("Market", "Buy", market.buy)
    host.load()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            pending = [m for m in ids if "done" not in console.mod_lines(m)]
            if not pending:
                break
            host.update(1 / 60)
            time.sleep(0.005)
        host.run_command("greet reader")
        host.press_hotkey("toggle_map")
        assert market.buy("fish") == 10 and market.buy("apple") == 10
        host.update(1 / 60)
    finally:
        host.shutdown()
    for mod_id in ids:
        log = read_log(host, mod_id)
        assert host.mods[mod_id].state == "loaded", (mod_id, host.mods[mod_id].reason, log)
        assert "done" in console.mod_lines(mod_id), (mod_id, console.text[-3000:])
        assert "[error]" not in log and "[critical]" not in log, (mod_id, log)
    assert any("hello, reader" in line for line in console.lines)
    assert any("map toggled" in line for line in console.lines)


def test_readme_mod_example_answers(tmp_path, llm_host):
    """The README's mod: its `ask` command gets an answer printed through the real model."""
    from modhost_util import run_until

    (code,) = _lua_blocks(ROOT / "README.md")
    host, console = llm_host({"harbor_master": code})
    assert host.mods["harbor_master"].state == "loaded"
    host.run_command("ask When does the tide turn?")
    run_until(host, lambda: console.mod_lines("harbor_master"))
    assert console.mod_lines("harbor_master")[0].strip()
