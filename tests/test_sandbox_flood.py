"""Floods, hostile data and hostile mod folders, each tried from inside real mods."""

from __future__ import annotations

from modhost_util import frames, make_host, mods_dir, read_log, write_mod  # noqa: F401

from host.limits import Limits
from host.runtime.grants import Grant

BYSTANDER = """
    ticks = 0
    registerForEvent("onUpdate", function() ticks = ticks + 1 end)
    return { ticks = function() return ticks end }
"""


# 17 -- floods ---------------------------------------------------------------------------

def test_class17_registration_floods_hit_quotas(make_host):
    host, console = make_host({"tasks": """
        for i = 1, 5000 do
          local ok, err = pcall(async, function() await(Cron.Sleep(100)) end)
          if not ok then print(i, err) break end
        end
    """, "flood": """
        local function flood(name, f)
          for i = 1, 5000 do
            local ok, err = pcall(f, i)
            if not ok then print(name, i, err) return end
          end
          print(name, "no limit")
        end
        flood("hotkeys", function(i) registerHotkey("k" .. i, "key", function() end) end)
        flood("inputs", function(i) registerInput("i" .. i, "input", function() end) end)
        flood("commands", function(i) registerCommand("c" .. i, "cmd", function() end) end)
        flood("timers", function(i) Cron.After(100, function() end) end)
    """})
    lines = console.mod_lines("flood")
    limits = host.limits
    expect = [("hotkeys", limits.max_hotkeys), ("inputs", limits.max_inputs),
              ("commands", limits.max_commands), ("timers", limits.max_timers)]
    for line, (name, limit) in zip(lines, expect):
        kind, n, err = line.split("\t", 2)
        assert kind == name and int(n) == limit + 1, line
        assert "quota exceeded" in err or "too many" in err, line
    (line,) = console.mod_lines("tasks")
    n, err = line.split("\t", 1)
    assert int(n) == limits.max_tasks + 1 and "too many unfinished tasks" in err
    assert host.mods["flood"].state == "loaded" and host.mods["tasks"].state == "loaded"


def test_class17_log_flood_is_capped_per_frame(make_host):
    host, console = make_host({"chatty": """
        registerForEvent("onUpdate", function()
          for i = 1, 1000 do print("spam " .. i) end
        end)
    """, "bystander": BYSTANDER}, limits=Limits(log_lines_per_frame=50))
    frames(host, 3)
    spam = [l for l in console.mod_lines("chatty") if l.startswith("spam")]
    assert len(spam) == 150
    log = read_log(host, "chatty")
    assert log.count("950 log lines dropped (limit 50 per frame)") == 2   # reported at the next frames
    assert host.mods["chatty"].state == "loaded"
    assert host.mods["bystander"].state == "loaded"


def test_class17_huge_log_lines_are_truncated(make_host):
    host, console = make_host({"m": 'print(("x"):rep(1000000)) spdlog.error(("y"):rep(50000))'},
                              limits=Limits(max_log_line=100))
    lines = console.mod_lines("m")
    assert lines[0] == "x" * 100 + " [...]"
    err = [l for l in console.lines if l.startswith("[m:error]")]
    assert err == ["[m:error] " + "y" * 100 + " [...]"]


def test_class17_event_flood_from_timers_stays_within_the_budget(make_host):
    # 4000 timers all firing in one frame: fine as long as the frame's work
    # fits the budget; the quota keeps it bounded.
    host, console = make_host({"m": """
        fired = 0
        for i = 1, 4000 do Cron.NextTick(function() fired = fired + 1 end) end
        registerForEvent("onUpdate", function() print(fired) end)
    """}, tomls={"m": "budget_ms = 1000\n"}, grants={"m": Grant(budget_ms=1000)})
    host.update(0.01)
    assert console.mod_lines("m") == ["4000"]


# 18 -- hostile data ------------------------------------------------------------------------

def test_class18_invalid_utf8_everywhere(make_host):
    host, console = make_host({"m": r"""
        local bad = "ok \255\254 end"
        print(bad)
        spdlog.warning(bad)
        print(pcall(json.encode, { s = bad }))
        print(pcall(json.decode, '"' .. bad .. '"'))
        print(pcall(function() for v in db:urows("SELECT ?", bad) do return v == bad end end))
        print(pcall(registerCommand, bad, "x", print))
        return { bad = bad }
    """, "reader": """
        registerForEvent("onInit", function() print(pcall(function() return GetMod("m").bad end)) end)
    """})
    lines = console.mod_lines("m")
    assert lines[0] == "ok \\xFF\\xFE end"
    assert "[m:warning] ok \\xFF\\xFE end" in console.lines
    assert lines[1].startswith("false\t") and "invalid UTF-8" in lines[1]
    assert lines[2].startswith("false\t") and "invalid UTF-8" in lines[2]
    assert lines[3] == "true\ttrue"  # the database is binary-safe: the same bytes come back
    assert lines[4].startswith("false\t")
    (r,) = console.mod_lines("reader")
    assert r.startswith("false\t") and "must be valid UTF-8" in r
    assert host.mods["m"].state == "loaded" and host.mods["reader"].state == "loaded"


