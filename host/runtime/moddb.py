"""The per-mod SQLite database `mods/<id>/db.sqlite3`, with lsqlite3 semantics.

CET gives every mod an lsqlite3 database object as `db`; this is the host half
of Relic's equivalent (the Lua half is host/runtime/lua/relic_db.lua).  Statements are
kept here under integer ids; the Lua side wraps them in statement objects and
builds the iterators (`db:nrows`, `db:urows`, `db:rows`) and the `db:exec`
callback loop, so no Lua is ever called from Python.

Safety is the same as before: parameters are always bound, never pasted; an
authorizer keeps a mod inside its own file (no ATTACH, no VACUUM INTO, no
pragmas that change limits), SQLite's own limits cap value and statement
sizes, `max_page_count` caps the file, and a progress handler aborts a
statement once the mod's watchdog deadline has passed (SQLite runs in C,
where the Lua hook cannot reach).  Open statements are a per-mod quota.

Result codes are lsqlite3's (SQLite's primary result codes): OK 0, ERROR 1,
ABORT 4, INTERRUPT 9, FULL 13, TOOBIG 18, MISUSE 21, AUTH 23, RANGE 25,
ROW 100, DONE 101.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from host.errors import ModError, QuotaExceeded

# Pragmas a mod may run: schema introspection and its own version counters.
ALLOWED_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_keys", "user_version", "application_id",
    "integrity_check", "quick_check", "page_count", "freelist_count", "data_version",
    "collation_list",
}
DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
PAGE_SIZE = 4096

OK, ERROR, ABORT, INTERRUPT, FULL, TOOBIG, MISUSE, AUTH, RANGE = 0, 1, 4, 9, 13, 18, 21, 23, 25
ROW, DONE = 100, 101
MAX_SQL_BYTES = 1_000_000
MAX_STATEMENTS = 256       # prepared statements a mod may hold open
MAX_ITERATORS = 64         # db:rows/nrows/urows iterators left unfinished (oldest are dropped)

# Parameters in SQL text: ?, ?NNN, :name, @name, $name (outside strings,
# quoted identifiers and comments).  Used for lsqlite3's bind_parameter_count
# and bind_parameter_name, which Python's sqlite3 module does not expose.
_TOKENS = re.compile(r"""
    '(?:[^']|'')*'? | "(?:[^"]|"")*"? | `[^`]*`? | \[[^\]]*\]?
  | --[^\n]* | /\*.*?(?:\*/|\Z)
  | (?P<param>\?\d* | [:@$][A-Za-z0-9_]+(?:::[A-Za-z0-9_]+)*(?:\([^)]*\))?)
""", re.X | re.S)


def sql_parameters(sql: str) -> list[str | None]:
    """Parameter names in SQLite's numbering: index i-1 holds ':a' or None for '?'."""
    names: list[str | None] = []
    seen: dict[str, int] = {}
    for m in _TOKENS.finditer(sql):
        p = m.group("param")
        if not p:
            continue
        if p == "?":
            names.append(None)
        elif p[0] == "?":
            n = int(p[1:])
            if n < 1 or n > 32766:
                continue
            while len(names) < n:
                names.append(None)
            names[n - 1] = names[n - 1] or None
            seen.setdefault(p, n)
        elif p not in seen:
            names.append(p)
            seen[p] = len(names)
    return names


def split_statements(sql: str) -> tuple[str, str]:
    """(first complete statement, the rest) of an SQL text."""
    start = 0
    while True:
        i = sql.find(";", start)
        if i < 0:
            return sql, ""
        head = sql[:i + 1]
        if sqlite3.complete_statement(head):
            return head, sql[i + 1:]
        start = i + 1


