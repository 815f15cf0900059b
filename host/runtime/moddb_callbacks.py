"""Callbacks from SQLite into a mod's Lua: functions, aggregates, collations, hooks.

Lua runs only on the frame thread, and Python must not call into a runtime
that may be inside a coroutine.  So once a connection has a Lua callback, its
statements run on a helper thread while the frame thread waits inside the
mod's call; when SQLite calls back, the helper hands the call to the frame
thread as a return value (CALLBACK marker), the Lua side
(host/runtime/lua/relic_db.lua) runs the mod's function under the mod's
budget and hands the result back with `resume`.  The two threads never use a
connection at once: the one that does not own the step waits on a queue.

`DbCallbacks` is a part of ModDB (host/runtime/moddb.py), which provides
`conn`, `guard` and `fail`.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time

from host.errors import ModError, QuotaExceeded, SqlCallbackStopped
from host.runtime import sqlite_capi as C
from host.runtime.sqlite_capi import ffi, lib
from host.runtime.sqlite_conn import OK, SqliteConn, to_bytes, value_of

CALLBACK = "\x01relic-db-callback"     # first return value: run a callback, then resume()


class _Op:
    """One piece of SQLite work run on the helper thread."""

    def __init__(self, fn, args, deadline):
        self.fn, self.args, self.deadline = fn, args, deadline
        self.out: queue.Queue = queue.Queue()     # helper -> frame
        self.back: queue.Queue = queue.Queue()    # frame -> helper (callback results)


class DbCallbacks:
    """The mod's Lua callbacks of its databases, and the helper thread that runs them."""

    def init_callbacks(self) -> None:
        """State: the registered callbacks and the helper thread (none until needed)."""
        self._lua: dict[int, dict] = {}            # cid -> {slot: lua callback id}
        self._helper: threading.Thread | None = None
        self._jobs: queue.Queue = queue.Queue()    # frame -> helper: _Op, or None to stop
        self._op: _Op | None = None                # the op waiting for a callback result
        self._op_running: _Op | None = None        # the op the helper runs (helper writes)
        self._in_callback = 0
        self._helper_ident = None
        self._cb_conn: SqliteConn | None = None    # the callback running now: its connection,
        self._cb_slot = ""                         # its kind ("fn:..." for SQL functions)

    def stop_helper(self) -> None:
        """End the helper thread (after close)."""
        self._lua.clear()
        if self._helper is not None:
            self._jobs.put(None)
            self._helper = None

    def forget_callbacks(self, cid: int) -> None:
        """A connection closed: its callbacks go."""
        self._lua.pop(cid, None)

    def guard(self, conn: SqliteConn, closing: bool = False) -> None:
        """SQLite forbids using a connection from inside its hooks, and closing it
        from inside any of its callbacks: refuse before SQLite is reached."""
        if not self._in_callback or self._cb_conn is not conn:
            return
        if closing or not self._cb_slot.startswith("fn:"):
            kind = self._cb_slot.split(":")[0].replace("fn", "function").replace("coll", "collation")
            raise ModError(f"db: this database cannot be {'closed' if closing else 'used'} inside "
                           f"its own {kind} callback (SQLite forbids it); do it after the statement")

    def running_op(self):
        """The op on the helper thread now (its deadline), or None."""
        return self._op_running

    # -- callbacks into the mod -----------------------------------------------------

    def lua_ids(self, conn: SqliteConn) -> dict:
        """{slot: Lua callback id} registered on `conn`."""
        return self._lua.get(conn.cid, {})

    def _register(self, conn: SqliteConn, slot: str, cb_id) -> None:
        ids = self._lua.setdefault(conn.cid, {})
        if cb_id is None:
            ids.pop(slot, None)
        else:
            ids[slot] = cb_id

    def create_function(self, cid, name, nargs, cb_id, agg_final_id=None) -> bool:
        """db:create_function / create_aggregate (cb_id: the step function for an aggregate)."""
        conn = self.conn(cid)
        self.guard(conn, closing=True)
        if not isinstance(name, str) or not name:
            raise ModError("create_function: the name must be a non-empty string")
        if conn.functions >= self.limits.db_max_functions:
            raise QuotaExceeded(f"at most {self.limits.db_max_functions} functions and collations per database")
        n = int(nargs) if isinstance(nargs, (int, float)) else -1
        slot = f"fn:{name.lower()}:{n}"
        final_slot = slot + ":final"
        self._register(conn, slot, cb_id)
        if agg_final_id is not None:
            self._register(conn, final_slot, agg_final_id)

        is_agg = agg_final_id is not None

        def func(ctx, argc, argv):
            self._call_function(conn, ctx, slot, [value_of(argv[i]) for i in range(argc)],
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
            self.fail(conn, "create_function", rc)
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
        except SqlCallbackStopped as e:
            lib.sqlite3_result_error(ctx, str(e).encode(), -1)
            return
        if is_agg and not final:
            if kind == "error":
                lib.sqlite3_result_error(ctx, to_bytes(value), -1)
            return
        self._result(ctx, kind, value)

    def _result(self, ctx, kind, value):
        if kind == "error":
            lib.sqlite3_result_error(ctx, to_bytes(value), -1)
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
            b = to_bytes(value)
            lib.sqlite3_result_blob(ctx, b, len(b), C.SQLITE_TRANSIENT)
        else:
            b = to_bytes(value)
            lib.sqlite3_result_text(ctx, b, len(b), C.SQLITE_TRANSIENT)

    def create_collation(self, cid, name, cb_id) -> bool:
        """db:create_collation(name, fn)."""
        conn = self.conn(cid)
        self.guard(conn, closing=True)
        if not isinstance(name, str) or not name:
            raise ModError("create_collation: the name must be a non-empty string")
        if conn.functions >= self.limits.db_max_functions:
            raise QuotaExceeded(f"at most {self.limits.db_max_functions} functions and collations per database")
        slot = f"coll:{name.lower()}"
        self._register(conn, slot, cb_id)

        def compare(_ud, na, a, nb, b):
            try:
                r = self.ask(conn, slot, (ffi.buffer(a, na)[:], ffi.buffer(b, nb)[:]))
            except SqlCallbackStopped:
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
        self.guard(conn, closing=True)
        self._register(conn, kind, cb_id)
        on = cb_id is not None
        db = conn.ptr
        if kind == "commit":
            def commit(_ud):
                try:
                    return 1 if self.ask(conn, "commit", ()) else 0
                except SqlCallbackStopped:
                    return 1
            cb = ffi.callback("int(void*)", commit, error=1) if on else ffi.NULL
            lib.sqlite3_commit_hook(db, cb, ffi.NULL)
        elif kind == "rollback":
            def rollback(_ud):
                try:
                    self.ask(conn, "rollback", ())
                except SqlCallbackStopped:
                    pass
            cb = ffi.callback("void(void*)", rollback) if on else ffi.NULL
            lib.sqlite3_rollback_hook(db, cb, ffi.NULL)
        elif kind == "update":
            def update(_ud, op, dbname, table, rowid):
                try:
                    self.ask(conn, "update", (op, C.text(dbname), C.text(table), rowid))
                except SqlCallbackStopped:
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
                except SqlCallbackStopped:
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

    def run_sql_work(self, conn: SqliteConn, fn, *args):
        """fn(*args) here, or on the helper thread when `conn` has Lua callbacks."""
        self.guard(conn)
        if not self.lua_ids(conn) or self._in_callback:
            # Nested calls from inside a callback run here; their SQL cannot
            # call back into Lua (ask() refuses on this thread).
            return fn(*args)
        self.settle()
        self._ensure_helper()
        op = _Op(fn, args, self.call_deadline())
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
                    for c in self.open_connections():
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

    def settle(self) -> None:
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

    def settle_unless_nested(self) -> None:
        if not self._in_callback:
            self.settle()

    def ask(self, conn: SqliteConn, slot: str, args: tuple, agg: int = 0):
        """From SQLite on the helper thread: run the Lua callback in `slot`; its result."""
        cb_id = self.lua_ids(conn).get(slot)
        op = self._op_running
        if cb_id is None or op is None or threading.get_ident() != self._helper_ident:
            raise SqlCallbackStopped("SQL callbacks cannot run here (inside another callback's SQL)")
        self._cb_conn, self._cb_slot = conn, slot
        op.out.put(("call", cb_id, list(args), agg))
        reply = op.back.get()
        if reply is None:
            conn.timed_out = True
            raise SqlCallbackStopped("interrupted: the mod's callback was stopped")
        ok, kind, value = reply
        if not ok:
            if slot.startswith("fn:"):
                return "error", value if value is not None else "error in a Lua function"
            raise SqlCallbackStopped(to_bytes(value).decode("utf-8", "replace"))
        if slot.startswith("fn:"):
            return kind, value
        return value
