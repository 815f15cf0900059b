"""A mod's output cannot forge host lines; its log is written once per frame."""

from __future__ import annotations

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

from host.runtime.modlog import sanitize_lines

GOOD = 'registerForEvent("onUpdate", function() print("good tick") end)'


def test_a_newline_in_a_print_never_starts_an_unprefixed_host_line(make_host):
    """print("ok\\n[relic] mod 'ctl' quarantined...") printed a fake host line."""
    host, console = make_host({"good": GOOD, "forger": r"""
        print("ok\n[relic] mod 'good' quarantined: fake")
        spdlog.error("one\ntwo")
        io.write("three\n[relic] four\n")
        registerForEvent("onUpdate", function() error("boom\n[relic] five") end)
    """})
    frames(host, 1)
    fake = [l for l in console.lines if l.startswith("[relic]") and "fake" in l or l.startswith("[relic] four")
            or l.startswith("[relic] five")]
    assert fake == []
    assert "[forger] ok" in console.lines
    assert "[forger] [relic] mod 'good' quarantined: fake" in console.lines
    assert "[forger:error] one" in console.lines and "[forger:error] two" in console.lines
    assert "[forger] [relic] four" in console.lines
    # an error the host reports shows its first line on the console; the rest is in the log
    assert any(l.startswith("[forger:error] error in onUpdate:") and l.endswith("boom") for l in console.lines)
    assert "[error] [relic] five" in read_log(host, "forger")
    for line in console.lines:   # every line is the host's own or carries a mod's prefix
        assert line.startswith(("[relic] ", "[forger]", "[forger:", "[good]")), line
    log = read_log(host, "forger")
    assert all(line[:4].isdigit() for line in log.splitlines()), log     # each line stamped
    assert "[good] good tick" in console.lines


def test_control_characters_are_escaped_in_the_console_and_the_file(make_host):
    host, console = make_host({"good": GOOD, "forger": r"""
        print("a\rb\27[2J\27]0;owned\7c\194\155d\226\128\174e")
    """})
    frames(host, 1)
    line = console.mod_lines("forger")[0]
    assert line == "a\\x0Db\\x1B[2J\\x1B]0;owned\\x07c\\x9Bd\\u202Ee"
    assert all(ord(ch) >= 32 and ch not in "\x7f\x9b\u202e" for l in console.lines for ch in l)
    assert "a\\x0Db\\x1B[2J" in read_log(host, "forger")


def test_sanitize_lines_keeps_tabs_and_splits_lines():
    assert sanitize_lines("a\tb\nc\r\n") == ["a\tb", "c\\x0D"]
    assert sanitize_lines("") == [""] and sanitize_lines("\n\n") == ["", ""]


def test_the_log_file_gets_every_line_of_a_frame_in_order(make_host):
    host, _ = make_host({"good": GOOD, "chatty": """
        n = 0
        registerForEvent("onUpdate", function()
          for i = 1, 50 do n = n + 1 print("line " .. n) end
        end)
    """})
    frames(host, 3)
    lines = [l.split("] ", 1)[1] for l in read_log(host, "chatty").splitlines()]
    assert lines == [f"line {i}" for i in range(1, 151)]
