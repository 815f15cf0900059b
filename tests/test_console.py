"""`relic run`: the fixed-rate frame loop and the non-blocking console."""

from __future__ import annotations

import argparse
import io
import os
import threading
import time

from modhost_util import mods_dir, write_mod  # noqa: F401

from host.runtime.console import FrameStats, LineReader, add_run_arguments, run


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return p.parse_args(list(argv))


COUNTER = """
    local frames = 0
    registerForEvent("onUpdate", function(dt) frames = frames + 1 end)
    registerForEvent("onShutdown", function() print("frames " .. frames) end)
    registerCommand("count", "print frames so far", function(args) print("count " .. frames .. " " .. args) end)
"""


def test_defaults():
    a = parse()
    assert (a.mods, a.fps, a.frames, a.headless, a.stats) == ("mods", 60.0, None, False, False)


def test_headless_runs_n_frames_and_exits_zero(mods_dir):
    write_mod(mods_dir, "c", COUNTER)
    out = io.StringIO()
    status = run(parse("--mods", str(mods_dir), "--frames", "5", "--fps", "500", "--headless"),
                 stdin=io.StringIO(""), stdout=out)
    assert status == 0
    assert "[c] frames 5" in out.getvalue()


def test_headless_commands_from_stdin(mods_dir):
    write_mod(mods_dir, "c", COUNTER)
    out = io.StringIO()
    stdin = io.StringIO("count hello there\nmods\nhelp\nnosuch\n")
    status = run(parse("--mods", str(mods_dir), "--frames", "20", "--fps", "500", "--headless"),
                 stdin=stdin, stdout=out)
    text = out.getvalue()
    assert status == 0
    assert "hello there" in text and "[c] count " in text
    assert "  c: loaded" in text
    assert "count (c): print frames so far" in text
    assert "unknown command 'nosuch'" in text
    assert "[c] frames 20" in text


def test_end_of_input_ends_the_run_after_a_last_frame(mods_dir):
    write_mod(mods_dir, "c", COUNTER)
    out = io.StringIO()
    status = run(parse("--mods", str(mods_dir), "--fps", "500", "--headless"),
                 stdin=io.StringIO("reload c\n"), stdout=out)
    text = out.getvalue()
    assert status == 0
    # the reload was applied on the last frame: the first runtime said goodbye
    # during the reload, the new one at shutdown
    assert text.count("[c] frames") == 2
    assert "reloading mod 'c'" in text


def test_quit_command_stops_the_loop(mods_dir):
    write_mod(mods_dir, "c", COUNTER)
    out = io.StringIO()
    t0 = time.perf_counter()
    status = run(parse("--mods", str(mods_dir), "--frames", "100000", "--fps", "60", "--headless"),
                 stdin=io.StringIO("quit\n"), stdout=out)
    assert status == 0
    assert time.perf_counter() - t0 < 5.0
    assert "[c] frames 1" in out.getvalue()


def test_console_input_never_blocks_the_loop(mods_dir):
    # stdin is a pipe nobody writes to: the reader thread blocks, the loop must not.
    write_mod(mods_dir, "c", COUNTER)
    r, w = os.pipe()
    stdin = os.fdopen(r, "r")
    out = io.StringIO()
    done = threading.Event()
    result = {}

    def target():
        result["status"] = run(parse("--mods", str(mods_dir), "--frames", "30", "--fps", "200"),
                               stdin=stdin, stdout=out)
        done.set()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    try:
        assert done.wait(timeout=10), "the frame loop waited for console input"
        assert result["status"] == 0 and "[c] frames 30" in out.getvalue()
    finally:
        os.close(w)          # end of input lets the reader thread finish
        t.join(timeout=10)
        stdin.close()
    assert not t.is_alive()


def test_stats_are_printed(mods_dir):
    write_mod(mods_dir, "c", COUNTER)
    out = io.StringIO()
    run(parse("--mods", str(mods_dir), "--frames", "10", "--fps", "500", "--headless", "--stats"),
        stdin=io.StringIO(""), stdout=out)
    text = out.getvalue()
    assert "frames: 10" in text
    assert "frame work (update+draw): p50 " in text and " / p99 " in text and " / max " in text
    assert "frame interval: p50 " in text


def test_hostile_mod_is_stopped_while_run_goes_on(mods_dir):
    write_mod(mods_dir, "c", COUNTER)
    write_mod(mods_dir, "evil", 'registerForEvent("onUpdate", function() while true do end end)')
    out = io.StringIO()
    status = run(parse("--mods", str(mods_dir), "--frames", "10", "--fps", "500", "--headless"),
                 stdin=io.StringIO(""), stdout=out)
    text = out.getvalue()
    assert status == 0
    assert "[evil:critical] quarantined: watchdog" in text and text.count("quarantined") == 1
    assert "[c] frames 10" in text


def test_bad_arguments(mods_dir, tmp_path):
    out = io.StringIO()
    assert run(parse("--mods", str(tmp_path / "missing"), "--frames", "1"),
               stdin=io.StringIO(""), stdout=out) == 2
    assert "does not exist" in out.getvalue()
    assert run(parse("--mods", str(mods_dir), "--fps", "0"), stdin=io.StringIO(""), stdout=out) == 2


def test_frame_stats_percentiles():
    s = FrameStats(work=[i / 1000 for i in range(1, 101)])
    assert s.percentile(s.work, 50) == 0.050
    assert s.percentile(s.work, 99) == 0.099
    assert s.percentile([], 50) == 0.0
    assert "p50 50.000 / p99 99.000 / max 100.000 ms" in s.summary(s.work)


def test_line_reader_queues_lines_and_sees_eof():
    reader = LineReader(io.StringIO("a\nb\r\n"))
    deadline = time.monotonic() + 5
    lines = []
    while not reader.eof and time.monotonic() < deadline:
        lines += reader.drain()
        time.sleep(0.001)
    assert lines == ["a", "b"] and reader.eof


def test_run_drives_a_host_built_by_the_caller(mods_dir):
    # The way `relic run --model` hands in a host with providers attached.
    from host.runtime.host import Host

    write_mod(mods_dir, "c", COUNTER)
    out = io.StringIO()
    calls = []

    class Provider:
        def pump(self, budget_s):
            calls.append(budget_s)

    host = Host(mods_dir, console=lambda line: out.write(line + "\n"))
    host.add_provider(Provider())
    host.load()
    status = run(parse("--frames", "4", "--fps", "500", "--headless"),
                 stdin=io.StringIO(""), stdout=out, host=host)
    assert status == 0 and len(calls) == 4
    assert out.getvalue().count("mod(s) loaded") == 1      # not loaded twice
    assert "[c] frames 4" in out.getvalue()
