"""Running one piece of Lua three ways: a sandboxed mod, a trusted mod, plain LuaJIT.

Used by the Lua compatibility and differential tests.  Each runner returns the
lines the code printed (print's output: values tostring'ed, joined by tabs).
Plain LuaJIT is a bare lupa runtime (no sandbox, no host) whose print collects
lines and whose dofile/loadfile/require/io.open/io.lines read files from the
given folder as LuaJIT would with that folder as the working directory.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from lupa import luajit21 as lupa

from host.runtime.grants import Grant
from host.limits import Limits
from host.runtime.modlog import sanitize_lines
from modhost_util import write_mod

PLAIN_PRELUDE = r"""
local folder, out = ...
local raw_open, raw_lines = io.open, io.lines
local function at(path)
  if type(path) == "string" and path:sub(1, 1) ~= "/" then return folder .. "/" .. path end
  return path
end
io.open = function(path, ...) return raw_open(at(path), ...) end
io.lines = function(path, ...) if path == nil then return raw_lines() end return raw_lines(at(path), ...) end
function print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  out[#out + 1] = table.concat(parts, "\t")
end
function loadfile(path, mode, env)
  local f = raw_open(at(path), "rb")
  if not f then return nil, "cannot open " .. path end
  local src = f:read("*a")
  f:close()
  return load(src, "@" .. path, mode, env)
end
function dofile(path)
  local f, err = loadfile(path)
  if not f then error(err, 2) end
  return f()
end
package.path = folder .. "/?.lua;" .. folder .. "/?/init.lua"
-- modules are named by their path relative to the folder, as files loaded with that folder as
-- the working directory are
table.insert(package.loaders, 2, function(name)
  local rel = name:gsub("%.", "/")
  for _, p in ipairs { rel .. ".lua", rel .. "/init.lua" } do
    local f = raw_open(at(p), "rb")
    if f then f:close() return assert(loadfile(p)) end
  end
end)
"""


def run_plain(src: str | bytes, folder: Path, chunkname: str = "@init.lua") -> list[str]:
    """Run `src` in a fresh plain LuaJIT runtime; the lines it printed (an error: 'ERROR\\t...')."""
    rt = lupa.LuaRuntime(encoding=None)
    out = rt.table()
    rt.execute(PLAIN_PRELUDE, str(folder).encode(), out)
    code = src.encode() if isinstance(src, str) else src
    run = rt.eval("""function(code, name)
      local f, err = load(code, name)
      if not f then print("ERROR", err) return end
      local ok, e = xpcall(f, function(m) return m end)
      if not ok then print("ERROR", e) end
    end""")
    run(code, chunkname.encode())
    # as a mod's log holds them: one line per line, control characters escaped
    return [line for i in range(1, len(out) + 1)
            for line in sanitize_lines(out[i].decode("utf-8", "backslashreplace"))]


def run_mod(make_host, mods_dir: Path, mod_id: str, src: str | bytes, *, trusted: bool = False,
            files: dict | None = None, init_budget_ms: int = 5000) -> list[str]:
    """Run `src` as a mod's init.lua (sandboxed, or trusted by a grant); the lines it printed.

    A failing init.lua gives one line 'ERROR\\t<reason>'.
    """
    folder = write_mod(mods_dir, mod_id, "", files=files)
    (folder / "init.lua").write_bytes(src if isinstance(src, bytes) else textwrap.dedent(src).encode())
    grants = {mod_id: Grant(trusted=True)} if trusted else None
    limits = Limits(log_lines_per_frame=1_000_000, init_budget_ms=init_budget_ms)
    host, console = make_host(grants=grants, limits=limits)
    mod = host.mods[mod_id]
    lines = console.mod_lines(mod_id)
    if mod.state != "loaded":
        lines = [l for l in lines if not l.startswith("not loaded")]
        lines.append("ERROR\t" + str(mod.reason))
    host.shutdown()
    return lines
