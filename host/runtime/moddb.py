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
the hooks, trace, progress_handler): Lua runs only on the frame thread, and
Python must not call into a runtime that may be inside a coroutine.  So once a
connection has a Lua callback, its statements run on a helper thread while the
frame thread waits inside the mod's call; when SQLite calls back, the helper
hands the call to the frame thread as a return value ("callback" marker), the
Lua side runs the mod's function under the mod's budget and hands the result
back with `resume`.  The two threads never use the connection at once.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from host.errors import ModError, QuotaExceeded
from host.runtime import sqlite_capi as C
from host.runtime.sqlite_capi import ffi, lib
from host.runtime.sqlite_vfs import QuotaVFS

# Pragmas a mod may run: schema introspection and its own version counters.
ALLOWED_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_keys", "user_version", "application_id",
    "integrity_check", "quick_check", "page_count", "freelist_count", "data_version",
    "collation_list", "function_list", "database_list", "page_size", "max_page_count",
}
DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
PAGE_SIZE = 4096

OK, ERROR, ABORT, INTERRUPT, FULL, TOOBIG, MISUSE, AUTH, RANGE = 0, 1, 4, 9, 13, 18, 21, 23, 25
NOMEM, CONSTRAINT = 7, 19
ROW, DONE = 100, 101
MAX_SQL_BYTES = 1_000_000
MAX_STATEMENTS = 256       # prepared statements a mod may hold open
MAX_ITERATORS = 64         # db:rows/nrows/urows iterators left unfinished (oldest are dropped)
MAX_CONNECTIONS = 8        # the mod's file plus in-memory databases
MAX_BACKUPS = 8
BACKUP_SLICE = 64          # pages a backup copies between deadline checks
MAX_FUNCTIONS = 64         # functions, aggregates and collations per connection
MAIN = 1                   # id of the mod's own file database
CALLBACK = "\x01relic-db-callback"     # first return value: run a callback, then resume()


class _Interrupted(Exception):
    """The frame thread gave up on a callback (the mod was stopped)."""


class _Stmt:
    """One prepared statement."""

    __slots__ = ("conn", "ptr", "temp", "ncols", "has_row", "started")

    def __init__(self, conn: "_Conn", ptr, temp: bool):
        self.conn = conn
        self.ptr = ptr
        self.temp = temp
        self.ncols = lib.sqlite3_column_count(ptr)
        self.has_row = False
        self.started = False


class _Op:
    """One piece of SQLite work run on the helper thread."""

    def __init__(self, fn, args, deadline):
        self.fn, self.args, self.deadline = fn, args, deadline
        self.out: queue.Queue = queue.Queue()     # helper -> frame
        self.back: queue.Queue = queue.Queue()    # frame -> helper (callback results)


