"""Relic installs as a package: the wheel, installed (not editable) into a fresh venv, runs a mod.

The wheel is built from a copy of the source tree (pip's own isolated build), so
nothing is written into the checkout.  The fresh venv gets only the wheel
(``--no-deps --no-index``); the dependencies (lupa, cffi, numpy) come from this
test run's environment through a .pth line, so no package index is needed.  The
mod runs with ``relic run --no-llm`` from a folder outside the checkout and uses
the shared Lua library (lua/, shipped as package data), so the test needs no model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "host", "lua")

MOD = """
local cron_ticks = 0
Cron.Every(0.01, function() cron_ticks = cron_ticks + 1 end)
registerForEvent("onInit", function()
  print("packaged: " .. json.encode({ answer = 42 }))
end)
registerForEvent("onUpdate", function()
  if cron_ticks == 3 then print("cron ticked") end
end)
"""


@pytest.mark.slow  # a wheel build (pip's isolated build env): make test runs it, make test-fast does not
def test_wheel_installs_into_a_fresh_venv_and_runs_a_mod(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    wheels = tmp_path / "wheels"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next(wheels.glob("relic-*.whl"))

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                          "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "relic_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"  # not the checkout: `host` must come from the installed wheel
    (work / "mods" / "hello").mkdir(parents=True)
    (work / "mods" / "hello" / "init.lua").write_text(MOD)
    where = subprocess.run([str(py), "-c", "import host.runtime.sandbox as s; print(s.__file__); "
                            "print(s.default_lua_dir())"], cwd=work, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr[-2000:]
    module_file, lua_dir = where.stdout.split()
    assert Path(module_file).is_relative_to(env_dir) and Path(lua_dir).is_relative_to(env_dir), where.stdout
    assert (Path(lua_dir) / "json.lua").is_file()

    run = subprocess.run([str(env_dir / "bin" / "relic"), "run", "--no-llm", "--headless", "--frames", "40",
                          "--mods", "mods"], cwd=work, input="", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert 'packaged: {"answer":42}' in run.stdout, run.stdout
    assert "cron ticked" in run.stdout, run.stdout
