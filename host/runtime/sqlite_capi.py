"""SQLite's C API through cffi (ABI mode), for the mods' lsqlite3 databases.

Python's sqlite3 module hides what lsqlite3 exposes (prepare without
running, declared column types, commit/rollback/update hooks, incremental
backup, the file name of a handle), so host/runtime/moddb.py talks to the C
library directly.  It is the same libsqlite3 that Python's own sqlite3 module
is linked against, found once at import.

Only declarations and the loader live here; callers own every handle they
open (sqlite3_close_v2 / sqlite3_finalize / sqlite3_backup_finish).
"""

from __future__ import annotations

import ctypes.util

import cffi

ffi = cffi.FFI()
ffi.cdef("""
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct sqlite3_context sqlite3_context;
typedef struct sqlite3_value sqlite3_value;
typedef struct sqlite3_backup sqlite3_backup;
typedef long long sqlite3_int64;

typedef struct sqlite3_io_methods sqlite3_io_methods;
typedef struct sqlite3_file { const sqlite3_io_methods *pMethods; } sqlite3_file;
struct sqlite3_io_methods {
  int iVersion;
  int (*xClose)(sqlite3_file*);
  int (*xRead)(sqlite3_file*, void*, int, sqlite3_int64);
  int (*xWrite)(sqlite3_file*, const void*, int, sqlite3_int64);
  int (*xTruncate)(sqlite3_file*, sqlite3_int64);
  int (*xSync)(sqlite3_file*, int);
  int (*xFileSize)(sqlite3_file*, sqlite3_int64*);
  int (*xLock)(sqlite3_file*, int);
  int (*xUnlock)(sqlite3_file*, int);
  int (*xCheckReservedLock)(sqlite3_file*, int*);
  int (*xFileControl)(sqlite3_file*, int, void*);
  int (*xSectorSize)(sqlite3_file*);
  int (*xDeviceCharacteristics)(sqlite3_file*);
  void *xShmMap; void *xShmLock; void *xShmBarrier; void *xShmUnmap;
  void *xFetch; void *xUnfetch;
};
typedef struct sqlite3_vfs sqlite3_vfs;
struct sqlite3_vfs {
  int iVersion;
  int szOsFile;
  int mxPathname;
  sqlite3_vfs *pNext;
  const char *zName;
  void *pAppData;
  int (*xOpen)(sqlite3_vfs*, const char*, sqlite3_file*, int, int*);
  void *xDelete; void *xAccess; void *xFullPathname;
  void *xDlOpen; void *xDlError; void *xDlSym; void *xDlClose;
  void *xRandomness; void *xSleep; void *xCurrentTime; void *xGetLastError;
  void *xCurrentTimeInt64;
  void *xSetSystemCall; void *xGetSystemCall; void *xNextSystemCall;
};
sqlite3_vfs *sqlite3_vfs_find(const char*);
int sqlite3_vfs_register(sqlite3_vfs*, int);
int sqlite3_vfs_unregister(sqlite3_vfs*);

const char *sqlite3_libversion(void);
int sqlite3_complete(const char*);
int sqlite3_open_v2(const char*, sqlite3**, int, const char*);
int sqlite3_close_v2(sqlite3*);
int sqlite3_errcode(sqlite3*);
const char *sqlite3_errmsg(sqlite3*);
const char *sqlite3_errstr(int);
int sqlite3_limit(sqlite3*, int, int);
int sqlite3_extended_result_codes(sqlite3*, int);
int sqlite3_exec(sqlite3*, const char*, void*, void*, char**);
void sqlite3_interrupt(sqlite3*);
sqlite3_int64 sqlite3_last_insert_rowid(sqlite3*);
int sqlite3_changes(sqlite3*);
int sqlite3_total_changes(sqlite3*);
int sqlite3_get_autocommit(sqlite3*);
const char *sqlite3_db_filename(sqlite3*, const char*);
int sqlite3_busy_timeout(sqlite3*, int);

int sqlite3_set_authorizer(sqlite3*, int(*)(void*, int, const char*, const char*, const char*, const char*), void*);
void sqlite3_progress_handler(sqlite3*, int, int(*)(void*), void*);
void *sqlite3_commit_hook(sqlite3*, int(*)(void*), void*);
void *sqlite3_rollback_hook(sqlite3*, void(*)(void*), void*);
void *sqlite3_update_hook(sqlite3*, void(*)(void*, int, const char*, const char*, sqlite3_int64), void*);
int sqlite3_trace_v2(sqlite3*, unsigned, int(*)(unsigned, void*, void*, void*), void*);
char *sqlite3_expanded_sql(sqlite3_stmt*);
const char *sqlite3_sql(sqlite3_stmt*);
void sqlite3_free(void*);

int sqlite3_prepare_v2(sqlite3*, const char*, int, sqlite3_stmt**, const char**);
int sqlite3_step(sqlite3_stmt*);
int sqlite3_reset(sqlite3_stmt*);
int sqlite3_finalize(sqlite3_stmt*);
int sqlite3_clear_bindings(sqlite3_stmt*);
int sqlite3_bind_parameter_count(sqlite3_stmt*);
const char *sqlite3_bind_parameter_name(sqlite3_stmt*, int);
int sqlite3_bind_null(sqlite3_stmt*, int);
int sqlite3_bind_int64(sqlite3_stmt*, int, sqlite3_int64);
int sqlite3_bind_double(sqlite3_stmt*, int, double);
int sqlite3_bind_text(sqlite3_stmt*, int, const char*, int, void*);
int sqlite3_bind_blob(sqlite3_stmt*, int, const void*, int, void*);
int sqlite3_column_count(sqlite3_stmt*);
int sqlite3_data_count(sqlite3_stmt*);
const char *sqlite3_column_name(sqlite3_stmt*, int);
const char *sqlite3_column_decltype(sqlite3_stmt*, int);
int sqlite3_column_type(sqlite3_stmt*, int);
sqlite3_int64 sqlite3_column_int64(sqlite3_stmt*, int);
double sqlite3_column_double(sqlite3_stmt*, int);
const unsigned char *sqlite3_column_text(sqlite3_stmt*, int);
const void *sqlite3_column_blob(sqlite3_stmt*, int);
int sqlite3_column_bytes(sqlite3_stmt*, int);

int sqlite3_create_function_v2(sqlite3*, const char*, int, int, void*,
    void(*)(sqlite3_context*, int, sqlite3_value**),
    void(*)(sqlite3_context*, int, sqlite3_value**),
    void(*)(sqlite3_context*), void(*)(void*));
int sqlite3_create_collation_v2(sqlite3*, const char*, int, void*,
    int(*)(void*, int, const void*, int, const void*), void(*)(void*));
void *sqlite3_user_data(sqlite3_context*);
void *sqlite3_aggregate_context(sqlite3_context*, int);
int sqlite3_value_type(sqlite3_value*);
sqlite3_int64 sqlite3_value_int64(sqlite3_value*);
double sqlite3_value_double(sqlite3_value*);
const unsigned char *sqlite3_value_text(sqlite3_value*);
const void *sqlite3_value_blob(sqlite3_value*);
int sqlite3_value_bytes(sqlite3_value*);
void sqlite3_result_null(sqlite3_context*);
void sqlite3_result_int64(sqlite3_context*, sqlite3_int64);
void sqlite3_result_double(sqlite3_context*, double);
void sqlite3_result_text(sqlite3_context*, const char*, int, void*);
void sqlite3_result_blob(sqlite3_context*, const void*, int, void*);
void sqlite3_result_error(sqlite3_context*, const char*, int);
void sqlite3_result_error_code(sqlite3_context*, int);

sqlite3_backup *sqlite3_backup_init(sqlite3*, const char*, sqlite3*, const char*);
int sqlite3_backup_step(sqlite3_backup*, int);
int sqlite3_backup_finish(sqlite3_backup*);
int sqlite3_backup_remaining(sqlite3_backup*);
int sqlite3_backup_pagecount(sqlite3_backup*);
""")

