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


def _embedding_steps():
    """docs/EMBEDDING.md's steps: (title, lua block, python block) for each that has both."""
    text = (ROOT / "docs" / "EMBEDDING.md").read_text()
    steps = []
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        lua, py = _lua_blocks_in(part), re.findall(r"```python\n(.*?)```", part, re.S)
        if lua and py:
            steps.append((part.splitlines()[0], lua[0], py[0]))
    return steps


def _lua_blocks_in(text: str):
    return re.findall(r"```lua\n(.*?)```", text, re.S)


def _run_embedding_step(tmp_path, monkeypatch, capsys, title: str, lua: str, py: str, mod_id: str) -> str:
    mods = tmp_path / "mods" / mod_id
    mods.mkdir(parents=True)
    (mods / "init.lua").write_text(lua)
    monkeypatch.chdir(tmp_path)
    exec(compile(py, f"EMBEDDING.md[{title}]", "exec"), {"__name__": "__embedding__"})
    out = capsys.readouterr().out
    log = mods / f"{mod_id}.log"
    assert "[error]" not in (log.read_text() if log.exists() else ""), log.read_text()
    return out


def test_embedding_guide_game_without_a_model_runs(tmp_path, monkeypatch, capsys):
    """EMBEDDING.md step 1, as written: the printed lines it promises."""
    title, lua, py = _embedding_steps()[0]
    assert title.startswith("1.")
    out = _run_embedding_step(tmp_path, monkeypatch, capsys, title, lua, py, "greeter")
    lines = out.splitlines()
    assert "[greeter] welcome, Ada! the house has 5 gold" in lines
    assert "greeted" in lines and "[greeter] someone pays 2" in lines and "7" in lines
    text = (ROOT / "docs" / "EMBEDDING.md").read_text()
    for promised in ("`[greeter] welcome, Ada! the house has 5 gold`", "`greeted`", "`[greeter] someone pays 2`"):
        assert promised in text


@pytest.mark.needs_model
def test_embedding_guide_talking_character_runs(tmp_path, monkeypatch, capsys):
    """EMBEDDING.md step 2 with the default model: the keeper answers through the game's own API."""
    title, lua, py = _embedding_steps()[1]
    assert title.startswith("2.")
    out = _run_embedding_step(tmp_path, monkeypatch, capsys, title, lua, py, "keeper")
    assert "keeper listens: True" in out
    said = [line for line in out.splitlines() if line.startswith("Mara: ")]
    assert said and said[0] != "Mara: (no answer)" and len(said[0]) > len("Mara: "), out[-2000:]
