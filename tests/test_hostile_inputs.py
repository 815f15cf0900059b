"""Hostile files given to the host: mod.toml values, a 50 MB init.lua, bad GGUFs.

Each bad mod is skipped with a reason that names the problem while a
bystander loads and ticks; a bad model given to `relic run --model` ends the
process with one clear line, never a traceback or a crash.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from modhost_util import frames, make_host, mods_dir, write_mod  # noqa: F401

BYSTANDER = """
    ticks = 0
    registerForEvent("onUpdate", function() ticks = ticks + 1 end)
    return { ticks = function() return ticks end }
"""

TOMLS = {
    "mem_negative": ("memory_mb = -1", "memory_mb must be between 4 and 4096, got -1"),
    "mem_float": ("memory_mb = 1e12", "'memory_mb' must be an integer, got 1000000000000.0"),
    "mem_bigint": ("memory_mb = 99999999999999999999", "memory_mb must be between 4 and 4096"),
    "mem_one": ("memory_mb = 1", "memory_mb must be between 4 and 4096, got 1"),
    "mem_inf": ("memory_mb = inf", "'memory_mb' must be an integer, got inf"),
    "mem_string": ('memory_mb = "64"', "'memory_mb' must be an integer, got '64'"),
    "mem_bool": ("memory_mb = true", "'memory_mb' must be an integer, got True"),
    "budget_zero": ("budget_ms = 0", "budget_ms must be between 1 and 10000, got 0"),
    "budget_nan": ("budget_ms = nan", "'budget_ms' must be an integer, got nan"),
    "budget_huge": ("budget_ms = 86400000", "budget_ms must be between 1 and 10000"),
    "trusted_string": ('trusted = "yes"', "'trusted' must be true or false"),
    "deps_string": ('dependencies = "x"', "'dependencies' must be a list of mod ids"),
    "deps_many": ("dependencies = [" + ", ".join(f'"m{i}"' for i in range(100)) + "]", "more than 64 dependencies"),
    "name_table": ("name = { a = 1 }", "'name' must be a string"),
    "name_long": ('name = "' + "n" * 5000 + '"', "'name' is longer than 100 characters"),
    "file_huge": ('description = "' + "d" * 200_000 + '"', "mod.toml is 200016 bytes; the limit is 65536"),
    "nested_deep": ("x = " + "[" * 5000 + "]" * 5000, "values nested too deeply"),
    "duplicate": ("memory_mb = 8\nmemory_mb = 9", "not valid TOML"),
}


def test_mod_toml_with_wrong_types_and_absurd_values(make_host, mods_dir):
    for mid, (toml, _) in TOMLS.items():
        write_mod(mods_dir, mid, "print('should not run')", toml=toml)
    write_mod(mods_dir, "bad_utf8", "return 1", toml="")
    (mods_dir / "bad_utf8" / "mod.toml").write_bytes(b'name = "\xff\xfe"\n')
    write_mod(mods_dir, "bystander", BYSTANDER, toml="memory_mb = 4\nbudget_ms = 10000\n")
    host, console = make_host()
    for mid, (_, want) in TOMLS.items():
        m = host.mods[mid]
        assert m.state == "failed" and want in m.reason, (mid, m.reason)
        assert len(m.reason) < 300, (mid, m.reason)
    assert "not valid TOML" in host.mods["bad_utf8"].reason
    assert "should not run" not in console.text
    frames(host, 3)
    by = host.mods["bystander"]
    assert by.state == "loaded" and by.manifest.memory_mb == 4
    ok, ticks = by.call(by.public.ticks)
    assert ok and ticks == 3


def test_a_50_mb_init_lua_is_refused_without_reading_it(make_host, mods_dir):
    big = mods_dir / "huge" / "init.lua"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:
        f.write(b"x = 1\n")
        f.truncate(50 * 1024 * 1024)          # a 50 MB file (sparse: cheap to make)
    write_mod(mods_dir, "requirer", "print(pcall(require, 'blob'))",
              files={"blob.lua": "-- " + "y" * (5 * 1024 * 1024)})
    write_mod(mods_dir, "bystander", BYSTANDER)
    t0 = time.perf_counter()
    host, console = make_host()
    took = time.perf_counter() - t0
    assert host.mods["huge"].state == "failed"
    assert host.mods["huge"].reason == "init.lua is 52428800 bytes; the limit is 4194304 bytes"
    (line,) = console.mod_lines("requirer")
    assert line.startswith("true\tnil\t") and "the limit is 4194304" in line
    frames(host, 2)
    ok, ticks = host.mods["bystander"].call(host.mods["bystander"].public.ticks)
    assert ok and ticks == 2
    assert took < 30, took   # "did not hang"


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, model_path):
    d = tmp_path_factory.mktemp("models")
    data = Path(model_path).read_bytes()
    out = {}
    out["truncated"] = d / "truncated.gguf"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["header_only"] = d / "header_only.gguf"
    out["header_only"].write_bytes(data[:64])
    out["garbage"] = d / "garbage.gguf"
    out["garbage"].write_bytes(bytes(range(256)) * 4096)
    out["magic_then_garbage"] = d / "magic_then_garbage.gguf"
    out["magic_then_garbage"].write_bytes(b"GGUF" + bytes([0xFF]) * 100_000)
    out["empty"] = d / "empty.gguf"
    out["empty"].write_bytes(b"")
    out["directory"] = d / "dir.gguf"
    out["directory"].mkdir()
    out["missing"] = d / "missing.gguf"
    return out


@pytest.mark.parametrize("kind", ["truncated", "header_only", "garbage", "magic_then_garbage", "empty",
                                  "directory", "missing"])
def test_relic_run_with_a_bad_model_says_so_and_exits(bad_models, tmp_path, kind):
    mods = tmp_path / "mods"
    write_mod(mods, "bystander", BYSTANDER)
    path = bad_models[kind]
    p = subprocess.run([sys.executable, "-m", "host.cli", "run", "--mods", str(mods), "--model", str(path)],
                       capture_output=True, text=True, timeout=120, input="quit\n")
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    err = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    assert err and err[-1].startswith("relic run: ") and path.name in err[-1], p.stderr[-2000:]
