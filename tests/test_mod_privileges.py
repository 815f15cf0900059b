"""Privileges (trust, budget, memory) come from the player or the game, never from the mod's files.

A sandboxed mod can write its own folder, so a mod that rewrites its mod.toml
to say `trusted = true` (or a bigger budget or more memory) and waits for a
reload or the next start must not get any of it.
"""

from __future__ import annotations

import pytest

from host.errors import ConfigError
from host.runtime.grants import Grant
from modhost_util import Console, frames, make_host, mods_dir, read_log, write_mod  # noqa: F401
from host.runtime.host import Host

# Writes a manifest that asks for everything, through `io` when the sandbox still
# allows it, else straight to disk from the test (the file may be there anyway:
# a mod downloaded with it, or another process wrote it).
ESCALATE = """
local f = io.open("mod.toml", "w")
if f then f:write("trusted = true\\nbudget_ms = 10000\\nmemory_mb = 4096\\n") f:close() end
print("escalator " .. type(os.execute) .. " " .. type(os.getenv) .. " " .. type(jit) .. " " .. tostring((require("ffi"))))
local function opens(path, mode) local ok, h = pcall(io.open, path, mode) return ok and h ~= nil end
print("outside " .. tostring(opens("/etc/hostname", "r")) .. " " .. tostring(opens("../escaped.txt", "w")))
"""

GOOD = 'registerForEvent("onUpdate", function() n = (n or 0) + 1 end) print("good up")'


def _escalate_on_disk(folder):
    (folder / "mod.toml").write_text("trusted = true\nbudget_ms = 10000\nmemory_mb = 4096\n")


@pytest.mark.parametrize("restart", [False, True], ids=["reload", "restart"])
def test_a_mod_that_writes_trusted_into_its_own_manifest_stays_sandboxed(make_host, mods_dir, restart):
    host, console = make_host({"escalator": ESCALATE, "good": GOOD})
    _escalate_on_disk(mods_dir / "escalator")
    if restart:
        host.shutdown()
        console = Console()
        host = Host(mods_dir, console=console)
        host.load()
    else:
        host.request_reload("escalator")
        frames(host, 2)
    m = host.mods["escalator"]
    assert m.state == "loaded"
    assert not m.trusted
    assert m.budget_s == host.limits.budget_ms / 1000
    assert m.manifest.memory_mb == host.limits.memory_mb
    lines = console.mod_lines("escalator")
    assert lines[-2].startswith("escalator nil nil nil nil"), lines
    assert lines[-1] == "outside false false"           # io stays confined to its own folder
    assert not (mods_dir / "escaped.txt").exists()
    log = read_log(host, "escalator")
    assert "asks for trusted = true; running sandboxed" in log
    assert "asks for budget_ms = 10000" in log and "asks for memory_mb = 4096" in log
    assert host.mods["good"].state == "loaded"
    if restart:
        host.shutdown()


def test_granted_privileges_apply_and_a_mod_may_ask_for_less(make_host, mods_dir):
    write_mod(mods_dir, "big", "return 1", toml="budget_ms = 400\nmemory_mb = 256\n")
    write_mod(mods_dir, "small", "return 1", toml="budget_ms = 5\nmemory_mb = 8\n")
    write_mod(mods_dir, "granted", "return 1")
    host, _ = make_host(grants={"big": Grant(budget_ms=200, memory_mb=512),
                                "granted": Grant(trusted=True, budget_ms=100)})
    big, small, granted = host.mods["big"], host.mods["small"], host.mods["granted"]
    assert (big.budget_s, big.manifest.memory_mb, big.trusted) == (0.2, 256, False)
    assert (small.budget_s, small.manifest.memory_mb) == (0.005, 8)
    assert (granted.trusted, granted.budget_s) == (True, 0.1)


@pytest.mark.parametrize("bad", [dict(trusted="yes"), dict(budget_ms=0), dict(memory_mb=1.5),
                                 dict(budget_ms=True), dict(memory_mb=10**9)])
def test_bad_grants_are_config_errors(bad):
    with pytest.raises(ConfigError):
        Grant(**bad)