# Result codes, datatypes, authorizer actions and open flags (lsqlite3's constants).
RESULT_CODES = {
    "OK": 0, "ERROR": 1, "INTERNAL": 2, "PERM": 3, "ABORT": 4, "BUSY": 5, "LOCKED": 6,
    "NOMEM": 7, "READONLY": 8, "INTERRUPT": 9, "IOERR": 10, "CORRUPT": 11, "NOTFOUND": 12,
    "FULL": 13, "CANTOPEN": 14, "PROTOCOL": 15, "EMPTY": 16, "SCHEMA": 17, "TOOBIG": 18,
    "CONSTRAINT": 19, "MISMATCH": 20, "MISUSE": 21, "NOLFS": 22, "AUTH": 23, "FORMAT": 24,
    "RANGE": 25, "NOTADB": 26, "ROW": 100, "DONE": 101,
}
DATATYPES = {"INTEGER": 1, "FLOAT": 2, "TEXT": 3, "BLOB": 4, "NULL": 5}
ACTIONS = {
    "CREATE_INDEX": 1, "CREATE_TABLE": 2, "CREATE_TEMP_INDEX": 3, "CREATE_TEMP_TABLE": 4,
    "CREATE_TEMP_TRIGGER": 5, "CREATE_TEMP_VIEW": 6, "CREATE_TRIGGER": 7, "CREATE_VIEW": 8,
    "DELETE": 9, "DROP_INDEX": 10, "DROP_TABLE": 11, "DROP_TEMP_INDEX": 12,
    "DROP_TEMP_TABLE": 13, "DROP_TEMP_TRIGGER": 14, "DROP_TEMP_VIEW": 15, "DROP_TRIGGER": 16,
    "DROP_VIEW": 17, "INSERT": 18, "PRAGMA": 19, "READ": 20, "SELECT": 21, "TRANSACTION": 22,
    "UPDATE": 23, "ATTACH": 24, "DETACH": 25, "ALTER_TABLE": 26, "REINDEX": 27, "ANALYZE": 28,
    "CREATE_VTABLE": 29, "DROP_VTABLE": 30, "FUNCTION": 31, "SAVEPOINT": 32, "RECURSIVE": 33,
}
OPEN_FLAGS = {
    "OPEN_READONLY": 0x1, "OPEN_READWRITE": 0x2, "OPEN_CREATE": 0x4, "OPEN_URI": 0x40,
    "OPEN_MEMORY": 0x80, "OPEN_NOMUTEX": 0x8000, "OPEN_FULLMUTEX": 0x10000,
    "OPEN_SHAREDCACHE": 0x20000, "OPEN_PRIVATECACHE": 0x40000,
}
OPEN_DELETEONCLOSE, OPEN_EXCLUSIVE = 0x8, 0x10
OPEN_MAIN_DB, OPEN_TEMP_DB, OPEN_TRANSIENT_DB = 0x100, 0x200, 0x400
OPEN_MAIN_JOURNAL, OPEN_TEMP_JOURNAL, OPEN_SUBJOURNAL = 0x800, 0x1000, 0x2000
OPEN_WAL = 0x80000

