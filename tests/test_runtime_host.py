"""Host: loading, events, registration, reload, GetMod, broken mods, providers."""

from __future__ import annotations

import shutil

import pytest

from modhost_util import Console, frames, make_host, mods_dir, read_log, write_mod  # noqa: F401

from host.runtime.grants import Grant
from host.runtime.host import Host, SkippedMod
from host.limits import Limits
from host.runtime.mod import Mod

RECORDER = """
    local log = {}
    local function rec(s) log[#log + 1] = s end
    rec("init.lua")
    registerForEvent("onInit", function() rec("onInit") end)
    registerForEvent("onUpdate", function(dt) rec(("onUpdate %.6f"):format(dt)) end)
    registerForEvent("onDraw", function() rec("onDraw") end)
    registerForEvent("onOverlayOpen", function() rec("onOverlayOpen") end)
    registerForEvent("onOverlayClose", function() rec("onOverlayClose") end)
    registerForEvent("onShutdown", function() rec("onShutdown") print(table.concat(log, "|")) end)
    return { log = log }
"""


def test_event_order_and_delta_time(make_host):
    host, console = make_host({"rec": RECORDER})
    host.update(0.016)
    host.draw()
    host.open_overlay()
    host.open_overlay()          # no change, no second event
    host.update(0.25)
    host.draw()
    host.close_overlay()
    host.shutdown()
    (line,) = console.mod_lines("rec")
    assert line.split("|") == [
        "init.lua", "onInit",
        "onUpdate 0.016000", "onDraw",
        "onOverlayOpen",
        "onUpdate 0.250000", "onDraw",
        "onOverlayClose",
        "onShutdown",
    ]


def test_on_init_runs_after_every_init_lua(make_host):
    host, console = make_host({
        "a": """
            print("a init sees b: " .. tostring(GetMod("b")))
            registerForEvent("onInit", function() print("a onInit sees b.value = " .. GetMod("b").value) end)
        """,
        "b": """return { value = 42 }""",
    })
    assert console.mod_lines("a") == ["a init sees b: nil", "a onInit sees b.value = 42"]


def test_states_and_manifest(make_host, mods_dir):
    write_mod(mods_dir, "t", "return 1", toml='name = "T"\ntrusted = true\nmemory_mb = 32\nbudget_ms = 20\n')
    host, _ = make_host({"s": "return 2"}, grants={"t": Grant(trusted=True)})
    t, s = host.mods["t"], host.mods["s"]
    # trust from the grant; memory and budget lowered by the mod's own request
    assert (t.state, t.trusted, t.manifest.memory_mb, t.budget_s) == ("loaded", True, 32, 0.02)
    assert (s.state, s.trusted, s.reason) == ("loaded", False, None)
    assert t.folder == mods_dir / "t"


def test_trusted_mods_get_the_full_library_and_the_jit(make_host, mods_dir):
    write_mod(mods_dir, "trusted", """
        local lib = require("helper")
        print(type(io.open), type(os.getenv), type(debug.getinfo), type(require("ffi").new),
              jit.status(), lib.x)
    """, files={"helper.lua": "return { x = 42 }"})
    write_mod(mods_dir, "sandboxed", """
        print(type(io), type(os.getenv), type(debug), type(jit), pcall(require, "ffi"))
    """)
    host, console = make_host(grants={"trusted": Grant(trusted=True)})
    assert console.mod_lines("trusted") == ["function\tfunction\tfunction\tfunction\ttrue\t42"]
    (line,) = console.mod_lines("sandboxed")
    # sandboxed io is CET's (files in the mod folder only, tests/test_cet_io.py)
    assert line.startswith("table\tnil\tnil\tnil\ttrue\tnil\t") and "not found" in line


