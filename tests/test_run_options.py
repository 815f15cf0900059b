"""Bad values of `relic run --fps` and `max_tool_calls` are refused with one clear line."""

from __future__ import annotations

import argparse
import io

import pytest


@pytest.mark.parametrize("fps", ["nan", "inf", "-5", "0"])
def test_relic_run_refuses_a_frame_rate_that_is_not_a_positive_finite_number(fps, tmp_path):
    """--fps nan ran unpaced."""
    from host.runtime.console import add_run_arguments, run

    (tmp_path / "mods").mkdir()
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--mods", str(tmp_path / "mods"), "--fps", fps, "--frames", "1"])
    out = io.StringIO()
    assert run(args, stdin=io.StringIO(""), stdout=out) == 2
    assert out.getvalue().startswith("relic run: --fps must be") and out.getvalue().count("\n") == 1


@pytest.mark.parametrize("bad", [2.5, -1, 9, "3", True])
def test_max_tool_calls_takes_whole_numbers_only(bad):
    """max_tool_calls = 2.5 was accepted."""
    from types import SimpleNamespace

    from host.api.tools import ToolTurns
    from host.engine.tools import ToolError
    from host.limits import DEFAULT_LIMITS

    mod = SimpleNamespace(host=SimpleNamespace(limits=DEFAULT_LIMITS))  # the check reads only the host's limits
    with pytest.raises(ToolError, match="max_tool_calls must be an integer from 0 to 8"):
        ToolTurns(provider=None).start(mod, options={}, toolset=None, max_calls=bad)


def test_a_mod_asking_for_a_fractional_max_tool_calls_gets_an_error_at_its_line(llm_host):
    """The same refusal from a real mod's turn, beside a well-behaved mod."""
    host, console = llm_host({"odd": """
        local s = llm.session{ system = "You look things up.", tools = {
          lookup = { description = "Look it up.", run = function() return { found = true } end } } }
        print(pcall(function() s:say("look", { max_tool_calls = 2.5 }) end))
    """, "good": """
        registerForEvent("onInit", function()
          llm.generate{ prompt = "Hello", max_tokens = 4, on_done = function(r) print("good " .. r.finish_reason) end }
        end)
    """})
    line = console.mod_lines("odd")[0]
    assert line.startswith("false\tmods/odd/init.lua:4: ") and "max_tool_calls must be an integer from 0 to 8" in line
    from modhost_util import run_until

    run_until(host, lambda: console.mod_lines("good"), 120)
    assert console.mod_lines("good")[0] in ("good stop", "good length")
    assert host.mods["odd"].state == "loaded"
