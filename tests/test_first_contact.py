"""First contact, as a new user meets it: a model without a chat template, `--template`, one line per
user error (no traceback unless --debug), each mod error printed once.  Real model, real commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modhost_util import Console, run_until, write_mod

pytestmark = pytest.mark.needs_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base_model(model_path, tmp_path_factory) -> Path:
    """The default model with its chat template key renamed: what a base model looks like to Relic."""
    data = bytearray(Path(model_path).read_bytes())
    key = b"tokenizer.chat_template"
    at = data.find(key)
    assert at > 0, "the default model has a chat template"
    data[at:at + len(key)] = b"tokenizer.chat_xemplate"  # same length: the file stays a valid GGUF
    out = tmp_path_factory.mktemp("base") / "base-model.gguf"
    out.write_bytes(bytes(data))
    return out


def relic(*args, stdin: str = "", cwd=None, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "host.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def test_chat_without_a_template_says_how_to_fix_it_in_one_line(base_model):
    out = relic("chat", "--model", str(base_model), stdin="hello\n")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--template" in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert "chatml', 'command-r'" not in out.stderr          # not the list of every template name
    debug = relic("chat", "--model", str(base_model), "--debug", stdin="hello\n")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "--template" in debug.stderr


def test_chat_with_template_answers(base_model):
    out = relic("chat", "--model", str(base_model), "--template", "chatml", "--max-tokens", "8",
                stdin="Say hi.\nquit\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "model> " in out.stdout and "pieces in" in out.stdout


def test_session_creation_fails_naming_the_fix_once(base_model, tmp_path):
    """llm.session on a model without a template: a Lua error at the mod's line, once, naming --template
    (not "unknown session 1" at the first say, and no list of template names)."""
    import host as relic_api

    mods = tmp_path / "mods"
    write_mod(mods, "talker", """
        local ok, err = pcall(function() local s = llm.session{ system = "You are Bram." }; return s end)
        print("session", ok, err)
        local ok2, err2 = pcall(function() local h = llm.chat{ messages = { { role = "user", content = "hi" } } }; return h end)
        print("chat", ok2, err2)
        local fine = llm.session{ system = "You are Bram.", template = "chatml" }
        fine:say("Hello", { max_tokens = 4, on_done = function(r) print("said", r.finish_reason, r.error) end })
    """)
    console = Console()
    config = relic_api.Config.load(args={"model": str(base_model), "mods_dir": str(mods)}, rag=False)
    host = relic_api.create_host(config, console=console)
    try:
        host.load()
        assert host.mods["talker"].state == "loaded", host.mods["talker"].reason
        run_until(host, lambda: any(l.startswith("said") for l in console.mod_lines("talker")), 120)
    finally:
        host.shutdown()
    lines = console.mod_lines("talker")
    session = next(l for l in lines if l.startswith("session"))
    assert session.startswith("session\tfalse\tmods/talker/init.lua:2: ") and "--template" in session, session
    assert "unknown session" not in console.text and "chatml', 'command-r'" not in session
    chat = next(l for l in lines if l.startswith("chat"))
    assert chat.startswith("chat\tfalse\tmods/talker/init.lua:4: ") and "--template" in chat, chat
    said = next(l for l in lines if l.startswith("said"))
    assert said.split("\t")[1] in ("stop", "length"), said
    # the host said once, at start, that the model has no template
    assert sum("no chat template" in l for l in console.lines if l.startswith("[relic]")) == 1


def test_relic_run_template_flag_reaches_the_mods(base_model, tmp_path):
    mods = tmp_path / "mods"
    write_mod(mods, "m", """
        local s = llm.session{ system = "Answer with one word." }
        s:say("Hello", { max_tokens = 4, on_done = function(r) print("reply", r.finish_reason) end })
    """)
    out = relic("run", "--model", str(base_model), "--template", "chatml", "--headless", "--frames", "4000",
                "--mods", str(mods), "--fps", "200", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "[m] reply\t" in out.stdout, out.stdout[-2000:]
    bad = relic("run", "--model", str(base_model), "--headless", "--frames", "30", "--mods", str(mods), cwd=tmp_path)
    assert bad.returncode == 0, bad.stderr[-2000:]
    assert "--template" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr
    # the mod's failure is printed once on the console (its traceback is in its log)
    assert bad.stdout.count("not loaded") == 1, bad.stdout


def test_a_mod_error_is_printed_once(tmp_path):
    """The same error in every frame: one console line (the log has each one with its traceback)."""
    mods = tmp_path / "mods"
    write_mod(mods, "bad", 'registerForEvent("onUpdate", function() local t = nil; return t.x end)')
    write_mod(mods, "worse", 'local x = nil\nprint(x.y)')
    out = relic("run", "--no-llm", "--headless", "--frames", "5", "--mods", str(mods), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("attempt to index local 't'") == 1, out.stdout
    assert out.stdout.count("attempt to index local 'x'") == 1, out.stdout
    assert "stack traceback" not in out.stdout
    log = (mods / "bad" / "bad.log").read_text()
    assert log.count("attempt to index local 't'") >= 3 and "stack traceback" in log