def test_dependencies_load_first(make_host, mods_dir):
    write_mod(mods_dir, "a_user", 'print("user") return {}', toml='dependencies = ["z_lib"]\n')
    write_mod(mods_dir, "z_lib", 'print("lib") return {}')
    host, console = make_host()
    assert host.order.index("z_lib") < host.order.index("a_user")
    assert [l for l in console.lines if l in ("[user] user", "[lib] lib")] == []  # prefixes are ids
    assert console.mod_lines("z_lib") == ["lib"] and console.mod_lines("a_user") == ["user"]
    idx = {l: i for i, l in enumerate(console.lines)}
    assert idx["[z_lib] lib"] < idx["[a_user] user"]


def test_unmet_dependencies_and_cycles_are_skipped(make_host, mods_dir):
    write_mod(mods_dir, "needs_ghost", "return 1", toml='dependencies = ["ghost"]\n')
    write_mod(mods_dir, "c1", "return 1", toml='dependencies = ["c2"]\n')
    write_mod(mods_dir, "c2", "return 1", toml='dependencies = ["c1"]\n')
    write_mod(mods_dir, "broken", "error('boom')")
    write_mod(mods_dir, "needs_broken", "return 1", toml='dependencies = ["broken"]\n')
    write_mod(mods_dir, "fine", "return 1")
    host, console = make_host()
    assert host.mods["needs_ghost"].state == "failed"
    assert "'ghost' is not installed" in host.mods["needs_ghost"].reason
    assert "cycle" in host.mods["c1"].reason and "cycle" in host.mods["c2"].reason
    assert host.mods["broken"].state == "failed"
    assert "dependency 'broken' did not load" in host.mods["needs_broken"].reason
    assert host.mods["fine"].state == "loaded"
    assert "skipped mod 'needs_ghost'" in console.text


def test_registration_window(make_host):
    host, console = make_host({"late": """
        registerForEvent("onUpdate", function()
          local ok, err = pcall(registerForEvent, "onDraw", function() end)
          print("late registerForEvent:", ok, err)
          ok, err = pcall(registerHotkey, "k", "K", function() end)
          print("late registerHotkey:", ok, err)
          ok, err = pcall(registerCommand, "c", "C", function() end)
          print("late registerCommand:", ok, err)
        end)
    """})
    host.update(0.01)
    lines = console.mod_lines("late")
    assert len(lines) == 3
    for line in lines:
        assert "\tfalse\t" in line and "only allowed while init.lua runs" in line
    assert "onDraw" not in host.mods["late"].events


def test_unknown_event_is_logged_and_ignored(make_host):
    host, console = make_host({"u": """
        registerForEvent("onFrobnicate", function() end)
        registerForEvent("onUpdate", function() print("still fine") end)
    """})
    host.update(0.01)
    assert host.mods["u"].state == "loaded"
    assert "unknown event 'onFrobnicate'" in read_log(host, "u")
    assert console.mod_lines("u") == ["still fine"]


def test_hotkeys_inputs_and_commands(make_host):
    host, console = make_host({
        "keys": """
            registerHotkey("say.hi", "Say hi", function() print("hotkey") end)
            registerInput("hold", "Hold", function(down) print("input " .. tostring(down)) end)
            registerCommand("greet", "greet someone", function(args) print("greet [" .. args .. "]") end)
            local ok, err = pcall(registerHotkey, "say.hi", "again", function() end)
            print("dup", ok, err:match("already registered") ~= nil)
            ok, err = pcall(registerHotkey, "bad id!", "x", function() end)
            print("badid", ok)
            ok, err = pcall(registerCommand, "quit", "x", function() end)
            print("builtin", ok, err:match("built%-in") ~= nil)
        """,
        "other": """
            local ok, err = pcall(registerCommand, "greet", "mine", function() end)
            print("conflict", ok, err:match("already registered by mod 'keys'") ~= nil)
        """,
    })
    assert host.press_hotkey("say.hi") == 1
    assert host.input("hold", True) == 1
    assert host.input("hold", False) == 1
    assert host.press_hotkey("nope") == 0
    host.run_command("greet  Judy and friends ")
    host.run_command("nosuchcommand x")
    assert console.mod_lines("keys") == [
        "dup\tfalse\ttrue", "badid\tfalse", "builtin\tfalse\ttrue",
        "hotkey", "input true", "input false", "greet [Judy and friends]",
    ]
    assert console.mod_lines("other") == ["conflict\tfalse\ttrue"]
    assert "unknown command 'nosuchcommand'" in console.text


