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
    local called = nil
    local h = s:search("where is copper traded?", { k = 1, mode = "dense", on_done = function(res) called = res end })
    local res = await(h)
    print("ondone " .. tostring(called == res) .. " " .. called.hits[1].id .. " " .. tostring(called.hits[1].score > 0))
    print("badondone " .. tostring(select(2, pcall(s.search, s, "ferry", { on_done = 3 }))))
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
    assert out["ondone"] == "true copper true", "a search's on_done gets its result (dense: a cosine score)"
    assert "on_done must be a function" in out["badondone"]
    assert out["removed"] == "true" and out["after"] == "0"
    assert "must match" in out["badname"]
    plain, remembering, err = out["memory"].split()
    assert int(remembering) > int(plain) + 10, "the session put the store's hits into the turn"
    assert err == "nil"
    assert (mods_dir / "keeper" / "notes.rag.sqlite3").is_file()


ARCHIVIST = """
registerForEvent("onInit", function()
  local s = rag.open("annals")
  local parts = {}
  for i = 1, 1500 do parts[i] = "In year " .. i .. " the harbor lantern was lit by keeper " .. (i % 97) .. "." end
  local text = table.concat(parts, " ")                 -- about 75 KB: a hundred chunks to embed
  local add = s:add("annals", text)
  local find = s:search("who lit the lantern in year 4242?", { k = 1, mode = "bm25" })  -- asked at once
  async(function()
    local r = await(add)
    print("ingested " .. tostring(r.error) .. " " .. r.value.status .. " " .. r.value.chunks)
    local f = await(find)
    print("found " .. #f.hits .. " " .. f.hits[1].id)
  end)
end)
"""
CONTROL = """
registerForEvent("onInit", function()
  async(function()
    for i = 1, 3 do
      local r = await(llm.generate{ prompt = "The harbor at dawn is", max_tokens = 4 })
      print("got " .. i .. " " .. r.finish_reason)
    end
  end)
end)
"""


def test_a_long_store_ingest_lets_other_mods_generate(mods_dir, model):
    """A store:add of a hundred chunks runs in slices: the control mod's generations finish while it is
    still embedding, and the ingesting mod's own later request (a search) still sees the new document."""
    check_sliced_ingest(mods_dir, model=model, worker_config=WorkerConfig(n_ctx=512, n_seq_max=2))


def check_sliced_ingest(mods_dir, **host_kw):
    """The archivist ingests ~100 chunks while the control mod generates three times (on the host that
    ``host_kw`` builds: the embedded model or a server); every generation ends before the ingest does."""
    write_mod(mods_dir, "archivist", ARCHIVIST)
    write_mod(mods_dir, "control", CONTROL)
    console = Console()
    host = build_host(mods_dir, console=console, **host_kw)
    order = []
    try:
        deadline = time.monotonic() + 600
        while not any(l.startswith("found ") for l in console.mod_lines("archivist")):
            assert time.monotonic() < deadline, console.text
            assert all(m.state == "loaded" for m in host.mods.values()), console.text
            host.update(1 / 60)
            for mod in ("archivist", "control"):
                for line in console.mod_lines(mod):
                    if (mod, line) not in order:
                        order.append((mod, line))
            time.sleep(0.005)
    finally:
        host.shutdown()
    lines = [line for _mod, line in order]
    ingested = next(l for l in lines if l.startswith("ingested "))
    assert ingested.startswith("ingested nil added ") and int(ingested.split()[3]) > 50, ingested
    assert lines.index("got 3 length") < lines.index(ingested), lines  # all three served during the ingest
    assert console.mod_lines("archivist")[-1] == "found 1 annals", "the search asked during the add waited for it"
