"""A real host for tests/test_crash_consistency.py to kill -9 while it writes.

    python tests/crash_child.py session|ingest <mods_dir>

Runs `build_host` (the real model, worker, llm and rag modules) with one mod
that saves a session (`session:save`) or ingests documents (`store:add`) in
a loop, printing one line per write the mod saw succeed, until it is killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SESSION_MOD = """
local s = llm.session{ system = "You keep a ship's log." }
async(function()
  local r = await(s:say("Log: we sailed at dawn.", { max_tokens = 2 }))
  local n = 0
  while true do
    n = n + 1
    local h = s:save("slot")
    local res = await(h)
    if res.error then print("SAVE-ERROR " .. tostring(res.error)) else print("SAVED " .. n) end
  end
end)
"""

INGEST_MOD = """
local store = rag.open("kb")
local words = { "harbor", "anchor", "rope", "sail", "gull", "tide", "lantern", "cargo" }
async(function()
  local n = 0
  while true do
    n = n + 1
    local parts = {}
    for i = 1, 400 do parts[i] = words[(i * n) % #words + 1] .. " " .. i end
    local res = await(store:add("doc" .. (n % 30), table.concat(parts, " "), { n = n }))
    if res.error then print("ADD-ERROR " .. tostring(res.error)) else print("ADDED " .. n) end
  end
end)
"""


# After the kills: the files still open and work through the real API.
SESSION_CHECK_MOD = """
async(function()
  local s = llm.load_session("slot")
  local r = await(s:say("And then?", { max_tokens = 2 }))
  print("CHECKED " .. tostring(r.error or r.finish_reason))
end)
"""

INGEST_CHECK_MOD = """
local store = rag.open("kb")
async(function()
  local r = await(store:search("anchor rope", { k = 3 }))
  print("CHECKED " .. tostring(r.error or #r.hits))
end)
"""

MODS = {"session": SESSION_MOD, "ingest": INGEST_MOD,
        "session-check": SESSION_CHECK_MOD, "ingest-check": INGEST_CHECK_MOD}


def main() -> None:
    kind, mods_dir = sys.argv[1], Path(sys.argv[2])
    folder = mods_dir / "writer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "init.lua").write_text(MODS[kind])
    from host.app import build_host

    host = build_host(mods_dir, rag=kind.startswith("ingest"), console=lambda line: print(line, flush=True))
    print("READY", flush=True)
    while True:
        host.update(1 / 60)
        time.sleep(0.001)


if __name__ == "__main__":
    main()