def test_builtin_commands(make_host, mods_dir):
    (mods_dir / "no_init").mkdir()
    host, console = make_host({"m": 'registerCommand("hello", "says hello", function() end)'})
    console.clear()
    host.run_command("help")
    assert "hello (m): says hello" in console.text
    console.clear()
    host.run_command("mods")
    assert "m: loaded" in console.text and "no_init: failed - no init.lua" in console.text
    assert not host.quit_requested
    host.run_command("quit")
    assert host.quit_requested


def test_traceback_points_at_the_modders_file(make_host, mods_dir):
    write_mod(mods_dir, "tb", """
        local helper = require("helper")
        registerForEvent("onUpdate", function()
          helper.explode()
        end)
    """, files={"helper.lua": """
        local M = {}
        function M.explode()
          local t = nil
          return t.field
        end
        return M
    """})
    host, _ = make_host()
    host.update(0.01)
    log = read_log(host, "tb")
    assert "mods/tb/helper.lua:5: attempt to index local 't'" in log
    assert "stack traceback:" in log and "mods/tb/init.lua:4" in log
    assert "relic/sandbox.lua" not in log


def test_failing_init_skips_only_that_mod(make_host):
    host, console = make_host({
        "bad_syntax": "this is not lua",
        "bad_init": "local x = nil\nreturn x.y",
        "good": 'registerForEvent("onUpdate", function() print("tick") end)',
    })
    frames(host, 2)
    assert host.mods["bad_syntax"].state == "failed"
    assert "does not compile" in host.mods["bad_syntax"].reason
    assert host.mods["bad_init"].state == "failed"
    assert "mods/bad_init/init.lua:2" in host.mods["bad_init"].reason
    assert console.mod_lines("good") == ["tick", "tick"]


def test_repeated_errors_quarantine_while_good_mods_run(make_host):
    host, console = make_host({
        "flaky": 'registerForEvent("onUpdate", function() error("nope") end)',
        "good": 'local n = 0 registerForEvent("onUpdate", function() n = n + 1 end) return { n = function() return n end }',
    }, limits=Limits(max_errors=5, error_window_s=10))
    frames(host, 10)
    flaky = host.mods["flaky"]
    assert flaky.state == "quarantined" and "5 errors" in flaky.reason
    assert read_log(host, "flaky").count("error in onUpdate") == 5
    assert host.mods["good"].state == "loaded"
    ok, n = host.mods["good"].call(host.mods["good"].public.n)
    assert ok and n == 10


def test_reload_one_mod_applies_at_next_frame(make_host, mods_dir):
    host, console = make_host({"r": """
        counter = (counter or 0) + 1
        print("init " .. counter)
        registerForEvent("onInit", function() print("onInit") end)
        registerForEvent("onShutdown", function() print("onShutdown") end)
    """})
    old = host.mods["r"]
    host.request_reload("r")
    assert host.mods["r"] is old                  # nothing happens before the frame boundary
    (mods_dir / "r" / "init.lua").write_text('print("new code") registerForEvent("onInit", function() print("onInit2") end)')
    host.update(0.01)
    new = host.mods["r"]
    assert new is not old and new.state == "loaded" and old.lua is None
    assert console.mod_lines("r") == ["init 1", "onInit", "onShutdown", "new code", "onInit2"]


