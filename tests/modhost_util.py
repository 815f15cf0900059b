"""Helpers and fixtures for the mod-runtime tests (real lupa, real SQLite).

Import the fixtures into a test module (`from modhost_util import make_host`)
so pytest finds them; tests/conftest.py belongs to the lead.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from host.runtime.host import Host
from host.limits import Limits


class Console:
    """Collects console lines instead of printing them."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def mod_lines(self, mod_id: str) -> list[str]:
        """The text of info lines printed by one mod."""
        prefix = f"[{mod_id}] "
        return [l[len(prefix):] for l in self.lines if l.startswith(prefix)]

    def clear(self) -> None:
        self.lines.clear()


def write_mod(root: Path, mod_id: str, init_lua: str, toml: str | None = None,
              files: dict[str, str | bytes] | None = None) -> Path:
    """Create mods/<mod_id>/init.lua (dedented), optional mod.toml and extra files."""
    folder = root / mod_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "init.lua").write_text(textwrap.dedent(init_lua), encoding="utf-8")
    if toml is not None:
        (folder / "mod.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    for rel, content in (files or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(textwrap.dedent(content), encoding="utf-8")
    return folder


def read_log(host: Host, mod_id: str) -> str:
    """The mod's log file (empty string when it has none yet)."""
    p = host.mods_dir / mod_id / f"{mod_id}.log"
    return p.read_text(encoding="utf-8") if p.exists() else ""


def run_until(host: Host, cond, timeout: float = 180.0) -> None:
    """Run frames (with a short sleep, so the worker gets the CPU) until cond() or the timeout."""
    import time

    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        host.update(1 / 60)
        time.sleep(0.002)
    assert cond(), "timed out"


def frames(host: Host, n: int, dt: float = 1 / 60, draw: bool = True) -> None:
    """Run n frames with a fixed deltaTime."""
    for _ in range(n):
        host.update(dt)
        if draw:
            host.draw()


@pytest.fixture
def mods_dir(tmp_path) -> Path:
    d = tmp_path / "mods"
    d.mkdir()
    return d


@pytest.fixture
def make_host(mods_dir):
    """make_host(mods={id: init_lua}, tomls={id: toml}, load=True, **Host kwargs).

    Returns (host, console); every host is shut down at teardown.
    """
    hosts = []

    def factory(mods: dict[str, str] | None = None, tomls: dict[str, str] | None = None,
                load: bool = True, limits: Limits | None = None, **kw):
        for mid, src in (mods or {}).items():
            write_mod(mods_dir, mid, src, (tomls or {}).get(mid))
        console = kw.pop("console", None) or Console()
        host = Host(mods_dir, console=console, limits=limits, **kw)
        hosts.append(host)
        if load:
            host.load()
        return host, console

    yield factory
    for h in hosts:
        h.shutdown()


def lua_eval(host: Host, mod_id: str, expr: str):
    """Evaluate a Lua expression inside a mod's sandbox env (as mod code would)."""
    mod = host.mods[mod_id]
    res = mod.box.load_chunk(f"return {expr}", "=test")
    fn, err = res if isinstance(res, tuple) else (res, None)
    assert fn is not None, err
    ok, value = mod.call(fn)
    assert ok, read_log(host, mod_id)
    return value
