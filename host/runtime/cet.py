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
from host.runtime.moddb import ModDB
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
    return {
        "prepare": lambda sql=None, temp=False: db.prepare(sql, bool(temp)),
        "step": db.step, "reset": db.reset, "finalize": db.finalize,
        "isopen_stmt": db.isopen_stmt,
        "bind": db.bind, "bind_blob": db.bind_blob,
        "bind_values": lambda sid=None, *values: db.bind_list(sid, values),
        "param_count": db.param_count, "param_names": db.param_names,
        "value": db.value, "values": db.values, "named_values": db.named_values,
        "names": db.names, "next_row": db.next_row, "exec_values": db.exec_values,
        "exec": lambda sql=None, *params: db.exec(sql, params),
        "set_error": db.set_error,
        "errcode": lambda: db.errcode, "errmsg": lambda: db.errmsg,
        "last_insert_rowid": db.last_insert_rowid, "changes": db.changes,
        "total_changes": db.total_changes,
        "isopen": db.isopen, "close": db.close_by_mod, "reopen": db.reopen,
        "version": db.version, "complete": db.complete,
    }


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

    db, sqlite3 = mod.load_lib("relic_db")(bridge_table(mod, _db_bridge(mod.db)))
    mod.expose("db", db, readonly=False)        # methods check `self`: a proxy would fail them
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