def test_reload_all_picks_up_new_and_removed_folders(make_host, mods_dir):
    host, console = make_host({"keep": "return 1", "gone": "return 2"})
    write_mod(mods_dir, "fresh", 'print("fresh here")')
    shutil.rmtree(mods_dir / "gone")
    host.update(0.01)
    assert "fresh" not in host.mods
    host.run_command("reload")
    host.update(0.01)
    assert sorted(host.mods) == ["fresh", "keep"]
    assert console.mod_lines("fresh") == ["fresh here"]


def test_reload_brings_back_a_quarantined_mod(make_host, mods_dir):
    host, _ = make_host({"q": 'registerForEvent("onUpdate", function() while true do end end)'})
    host.update(0.01)
    assert host.mods["q"].state == "quarantined"
    (mods_dir / "q" / "init.lua").write_text('registerForEvent("onUpdate", function() end)')
    host.run_command("reload q")
    host.update(0.01)
    assert host.mods["q"].state == "loaded"


def test_runtimes_are_freed_on_reload(make_host):
    # The Lua heap of a dropped runtime must go away: reload a mod holding 20 MiB
    # many times; if runtimes leaked, memory would grow by 12 MiB per reload.
    import gc
    import os

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs /proc")
    host, _ = make_host({"big": 'big = string.rep("x", 12 * 1024 * 1024)'})
    for _ in range(3):
        host.request_reload("big")
        host.update(0.01)
    gc.collect()
    before = rss()
    for _ in range(15):
        host.request_reload("big")
        host.update(0.01)
    gc.collect()
    assert host.mods["big"].state == "loaded"
    assert rss() - before < 100 * 1024 * 1024


class RecordingProvider:
    """A provider with an awaitable handle, built the way the llm provider is.

    The Lua half (handles, deliver) is made at install time; the Python bridge
    function only queues work, and results are delivered from pump() through
    mod.call -- Python never calls into the mod's Lua while the mod is calling
    Python (it may be inside a coroutine; see Mod._not_in_bridge).
    """

    LUA = """
        return function(bridge_submit)
          local pending = {}
          local function submit(value, on_done)
            local h = { id = bridge_submit(value), value = value, _on_done = on_done }
            function h:done() return self._result ~= nil end
            function h:result() return self._result end
            pending[h.id] = h
            return h
          end
          local function deliver(id, result)
            local h = pending[id]
            pending[id] = nil
            h._result = result
            if h._on_done then h._on_done(result) end
          end
          return submit, deliver
        end
    """

    def __init__(self):
        self.calls = []
        self.queue = []          # (mod, deliver, id, value)
        self.next_id = 0

    def install(self, mod: Mod):
        self.calls.append(("install", mod.id, mod.state))

        def bridge_submit(value):
            self.next_id += 1
            self.queue.append((mod, self.next_id, value))
            return self.next_id

        submit, deliver = mod.lua.execute(self.LUA)(mod.wrap(bridge_submit))
        mod.deliver_for_test = deliver
        mod.expose("probe", {"submit": submit, "name": "probe"})

    def uninstall(self, mod):
        self.calls.append(("uninstall", mod.id))

    def pump(self, budget_s):
        self.calls.append(("pump", budget_s > 0))
        queue, self.queue = self.queue, []
        for mod, rid, value in queue:
            mod.call(mod.deliver_for_test, rid, value * 2)

    def shutdown(self):
        self.calls.append(("shutdown",))


def test_python_cannot_reenter_a_mod_from_inside_its_host_call(make_host):
    # lupa returns wrong values when Python calls a Lua function of a runtime
    # that is inside a coroutine; the Mod API refuses it from inside a bridge.
    host, console = make_host({"m": "return 1"})
    mod = host.mods["m"]
    seen = []

    def naughty():
        for f in (lambda: mod.call(mod.public), lambda: mod.wrap(print),
                  lambda: mod.expose("x", 1), lambda: mod.load_lib("json")):
            try:
                f()
                seen.append("allowed")
            except Exception as e:
                seen.append(str(e))
        return "done"

    mod.expose("naughty", mod.wrap(naughty))
    ok, res = mod.call(mod.box.load_chunk(
        "return coroutine.wrap(function() return naughty() end)()", "=t"))
    assert ok and res == "done"
    assert len(seen) == 4 and all("inside a host function" in s for s in seen)


