"""A counting VFS: SQLite's temporary files inside a mod's database cap.

SQLite writes sort spills, materialized subqueries and statement journals to
temporary files of its own (deleted on open, so no directory listing sees
them).  Each mod database opens through a `QuotaVFS` of its own: the main
file, its journal and the temp database's file go straight to the default
VFS (the same C functions, no Python on their path; those databases are
capped by page count), while every transient file is wrapped so its growth
is counted in `used` and a write past `limit()` fails with SQLITE_FULL
("database or disk is full") — the same error a database gives at its
`max_page_count`.
"""

from __future__ import annotations

import itertools
from typing import Callable

from host.runtime.sqlite_capi import (OPEN_DELETEONCLOSE, OPEN_SUBJOURNAL, OPEN_TEMP_DB,
                                      OPEN_TEMP_JOURNAL, OPEN_TRANSIENT_DB, ffi, lib)

OK, IOERR, FULL = 0, 10, 13
# Counted here: transient files.  The temp database's own file is not: its
# pages are counted by page count (most of them live in the page cache).
TEMP_FLAGS = OPEN_TEMP_JOURNAL | OPEN_SUBJOURNAL | OPEN_TRANSIENT_DB | OPEN_DELETEONCLOSE
_HEADER = ffi.sizeof("sqlite3_file") + ffi.sizeof("void*")     # base + room for alignment
_names = itertools.count(1)


class QuotaVFS:
    """One registered VFS counting the temporary bytes of one connection."""

    def __init__(self, limit: Callable[[], int]):
        self.limit = limit             # bytes the temp files may hold in all, right now
        self.used = 0                  # bytes the open temp files hold
        self.refused = False           # a write was refused since the last clear
        self._files: dict[int, list] = {}      # wrapper address -> [inner file, size]
        base = lib.sqlite3_vfs_find(ffi.NULL)
        if base == ffi.NULL:
            raise OSError("SQLite has no default VFS")
        self._base = base
        self.name = f"relic-quota-{next(_names)}".encode()
        self._name_c = ffi.new("char[]", self.name)
        vfs = self._vfs = ffi.new("sqlite3_vfs*")
        ffi.buffer(vfs)[:] = ffi.buffer(base)[:]          # every method of the default VFS
        vfs.zName = self._name_c
        vfs.pNext = ffi.NULL
        vfs.szOsFile = _HEADER + base.szOsFile
        self._open_cb = ffi.callback("int(sqlite3_vfs*, const char*, sqlite3_file*, int, int*)",
                                     self._open, error=IOERR)
        vfs.xOpen = self._open_cb
        self._methods = self._build_methods()
        rc = lib.sqlite3_vfs_register(vfs, 0)
        if rc != OK:
            raise OSError(f"cannot register the quota VFS (SQLite error {rc})")
        self._registered = True

    def close(self) -> None:
        """Unregister (after every connection using it is closed)."""
        if self._registered:
            lib.sqlite3_vfs_unregister(self._vfs)
            self._registered = False

    # -- files ------------------------------------------------------------------

    def _open(self, vfs, name, f, flags, out_flags):
        if flags & OPEN_TEMP_DB or (name != ffi.NULL and not flags & TEMP_FLAGS):
            # A named, persistent file: the default VFS opens it in place.
            return self._base.xOpen(self._base, name, f, flags, out_flags)
        inner = ffi.cast("sqlite3_file*", ffi.cast("char*", f) + _HEADER)
        rc = self._base.xOpen(self._base, name, inner, flags, out_flags)
        if rc != OK:
            f.pMethods = ffi.NULL
            return rc
        self._files[int(ffi.cast("uintptr_t", f))] = [inner, 0]
        f.pMethods = self._methods
        return OK

    def _entry(self, f):
        return self._files[int(ffi.cast("uintptr_t", f))]

    def _build_methods(self):
        m = ffi.new("sqlite3_io_methods*")
        m.iVersion = 1
        cbs = []

        def cb(sig, fn):
            c = ffi.callback(sig, fn, error=IOERR)
            cbs.append(c)
            return c

        def x_close(f):
            key = int(ffi.cast("uintptr_t", f))
            inner, size = self._files.pop(key)
            self.used -= size
            return inner.pMethods.xClose(inner)

        def x_write(f, buf, amt, ofst):
            e = self._entry(f)
            end = ofst + amt
            grow = end - e[1]
            if grow > 0 and self.used + grow > self.limit():
                self.refused = True
                return FULL
            rc = e[0].pMethods.xWrite(e[0], buf, amt, ofst)
            if rc == OK and grow > 0:
                e[1] = end
                self.used += grow
            return rc

        def x_truncate(f, size):
            e = self._entry(f)
            rc = e[0].pMethods.xTruncate(e[0], size)
            if rc == OK and size < e[1]:
                self.used -= e[1] - size
                e[1] = size
            return rc

        def fwd(name):
            def call(f, *args):
                inner = self._entry(f)[0]
                return getattr(inner.pMethods, name)(inner, *args)
            return call

        m.xClose = cb("int(sqlite3_file*)", x_close)
        m.xRead = cb("int(sqlite3_file*, void*, int, sqlite3_int64)", fwd("xRead"))
        m.xWrite = cb("int(sqlite3_file*, const void*, int, sqlite3_int64)", x_write)
        m.xTruncate = cb("int(sqlite3_file*, sqlite3_int64)", x_truncate)
        m.xSync = cb("int(sqlite3_file*, int)", fwd("xSync"))
        m.xFileSize = cb("int(sqlite3_file*, sqlite3_int64*)", fwd("xFileSize"))
        m.xLock = cb("int(sqlite3_file*, int)", fwd("xLock"))
        m.xUnlock = cb("int(sqlite3_file*, int)", fwd("xUnlock"))
        m.xCheckReservedLock = cb("int(sqlite3_file*, int*)", fwd("xCheckReservedLock"))
        m.xFileControl = cb("int(sqlite3_file*, int, void*)", fwd("xFileControl"))
        m.xSectorSize = cb("int(sqlite3_file*)", fwd("xSectorSize"))
        m.xDeviceCharacteristics = cb("int(sqlite3_file*)", fwd("xDeviceCharacteristics"))
        self._method_cbs = cbs          # keep the callbacks alive with the table
        return m