# sqlite3_limit categories.
LIMIT_LENGTH, LIMIT_SQL_LENGTH, LIMIT_COLUMN, LIMIT_EXPR_DEPTH = 0, 1, 2, 3
LIMIT_COMPOUND_SELECT, LIMIT_VDBE_OP, LIMIT_FUNCTION_ARG, LIMIT_ATTACHED = 4, 5, 6, 7
LIMIT_LIKE_PATTERN_LENGTH, LIMIT_VARIABLE_NUMBER, LIMIT_TRIGGER_DEPTH = 8, 9, 10
LIMIT_WORKER_THREADS = 11

DENY = 1
UTF8 = 1
DETERMINISTIC = 0x800
TRACE_STMT = 1
SQLITE_TRANSIENT = ffi.cast("void*", -1)


def _load():
    names = [ctypes.util.find_library("sqlite3"), "libsqlite3.so.0", "libsqlite3.dylib",
             "sqlite3.dll"]
    try:               # statically linked into Python's own module
        import _sqlite3
        names.append(_sqlite3.__file__)
    except ImportError:
        pass
    errors = []
    for name in names:
        if not name:
            continue
        try:
            lib = ffi.dlopen(name)
            lib.sqlite3_libversion           # the symbol must be there
            return lib
        except (OSError, AttributeError) as e:
            errors.append(f"{name}: {e}")
    raise OSError("SQLite library not found: " + "; ".join(errors))


lib = _load()


def text(ptr) -> str:
    """A C string from SQLite (UTF-8) as str; '' for NULL."""
    return ffi.string(ptr).decode("utf-8", "replace") if ptr != ffi.NULL else ""