def test_class18_deep_and_cyclic_data_across_mods(make_host):
    host, console = make_host({
        "owner": """
            local deep = {}
            local c = deep
            for i = 1, 100 do c.next = {} c = c.next end
            local cyc = {} cyc.self = cyc
            return { deep = function() return deep end, cyc = function() return cyc end,
                     echo = function(x) return x end }
        """,
        "reader": """
            registerForEvent("onInit", function()
              local o = GetMod("owner")
              print(pcall(o.deep))
              print(pcall(o.cyc))
              local t = {} t.t = t
              print(pcall(o.echo, t))
              print(pcall(o.echo, { list = { 1, 2, { x = "y" } } }))
              local copy = o.echo({ list = { 1, 2, { x = "y" } } })
              print(copy.list[3].x, #copy.list)
              print(pcall(o.echo, coroutine.create(print)))
            end)
        """,
    })
    lines = console.mod_lines("reader")
    assert lines[0].startswith("false\t") and "deeper than 32 levels" in lines[0]
    assert lines[1].startswith("false\t") and "deeper than 32 levels" in lines[1]
    assert lines[2].startswith("false\t") and "deeper than 32 levels" in lines[2]
    assert lines[3].startswith("true\t")
    assert lines[4] == "y\t3"
    assert lines[5].startswith("false\t") and "cannot be passed between mods" in lines[5]


def test_class18_huge_source_and_load_inputs(make_host, mods_dir):
    big = "x = 1\n" * 800_000           # 4.8 MB of source
    write_mod(mods_dir, "m", """
        print(load(("return 1 "):rep(1) .. ("--"):rep(3 * 1024 * 1024)))
        print(pcall(require, "huge"))
        print(load(42))
        print(load(function() return {} end))
    """, files={"huge.lua": big})
    host, console = make_host(limits=Limits(max_source_bytes=1024 * 1024))
    lines = console.mod_lines("m")
    assert lines[0].startswith("nil\t") and "exceeds the limit" in lines[0]
    assert lines[1].startswith("true\tnil\t") and "the limit is 1048576" in lines[1]
    assert lines[2].startswith("nil\t") and lines[3].startswith("nil\t")


# 19 -- hostile mod folders -----------------------------------------------------------------

def test_class19_hostile_folders_are_skipped_with_reasons(make_host, mods_dir):
    for name in ("bad id", "semi;colon", "ünïcode"):
        write_mod(mods_dir, name, "return 1")
    (mods_dir / "no_init").mkdir()
    (mods_dir / "no_init" / "main.lua").write_text("return 1")
    write_mod(mods_dir, "syntax", "local = = 1")
    write_mod(mods_dir, "throws", "error('init exploded')")
    write_mod(mods_dir, "bad_toml", "return 1", toml="this is = = not toml")
    write_mod(mods_dir, "bad_types", "return 1", toml="memory_mb = \"lots\"\n")
    write_mod(mods_dir, "too_much", "return 1", toml="memory_mb = 100000\n")
    write_mod(mods_dir, "bad_dep", "return 1", toml='dependencies = ["../etc"]\n')
    write_mod(mods_dir, "bytecode", "")
    (mods_dir / "bytecode" / "init.lua").write_bytes(b"\x1bLJ\x02garbage")
    write_mod(mods_dir, "fine", BYSTANDER)
    host, console = make_host()
    reasons = {mid: m.reason for mid, m in host.mods.items() if m.state != "loaded"}
    assert "not a valid mod id" in reasons["bad id"]
    assert "not a valid mod id" in reasons["semi;colon"]
    assert "not a valid mod id" in reasons["ünïcode"]
    assert reasons["no_init"] == "no init.lua in the folder"
    assert "does not compile" in reasons["syntax"]
    assert "init exploded" in reasons["throws"]
    assert "not valid TOML" in reasons["bad_toml"]
    assert "'memory_mb' must be an integer" in reasons["bad_types"]
    assert "memory_mb must be between 4 and 4096" in reasons["too_much"]
    assert "not a valid mod id" in reasons["bad_dep"]
    assert "bytecode" in reasons["bytecode"]
    assert host.mods["fine"].state == "loaded"
    frames(host, 2)
    ok, ticks = host.mods["fine"].call(host.mods["fine"].public.ticks)
    assert ok and ticks == 2
    for mid in reasons:
        # every skip is reported on the console: by the host, or on the mod's own error line
        assert f"'{mid}'" in console.text or f"[{mid}:error] not loaded" in console.text
