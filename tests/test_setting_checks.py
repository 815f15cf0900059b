"""Bad setting values give one clear line, never a traceback or a silently odd run."""

from __future__ import annotations

import argparse
import io
import math

import pytest

from host.errors import ConfigError
from host.setting_checks import bool_setting, choice_setting, float_setting, int_setting


@pytest.mark.parametrize("value", ["abc", "2.5", "", "inf", "nan", "1e400", True])
def test_int_settings_refuse_what_is_not_a_whole_number(value):
    """RELIC_WORKER_NICE=abc ended in a traceback."""
    with pytest.raises(ConfigError) as info:
        int_setting("RELIC_WORKER_NICE", value, -20, 19)
    assert str(info.value).startswith("RELIC_WORKER_NICE: ") and "\n" not in str(info.value)


def test_int_settings_accept_whole_numbers_in_range():
    assert int_setting("X", " 5 ") == 5 and int_setting("X", 4.0) == 4 and int_setting("X", -3, -20, 19) == -3
    with pytest.raises(ConfigError, match="above the largest"):
        int_setting("RELIC_WORKER_NICE", "40", -20, 19)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "fast", math.nan])
def test_float_settings_refuse_nan_inf_and_out_of_range(value):
    with pytest.raises(ConfigError):
        float_setting("--fps", value, hi=10_000.0, above=0.0)


def test_choice_and_bool_settings():
    assert choice_setting("RELIC_KV_TYPE", "f16", ("f16", "q8_0")) == "f16"
    with pytest.raises(ConfigError, match="expected one of f16, q8_0"):
        choice_setting("RELIC_KV_TYPE", "f17", ("f16", "q8_0"))
    assert bool_setting("X", "Yes") is True and bool_setting("X", "0") is False
    with pytest.raises(ConfigError):
        bool_setting("X", "maybe")


def test_the_worker_settings_from_the_environment_are_checked(monkeypatch):
    from host.worker import WorkerConfig

    monkeypatch.setenv("RELIC_WORKER_NICE", "abc")
    with pytest.raises(ConfigError, match="RELIC_WORKER_NICE: expected a whole number"):
        WorkerConfig.from_env()
    monkeypatch.setenv("RELIC_WORKER_NICE", "5")
    assert WorkerConfig.from_env().nice == 5


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
    assert out.getvalue().startswith("relic run: --fps: ") and out.getvalue().count("\n") == 1


@pytest.mark.parametrize("bad", [2.5, -1, 9, "3", True])
def test_max_tool_calls_takes_whole_numbers_only(bad):
    """max_tool_calls = 2.5 was accepted."""
    from host.api.tools import ToolTurns
    from host.engine.tools import ToolError

    with pytest.raises(ToolError, match="max_tool_calls must be an integer"):
        ToolTurns(provider=None).start(None, options={}, toolset=None, max_calls=bad)
