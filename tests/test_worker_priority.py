"""Priorities from Lua and from the game, through the real host, worker and model.

- `priority` on llm.generate, llm.chat, session:say and llm.session{} is accepted; a bad value is
  a clear error at the mod's line, naming the three choices;
- results carry their timings;
- the game marks the player's partner (Host.llm_focus -> Worker.focus): the engine sees it.
"""

from __future__ import annotations

from host.messages import StatsRequest
from modhost_util import run_until


def lines(console, mod_id, prefix):
    return [l for l in console.mod_lines(mod_id) if l.startswith(prefix)]


def test_priority_options_from_lua_and_the_error_for_a_bad_one(llm_host):
    host, console = llm_host({"npc": """
        registerForEvent("onInit", function()
          async(function()
            local a = await(llm.generate{ prompt = "The harbor", max_tokens = 3, priority = "player" })
            local b = await(llm.chat{ messages = { {role = "user", content = "Hi"} }, max_tokens = 3,
                                      priority = "background" })
            local s = llm.session{ system = "You are Oona.", priority = "background" }
            local c = await(s:say("Hello!", { max_tokens = 3 }))
            local d = await(s:say("And now?", { max_tokens = 3, priority = "player" }))
            for _, r in ipairs({ a, b, c, d }) do
              print("ok " .. tostring(r.error) .. " " .. string.format("%.0f", r.timings.first_token_ms)
                .. " " .. tostring(r.timings.queue_ms >= 0 and r.timings.prompt_ms >= 0))
            end
            local ok, err = pcall(function() llm.generate{ prompt = "x", priority = "urgent" } end)
            print("bad " .. tostring(ok) .. " " .. tostring(err))
            ok, err = pcall(function() llm.session{ priority = 3 } end)
            print("badsession " .. tostring(ok) .. " " .. tostring(err))
            ok, err = pcall(function() s:say("x", { priority = "high" }) end)
            print("badsay " .. tostring(ok) .. " " .. tostring(err))
          end)
        end)
    """})
    run_until(host, lambda: lines(console, "npc", "badsay "), 300)
    oks = lines(console, "npc", "ok ")
    assert len(oks) == 4 and all(l.split()[1] == "nil" and l.endswith("true") for l in oks), oks
    assert all(float(l.split()[2]) > 0 for l in oks)
    for prefix in ("bad ", "badsession ", "badsay "):
        line = lines(console, "npc", prefix)[0]
        assert line.startswith(prefix + "false") and 'must be "player", "normal" or "background"' in line, line
    for prefix in ("bad ", "badsession ", "badsay "):
        assert "init.lua:" in lines(console, "npc", prefix)[0], "the error points at the mod's line"


def test_the_game_marks_the_players_partner(llm_host, shared_worker):
    host, console = llm_host({"oona": "", "lise": ""})
    def engine_focus():
        # the engine is the worker thread's; read its state through a stats round trip first
        return shared_worker.wait(shared_worker.call(StatsRequest, "oona"), 30)["value"]

    host.llm_focus("oona")
    stats = engine_focus()
    assert stats["focus"] == ["oona", None]
    host.llm_focus("lise", session=7)
    assert engine_focus()["focus"] == ["lise", 7]
    host.llm_focus(None)
    assert engine_focus()["focus"] is None
