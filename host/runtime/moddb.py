"""The per-mod SQLite databases: `mods/<id>/db.sqlite3` and in-memory ones, as lsqlite3.

CET gives every mod an lsqlite3 database object as `db`; this is the host half
of Relic's equivalent (the Lua half is host/runtime/lua/relic_db.lua), on SQLite's C API
(host/runtime/sqlite_capi.py).  Connections, statements and backups are kept
here under integer ids; the Lua side wraps them in userdata handles.

Safety:
- parameters are bound, never pasted; an authorizer refuses ATTACH/DETACH and
  every pragma outside a read-only list;
- one byte budget per mod (`max_bytes`) covers all of its databases: the
  file's pages, its temporary files (temp tables and indexes, sort spills,
  materialized subqueries: counted by a QuotaVFS, host/runtime/sqlite_vfs.py)
  and in-memory databases; past it a statement fails with SQLITE_FULL;
- SQLite's limits cap value and statement sizes; a progress handler stops a
  statement at the mod's watchdog deadline (SQLite runs in C, where the Lua
  hook cannot reach);
- open statements, in-memory databases and backups are per-mod quotas.

Callbacks into the mod (create_function, create_aggregate, create_collation,
the hooks, trace, progress_handler) are host/runtime/moddb_callbacks.py; one
connection with its settings is host/runtime/sqlite_conn.py.
"""

from __future__ import annotations

import ctypes
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from host.errors import ModError, QuotaExceeded
from host.runtime import sqlite_capi as C
from host.runtime.moddb_callbacks import DbCallbacks
from host.runtime.sqlite_capi import ffi, lib
from host.runtime.sqlite_conn import PAGE_SIZE, SqliteConn

OK, ERROR, ABORT, INTERRUPT, FULL, TOOBIG, MISUSE, AUTH, RANGE = 0, 1, 4, 9, 13, 18, 21, 23, 25
NOMEM, CONSTRAINT = 7, 19
ROW, DONE = 100, 101
BACKUP_SLICE = 64          # pages a backup copies between deadline checks
MAIN = 1                   # id of the mod's own file database


class _Stmt:
    """One prepared statement."""

    __slots__ = ("conn", "ptr", "temp", "ncols", "has_row", "started", "names")

    def __init__(self, conn: "SqliteConn", ptr, temp: bool):
        self.conn = conn
        self.ptr = ptr
        self.temp = temp
        self.ncols = lib.sqlite3_column_count(ptr)
        self.has_row = False
        self.started = False
        self.names: list[str] | None = None      # column names, read once per run


