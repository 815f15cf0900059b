"""CET parity: the globals a Cyber Engine Tweaks mod expects, installed into every mod.

Called once per mod from `Mod.build`, after the sandbox exists and before
init.lua runs:

- `db` (lsqlite3 semantics) and `sqlite3` (its constants, version, complete,
  reopen) over the mod's own SQLite file (host/runtime/moddb.py,
  host/runtime/lua/relic_db.lua);
- `io` and `dir` confined to the mod's folder (host/runtime/modio.py,
  host/runtime/lua/relic_io.lua);
- `bit32` (CET's: LuaJIT's bit library under that name, plus 5.2's extras),
  a writable copy like the other library tables;
- `GetVersion()`, `GetMods()`, `GetDisplayResolution()`;
- the embedding game's API (host/runtime/gameapi.py) and the Cyberpunk
  stand-ins (`Game`, `TweakDB`, `NewObject`, ... fail with one clear line).

`ImGui` and its flag tables come from the host's UI layer (host/ui/imgui_api.py):
Dear ImGui when the game attached an overlay, calls that draw nothing otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from host.errors import ModError
from host.runtime.gameapi import CYBERPUNK_FUNCTIONS, CYBERPUNK_TABLES
from host.runtime import sqlite_capi as C
from host.runtime.moddb import ModDB
from host.runtime.moddb_callbacks import CALLBACK
from host.runtime.modio import ModIO

if TYPE_CHECKING:
    from host.runtime.mod import Mod


def make_io(mod: "Mod") -> ModIO:
    """The mod's file access object (kept on the Mod; closed when it is released)."""
    limits = mod.host.limits
    return ModIO(mod.id, mod.folder, max_open=limits.io_max_open_files,
                 max_file_bytes=limits.io_max_file_bytes,
                 max_folder_bytes=limits.io_max_folder_bytes,
                 max_read_bytes=limits.max_string_bytes, max_files=limits.io_max_files)


def _db_bridge(db: ModDB) -> dict:
    constants = {**C.RESULT_CODES, **C.DATATYPES, **C.ACTIONS, **C.OPEN_FLAGS}
    return {
        "constants": lambda: constants, "callback_marker": lambda: CALLBACK,
        "open_memory": db.open_memory, "isopen": db.isopen, "close": db.close_conn,
        "reopen": db.reopen,
        "prepare": lambda cid=None, sql=None, temp=False: db.prepare(cid, sql, bool(temp)),
        "step": db.step, "reset": db.reset, "finalize": db.finalize,
        "isopen_stmt": db.isopen_stmt, "columns": db.columns, "types": db.types,
        "bind": lambda sid=None, i=None, v=None, blob=False: db.bind(sid, i, v, bool(blob)),
        "bind_raw": lambda sid=None, i=None, addr=0, n=0, blob=False:
            db.bind_raw(sid, i, addr, n, bool(blob)),
        "bind_packed": db.bind_packed,
        "param_count": db.param_count, "param_name": db.param_name,
        "param_names": db.param_names,
        "value": db.value, "values": db.values, "named_values": db.named_values,
        "names": db.names, "next_row": db.next_row, "exec_values": db.exec_values,
        "exec": lambda cid=None, sql=None: db.exec(cid, sql),
        "set_error": db.set_error, "errcode": db.errcode, "errmsg": db.errmsg,
        "last_insert_rowid": db.last_insert_rowid, "changes": db.changes,
        "total_changes": db.total_changes, "db_filename": db.db_filename,
        "interrupt": db.interrupt,
        "create_function": db.create_function, "create_collation": db.create_collation,
        "set_hook": lambda cid=None, kind=None, cb=None, n=0: db.set_hook(cid, kind, cb, n),
        "resume": db.resume,
        "backup_init": db.backup_init, "backup_step": db.backup_step,
        "backup_remaining": db.backup_remaining, "backup_pagecount": db.backup_pagecount,
        "backup_finish": db.backup_finish,
        "version": db.version, "complete": db.complete,
    }


# Built in the runtime's privileged globals (newproxy, getmetatable and ffi
# are in no mod's environment): lsqlite3-like userdata handles with a hidden
# metatable (their __gc is the host's, never the mod's), and the address of a
# string the caller holds.
_DB_PRIVILEGED = """
local newproxy, getmetatable, tostring, tonumber = newproxy, getmetatable, tostring, tonumber
local function handle(index, tostr, on_gc)
  local p = newproxy(true)
  local addr = tostring(p):match("0x%x+") or "?"
  local mt = getmetatable(p)
  mt.__index = index
  mt.__tostring = tostr
  mt.__gc = on_gc            -- the host's own (lua/relic_db.lua): notes the id, nothing else
  mt.__metatable = false
  return p, addr
end
local ok, ffi = pcall(require, "ffi")
local strptr
if ok and ffi then
  local cast = ffi.cast
  strptr = function(s) return tonumber(cast("uintptr_t", cast("const char *", s))) end
end
return handle, strptr
"""


def _io_bridge(fio: ModIO) -> dict:
    return {
        "open": fio.open, "read": fio.read, "write": fio.write, "write_binary": fio.write_binary,
        "seek": fio.seek, "flush": fio.flush, "close": fio.close, "is_open": fio.is_open, "listdir": fio.listdir,
    }


def bridge_table(mod: "Mod", functions: dict):
    """A Lua table {name = function} calling `functions[name]` through one bridge function.

    One wrapped dispatcher instead of a wrapped function per name keeps a
    mod's start cheap (each wrap costs a Python->Lua round trip).
    """
    def dispatch(name, *args):
        fn = functions.get(name) if isinstance(name, str) else None
        if fn is None:
            raise ModError(f"internal: no host function {name!r}")
        return fn(*args)

    return mod.load_lib("relic_compat").bridge(mod.wrap(dispatch), mod.table(sorted(functions)))


def install(mod: "Mod") -> None:
    """Install the CET globals into `mod` (see the module docstring)."""
    host = mod.host
    game = host.game

    handle, strptr = mod.lua.execute(_DB_PRIVILEGED)
    db, sqlite3 = mod.load_lib("relic_db")(bridge_table(mod, _db_bridge(mod.db)), handle, strptr)
    mod.expose("db", db, readonly=False)        # a userdata handle: nothing to write
    mod.expose("sqlite3", sqlite3)

    # io.write and io.stdout go to the mod's log as print does (box.log_info)
    fio, dir_fn = mod.load_lib("relic_io")(bridge_table(mod, _io_bridge(mod.io)), mod.box.log_info)
    if not mod.trusted:        # trusted mods keep LuaJIT's io (relative paths from their folder)
        mod.expose("io", fio, readonly=False)
    mod.expose("dir", dir_fn)

    # library tables are the mod's own writable copies (sandbox.lua)
    compat = mod.load_lib("relic_compat")
    mod.expose("bit32", compat.copy(mod.load_lib("bit32")), readonly=False)

    mod.expose("GetVersion", mod.wrap(lambda: game.version))
    mod.expose("GetMods", mod.wrap(lambda: [m.id for m in host.running_mods()]))
    mod.expose("GetDisplayResolution",
               mod.wrap(lambda: tuple(float(x) for x in game.display_resolution)))

    mod.load_lib("relic_game")(mod.env, mod.table(list(CYBERPUNK_TABLES)),
                               mod.table(list(CYBERPUNK_FUNCTIONS)), mod.wrap(game.describe))
    host.ui.install(mod)
    game.install(mod)