def _code(e: Exception) -> int:
    code = getattr(e, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    return MISUSE if isinstance(e, sqlite3.ProgrammingError) else ERROR


class _Stmt:
    """One prepared statement: its SQL, bindings and (once stepped) a cursor."""

    __slots__ = ("sql", "params", "bound", "cursor", "row", "names", "done", "temp")

    def __init__(self, sql: str, params: list, temp: bool):
        self.sql = sql
        self.params = params
        self.bound: dict[int, object] = {}
        self.cursor: sqlite3.Cursor | None = None
        self.row: tuple | None = None
        self.names: list[str] = []
        self.done = False
        self.temp = temp


class ModDB:
    """One mod's SQLite connection and statements (frame thread only)."""

    def __init__(self, path: Path, *, max_bytes: int, max_value_bytes: int,
                 deadline: Callable[[], float | None]):
        self.path = path
        self.max_bytes = max_bytes
        self.max_value_bytes = max_value_bytes
        self._deadline = deadline
        self._conn: sqlite3.Connection | None = None
        self._timed_out = False
        self._stmts: dict[int, _Stmt] = {}
        self._iterators: OrderedDict[int, None] = OrderedDict()
        self._next_id = 1
        self.closed = False        # db:close() was called (sqlite3.reopen() undoes it)
        self.errcode = OK
        self.errmsg = "not an error"

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
        if self.closed:
            raise ModError("db: attempt to use a closed sqlite database (sqlite3.reopen() opens it again)")
        if self._conn is None:
            # Owns the connection; closed by close().  Autocommit: each
            # statement commits unless the mod runs BEGIN ... COMMIT itself.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            conn.execute(f"PRAGMA max_page_count = {self.max_bytes // PAGE_SIZE}")
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.max_value_bytes)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 500)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            conn.set_authorizer(self._authorize)
            conn.set_progress_handler(self._progress, 10_000)
            # TEXT comes back byte-exact (a Lua string), whatever its encoding.
            conn.text_factory = bytes
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Finalize every statement, roll back an open transaction, close (idempotent)."""
        self._stmts.clear()
        self._iterators.clear()
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.rollback()
            finally:
                self._conn.close()
                self._conn = None

    def close_by_mod(self) -> int:
        """db:close(): like close(), and further use is an error until reopen()."""
        self.close()
        self.closed = True
        return OK

    def reopen(self) -> None:
        """sqlite3.reopen(): close and open the mod's file again."""
        self.close()
        self.closed = False
        self.errcode, self.errmsg = OK, "not an error"

    def isopen(self) -> bool:
        """db:isopen()."""
        return not self.closed

    # -- errors ---------------------------------------------------------------

    def _fail(self, fname: str, e: Exception) -> int:
        """Record an SQLite failure as lsqlite3 does; returns the result code."""
        msg = str(e)
        if self._timed_out:
            code, msg = INTERRUPT, "interrupted: statement stopped by the watchdog (budget exceeded)"
        elif "not authorized" in msg or "authorization denied" in msg:
            code = AUTH
            msg = (f"not authorized: {fname}: not allowed for mods; "
                   "ATTACH, VACUUM INTO and most pragmas are refused")
        elif "database or disk is full" in msg:
            code, msg = FULL, f"database or disk is full (limit {self.max_bytes} bytes)"
        else:
            code = _code(e)
            if isinstance(e, (ValueError, OverflowError)):
                code = TOOBIG if "too" in msg else MISUSE
        self.errcode, self.errmsg = code, msg
        return code

    def _ok(self, code: int = OK) -> int:
        self.errcode, self.errmsg = code, "not an error"
        return code

    # -- values ---------------------------------------------------------------

    @staticmethod
    def check_value(what: str, v):
        """A Lua value that can be bound: nil, boolean, number or string."""
        if v is None or isinstance(v, (int, str, bytes)):
            return v
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, float):
            return int(v) if v.is_integer() and abs(v) < 2 ** 63 else v
        raise ModError(f"{what} must be nil, a boolean, a number or a string, got {type(v).__name__}")

    # -- statements -------------------------------------------------------------

    def _stmt(self, sid) -> _Stmt:
        s = self._stmts.get(sid)
        if s is None:
            raise ModError("attempt to use a closed sqlite statement (finalized, or its database was closed)")
        return s

    def prepare(self, sql, temp: bool = False):
        """Compile the first statement of `sql`: (id, tail) or (None, result code)."""
        if not isinstance(sql, str):
            raise ModError("db:prepare: SQL must be a string")
        if len(sql) > MAX_SQL_BYTES:
            raise ModError(f"db:prepare: SQL longer than {MAX_SQL_BYTES} bytes")
        conn = self._connect()
        head, tail = split_statements(sql)
        self._timed_out = False
        # SQLite compiles an EXPLAIN without running the statement: that is
        # the check lsqlite3 gets from sqlite3_prepare_v2 (syntax, names,
        # the authorizer).  Python's sqlite3 has no prepare-only call.
        params = sql_parameters(head)
        if head.strip() and not re.match(r"\s*explain\b", head, re.I):
            probe = _Stmt(head, params, False)
            try:
                conn.execute("EXPLAIN " + head, self._arguments(probe)).close()
            except (sqlite3.Error, ValueError, OverflowError) as e:
                return None, self._fail("prepare", e)
        if temp:
            while len(self._iterators) >= MAX_ITERATORS:
                old, _ = self._iterators.popitem(last=False)
                self._drop(old)
        elif len(self._stmts) - len(self._iterators) >= MAX_STATEMENTS:
            raise QuotaExceeded(f"db:prepare: more than {MAX_STATEMENTS} open statements; "
                                "finalize() the ones you no longer need")
        sid = self._next_id
        self._next_id += 1
        self._stmts[sid] = _Stmt(head, params, temp)
        if temp:
            self._iterators[sid] = None
        self._ok()
        return sid, tail

    def _drop(self, sid: int) -> None:
        s = self._stmts.pop(sid, None)
        self._iterators.pop(sid, None)
        if s is not None and s.cursor is not None:
            try:
                s.cursor.close()
            except sqlite3.Error:
                pass

    def finalize(self, sid) -> int:
        """stmt:finalize() -> OK."""
        self._drop(sid)
        return OK

    def isopen_stmt(self, sid) -> bool:
        """stmt:isopen()."""
        return sid in self._stmts

    def param_count(self, sid) -> int:
        """stmt:bind_parameter_count()."""
        return len(self._stmt(sid).params)

    def param_names(self, sid) -> list:
        """Parameter names (':a', or False for '?') in order, for bind_names."""
        return [n if n else False for n in self._stmt(sid).params]

    def _check_bind_index(self, s: _Stmt, index) -> int:
        if not isinstance(index, (int, float)) or int(index) != index \
                or not 1 <= index <= len(s.params):
            raise ModError(f"bind index out of range [1..{len(s.params)}]")
        return int(index)

    def bind(self, sid, index, value) -> int:
        """stmt:bind(i, value) -> result code (i is 1-based)."""
        s = self._stmt(sid)
        i = self._check_bind_index(s, index)
        s.bound[i] = self.check_value(f"bind: parameter {i}", value)
        return self._ok()

    def bind_many(self, sid, values: dict) -> int:
        """Bind {index: value} at once (bind_values, bind_names, ?-parameters)."""
        s = self._stmt(sid)
        checked = {}
        for i, v in values.items():
            i = self._check_bind_index(s, i)
            checked[i] = self.check_value(f"bind: parameter {i}", v)
        s.bound.update(checked)
        return self._ok()

    def bind_list(self, sid, values: tuple) -> int:
        """bind_values(...): exactly as many values as the statement has parameters."""
        s = self._stmt(sid)
        if len(values) != len(s.params):
            raise ModError(f"incorrect number of parameters to bind ({len(values)} given, "
                           f"{len(s.params)} to bind)")
        return self.bind_many(sid, {i + 1: v for i, v in enumerate(values)})

    def bind_blob(self, sid, index, value) -> int:
        """stmt:bind_blob(i, s): bind a string as a BLOB."""
        if not isinstance(value, (str, bytes)):
            raise ModError(f"bind_blob: parameter {index} must be a string")
        return self.bind(sid, index, value.encode("utf-8") if isinstance(value, str) else value)

    def set_error(self, code: int, message: str) -> None:
        """Record a result code the Lua side produced (an aborted exec callback)."""
        self.errcode, self.errmsg = int(code), str(message)

    @staticmethod
    def version() -> str:
        """sqlite3.version(): the SQLite library version."""
        return sqlite3.sqlite_version

    @staticmethod
    def complete(sql: str) -> bool:
        """sqlite3.complete(sql): does the text end a complete statement?"""
        return sqlite3.complete_statement(sql)

    def _arguments(self, s: _Stmt):
        if not s.params:
            return ()
        if all(s.params):            # all named: Python binds by name
            return {p[1:]: s.bound.get(i + 1) for i, p in enumerate(s.params)}
        return tuple(s.bound.get(i + 1) for i in range(len(s.params)))

    def step(self, sid) -> int:
        """stmt:step() -> ROW, DONE or an error code (errmsg says why)."""
        s = self._stmt(sid)
        if s.done:
            # lsqlite3 on a finished statement: SQLite resets it automatically.
            s.done = False
            s.cursor = None
        self._timed_out = False
        try:
            if s.cursor is None:
                conn = self._connect()
                s.cursor = conn.execute(s.sql, self._arguments(s))
                s.names = [d[0] for d in s.cursor.description] if s.cursor.description else []
            s.row = s.cursor.fetchone()
        except (sqlite3.Error, ValueError, OverflowError) as e:
            s.row = None
            s.cursor = None
            return self._fail("step", e)
        if s.row is None:
            s.done = True
            return self._ok(DONE)
        return self._ok(ROW)

    def reset(self, sid) -> int:
        """stmt:reset(): back to the start, bindings kept."""
        s = self._stmt(sid)
        if s.cursor is not None:
            s.cursor.close()
        s.cursor, s.row, s.done = None, None, False
        return self._ok()

    def _current(self, s: _Stmt) -> tuple:
        if s.row is None:
            raise ModError("misuse of function (the statement has no current row; call step() first)")
        return s.row

    def values(self, sid) -> list:
        """Current row's values in column order (get_values / get_uvalues)."""
        return list(self._current(self._stmt(sid)))

    def value(self, sid, index):
        """get_value(i): column i, 0-based."""
        s = self._stmt(sid)
        row = self._current(s)
        if not isinstance(index, (int, float)) or int(index) != index or not 0 <= index < len(row):
            raise ModError(f"index out of range [0..{len(row) - 1}]")
        return row[int(index)]

    def named_values(self, sid) -> dict:
        """get_named_values(): {column name: value}."""
        s = self._stmt(sid)
        return {n: v for n, v in zip(s.names, self._current(s)) if v is not None}

    def names(self, sid) -> list:
        """Column names (known once the statement ran)."""
        return list(self._stmt(sid).names)

    def next_row(self, sid, shape: str):
        """One step of an iterator: (True, row) or (False,) at the end; raises on error.

        shape: "array" (db:rows), "named" (db:nrows) or "values" (db:urows).
        Temporary statements are finalized at the end, as in lsqlite3.
        """
        s = self._stmt(sid)
        code = self.step(sid)
        if code == ROW:
            if s.temp:
                self._iterators.move_to_end(sid)
            if shape == "named":
                return True, {n: v for n, v in zip(s.names, s.row) if v is not None}, 0
            return True, list(s.row), len(s.row)
        if s.temp:
            self._drop(sid)
        elif code == DONE:
            self.reset(sid)
        if code != DONE:
            raise ModError(self.errmsg)
        return (False,)

    # -- db-level calls ------------------------------------------------------------

    def exec(self, sql, params: tuple = ()) -> int:
        """db:exec(sql) without a callback: run every statement; result code.

        With `params` (Relic's `?` extension) the SQL must be one statement.
        """
        if not isinstance(sql, str):
            raise ModError("db:exec: SQL must be a string")
        rest = sql
        first = True
        while rest.strip():
            sid, tail = self.prepare(rest)
            if sid is None:
                return tail
            try:
                if params and first:
                    if tail.strip():
                        raise ModError("db:exec: with ? parameters the SQL must be one statement")
                    self.bind_list(sid, tuple(params))
                while True:
                    code = self.step(sid)
                    if code != ROW:
                        break
                if code != DONE:
                    return code
            finally:
                self._drop(sid)
            rest, first = tail, False
        return self._ok()

    def exec_values(self, sid) -> list:
        """The current row as sqlite3_exec hands it to a callback: text (or nil)."""
        out = []
        for v in self._current(self._stmt(sid)):
            if v is None or isinstance(v, bytes):
                out.append(v)
            elif isinstance(v, float):
                t = "%.15g" % v
                out.append(t if any(c in t for c in ".en") else t + ".0")
            else:
                out.append(str(v))
        return out

    def last_insert_rowid(self) -> int:
        """db:last_insert_rowid()."""
        return self._scalar("SELECT last_insert_rowid()")

    def changes(self) -> int:
        """db:changes(): rows changed by the last INSERT/UPDATE/DELETE."""
        return self._scalar("SELECT changes()")

    def total_changes(self) -> int:
        """db:total_changes()."""
        return self._connect().total_changes

    def _scalar(self, sql: str) -> int:
        return self._connect().execute(sql).fetchone()[0]

    def open_statements(self) -> int:
        """How many statements are open (tests and the quota)."""
        return len(self._stmts)
