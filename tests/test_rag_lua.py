"""The Lua `rag` module and session memory, through the real host, worker, models and SQLite."""

from __future__ import annotations

import time

import pytest

from host.app import build_host
from host.worker import WorkerConfig
from modhost_util import Console, mods_dir, write_mod  # noqa: F401

MOD = """
registerForEvent("onInit", function()
  async(function()
    local s = rag.open("notes")
    print("add " .. await(s:add("ferry", "The ferry leaves at dawn from pier nine.", { kind = "schedule" })).value.status)
    print("add " .. await(s:add("copper", "Copper wire is traded at the market hall on Ember Row.")).value.status)
    print("again " .. await(s:add("ferry", "The ferry leaves at dawn from pier nine.", { kind = "schedule" })).value.status)
    local r = await(s:search("when does the ferry leave?", { k = 2 }))
    print("top " .. r.hits[1].id .. " " .. #r.hits .. " " .. r.hits[1].meta.kind)
    local b = await(s:search('"AND (OR* ^ NEAR: -- ; DROP TABLE chunks', { mode = "bm25" }))
    print("weird " .. tostring(b.error) .. " " .. #b.hits)
    local f = await(s:search("ferry copper", { k = 5, filters = { kind = "schedule" } }))
    print("filtered " .. #f.hits)
    print("removed " .. tostring(await(s:remove("ferry")).value))
    local after = await(s:search("ferry dawn pier nine", { mode = "bm25" }))
    print("after " .. #after.hits)
    local ok, err = pcall(rag.open, "../../etc/passwd")
    print("badname " .. tostring(err))
    local plain = llm.session{ system = "Answer briefly." }
    local remembering = llm.session{ system = "Answer briefly.", memory = s }
    local p = await(plain:say("Where is copper traded?", { max_tokens = 12 }))
    local m = await(remembering:say("Where is copper traded?", { max_tokens = 12 }))
    print("memory " .. p.usage.prompt_tokens .. " " .. m.usage.prompt_tokens .. " " .. tostring(m.error))
  end)
end)
"""


def test_rag_from_lua(mods_dir, model):
    write_mod(mods_dir, "keeper", MOD)
    console = Console()
    host = build_host(mods_dir, model=model, worker_config=WorkerConfig(n_ctx=1024), console=console)
    try:
        deadline = time.monotonic() + 120
        while not console.mod_lines("keeper") or not any(l.startswith("memory ") for l in console.mod_lines("keeper")):
            assert time.monotonic() < deadline, console.text
            assert host.mods["keeper"].state == "loaded", console.text
            host.update(1 / 60)
            time.sleep(0.005)
    finally:
        host.shutdown()
    out = {l.split(" ", 1)[0]: l.split(" ", 1)[1] for l in console.mod_lines("keeper")}
    assert out["again"] == "unchanged", "unchanged content is not re-embedded"
    assert out["top"] == "ferry 2 schedule"
    assert out["weird"].startswith("nil "), "operators and quotes in a query are just text"
    assert out["filtered"] == "1"
    assert out["removed"] == "true" and out["after"] == "0"
    assert "must match" in out["badname"]
    plain, remembering, err = out["memory"].split()
    assert int(remembering) > int(plain) + 10, "the session put the store's hits into the turn"
    assert err == "nil"
    assert (mods_dir / "keeper" / "notes.rag.sqlite3").is_file()
