"""One SQLite connection of a mod, on SQLite's C API, with the host's settings.

Opened through a QuotaVFS of its own (host/runtime/sqlite_vfs.py); SQLite's
limits cap value and statement sizes; an authorizer refuses ATTACH/DETACH
and every pragma outside a read-only list (the host's own SQL, marked
`internal`, is not checked); a progress handler stops a statement at the
mod's deadline and runs the mod's own progress handler.  The owner (ModDB)
answers `temp_room`, `past_deadline`, `lua_ids` and `ask`.
"""

from __future__ import annotations

import os

from host.errors import ModError, SqlCallbackStopped
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
OK, ROW = 0, 100
_CREATE_TEMP = {C.ACTIONS[k] for k in ("CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE",
                                        "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW")}


class SqliteConn:
    """One open SQLite connection of a mod."""

    def __init__(self, owner, cid: int, path: str | None):
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
        self.backup_targets = 0                    # running backups writing into this one
        self.last_pages = (0, 0)
        self.backup_floor = 0
        self.internal = False                      # the host's own SQL is running
        self.temp_used = False                     # the mod created a temp object
        self.path = None if path is None else str(path)
        self.temp_max_pages = -1
        db = self.ptr
        lib.sqlite3_limit(db, C.LIMIT_LENGTH, owner.max_value_bytes)
        lib.sqlite3_limit(db, C.LIMIT_SQL_LENGTH, owner.limits.db_max_sql_bytes)
        lib.sqlite3_limit(db, C.LIMIT_ATTACHED, 0)
        lib.sqlite3_limit(db, C.LIMIT_EXPR_DEPTH, 500)
        lib.sqlite3_limit(db, C.LIMIT_VARIABLE_NUMBER, 999)
        lib.sqlite3_limit(db, C.LIMIT_WORKER_THREADS, 0)
        lib.sqlite3_limit(db, C.LIMIT_TRIGGER_DEPTH, 100)
        # Until the mod creates a temp object the temp database is not measured;
        # the whole cap bounds it meanwhile (ModDB narrows it per statement after).
        cap_pages = max(1, owner.max_bytes // PAGE_SIZE)
        for sql in ("PRAGMA temp_store = FILE", "PRAGMA cache_size = -2048",
                    "PRAGMA temp.cache_size = -1024", f"PRAGMA temp.max_page_count = {cap_pages}",
                    f"PRAGMA main.max_page_count = {cap_pages}"):
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

    def main_pages(self) -> int:
        """Pages of the main database.  On the target of a running backup no SQL
        may run (SQLite does not allow it): the last figure, or the source's."""
        if self.backup_targets:
            return max(self.last_pages[0], self.backup_floor)
        n = self._count(self._page_count)
        self.last_pages = (n, self.last_pages[1])
        return n

    def temp_pages(self) -> int:
        """Pages of the temp database (0 until the mod creates a temp object)."""
        if not self.temp_used or self.backup_targets:
            return self.last_pages[1] if self.temp_used else 0
        n = self._count(self._temp_count)
        self.last_pages = (self.last_pages[0], n)
        return n

    def pages(self) -> tuple[int, int]:
        """(main pages, temp pages)."""
        return self.main_pages(), self.temp_pages()

    def main_bytes_now(self) -> int:
        """The main database's size without SQL (safe inside SQLite's own calls):
        the file's size, or the last page count of an in-memory database."""
        if self.path is not None:
            try:
                return max(os.stat(self.path).st_size, self.last_pages[0] * PAGE_SIZE)
            except OSError:
                pass
        return self.last_pages[0] * PAGE_SIZE

    def used_bytes(self) -> int:
        """Bytes this connection holds: its pages (main and temp) and its transient files."""
        main, temp = self.pages()
        return (main + temp) * PAGE_SIZE + self.vfs.used

    def _authorize(self, _ud, action, a1, a2, dbname, _trigger):
        if self.internal:
            return OK
        if action in _CREATE_TEMP:
            self.temp_used = True
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
            except SqlCallbackStopped:
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


def value_of(v):
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


def to_bytes(v) -> bytes:
    """A callback result as bytes for SQLite (numbers as their text)."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    if isinstance(v, float) and v.is_integer():
        return str(int(v)).encode()
    return str(v).encode()