def test_provider_hooks_and_await(mods_dir):
    write_mod(mods_dir, "user", """
        print("probe at init: " .. probe.name)
        local ok = pcall(function() probe.name = "x" end)
        print("probe writable: " .. tostring(ok))
        registerForEvent("onUpdate", function()
          if not started then
            started = true
            probe.submit(5, function(r) print("on_done " .. r) end)
            async(function()
              local r = await(probe.submit(21))
              print("awaited " .. r)
            end)
          end
          print("onUpdate")
        end)
    """)
    console = Console()
    host = Host(mods_dir, console=console)
    provider = RecordingProvider()
    host.add_provider(provider)
    host.load()
    assert provider.calls == [("install", "user", "loading")]
    host.update(0.01)
    # pump runs after onUpdate, async resumes in the same frame after pump
    assert console.mod_lines("user") == ["probe at init: probe", "probe writable: false",
                                         "onUpdate", "on_done 10", "awaited 42"]
    host.request_reload("user")
    host.update(0.01)
    assert ("uninstall", "user") in provider.calls
    assert provider.calls.count(("install", "user", "loading")) == 2
    host.shutdown()
    assert provider.calls[-2:] == [("uninstall", "user"), ("shutdown",)]


def test_provider_callback_budget_overrun_quarantines(mods_dir):
    write_mod(mods_dir, "slow", """
        registerForEvent("onInit", function()
          probe.submit(1, function() while true do end end)
        end)
    """)
    host = Host(mods_dir, console=Console())
    host.add_provider(RecordingProvider())
    host.load()
    host.update(0.01)
    assert host.mods["slow"].state == "quarantined"
    assert "watchdog" in host.mods["slow"].reason
    host.shutdown()


def test_skipped_folders_are_listed(make_host, mods_dir):
    (mods_dir / "bad id").mkdir()
    (mods_dir / "bad id" / "init.lua").write_text("return 1")
    (mods_dir / "empty").mkdir()
    (mods_dir / ".hidden").mkdir()
    (mods_dir / "loose.lua").write_text("return 1")
    host, _ = make_host({"ok": "return 1"})
    assert isinstance(host.mods["bad id"], SkippedMod)
    assert "not a valid mod id" in host.mods["bad id"].reason
    assert host.mods["empty"].reason == "no init.lua in the folder"
    assert ".hidden" not in host.mods and "loose.lua" not in host.mods
    assert host.mods["ok"].state == "loaded"


def test_log_file_rotates_and_is_capped(make_host):
    limits = Limits(log_file_bytes=2000, log_backups=1, log_lines_per_frame=10_000)
    host, _ = make_host({"chatty": 'for i = 1, 400 do print(("line %04d "):format(i) .. ("x"):rep(40)) end'},
                        limits=limits, log_to_console=False)
    host.shutdown()
    folder = host.mods_dir / "chatty"
    logs = sorted(p.name for p in folder.iterdir() if p.name.startswith("chatty.log"))
    assert logs == ["chatty.log", "chatty.log.1"]
    assert all((folder / n).stat().st_size <= 2100 for n in logs)
    assert "line 0400" in (folder / "chatty.log").read_text()


def test_embedded_host_context_manager(mods_dir):
    write_mod(mods_dir, "m", 'registerForEvent("onShutdown", function() print("bye") end)')
    console = Console()
    with Host(mods_dir, console=console) as host:
        host.load()
        host.update(0.01)
    assert console.mod_lines("m") == ["bye"]
    host.update(0.01)      # after shutdown: a no-op, not an error
