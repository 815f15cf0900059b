"""Cron timers against the frame clock, and async/await driven by the host."""

from __future__ import annotations

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

from host.limits import Limits


def fired_frames(console, mod_id):
    return [int(l.split()[1]) for l in console.mod_lines(mod_id) if l.startswith("fired ")]


CLOCK = """
    frame = 0
    registerForEvent("onUpdate", function() frame = frame + 1 end)
"""


def test_after_fires_once_on_the_frame_its_time_is_reached(make_host):
    # Timers tick before onUpdate, so `frame` is the number of finished frames.
    host, console = make_host({"c": CLOCK + """
        Cron.After(0.5, function(t) print("fired " .. frame .. " tick " .. t.tick) end)
    """})
    frames(host, 60, dt=0.1)
    assert console.mod_lines("c") == ["fired 4 tick 1"]   # 5th frame: 0.1 * 5 = 0.5


def test_after_uses_frame_time_not_wall_time(make_host):
    host, console = make_host({"c": CLOCK + """
        Cron.After(1.0, function() print("fired " .. frame) end)
    """})
    frames(host, 59, dt=1 / 60)
    assert fired_frames(console, "c") == []
    frames(host, 1, dt=1 / 60)           # 60 * (1/60) == 1.0 despite rounding
    assert fired_frames(console, "c") == [59]
    host.update(100.0)                    # a huge frame fires nothing new
    assert fired_frames(console, "c") == [59]


def test_every_keeps_its_period_without_drift(make_host):
    host, console = make_host({"c": CLOCK + """
        Cron.Every(0.25, function(t) print("fired " .. frame) end)
    """})
    frames(host, 20, dt=0.1)     # 2.0 s of frame time
    assert fired_frames(console, "c") == [2, 4, 7, 9, 12, 14, 17, 19]


def test_every_catches_up_one_period_per_frame(make_host):
    host, console = make_host({"c": CLOCK + """
        Cron.Every(0.1, function() print("fired " .. frame) end)
    """})
    host.update(0.35)          # a hitch: 3.5 periods in one frame
    frames(host, 3, dt=0.01)
    assert fired_frames(console, "c") == [0, 1, 2]   # once per frame, not a burst


def test_next_tick_halt_pause_resume(make_host):
    host, console = make_host({"c": """
        frame = 0
        Cron.NextTick(function() print("fired " .. frame .. " nexttick") end)
        local t = Cron.Every(0.1, function() print("fired " .. frame .. " every") end)
        local h = Cron.After(0.3, function() print("fired " .. frame .. " halted?") end)
        Cron.Halt(h)
        registerForEvent("onUpdate", function()
          frame = frame + 1
          if frame == 3 then Cron.Pause(t) end
          if frame == 6 then t:Resume() end
          if frame == 8 then t:Halt() print("active " .. tostring(t:IsActive())) end
        end)
    """})
    frames(host, 12, dt=0.1)
    assert console.mod_lines("c") == [
        "fired 0 nexttick", "fired 0 every", "fired 1 every", "fired 2 every",
        "fired 6 every", "fired 7 every", "active false",
    ]


def test_timer_created_in_a_callback_waits_for_the_next_frame(make_host):
    host, console = make_host({"c": CLOCK + """
        local function again() print("fired " .. frame) if frame < 3 then Cron.NextTick(again) end end
        Cron.NextTick(again)
    """})
    frames(host, 6)
    assert fired_frames(console, "c") == [0, 1, 2, 3]


def test_cron_argument_errors_and_callback_errors(make_host):
    host, console = make_host({"c": """
        print(pcall(Cron.After, -1, function() end))
        print(pcall(Cron.After, 1, "not a function"))
        print(pcall(Cron.Every, 0, function() end))
        Cron.After(0, function() error("timer boom") end)
        Cron.After(0, function() print("second timer still runs") end)
    """})
    host.update(0.01)
    lines = console.mod_lines("c")
    assert "seconds must be a number >= 0" in lines[0]
    assert "callback must be a function" in lines[1]
    assert "seconds must be > 0" in lines[2]
    assert lines[3] == "second timer still runs"
    assert "error in Cron: mods/c/init.lua:5: timer boom" in read_log(host, "c")
    assert host.mods["c"].state == "loaded"


def test_timer_quota(make_host):
    host, console = make_host({"c": """
        local ok, err
        for i = 1, 100 do
          ok, err = pcall(Cron.After, 10, function() end)
          if not ok then print(i, err) break end
        end
    """}, limits=Limits(max_timers=50))
    (line,) = console.mod_lines("c")
    assert line.startswith("51\t") and "too many active timers (limit 50 per mod)" in line


def test_async_await_sleep_against_frame_time(make_host):
    host, console = make_host({"a": CLOCK + """
        local task = async(function(x)
          print("start " .. frame)
          local waited = await(Cron.Sleep(0.3))
          print(("woke %d after %.2f"):format(frame, waited))
          await(Cron.Sleep(0))
          print("next frame " .. frame)
          return x * 2
        end, 21)
        async(function()
          local r = await(task)
          print("task result " .. r .. " at " .. frame)
        end)
    """})
    frames(host, 6, dt=0.1)
    # async steps run after onUpdate, so `frame` counts the current frame
    assert console.mod_lines("a") == [
        "start 0", "woke 3 after 0.30", "next frame 4", "task result 42 at 4",
    ]


def test_await_misuse_is_a_clean_error(make_host):
    host, console = make_host({"a": """
        print(pcall(await, Cron.Sleep(1)))
        async(function() await(42) end)
        async(function() coroutine.yield("sneaky") end)
        local t = async(function() error("inside task") end)
        print(t:done(), t:error() ~= nil)
        local co = coroutine.wrap(function() return pcall(await, Cron.Sleep(0)) end)
        print(co())
    """})
    lines = console.mod_lines("a")
    assert lines[0].startswith("false\t") and "inside a function started with async()" in lines[0]
    assert lines[1] == "true\ttrue"
    assert lines[2].startswith("false\t") and "inside a function started with async()" in lines[2]
    log = read_log(host, "a")
    assert "expected an awaitable" in log
    assert "use await(handle) instead" in log
    assert "inside task" in log
    assert host.mods["a"].state == "loaded"


def test_async_task_quota(make_host):
    host, console = make_host({"a": """
        for i = 1, 20 do
          local ok, err = pcall(async, function() await(Cron.Sleep(100)) end)
          if not ok then print(i, err) break end
        end
    """}, limits=Limits(max_tasks=10))
    (line,) = console.mod_lines("a")
    assert line.startswith("11\t") and "too many unfinished tasks (limit 10 per mod)" in line


def test_infinite_loop_inside_an_async_task_is_stopped(make_host):
    host, console = make_host({"a": """
        async(function()
          await(Cron.Sleep(0))
          while true do end
        end)
        registerForEvent("onUpdate", function() print("update") end)
    """, "b": 'registerForEvent("onUpdate", function() print("b update") end)'})
    frames(host, 3)
    assert host.mods["a"].state == "quarantined" and "watchdog" in host.mods["a"].reason
    assert console.mod_lines("b") == ["b update"] * 3
