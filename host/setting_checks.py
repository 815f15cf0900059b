"""Checks for setting values (environment variables, command-line options, config files).

Each function takes the setting's name and its raw value (text or number) and
returns the parsed value, or raises ConfigError with one line that names the
setting, what it got and what it takes, never a traceback.  The entry point
(host/cli.py, host/config.py) calls them where it reads the settings.
"""

from __future__ import annotations

import math

from host.errors import ConfigError


def _number(name: str, value, kind: type):
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = value
    else:
        text = str(value).strip()
        try:
            number = int(text) if kind is int else float(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name}: expected {what}, got {value!r}") from None
    if kind is int and isinstance(number, float):
        if not number.is_integer():
            raise ConfigError(f"{name}: expected a whole number, got {value!r}")
        number = int(number)
    if isinstance(number, float) and not math.isfinite(number):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return number


def _bounded(name: str, number, lo, hi):
    if lo is not None and number < lo:
        raise ConfigError(f"{name}: {number!r} is below the smallest allowed value, {lo!r}")
    if hi is not None and number > hi:
        raise ConfigError(f"{name}: {number!r} is above the largest allowed value, {hi!r}")
    return number


def int_setting(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number within [lo, hi] ("4", 4, 4.0 pass; "abc", 2.5, "inf" do not)."""
    return _bounded(name, _number(name, value, int), lo, hi)


def float_setting(name: str, value, lo: float | None = None, hi: float | None = None,
                  *, above: float | None = None) -> float:
    """A finite number within [lo, hi] and, with `above`, strictly greater than it (nan/inf refused)."""
    number = float(_bounded(name, _number(name, value, float), lo, hi))
    if above is not None and not number > above:
        raise ConfigError(f"{name}: expected a number above {above!r}, got {value!r}")
    return number


def choice_setting(name: str, value, choices) -> str:
    """One of `choices` (text)."""
    text = str(value).strip()
    if text not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    return text


def bool_setting(name: str, value) -> bool:
    """1/0, true/false, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")