class ModDB(DbCallbacks):
    """One mod's SQLite connections, statements and backups (frame thread only)."""

    def __init__(self, path: Path, *, limits, deadline: Callable[[], float | None]):
        self.path = path
        self.limits = limits       # the host's limits tree (host.limits): the db_* limits
        self.max_bytes = limits.db_max_bytes
        self.max_value_bytes = limits.db_max_value_bytes
        self._deadline = deadline
        self._conns: dict[int, SqliteConn] = {}
        self._stmts: dict[int, _Stmt] = {}
        self._iterators: OrderedDict[int, None] = OrderedDict()
        self._backups: dict[int, tuple] = {}
        self._next_id = 1
        self.closed = False        # db:close() was called (sqlite3.reopen() undoes it)
        self.init_callbacks()
        self._running: set[int] = set()            # statements inside sqlite3_step (id of each)

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    # -- connections ----------------------------------------------------------

    def conn(self, cid=MAIN) -> SqliteConn:
        """The open connection `cid` (the mod's file is opened on first use)."""
        c = self._conns.get(cid)
        if c is not None:
            return c
        if cid == MAIN and not self.closed:
            c = self._conns[MAIN] = SqliteConn(self, MAIN, self.path)
            return c
        raise ModError("attempt to use a closed sqlite database"
                       + (" (sqlite3.reopen() opens it again)" if cid == MAIN else ""))

    def open_memory(self):
        """sqlite3.open_memory(): a new in-memory database inside the mod's budget.

        (id,) or (False, message) at limits.db_max_databases (the Lua side collects
        dropped handles and tries once more).
        """
        if len(self._conns) >= self.limits.db_max_databases:
            return False, (f"sqlite3.open_memory: at most {self.limits.db_max_databases} open databases "
                           "per mod; close() the ones you no longer need")
        cid = self._new_id()
        self._conns[cid] = SqliteConn(self, cid, None)
        return cid

    def isopen(self, cid=MAIN) -> bool:
        """db:isopen()."""
        return cid in self._conns or (cid == MAIN and not self.closed)

    def close_conn(self, cid=MAIN) -> int:
        """db:close(): finalize its statements, roll back, close; further use is an error."""
        c = self._conns.get(cid)
        if c is not None:
            self.guard(c, closing=True)
        self.settle_unless_nested()
        c = self._conns.pop(cid, None)
        if cid == MAIN:
            self.closed = True
        if c is None:
            return OK
        for sid in [s for s, st in self._stmts.items() if st.conn is c]:
            self._drop(sid)
        for bid in [b for b, (bk, src, dst) in self._backups.items() if c in (src, dst)]:
            self.backup_finish(bid)
        self.forget_callbacks(cid)
        c.close()
        return OK

    def close(self) -> None:
        """Close everything (the mod is released or reloaded); idempotent."""
        self.settle()
        for bid in list(self._backups):
            self.backup_finish(bid)
        for sid in list(self._stmts):
            self._drop(sid)
        for cid in list(self._conns):
            self._conns.pop(cid).close()
        self.stop_helper()

    def close_by_mod(self) -> int:
        """db:close() on the mod's file database."""
        return self.close_conn(MAIN)

    def reopen(self) -> None:
        """sqlite3.reopen(): close and open the mod's file again."""
        self.close_conn(MAIN)
        self.closed = False

    # -- the byte budget ----------------------------------------------------------

    def _others(self, conn: SqliteConn) -> int:
        return sum(c.used_bytes() for c in self._conns.values() if c is not conn)

    def temp_room(self, conn: SqliteConn) -> int:
        """How many bytes `conn`'s transient files may hold in all (QuotaVFS asks).

        Called from inside SQLite (a temp file write): no SQL on the
        connection, only the main file's size and the figures of the
        statement's start.
        """
        return (self.max_bytes - self._others_cached - conn.main_bytes_now()
                - conn.last_pages[1] * PAGE_SIZE)

    def _before_statement(self, conn: SqliteConn) -> None:
        """Split the mod's budget before a statement runs: the room left to grow in.

        The main and temp databases may each grow into the room left by
        everything else (`max_page_count`); transient files (sorts,
        materialized subqueries, statement journals) into the same room, as
        counted by the connection's QuotaVFS.  Only what can have changed is
        measured: other databases when there are some, the temp database
        once the mod created a temp object.
        """
        others = self._others(conn) if len(self._conns) > 1 else 0
        self._others_cached = others
        if conn.backup_targets:
            return
        temp = conn.temp_pages()
        if conn.path is None:       # in memory: no file to look at during the statement
            conn.main_pages()
        room = self.max_bytes - others - conn.vfs.used
        main_max = max(1, (room - temp * PAGE_SIZE) // PAGE_SIZE)
        if main_max != conn.main_max_pages:
            conn.run_sql(f"PRAGMA main.max_page_count = {main_max}")
            conn.main_max_pages = main_max
        if conn.temp_used:
            main = conn.main_pages()
            temp_max = max(1, temp, (room - main * PAGE_SIZE) // PAGE_SIZE)
            if temp_max != conn.temp_max_pages:
                conn.run_sql(f"PRAGMA temp.max_page_count = {temp_max}")
                conn.temp_max_pages = temp_max

    _others_cached = 0

    def past_deadline(self) -> bool:
        """Has the running mod call passed its watchdog deadline?"""
        op = self.running_op()
        dl = op.deadline if op is not None else self._deadline()
        return dl is not None and time.monotonic() > dl

    def call_deadline(self) -> float | None:
        """The running mod call's deadline (time.monotonic()), or None."""
        return self._deadline()

    def open_connections(self) -> list:
        """The open SqliteConn objects."""
        return list(self._conns.values())

    # -- errors ---------------------------------------------------------------

    def fail(self, conn: SqliteConn, fname: str, rc: int) -> int:
        """Record an SQLite failure as lsqlite3 does; returns the result code."""
        code = rc & 0xFF
        msg = C.text(lib.sqlite3_errmsg(conn.ptr)) if conn.ptr else C.text(lib.sqlite3_errstr(rc))
        if conn.timed_out:
            code, msg = INTERRUPT, "interrupted: statement stopped by the watchdog (budget exceeded)"
        elif code == AUTH or "not authorized" in msg:
            code = AUTH
            msg = (f"not authorized: {fname}: not allowed for mods; "
                   "ATTACH and pragmas that change settings are refused")
        elif code == FULL:
            msg = (f"database or disk is full (the mod's databases, their temporary storage "
                   f"included, are limited to {self.max_bytes} bytes)")
        conn.errcode, conn.errmsg = code, msg
        return code

    @staticmethod
    def _ok(conn: SqliteConn, code: int = OK) -> int:
        conn.errcode, conn.errmsg = code, "not an error"
        return code

    def errcode(self, cid=MAIN) -> int:
        """db:errcode()."""
        return self.conn(cid).errcode

    def errmsg(self, cid=MAIN) -> str:
        """db:errmsg()."""
        return self.conn(cid).errmsg

    def set_error(self, cid, code: int, message: str) -> None:
        """Record a result code the Lua side produced (an aborted exec callback)."""
        c = self.conn(cid)
        c.errcode, c.errmsg = int(code), str(message)

    # -- statements -------------------------------------------------------------

    def _stmt(self, sid) -> _Stmt:
        s = self._stmts.get(sid)
        if s is None:
            raise ModError("attempt to use a closed sqlite statement (finalized, or its database was closed)")
        return s

    def _sql_bytes(self, sql, fname: str) -> bytes:
        if isinstance(sql, str):
            sql = sql.encode("utf-8", "surrogateescape")
        if not isinstance(sql, bytes):
            raise ModError(f"db:{fname}: SQL must be a string")
        if len(sql) > self.limits.db_max_sql_bytes:
            raise ModError(f"db:{fname}: SQL longer than {self.limits.db_max_sql_bytes} bytes")
        return sql

    def prepare(self, cid, sql, temp: bool = False):
        """Compile the first statement of `sql`: (id, tail), (None, result code),
        or (False, message) when the mod holds limits.db_max_statements statements."""
        conn = self.conn(cid)
        self.guard(conn)
        data = self._sql_bytes(sql, "prepare")
        buf = ffi.new("char[]", data)
        pp = ffi.new("sqlite3_stmt**")
        tail = ffi.new("char**")
        conn.timed_out = False
        rc = lib.sqlite3_prepare_v2(conn.ptr, buf, len(data) + 1, pp, ffi.cast("const char**", tail))
        rest = data[int(ffi.cast("uintptr_t", tail[0])) - int(ffi.cast("uintptr_t", buf)):] \
            if tail[0] != ffi.NULL else b""
        if rc != OK:
            return None, self.fail(conn, "prepare", rc)
        if pp[0] == ffi.NULL:               # only whitespace or comments
            pp[0] = conn.prepare_internal(b"SELECT 1 WHERE 0")
        if temp:
            while len(self._iterators) >= self.limits.db_max_iterators:
                old, _ = self._iterators.popitem(last=False)
                self._drop(old)
        elif len(self._stmts) - len(self._iterators) >= self.limits.db_max_statements:
            lib.sqlite3_finalize(pp[0])
            # (False, message): the Lua side collects dropped handles and tries once more
            return False, (f"db:prepare: more than {self.limits.db_max_statements} open statements; "
                           "finalize() the ones you no longer need")
        sid = self._new_id()
        self._stmts[sid] = _Stmt(conn, pp[0], temp)
        if temp:
            self._iterators[sid] = None
        self._ok(conn)
        return sid, rest

    def _drop(self, sid: int) -> None:
        s = self._stmts.get(sid)
        if s is not None and s.ptr is not None and self._is_running(s):
            raise ModError("db: a statement cannot be finalized or reset inside a callback "
                           "that its own step is running")
        self._stmts.pop(sid, None)
        self._iterators.pop(sid, None)
        if s is not None and s.ptr is not None:
            lib.sqlite3_finalize(s.ptr)
            s.ptr = None

    def finalize(self, sid) -> int:
        """stmt:finalize() -> OK."""
        self.settle_unless_nested()
        self._drop(sid)
        return OK

    def isopen_stmt(self, sid) -> bool:
        """stmt:isopen()."""
        return sid in self._stmts

    # -- binding ------------------------------------------------------------------

    def param_count(self, sid) -> int:
        """stmt:bind_parameter_count()."""
        return lib.sqlite3_bind_parameter_count(self._stmt(sid).ptr)

    def param_name(self, sid, i):
        """stmt:bind_parameter_name(i): ':a', or nil for '?' (bad index: error)."""
        s = self._stmt(sid)
        n = lib.sqlite3_bind_parameter_count(s.ptr)
        if not isinstance(i, (int, float)) or int(i) != i or not 1 <= i <= n:
            raise ModError(f"bind index out of range [1..{n}]")
        p = lib.sqlite3_bind_parameter_name(s.ptr, int(i))
        return C.text(p) if p != ffi.NULL else None

    def param_names(self, sid) -> list:
        """Parameter names (':a', or False for '?') in order, for bind_names."""
        s = self._stmt(sid)
        out = []
        for i in range(1, lib.sqlite3_bind_parameter_count(s.ptr) + 1):
            p = lib.sqlite3_bind_parameter_name(s.ptr, i)
            out.append(C.text(p) if p != ffi.NULL else False)
        return out

    def _bind_one(self, s: _Stmt, i: int, v, blob: bool = False) -> int:
        ptr = s.ptr
        if v is None:
            return lib.sqlite3_bind_null(ptr, i)
        if isinstance(v, bool):
            return lib.sqlite3_bind_int64(ptr, i, int(v))
        if isinstance(v, int):
            if -2 ** 63 <= v < 2 ** 63:
                return lib.sqlite3_bind_int64(ptr, i, v)
            return lib.sqlite3_bind_double(ptr, i, float(v))
        if isinstance(v, float):
            if v.is_integer() and abs(v) < 2 ** 63:
                return lib.sqlite3_bind_int64(ptr, i, int(v))
            return lib.sqlite3_bind_double(ptr, i, v)
        if isinstance(v, str):
            v = v.encode("utf-8", "surrogateescape")
        if isinstance(v, bytes):
            if len(v) > self.max_value_bytes:
                return TOOBIG
            if blob:
                return lib.sqlite3_bind_blob(ptr, i, v, len(v), C.SQLITE_TRANSIENT)
            return lib.sqlite3_bind_text(ptr, i, v, len(v), C.SQLITE_TRANSIENT)
        raise ModError(f"bind: parameter {i} must be nil, a boolean, a number or a string, "
                       f"got {type(v).__name__}")

    def _index(self, s: _Stmt, index) -> int:
        n = lib.sqlite3_bind_parameter_count(s.ptr)
        if not isinstance(index, (int, float)) or int(index) != index or not 1 <= index <= n:
            raise ModError(f"bind index out of range [1..{n}]")
        return int(index)

    def bind(self, sid, index, value, blob=False) -> int:
        """stmt:bind(i, value) / bind_blob(i, s) -> result code (i is 1-based)."""
        s = self._stmt(sid)
        i = self._index(s, index)
        if blob and not isinstance(value, (str, bytes)):
            raise ModError(f"bad argument #2 to 'bind_blob' (string expected, got {type(value).__name__})")
        rc = self._bind_one(s, i, value, bool(blob))
        return self._ok(s.conn) if rc == OK else self.fail(s.conn, "bind", rc)

    def bind_raw(self, sid, index, address, length, blob=False) -> int:
        """bind/bind_blob of a Lua string handed over as (address, length).

        Called only by host/runtime/lua/relic_db.lua with the address of a string it holds
        for the duration of the call (LuaJIT does not move strings): the bytes
        arrive exactly, whatever their encoding.
        """
        s = self._stmt(sid)
        i = self._index(s, index)
        n = int(length)
        if n > self.max_value_bytes:
            return self.fail(s.conn, "bind", TOOBIG)
        data = ctypes.string_at(int(address), n) if n else b""
        rc = self._bind_one(s, i, data, bool(blob))
        return self._ok(s.conn) if rc == OK else self.fail(s.conn, "bind", rc)

    def bind_packed(self, sid, kinds, *args) -> int:
        """Bind parameters 1..len(kinds) at once, from lua/relic_db.lua.

        kinds[i] is "v" (the next argument is the value) or "s" (the next two
        are the address and length of a string the Lua side holds for the
        duration of the call; see bind_raw).
        """
        s = self._stmt(sid)
        n = lib.sqlite3_bind_parameter_count(s.ptr)
        if not isinstance(kinds, str) or len(kinds) > n:
            raise ModError(f"bind index out of range [1..{n}]")
        j = 0
        for i, kind in enumerate(kinds, 1):
            if kind == "s":
                length = int(args[j + 1])
                if length > self.max_value_bytes:
                    return self.fail(s.conn, "bind", TOOBIG)
                v = ctypes.string_at(int(args[j]), length) if length else b""
                j += 2
            else:
                v = args[j]
                j += 1
            rc = self._bind_one(s, i, v)
            if rc != OK:
                return self.fail(s.conn, "bind", rc)
        return self._ok(s.conn)

    def bind_list(self, sid, values: tuple) -> int:
        """bind_values(...): exactly as many values as the statement has parameters."""
        s = self._stmt(sid)
        n = lib.sqlite3_bind_parameter_count(s.ptr)
        if len(values) != n:
            raise ModError(f"incorrect number of parameters to bind ({len(values)} given, "
                           f"{n} to bind)")
        for i, v in enumerate(values, 1):
            rc = self._bind_one(s, i, v)
            if rc != OK:
                return self.fail(s.conn, "bind", rc)
        return self._ok(s.conn)

    # -- stepping -------------------------------------------------------------------

    def step(self, sid):
        """stmt:step() -> ROW, DONE or an error code (errmsg says why)."""
        s = self._stmt(sid)
        return self.run_sql_work(s.conn, self._step_now, s)

    def _step_now(self, s: _Stmt) -> int:
        conn = s.conn
        if not s.started:
            self._before_statement(conn)
            s.started = True
            s.names = None          # a schema change may re-prepare the statement
        conn.timed_out = False
        conn.vfs.refused = False
        key = id(s)
        self._running.add(key)
        try:
            rc = lib.sqlite3_step(s.ptr)
        finally:
            self._running.discard(key)
        if rc == ROW:
            s.has_row = True
            return self._ok(conn, ROW)
        s.has_row = False
        s.started = False
        if rc == DONE:
            return self._ok(conn, DONE)
        lib.sqlite3_reset(s.ptr)
        if conn.vfs.refused:
            rc = FULL
        return self.fail(conn, "step", rc)

    def reset(self, sid) -> int:
        """stmt:reset(): back to the start, bindings kept."""
        s = self._stmt(sid)
        self.settle_unless_nested()
        if self._is_running(s):
            raise ModError("db: a statement cannot be finalized or reset inside a callback "
                           "that its own step is running")
        lib.sqlite3_reset(s.ptr)
        s.has_row = s.started = False
        return self._ok(s.conn)

    def _is_running(self, s: _Stmt) -> bool:
        return bool(self._running) and id(s) in self._running

    def _column(self, s: _Stmt, i: int):
        p = s.ptr
        t = lib.sqlite3_column_type(p, i)
        if t == 1:
            return lib.sqlite3_column_int64(p, i)
        if t == 2:
            return lib.sqlite3_column_double(p, i)
        if t == 3:
            txt = lib.sqlite3_column_text(p, i)
            return ffi.buffer(txt, lib.sqlite3_column_bytes(p, i))[:]
        if t == 4:
            b = lib.sqlite3_column_blob(p, i)
            n = lib.sqlite3_column_bytes(p, i)
            return ffi.buffer(b, n)[:] if n else b""
        return None

    def _row(self, s: _Stmt) -> list:
        if not s.has_row:
            raise ModError("misuse of function (the statement has no current row; call step() first)")
        return [self._column(s, i) for i in range(s.ncols)]

    def columns(self, sid) -> int:
        """stmt:columns(): result columns (known once prepared)."""
        return self._stmt(sid).ncols

    def values(self, sid) -> list:
        """Current row's values in column order (get_values / get_uvalues)."""
        return self._row(self._stmt(sid))

    def value(self, sid, index):
        """get_value(i): column i, 0-based."""
        s = self._stmt(sid)
        row = self._row(s)
        if not isinstance(index, (int, float)) or int(index) != index or not 0 <= index < len(row):
            raise ModError(f"index out of range [0..{len(row) - 1}]")
        return row[int(index)]

    def names(self, sid) -> list:
        """Column names (known once prepared)."""
        s = self._stmt(sid)
        if s.names is None:
            s.names = [C.text(lib.sqlite3_column_name(s.ptr, i)) for i in range(s.ncols)]
        return list(s.names)

    def types(self, sid) -> list:
        """Declared column types ('' for an expression), as lsqlite3's get_types."""
        s = self._stmt(sid)
        return [C.text(lib.sqlite3_column_decltype(s.ptr, i)) for i in range(s.ncols)]

    def named_values(self, sid) -> dict:
        """get_named_values(): {column name: value}."""
        s = self._stmt(sid)
        return {n: v for n, v in zip(self.names(sid), self._row(s)) if v is not None}

    def next_row(self, sid, shape: str):
        """One step of an iterator: (True, row, n) or (False,) at the end; raises on error.

        shape: "array" (db:rows), "named" (db:nrows) or "values" (db:urows).
        Temporary statements are finalized at the end, as in lsqlite3.
        """
        s = self._stmt(sid)
        return self.run_sql_work(s.conn, self._next_row_now, sid, s, shape)

    def _next_row_now(self, sid, s: _Stmt, shape: str):
        code = self._step_now(s)
        if code == ROW:
            if s.temp:
                self._iterators.move_to_end(sid)
            row = self._row(s)
            if shape == "named":
                return True, {n: v for n, v in zip(self.names(sid), row) if v is not None}, 0
            return True, row, len(row)
        msg = s.conn.errmsg
        if s.temp:
            self._drop(sid)
        elif code == DONE:
            lib.sqlite3_reset(s.ptr)
        if code != DONE:
            raise ModError(msg)
        return (False,)

    def exec_values(self, sid) -> list:
        """The current row as sqlite3_exec hands it to a callback: text (or nil)."""
        s = self._stmt(sid)
        if not s.has_row:
            raise ModError("misuse of function (no current row)")
        out = []
        for i in range(s.ncols):
            if lib.sqlite3_column_type(s.ptr, i) == 5:
                out.append(None)
            else:
                t = lib.sqlite3_column_text(s.ptr, i)
                out.append(ffi.buffer(t, lib.sqlite3_column_bytes(s.ptr, i))[:])
        return out

    # -- db-level calls ------------------------------------------------------------

    def exec(self, cid, sql, params: tuple = ()):
        """db:exec(sql) without a callback: run every statement; result code.

        With `params` (Relic's `?` extension) the SQL must be one statement.
        """
        conn = self.conn(cid)
        data = self._sql_bytes(sql, "exec")
        return self.run_sql_work(conn, self._exec_now, conn, data, params)

    def _exec_now(self, conn: SqliteConn, data: bytes, params: tuple) -> int:
        rest, first = data, True
        while rest.strip():
            sid, tail = self.prepare(conn.cid, rest)
            if sid is None:
                return tail
            try:
                if params and first:
                    if tail.strip():
                        raise ModError("db:exec: with ? parameters the SQL must be one statement")
                    code = self.bind_list(sid, tuple(params))
                    if code != OK:
                        return code
                s = self._stmts[sid]
                while True:
                    code = self._step_now(s)
                    if code != ROW:
                        break
                if code != DONE:
                    return code
            finally:
                self._drop(sid)
            rest, first = tail, False
        return self._ok(conn)

    def last_insert_rowid(self, cid=MAIN) -> int:
        """db:last_insert_rowid()."""
        return lib.sqlite3_last_insert_rowid(self.conn(cid).ptr)

    def changes(self, cid=MAIN) -> int:
        """db:changes(): rows changed by the last INSERT/UPDATE/DELETE."""
        return lib.sqlite3_changes(self.conn(cid).ptr)

    def total_changes(self, cid=MAIN) -> int:
        """db:total_changes()."""
        return lib.sqlite3_total_changes(self.conn(cid).ptr)

    def db_filename(self, cid, name="main"):
        """db:db_filename(name): the file's name in the mod's folder ('' for memory or temp).

        Relative, as a mod names its files (the host's folders stay private).
        """
        c = self.conn(cid)
        p = lib.sqlite3_db_filename(c.ptr, str(name).encode())
        if p == ffi.NULL:
            return None
        full = C.text(p)
        return self.path.name if full and not c.memory else full

    def interrupt(self, cid=MAIN) -> None:
        """db:interrupt()."""
        lib.sqlite3_interrupt(self.conn(cid).ptr)

    @staticmethod
    def version() -> str:
        """sqlite3.version(): the SQLite library version."""
        return C.text(lib.sqlite3_libversion())

    @staticmethod
    def complete(sql) -> bool:
        """sqlite3.complete(sql): does the text end a complete statement?"""
        if isinstance(sql, str):
            sql = sql.encode("utf-8", "surrogateescape")
        return bool(lib.sqlite3_complete(sql))

    def open_statements(self) -> int:
        """How many statements are open (tests and the quota)."""
        return len(self._stmts)

    def used_bytes(self) -> int:
        """Bytes the mod's databases hold now, temporary storage included."""
        return sum(c.used_bytes() for c in self._conns.values())

    # -- backups ---------------------------------------------------------------------

    def backup_init(self, target_cid, target_name, source_cid, source_name):
        """sqlite3.backup_init(target, tname, source, sname) -> backup id, or None."""
        if len(self._backups) >= self.limits.db_max_backups:
            raise QuotaExceeded(f"sqlite3.backup_init: at most {self.limits.db_max_backups} backups at once")
        dst, src = self.conn(target_cid), self.conn(source_cid)
        self.guard(dst, closing=True)
        self.guard(src, closing=True)
        if dst is src:
            raise ModError("sqlite3.backup_init: source and target must be different databases")
        self._before_statement(dst)
        b = lib.sqlite3_backup_init(dst.ptr, str(target_name).encode(), src.ptr,
                                    str(source_name).encode())
        if b == ffi.NULL:
            self.fail(dst, "backup_init", lib.sqlite3_errcode(dst.ptr))
            return None
        bid = self._new_id()
        self._backups[bid] = (b, src, dst)
        dst.backup_targets += 1
        dst.backup_floor = src.main_pages()
        return bid

    def _backup(self, bid):
        b = self._backups.get(bid)
        if b is None:
            raise ModError("attempt to use a finished sqlite backup")
        return b

    def backup_step(self, bid, n=-1) -> int:
        """backup:step(n) -> OK (pages remain), DONE or an error code.

        Copies in slices of BACKUP_SLICE pages and stops early at the mod's
        deadline (returning OK: the mod steps again), so a large copy never
        holds the frame past the budget in C.
        """
        b, src, dst = self._backup(bid)
        self.guard(dst, closing=True)
        self.guard(src, closing=True)
        dst.vfs.refused = False
        left = int(n) if isinstance(n, (int, float)) and n > 0 else -1
        while True:
            k = BACKUP_SLICE if left < 0 else min(left, BACKUP_SLICE)
            rc = lib.sqlite3_backup_step(b, k)
            if left > 0:
                left -= k
            if rc != OK or left == 0 or self.past_deadline():
                break
        if rc in (OK, DONE, 5, 6):
            return rc
        return self.fail(dst, "backup", rc)

    def backup_remaining(self, bid) -> int:
        """backup:remaining()."""
        return lib.sqlite3_backup_remaining(self._backup(bid)[0])

    def backup_pagecount(self, bid) -> int:
        """backup:pagecount()."""
        return lib.sqlite3_backup_pagecount(self._backup(bid)[0])

    def backup_finish(self, bid) -> int:
        """backup:finish()."""
        b = self._backups.pop(bid, None)
        if b is None:
            return OK
        b[2].backup_targets -= 1
        b[2].backup_floor = 0
        return lib.sqlite3_backup_finish(b[0]) & 0xFF
