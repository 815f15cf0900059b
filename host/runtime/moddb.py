"""The per-mod SQLite database `mods/<id>/db.sqlite3`, behind `db:exec` / `db:rows`.

Parameters are always bound (`?`), never pasted.  An authorizer keeps a mod
inside its own file (no ATTACH, no VACUUM INTO, no pragmas that change limits),
SQLite's own limits cap value and statement sizes, `max_page_count` caps the
file, and a progress handler aborts a statement once the mod's watchdog
deadline has passed (SQLite runs in C, where the Lua hook cannot reach).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable

from host.errors import BudgetExceeded, ModError, QuotaExceeded, SandboxViolation

# Pragmas a mod may run: schema introspection and its own version counters.
ALLOWED_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_keys", "user_version", "application_id",
    "integrity_check", "quick_check", "page_count", "freelist_count", "data_version",
    "collation_list",
}
DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
PAGE_SIZE = 4096


class ModDB:
    """One mod's SQLite connection, opened on first use (frame thread only)."""

    def __init__(self, path: Path, *, max_bytes: int, max_rows: int, max_value_bytes: int,
                 deadline: Callable[[], float | None]):
        self.path = path
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.max_value_bytes = max_value_bytes
        self._deadline = deadline
        self._conn: sqlite3.Connection | None = None
        self._timed_out = False

    # -- connection ---------------------------------------------------------

    def _authorize(self, action, arg1, arg2, dbname, trigger):
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in ALLOWED_PRAGMAS:
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _progress(self) -> int:
        dl = self._deadline()
        if dl is not None and time.monotonic() > dl:
            self._timed_out = True
            return 1        # abort the statement
        return 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            # Owns the connection; closed by close().  Autocommit: each
            # statement commits unless the mod runs BEGIN ... COMMIT itself.
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute(f"PRAGMA max_page_count = {self.max_bytes // PAGE_SIZE}")
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 1_000_000)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 500)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            conn.set_authorizer(self._authorize)
            conn.set_progress_handler(self._progress, 10_000)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Roll back an open transaction and close (idempotent)."""
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.rollback()
            finally:
                self._conn.close()
                self._conn = None

    # -- statements -----------------------------------------------------------

    @staticmethod
    def _param(i: int, v):
        if v is None or isinstance(v, (bool, int, float, str, bytes)):
            return v
        raise ModError(f"parameter {i} must be nil, a boolean, a number or a string, "
                       f"got {type(v).__name__}")

    def _run(self, fname: str, sql, params):
        if not isinstance(sql, str):
            raise ModError(f"db:{fname}: SQL must be a string")
        conn = self._connect()
        bound = tuple(self._param(i + 1, v) for i, v in enumerate(params))
        self._timed_out = False
        try:
            return conn.execute(sql, bound)
        except sqlite3.DatabaseError as e:
            raise self._translate(fname, e) from None
        except (sqlite3.Warning, sqlite3.ProgrammingError, ValueError, OverflowError) as e:
            raise ModError(f"db:{fname}: {e}") from None

    def _translate(self, fname: str, e: Exception) -> Exception:
        msg = str(e)
        if self._timed_out:
            return BudgetExceeded(f"db:{fname}: statement stopped by the watchdog (budget exceeded)")
        if "not authorized" in msg or "authorization denied" in msg:
            return SandboxViolation(f"db:{fname}: not allowed for mods ({msg}); "
                                    "ATTACH, VACUUM INTO and most pragmas are refused")
        if "database or disk is full" in msg:
            return QuotaExceeded(f"db:{fname}: database is full (limit {self.max_bytes} bytes)")
        return ModError(f"db:{fname}: {msg}")

    def exec(self, sql: str, params: tuple) -> tuple[int, int | None]:
        """Run one statement; return (rows changed, last insert rowid)."""
        cur = self._run("exec", sql, params)
        try:
            cur.fetchall()        # run statements that return rows to completion
        except sqlite3.DatabaseError as e:
            raise self._translate("exec", e) from None
        return max(cur.rowcount, 0), cur.lastrowid

    def rows(self, sql: str, params: tuple) -> list[dict]:
        """Run one query; return its rows as dicts (column name -> value)."""
        cur = self._run("rows", sql, params)
        names = [d[0] for d in cur.description] if cur.description else []
        out = []
        try:
            for row in cur:
                if len(out) >= self.max_rows:
                    raise QuotaExceeded(f"db:rows: more than {self.max_rows} rows; "
                                        "add a LIMIT or page through the results")
                out.append(dict(zip(names, row)))
        except sqlite3.DatabaseError as e:
            raise self._translate("rows", e) from None
        return out
