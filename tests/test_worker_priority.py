"""Priorities from Lua and from the game, through the real host, worker and model.

- `priority` on llm.generate, llm.chat, session:say and llm.session{} is accepted; a bad value is
  a clear error at the mod's line, naming the three choices;
- results carry their timings;
- the game marks the player's partner (Host.llm_focus -> Worker.focus): the engine sees it, and
  that mod's request then runs as "player" (its result says so): it takes a sequence from requests
  queued before it and answers first.
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


COUNTING = "Count from one to two hundred in words: one, two, three, four,"
REPORT = """
    local function report(r)
      print(string.format("done %s %s %d %s", r.timings.priority, r.finish_reason, r.timings.swaps,
        tostring(r.error)))
    end
"""


def test_the_focused_partner_runs_as_player_ahead_of_the_street(llm_host, shared_worker):
    """Five street requests hold every sequence (one waits); then the game names oona as
    the player's partner and her session turn (asking for "background", even) runs as "player": it
    takes a sequence from the street at once and answers before any of them, although all asked
    before her.  (Unfocused, a background turn would wait for the street: no sequence to take.)"""
    street = REPORT + """
        registerForEvent("onInit", function()
          for i = 1, N do
            llm.generate{ prompt = "COUNTING", max_tokens = 64, temperature = 0, on_done = report }
          end
        end)
    """.replace("COUNTING", COUNTING)
    oona = REPORT + """
        local s = llm.session{ system = "You are Oona, a fishmonger.", priority = "background" }
        registerHotkey("talk", "Talk to Oona", function()
          s:say("Hello, Oona!", { max_tokens = 4, on_done = report })
        end)
    """
    # one street mod: no equal-priority preemption within it (see host.engine.admission)
    host, console = llm_host({"bard": street.replace("N do", "5 do"), "oona": oona})

    def stats():
        return shared_worker.wait(shared_worker.call(StatsRequest, "oona"), 30)["value"]

    def street_done():
        return lines(console, "bard", "done ")

    run_until(host, lambda: stats()["running"] == 4 and stats()["waiting"] >= 1, 120)
    preempted_before = stats()["preemptions"]
    host.llm_focus("oona")
    assert host.press_hotkey("talk", "oona") == 1
    run_until(host, lambda: lines(console, "oona", "done "), 120)
    assert street_done() == [], f"the partner answered first, although she asked last: {street_done()}"
    assert lines(console, "oona", "done ")[0].split()[1:4] == ["player", "length", "0"], lines(console, "oona", "")
    assert stats()["preemptions"] == preempted_before + 1, "a street request gave its sequence up to her"
    run_until(host, lambda: len(street_done()) == 5, 300)
    host.llm_focus(None)
    assert sorted(street_done()) == sorted(["done normal length 0 nil"] * 4 + ["done normal length 1 nil"]), \
        "the street ran as asked; the one she took a sequence from resumed and finished"
