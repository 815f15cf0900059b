"""Strings are bytes between a mod and its files: any bytes written come back the same.

Lua strings used to reach the host decoded as UTF-8, so writing bytes that are
not UTF-8 through `io` failed.  Random blobs (fixed seeds: every byte value,
NULs, broken UTF-8 sequences) go through f:write / f:read / f:lines / io.lines
in a sandboxed and a trusted mod, and the files on disk are compared with
what Python made.
"""

from __future__ import annotations

import random

import pytest

from host.runtime.grants import Grant
from modhost_util import make_host, mods_dir, read_log, write_mod  # noqa: F401

SEEDS = [1, 2, 3]


def blobs(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = [bytes(range(256)), b"", b"\x00", b"\xff\xfe", b"\xc3", b"\xe2\x82", b"caf\xc3\xa9 \xed\xa0\x80"]
    for _ in range(12):
        n = rng.choice([1, 7, 100, 4096, 70_000])
        out.append(bytes(rng.randrange(256) for _ in range(n)))
    return out


MOD = r"""
SANDBOXED = debug == nil
local n = tonumber(assert(io.open("count.txt")):read("a"))
local ok_all = true
for i = 1, n do
  local f = assert(io.open("in" .. i .. ".bin", "rb"))
  local data = f:read("a")
  f:close()
  -- written in pieces: strings, a number between them, several arguments per call
  local out = assert(io.open("out" .. i .. ".bin", "wb"))
  local half = math.floor(#data / 2)
  out:write(data:sub(1, half))
  out:write(data:sub(half + 1, half + 3), data:sub(half + 4))
  out:write(i)
  out:close()
  local back = assert(io.open("out" .. i .. ".bin", "rb")):read("a")
  if back ~= data .. tostring(i) then ok_all = false print("mismatch", i, #back, #data) end
  -- lines keep every byte but the newline (LuaJIT's own io.lines, in trusted mods,
  -- ends a line at a NUL byte: checked where there is none)
  local lines = {}
  for line in io.lines("in" .. i .. ".bin") do lines[#lines + 1] = line end
  local joined = table.concat(lines, "\n")
  if joined ~= data and joined .. "\n" ~= data and (SANDBOXED or not data:find("\0", 1, true)) then
    ok_all = false print("lines differ", i)
  end
  -- appending
  local a = assert(io.open("out" .. i .. ".bin", "ab"))
  a:write(data)
  a:close()
end
io.write("to the log: \255\0\128 end\n")
io.stdout:write("stdout ", "\192\n")
print("all same", ok_all)
"""


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("trusted", [False, True], ids=["sandboxed", "trusted"])
def test_random_bytes_written_through_io_read_back_the_same(make_host, mods_dir, seed, trusted):
    data = blobs(seed)
    files = {f"in{i}.bin": b for i, b in enumerate(data, 1)}
    files["count.txt"] = str(len(data)).encode()
    folder = write_mod(mods_dir, "bin", MOD, files=files)
    grants = {"bin": Grant(trusted=True)} if trusted else None
    host, console = make_host(grants=grants)
    assert host.mods["bin"].state == "loaded", host.mods["bin"].reason
    lines = console.mod_lines("bin")
    assert lines[-1] == "all same\ttrue", lines
    for i, b in enumerate(data, 1):
        assert (folder / f"out{i}.bin").read_bytes() == b + str(i).encode() + b, i
    if not trusted:
        # the log stays text: bytes that are not UTF-8 show as \xNN
        assert "to the log: \\xFF\x00\\x80 end" in lines[0] or "to the log: \\xFF" in lines[0], lines[0]
        assert lines[1].startswith("stdout "), lines[1]