class _Conn:
    """One open SQLite connection of a mod."""

    def __init__(self, owner: "ModDB", cid: int, path: str | None):
        self.owner = owner
        self.cid = cid
        self.memory = path is None
        self.vfs = QuotaVFS(lambda: owner.temp_room(self))
        pp = ffi.new("sqlite3**")
        name = b":memory:" if path is None else str(path).encode()
        flags = C.OPEN_FLAGS["OPEN_READWRITE"] | C.OPEN_FLAGS["OPEN_CREATE"] | C.OPEN_FLAGS["OPEN_NOMUTEX"]
        rc = lib.sqlite3_open_v2(name, pp, flags, self.vfs.name)
        self.ptr = pp[0]
        if rc != OK:
            msg = C.text(lib.sqlite3_errmsg(self.ptr)) if self.ptr != ffi.NULL else "out of memory"
            self.close()
            raise ModError(f"db: cannot open the database: {msg}")
        self.errcode, self.errmsg = OK, "not an error"
        self.callbacks: dict[str, object] = {}     # kind/name -> cffi callback (kept alive)
        self.lua_callbacks = 0                     # how many Lua callbacks are registered
        self.functions = 0
        self.progress_n = 0                        # the mod's progress handler: every n ops
        self.timed_out = False
        self.main_max_pages = -1
        self.main_bytes = 0
        self.backup_targets = 0                    # running backups writing into this one
        self.last_pages = (0, 0)
        self.backup_floor = 0
        self.internal = False                      # the host's own SQL is running
        self.temp_max_pages = -1
        db = self.ptr
        lib.sqlite3_limit(db, C.LIMIT_LENGTH, owner.max_value_bytes)
        lib.sqlite3_limit(db, C.LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
        lib.sqlite3_limit(db, C.LIMIT_ATTACHED, 0)
        lib.sqlite3_limit(db, C.LIMIT_EXPR_DEPTH, 500)
        lib.sqlite3_limit(db, C.LIMIT_VARIABLE_NUMBER, 999)
        lib.sqlite3_limit(db, C.LIMIT_WORKER_THREADS, 0)
        lib.sqlite3_limit(db, C.LIMIT_TRIGGER_DEPTH, 100)
        for sql in ("PRAGMA temp_store = FILE", "PRAGMA cache_size = -2048",
                    "PRAGMA temp.cache_size = -1024"):
            self.run_sql(sql)
        self._auth = ffi.callback("int(void*, int, const char*, const char*, const char*, const char*)",
                                  self._authorize, error=C.DENY)
        lib.sqlite3_set_authorizer(db, self._auth, ffi.NULL)
        self._progress_cb = ffi.callback("int(void*)", self._progress, error=1)
        self.set_progress(0)
        self._page_count = self.prepare_internal(b"PRAGMA main.page_count")
        self._temp_count = self.prepare_internal(b"PRAGMA temp.page_count")

    # -- internal helpers --------------------------------------------------------

    def run_sql(self, sql: str) -> int:
        """Run the host's own SQL (not traced, not checked by the authorizer)."""
        self.internal = True
        try:
            return lib.sqlite3_exec(self.ptr, sql.encode(), ffi.NULL, ffi.NULL, ffi.NULL)
        finally:
            self.internal = False

    def prepare_internal(self, sql: bytes):
        pp = ffi.new("sqlite3_stmt**")
        lib.sqlite3_prepare_v2(self.ptr, sql, -1, pp, ffi.NULL)
        return pp[0]

    def _count(self, s) -> int:
        if s is None or s == ffi.NULL:
            return 0
        self.internal = True
        try:
            n = lib.sqlite3_column_int64(s, 0) if lib.sqlite3_step(s) == ROW else 0
            lib.sqlite3_reset(s)
        finally:
            self.internal = False
        return n

    def pages(self) -> tuple[int, int]:
        """(main pages, temp pages).  On the target of a running backup no SQL
        may run (SQLite does not allow it): the last figures, or the source's."""
        if self.backup_targets:
            return max(self.last_pages[0], self.backup_floor), self.last_pages[1]
        self.last_pages = (self._count(self._page_count), self._count(self._temp_count))
        return self.last_pages

    def main_pages(self) -> int:
        return self.pages()[0]

    def used_bytes(self) -> int:
        """Bytes this connection holds: its pages (main and temp) and its transient files."""
        main, temp = self.pages()
        return (main + temp) * PAGE_SIZE + self.vfs.used

    def _authorize(self, _ud, action, a1, a2, dbname, _trigger):
        if self.internal:
            return OK
        if action in (C.ACTIONS["ATTACH"], C.ACTIONS["DETACH"]):
            return C.DENY
        if action == C.ACTIONS["PRAGMA"]:
            name = C.text(a1).lower()
            if name not in ALLOWED_PRAGMAS:
                return C.DENY
            if name in ("max_page_count", "page_size") and a2 != ffi.NULL:
                return C.DENY        # reading is fine, setting is not
        if action == C.ACTIONS["FUNCTION"] and C.text(a2).lower() in DENIED_FUNCTIONS:
            return C.DENY
        return OK

    def set_progress(self, n: int) -> None:
        """Install the progress handler: the watchdog check, and the mod's handler every n ops."""
        self.progress_n = n
        every = min(n, 10_000) if n > 0 else 10_000
        lib.sqlite3_progress_handler(self.ptr, every, self._progress_cb, ffi.NULL)

    def _progress(self, _ud) -> int:
        if self.owner.past_deadline():
            self.timed_out = True
            return 1
        if self.progress_n > 0 and "progress" in self.owner.lua_ids(self):
            try:
                return 1 if self.owner.ask(self, "progress", ()) else 0
            except _Interrupted:
                return 1 if self.timed_out else 0
        return 0

    def close(self) -> None:
        for name in ("_page_count", "_temp_count"):
            st = getattr(self, name, None)
            if st is not None and st != ffi.NULL:
                lib.sqlite3_finalize(st)
            setattr(self, name, None)
        if self.ptr is not None and self.ptr != ffi.NULL:
            # Hooks must not call into Lua while closing (a rollback hook would).
            lib.sqlite3_commit_hook(self.ptr, ffi.NULL, ffi.NULL)
            lib.sqlite3_rollback_hook(self.ptr, ffi.NULL, ffi.NULL)
            lib.sqlite3_update_hook(self.ptr, ffi.NULL, ffi.NULL)
            lib.sqlite3_trace_v2(self.ptr, 0, ffi.NULL, ffi.NULL)
            lib.sqlite3_close_v2(self.ptr)
        self.ptr = None
        self.vfs.close()


def _value_of(v):
    """A sqlite3_value as a Python value (TEXT and BLOB as bytes)."""
    t = lib.sqlite3_value_type(v)
    if t == 1:
        return lib.sqlite3_value_int64(v)
    if t == 2:
        return lib.sqlite3_value_double(v)
    if t == 3:
        p = lib.sqlite3_value_text(v)
        return ffi.buffer(p, lib.sqlite3_value_bytes(v))[:]
    if t == 4:
        n = lib.sqlite3_value_bytes(v)
        return ffi.buffer(lib.sqlite3_value_blob(v), n)[:] if n else b""
    return None


class ModDB:
    """One mod's SQLite connections, statements and backups (frame thread only)."""

    def __init__(self, path: Path, *, max_bytes: int, max_value_bytes: int,
                 deadline: Callable[[], float | None]):
        self.path = path
        self.max_bytes = max_bytes
        self.max_value_bytes = max_value_bytes
        self._deadline = deadline
        self._conns: dict[int, _Conn] = {}
        self._stmts: dict[int, _Stmt] = {}
        self._iterators: OrderedDict[int, None] = OrderedDict()
        self._backups: dict[int, tuple] = {}
        self._lua: dict[int, dict] = {}            # cid -> {slot: lua callback id}
        self._next_id = 1
        self.closed = False        # db:close() was called (sqlite3.reopen() undoes it)
        self._closed_conns: set[int] = set()
        # helper-thread state
        self._helper: threading.Thread | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._op: _Op | None = None                # the op waiting for a callback result
        self._in_callback = 0
        self._helper_ident = None
        self._cb_conn: _Conn | None = None         # the callback running now: its connection,
        self._cb_slot = ""                         # its kind ("fn:..." for SQL functions)
        self._running: set[int] = set()            # statements inside sqlite3_step (their ptrs)

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    # -- connections ----------------------------------------------------------

    def conn(self, cid=MAIN) -> _Conn:
        """The open connection `cid` (the mod's file is opened on first use)."""
        c = self._conns.get(cid)
        if c is not None:
            return c
        if cid == MAIN and not self.closed:
            c = self._conns[MAIN] = _Conn(self, MAIN, self.path)
            return c
        raise ModError("attempt to use a closed sqlite database"
                       + (" (sqlite3.reopen() opens it again)" if cid == MAIN else ""))

    def open_memory(self) -> int:
        """sqlite3.open_memory(): a new in-memory database inside the mod's budget."""
        if len(self._conns) >= MAX_CONNECTIONS:
            raise QuotaExceeded(f"sqlite3.open_memory: at most {MAX_CONNECTIONS} open databases "
                                "per mod; close() the ones you no longer need")
        cid = self._new_id()
        self._conns[cid] = _Conn(self, cid, None)
        return cid

    def isopen(self, cid=MAIN) -> bool:
        """db:isopen()."""
        return cid in self._conns or (cid == MAIN and not self.closed)

    def close_conn(self, cid=MAIN) -> int:
        """db:close(): finalize its statements, roll back, close; further use is an error."""
        c = self._conns.get(cid)
        if c is not None:
            self._guard(c, closing=True)
        self._settle_unless_nested()
        c = self._conns.pop(cid, None)
        if cid == MAIN:
            self.closed = True
        if c is None:
            return OK
        for sid in [s for s, st in self._stmts.items() if st.conn is c]:
            self._drop(sid)
        for bid in [b for b, (bk, src, dst) in self._backups.items() if c in (src, dst)]:
            self.backup_finish(bid)
        self._lua.pop(cid, None)
        c.close()
        return OK

    def close(self) -> None:
        """Close everything (the mod is released or reloaded); idempotent."""
        self._settle()
        for bid in list(self._backups):
            self.backup_finish(bid)
        for sid in list(self._stmts):
            self._drop(sid)
        for cid in list(self._conns):
            self._conns.pop(cid).close()
        self._lua.clear()
        if self._helper is not None:
            self._jobs.put(None)
            self._helper = None

    def close_by_mod(self) -> int:
        """db:close() on the mod's file database."""
        return self.close_conn(MAIN)

    def reopen(self) -> None:
        """sqlite3.reopen(): close and open the mod's file again."""
        self.close_conn(MAIN)
        self.closed = False

    # -- the byte budget ----------------------------------------------------------

    def _others(self, conn: _Conn) -> int:
        return sum(c.used_bytes() for c in self._conns.values() if c is not conn)

    def temp_room(self, conn: _Conn) -> int:
        """How many bytes `conn`'s temporary files may hold in all (QuotaVFS asks)."""
        # Called from inside SQLite (a temp file write): only cached figures,
        # never SQL on the connection.
        return self.max_bytes - self._others_cached - conn.main_bytes

    def _before_statement(self, conn: _Conn) -> None:
        """Split the mod's budget before a statement runs: the room left to grow in.

        The main and temp databases may each grow into the room left by
        everything else (`max_page_count`); transient files (sorts,
        materialized subqueries, statement journals) into the same room, as
        counted by the connection's QuotaVFS.
        """
        others = self._others(conn)
        main, temp = conn.pages()
        self._others_cached = others
        conn.main_bytes = (main + temp) * PAGE_SIZE
        room = self.max_bytes - others - conn.vfs.used
        if conn.backup_targets:
            return
        main_max = max(1, main, (room - temp * PAGE_SIZE) // PAGE_SIZE)
        temp_max = max(1, temp, (room - main * PAGE_SIZE) // PAGE_SIZE)
        if main_max != conn.main_max_pages:
            conn.run_sql(f"PRAGMA main.max_page_count = {main_max}")
            conn.main_max_pages = main_max
        if temp_max != conn.temp_max_pages:
            conn.run_sql(f"PRAGMA temp.max_page_count = {temp_max}")
            conn.temp_max_pages = temp_max

    _others_cached = 0

    def past_deadline(self) -> bool:
        """Has the running mod call passed its watchdog deadline?"""
        op = self._op_running
        dl = op.deadline if op is not None else self._deadline()
        return dl is not None and time.monotonic() > dl

    _op_running: _Op | None = None

    # -- errors ---------------------------------------------------------------

    def _fail(self, conn: _Conn, fname: str, rc: int) -> int:
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
    def _ok(conn: _Conn, code: int = OK) -> int:
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

    @staticmethod
    def _sql_bytes(sql, fname: str) -> bytes:
        if isinstance(sql, str):
            sql = sql.encode("utf-8", "surrogateescape")
        if not isinstance(sql, bytes):
            raise ModError(f"db:{fname}: SQL must be a string")
        if len(sql) > MAX_SQL_BYTES:
            raise ModError(f"db:{fname}: SQL longer than {MAX_SQL_BYTES} bytes")
        return sql

    def _guard(self, conn: _Conn, closing: bool = False) -> None:
        """SQLite forbids using a connection from inside its hooks, and closing it
        from inside any of its callbacks: refuse before SQLite is reached."""
        if not self._in_callback or self._cb_conn is not conn:
            return
        if closing or not self._cb_slot.startswith("fn:"):
            kind = self._cb_slot.split(":")[0].replace("fn", "function").replace("coll", "collation")
            raise ModError(f"db: this database cannot be {'closed' if closing else 'used'} inside "
                           f"its own {kind} callback (SQLite forbids it); do it after the statement")

    def prepare(self, cid, sql, temp: bool = False):
        """Compile the first statement of `sql`: (id, tail) or (None, result code)."""
        conn = self.conn(cid)
        self._guard(conn)
        data = self._sql_bytes(sql, "prepare")
        buf = ffi.new("char[]", data)
        pp = ffi.new("sqlite3_stmt**")
        tail = ffi.new("char**")
        conn.timed_out = False
        rc = lib.sqlite3_prepare_v2(conn.ptr, buf, len(data) + 1, pp, ffi.cast("const char**", tail))
        rest = data[int(ffi.cast("uintptr_t", tail[0])) - int(ffi.cast("uintptr_t", buf)):] \
            if tail[0] != ffi.NULL else b""
        if rc != OK:
            return None, self._fail(conn, "prepare", rc)
        if pp[0] == ffi.NULL:               # only whitespace or comments
            pp[0] = conn.prepare_internal(b"SELECT 1 WHERE 0")
        if temp:
            while len(self._iterators) >= MAX_ITERATORS:
                old, _ = self._iterators.popitem(last=False)
                self._drop(old)
        elif len(self._stmts) - len(self._iterators) >= MAX_STATEMENTS:
            lib.sqlite3_finalize(pp[0])
            raise QuotaExceeded(f"db:prepare: more than {MAX_STATEMENTS} open statements; "
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
        self._settle_unless_nested()
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
        return self._ok(s.conn) if rc == OK else self._fail(s.conn, "bind", rc)

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
            return self._fail(s.conn, "bind", TOOBIG)
        data = ctypes.string_at(int(address), n) if n else b""
        rc = self._bind_one(s, i, data, bool(blob))
        return self._ok(s.conn) if rc == OK else self._fail(s.conn, "bind", rc)

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
                return self._fail(s.conn, "bind", rc)
        return self._ok(s.conn)

    # -- stepping -------------------------------------------------------------------

    def step(self, sid):
        """stmt:step() -> ROW, DONE or an error code (errmsg says why)."""
        s = self._stmt(sid)
        return self._run(s.conn, self._step_now, s)

    def _step_now(self, s: _Stmt) -> int:
        conn = s.conn
        if not s.started:
            self._before_statement(conn)
            s.started = True
        conn.timed_out = False
        conn.vfs.refused = False
        key = int(ffi.cast("uintptr_t", s.ptr))
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
        return self._fail(conn, "step", rc)

    def reset(self, sid) -> int:
        """stmt:reset(): back to the start, bindings kept."""
        s = self._stmt(sid)
        self._settle_unless_nested()
        if self._is_running(s):
            raise ModError("db: a statement cannot be finalized or reset inside a callback "
                           "that its own step is running")
        lib.sqlite3_reset(s.ptr)
        s.has_row = s.started = False
        return self._ok(s.conn)

    def _is_running(self, s: _Stmt) -> bool:
        return bool(self._running) and int(ffi.cast("uintptr_t", s.ptr)) in self._running

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
        return [C.text(lib.sqlite3_column_name(s.ptr, i)) for i in range(s.ncols)]

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
        return self._run(s.conn, self._next_row_now, sid, s, shape)

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
        return self._run(conn, self._exec_now, conn, data, params)

    def _exec_now(self, conn: _Conn, data: bytes, params: tuple) -> int:
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
        if len(self._backups) >= MAX_BACKUPS:
            raise QuotaExceeded(f"sqlite3.backup_init: at most {MAX_BACKUPS} backups at once")
        dst, src = self.conn(target_cid), self.conn(source_cid)
        self._guard(dst, closing=True)
        self._guard(src, closing=True)
        if dst is src:
            raise ModError("sqlite3.backup_init: source and target must be different databases")
        self._before_statement(dst)
        b = lib.sqlite3_backup_init(dst.ptr, str(target_name).encode(), src.ptr,
                                    str(source_name).encode())
        if b == ffi.NULL:
            self._fail(dst, "backup_init", lib.sqlite3_errcode(dst.ptr))
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
        self._guard(dst, closing=True)
        self._guard(src, closing=True)
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
        return self._fail(dst, "backup", rc)

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

    # -- callbacks into the mod -----------------------------------------------------

    def lua_ids(self, conn: _Conn) -> dict:
        """{slot: Lua callback id} registered on `conn`."""
        return self._lua.get(conn.cid, {})

    def _register(self, conn: _Conn, slot: str, cb_id) -> None:
        ids = self._lua.setdefault(conn.cid, {})
        if cb_id is None:
            ids.pop(slot, None)
        else:
            ids[slot] = cb_id

    def create_function(self, cid, name, nargs, cb_id, agg_final_id=None) -> bool:
        """db:create_function / create_aggregate (cb_id: the step function for an aggregate)."""
        conn = self.conn(cid)
        self._guard(conn, closing=True)
        if not isinstance(name, str) or not name:
            raise ModError("create_function: the name must be a non-empty string")
        if conn.functions >= MAX_FUNCTIONS:
            raise QuotaExceeded(f"at most {MAX_FUNCTIONS} functions and collations per database")
        n = int(nargs) if isinstance(nargs, (int, float)) else -1
        slot = f"fn:{name.lower()}:{n}"
        final_slot = slot + ":final"
        self._register(conn, slot, cb_id)
        if agg_final_id is not None:
            self._register(conn, final_slot, agg_final_id)

        is_agg = agg_final_id is not None

        def func(ctx, argc, argv):
            self._call_function(conn, ctx, slot, [_value_of(argv[i]) for i in range(argc)],
                                is_agg, False)

        def final(ctx):
            self._call_function(conn, ctx, final_slot, [], True, True)

        if agg_final_id is None:
            cb = ffi.callback("void(sqlite3_context*, int, sqlite3_value**)", func)
            rc = lib.sqlite3_create_function_v2(conn.ptr, name.encode(), n, C.UTF8, ffi.NULL,
                                                cb, ffi.NULL, ffi.NULL, ffi.NULL)
            conn.callbacks[slot] = cb
        else:
            step_cb = ffi.callback("void(sqlite3_context*, int, sqlite3_value**)", func)
            final_cb = ffi.callback("void(sqlite3_context*)", final)
            rc = lib.sqlite3_create_function_v2(conn.ptr, name.encode(), n, C.UTF8, ffi.NULL,
                                                ffi.NULL, step_cb, final_cb, ffi.NULL)
            conn.callbacks[slot] = (step_cb, final_cb)
        conn.functions += 1
        if rc != OK:
            self._fail(conn, "create_function", rc)
            return False
        return True

    def _call_function(self, conn, ctx, slot, args, is_agg, final):
        agg = 0
        if is_agg:
            # One key per aggregate evaluation (a group): the Lua side keeps
            # its aggregate data under it; the final call says it is done.
            p = lib.sqlite3_aggregate_context(ctx, 8)
            agg = int(ffi.cast("uintptr_t", p)) if p != ffi.NULL else 0
        try:
            kind, value = self.ask(conn, slot, tuple(args), agg)
        except _Interrupted as e:
            lib.sqlite3_result_error(ctx, str(e).encode(), -1)
            return
        if is_agg and not final:
            if kind == "error":
                lib.sqlite3_result_error(ctx, _to_bytes(value), -1)
            return
        self._result(ctx, kind, value)

    def _result(self, ctx, kind, value):
        if kind == "error":
            lib.sqlite3_result_error(ctx, _to_bytes(value), -1)
        elif value is None or kind == "null":
            lib.sqlite3_result_null(ctx)
        elif kind == "int" or (kind == "value" and isinstance(value, (bool, int))):
            v = int(value)
            if -2 ** 63 <= v < 2 ** 63:
                lib.sqlite3_result_int64(ctx, v)
            else:
                lib.sqlite3_result_double(ctx, float(v))
        elif kind == "value" and isinstance(value, float):
            if value.is_integer() and abs(value) < 2 ** 63:
                lib.sqlite3_result_int64(ctx, int(value))
            else:
                lib.sqlite3_result_double(ctx, value)
        elif kind == "double":
            lib.sqlite3_result_double(ctx, float(value))
        elif kind == "blob":
            b = _to_bytes(value)
            lib.sqlite3_result_blob(ctx, b, len(b), C.SQLITE_TRANSIENT)
        else:
            b = _to_bytes(value)
            lib.sqlite3_result_text(ctx, b, len(b), C.SQLITE_TRANSIENT)

    def create_collation(self, cid, name, cb_id) -> bool:
        """db:create_collation(name, fn)."""
        conn = self.conn(cid)
        self._guard(conn, closing=True)
        if not isinstance(name, str) or not name:
            raise ModError("create_collation: the name must be a non-empty string")
        if conn.functions >= MAX_FUNCTIONS:
            raise QuotaExceeded(f"at most {MAX_FUNCTIONS} functions and collations per database")
        slot = f"coll:{name.lower()}"
        self._register(conn, slot, cb_id)

        def compare(_ud, na, a, nb, b):
            try:
                r = self.ask(conn, slot, (ffi.buffer(a, na)[:], ffi.buffer(b, nb)[:]))
            except _Interrupted:
                return 0
            return -1 if r < 0 else (1 if r > 0 else 0)

        cb = ffi.callback("int(void*, int, const void*, int, const void*)", compare, error=0)
        conn.callbacks[slot] = cb
        conn.functions += 1
        rc = lib.sqlite3_create_collation_v2(conn.ptr, name.encode(), C.UTF8, ffi.NULL, cb, ffi.NULL)
        return rc == OK

    def set_hook(self, cid, kind, cb_id, n=0) -> None:
        """commit_hook / rollback_hook / update_hook / trace / progress_handler (cb_id None: off)."""
        conn = self.conn(cid)
        self._guard(conn, closing=True)
        self._register(conn, kind, cb_id)
        on = cb_id is not None
        db = conn.ptr
        if kind == "commit":
            def commit(_ud):
                try:
                    return 1 if self.ask(conn, "commit", ()) else 0
                except _Interrupted:
                    return 1
            cb = ffi.callback("int(void*)", commit, error=1) if on else ffi.NULL
            lib.sqlite3_commit_hook(db, cb, ffi.NULL)
        elif kind == "rollback":
            def rollback(_ud):
                try:
                    self.ask(conn, "rollback", ())
                except _Interrupted:
                    pass
            cb = ffi.callback("void(void*)", rollback) if on else ffi.NULL
            lib.sqlite3_rollback_hook(db, cb, ffi.NULL)
        elif kind == "update":
            def update(_ud, op, dbname, table, rowid):
                try:
                    self.ask(conn, "update", (op, C.text(dbname), C.text(table), rowid))
                except _Interrupted:
                    pass
            cb = ffi.callback("void(void*, int, const char*, const char*, sqlite3_int64)",
                              update) if on else ffi.NULL
            lib.sqlite3_update_hook(db, cb, ffi.NULL)
        elif kind == "trace":
            def trace(_mask, _ctx, p, _x):
                if conn.internal:           # the host's own pragmas
                    return 0
                s = ffi.cast("sqlite3_stmt*", p)
                sql = lib.sqlite3_expanded_sql(s)
                text = ffi.string(sql) if sql != ffi.NULL else b""
                if sql != ffi.NULL:
                    lib.sqlite3_free(sql)
                try:
                    self.ask(conn, "trace", (text,))
                except _Interrupted:
                    pass
                return 0
            cb = ffi.callback("int(unsigned, void*, void*, void*)", trace, error=0) if on else ffi.NULL
            lib.sqlite3_trace_v2(db, C.TRACE_STMT if on else 0, cb, ffi.NULL)
        elif kind == "progress":
            conn.set_progress(max(1, int(n)) if on else 0)
            cb = None
        else:
            raise ModError(f"internal: no hook {kind!r}")
        conn.callbacks[kind] = cb

    # -- the helper thread ----------------------------------------------------------

    def _run(self, conn: _Conn, fn, *args):
        """fn(*args) here, or on the helper thread when `conn` has Lua callbacks."""
        self._guard(conn)
        if not self.lua_ids(conn) or self._in_callback:
            # Nested calls from inside a callback run here; their SQL cannot
            # call back into Lua (ask() refuses on this thread).
            return fn(*args)
        self._settle()
        self._ensure_helper()
        op = _Op(fn, args, self._deadline())
        self._jobs.put(op)
        return self._wait(op)

    def _ensure_helper(self) -> None:
        if self._helper is None:
            jobs = self._jobs

            def main():
                self._helper_ident = threading.get_ident()
                while True:
                    op = jobs.get()
                    if op is None:
                        return
                    self._op_running = op
                    try:
                        op.out.put(("done", op.fn(*op.args)))
                    except BaseException as e:    # handed to the frame thread as it is
                        op.out.put(("exc", e))
                    finally:
                        self._op_running = None

            t = threading.Thread(target=main, name="relic-moddb", daemon=True)
            self._helper = t
            t.start()

    def _wait(self, op: _Op):
        while True:
            try:
                msg = op.out.get(timeout=1.0)
            except queue.Empty:
                if op.deadline is not None and time.monotonic() > op.deadline + 5.0:
                    for c in self._conns.values():
                        lib.sqlite3_interrupt(c.ptr)
                continue
            if msg[0] == "done":
                return msg[1]
            if msg[0] == "exc":
                raise msg[1]
            # ("call", lua id, args, aggregate key)
            self._op = op
            self._in_callback += 1
            return (CALLBACK,) + msg[1:]

    def resume(self, ok, kind=None, value=None, address=None, length=None):
        """The Lua side ran the callback: hand its result to SQLite and wait again.

        (ok, kind, value): the callback's result, or (False, None, message).
        A string result may come as (address, length) of a string the Lua
        side holds meanwhile (see bind_raw).
        """
        if address is not None:
            n = int(length)
            if n > self.max_value_bytes:
                ok, kind, value = False, None, f"string or blob too big ({n} bytes)"
            else:
                value = ctypes.string_at(int(address), n) if n else b""
        op = self._op
        if op is None:
            raise ModError("internal: no SQLite callback is waiting")
        self._op = None
        self._in_callback -= 1
        self._cb_conn, self._cb_slot = None, ""
        op.back.put((bool(ok), kind, value))
        return self._wait(op)

    def _settle(self) -> None:
        """An op left waiting for a callback (the mod was stopped in it): end it."""
        while self._op is not None:
            op, self._op = self._op, None
            self._in_callback = max(0, self._in_callback - 1)
            op.back.put(None)
            while True:
                msg = op.out.get()
                if msg[0] == "call":
                    op.back.put(None)
                    continue
                break

    def _settle_unless_nested(self) -> None:
        if not self._in_callback:
            self._settle()

    def ask(self, conn: _Conn, slot: str, args: tuple, agg: int = 0):
        """From SQLite on the helper thread: run the Lua callback in `slot`; its result."""
        cb_id = self.lua_ids(conn).get(slot)
        op = self._op_running
        if cb_id is None or op is None or threading.get_ident() != self._helper_ident:
            raise _Interrupted("SQL callbacks cannot run here (inside another callback's SQL)")
        self._cb_conn, self._cb_slot = conn, slot
        op.out.put(("call", cb_id, list(args), agg))
        reply = op.back.get()
        if reply is None:
            conn.timed_out = True
            raise _Interrupted("interrupted: the mod's callback was stopped")
        ok, kind, value = reply
        if not ok:
            if slot.startswith("fn:"):
                return "error", value if value is not None else "error in a Lua function"
            raise _Interrupted(_to_bytes(value).decode("utf-8", "replace"))
        if slot.startswith("fn:"):
            return kind, value
        return value


def _to_bytes(v) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    if isinstance(v, float) and v.is_integer():
        return str(int(v)).encode()
    return str(v).encode()
