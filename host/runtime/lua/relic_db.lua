-- relic_db: the mod's `db` (lsqlite3 semantics, as in CET) and the `sqlite3` table.
--
-- Built once per mod by the host: `factory(bridge)` returns `db, sqlite3`.
-- The bridge (host/runtime/moddb.py through host/runtime/cet.py) holds the
-- connection and the statements; this file gives them lsqlite3's shape:
-- database and statement objects with methods, the row iterators and the
-- db:exec callback loop.  Relic extension: `?` values may follow the SQL in
-- exec/nrows/urows/rows (`db:exec("INSERT INTO t VALUES (?)", v)`).
return function(bridge)
  local OK, ABORT, ROW, DONE = 0, 4, 100, 101
  local select, type, error, setmetatable, pcall, unpack, tostring =
        select, type, error, setmetatable, pcall, unpack, tostring

  local sqlite3 = {
    OK = 0, ERROR = 1, INTERNAL = 2, PERM = 3, ABORT = 4, BUSY = 5, LOCKED = 6, NOMEM = 7,
    READONLY = 8, INTERRUPT = 9, IOERR = 10, CORRUPT = 11, NOTFOUND = 12, FULL = 13,
    CANTOPEN = 14, PROTOCOL = 15, EMPTY = 16, SCHEMA = 17, TOOBIG = 18, CONSTRAINT = 19,
    MISMATCH = 20, MISUSE = 21, NOLFS = 22, AUTH = 23, FORMAT = 24, RANGE = 25, NOTADB = 26,
    ROW = 100, DONE = 101,
    INTEGER = 1, FLOAT = 2, TEXT = 3, BLOB = 4, NULL = 5,
  }

  -- Errors from the host carry this file's position; re-raise them at the
  -- mod's call site instead (`level` counts from the function calling `call`).
  local function rethrow(level, ok, ...)
    if not ok then
      local msg = (...)
      if type(msg) == "string" then msg = msg:gsub("^[^\n]-relic_db%.lua:%d+: ", "") end
      error(msg, level)
    end
    return ...
  end
  -- B: the bridge with that done.  Rule: call B.* only in non-tail position
  -- from a function the mod called directly (level 3 is then the mod's line).
  local B = {}
  for k, f in pairs(bridge) do
    B[k] = function(...) return rethrow(3, pcall(f, ...)) end
  end

  local ids = setmetatable({}, { __mode = "k" })      -- statement object -> id
  local db = {}
  local DB = { __metatable = false }
  DB.__index = DB
  DB.__tostring = function()
    return B.isopen() and "sqlite database (mods' db.sqlite3)" or "sqlite database (closed)"
  end
  local Stmt = { __metatable = false }
  Stmt.__index = Stmt
  Stmt.__tostring = function(s)
    return ids[s] and B.isopen_stmt(ids[s]) and "sqlite virtual machine" or "sqlite virtual machine (closed)"
  end

  local function check_db(self, fname)
    if self ~= db then
      error("bad argument #1 to '" .. fname .. "' (sqlite database expected; call it with a colon: db:"
            .. fname .. "(...))", 3)
    end
  end

  local function check_sql(sql, fname)
    if type(sql) ~= "string" then
      error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(sql) .. ")", 3)
    end
  end

  local function sid_of(self, fname)
    local sid = ids[self]
    if not sid then
      error("bad argument #1 to '" .. fname .. "' (sqlite statement expected; call it with a colon)", 3)
    end
    return sid
  end

  -- Iterators (lsqlite3: db:rows -> arrays, db:nrows -> tables by column
  -- name, db:urows -> the values unpacked).  Errors are Lua errors.
  local function iterator(sid, shape)
    return function()
      local more, row, n = B.next_row(sid, shape)
      if not more then return nil end
      if shape == "values" then return unpack(row, 1, n) end
      return row
    end
  end

  local function query(self, fname, shape, sql, ...)
    check_db(self, fname)
    check_sql(sql, fname)
    local sid, err = B.prepare(sql, true)
    if not sid then error(B.errmsg(), 2) end
    if select("#", ...) > 0 then B.bind_values(sid, ...) end
    return iterator(sid, shape), self
  end

  --- db:nrows(sql [, ...]) -> iterator over rows as { column = value } tables.
  function DB.nrows(self, sql, ...) return query(self, "nrows", "named", sql, ...) end
  --- db:rows(sql [, ...]) -> iterator over rows as arrays { v1, v2, ... }.
  function DB.rows(self, sql, ...) return query(self, "rows", "array", sql, ...) end
  --- db:urows(sql [, ...]) -> iterator over the values of each row, unpacked.
  function DB.urows(self, sql, ...) return query(self, "urows", "values", sql, ...) end

  local function exec_callback(sql, cb, udata)
    local rest = sql
    while true do
      local sid, tail = B.prepare(rest, false)
      if not sid then return tail end
      local names, n
      while true do
        local code = B.step(sid)
        if code ~= ROW then
          B.finalize(sid)
          if code ~= DONE then return code end
          break
        end
        if not names then names = B.names(sid); n = #names end
        local ok, r = pcall(cb, udata, n, B.exec_values(sid), names)
        if not ok or (type(r) == "number" and r ~= 0) then
          B.finalize(sid)
          B.set_error(ABORT, "callback requested query abort")
          return ABORT
        end
      end
      if not tail:find("%S") then return OK end
      rest = tail
    end
  end

  --- db:exec(sql [, callback, udata]) -> result code (sqlite3.OK = 0).
  --- callback(udata, ncols, values, names) runs per row (values as text);
  --- returning a non-zero number aborts.  Relic extension: db:exec(sql, v1, ...)
  --- binds `?` values (one statement).
  function DB.exec(self, sql, ...)
    check_db(self, "exec")
    check_sql(sql, "exec")
    local n, cb = select("#", ...), (...)
    if type(cb) == "function" then return exec_callback(sql, cb, (select(2, ...))) end
    if n == 0 or (n == 1 and cb == nil) then return (B.exec(sql)) end
    return (B.exec(sql, ...))
  end
  DB.execute = DB.exec

  --- db:prepare(sql) -> statement, tail | nil, result code.
  function DB.prepare(self, sql)
    check_db(self, "prepare")
    check_sql(sql, "prepare")
    local sid, tail = B.prepare(sql, false)
    if not sid then return nil, tail end
    local s = setmetatable({}, Stmt)
    ids[s] = sid
    return s, tail
  end

  function DB.errcode(self) check_db(self, "errcode") return (B.errcode()) end
  function DB.errmsg(self) check_db(self, "errmsg") return (B.errmsg()) end
  DB.error_code, DB.error_message = DB.errcode, DB.errmsg
  function DB.last_insert_rowid(self) check_db(self, "last_insert_rowid") return (B.last_insert_rowid()) end
  function DB.changes(self) check_db(self, "changes") return (B.changes()) end
  function DB.total_changes(self) check_db(self, "total_changes") return (B.total_changes()) end
  function DB.isopen(self) check_db(self, "isopen") return (B.isopen()) end
  --- db:close() -> sqlite3.OK; the database stays closed until sqlite3.reopen().
  function DB.close(self) check_db(self, "close") return (B.close()) end
  function DB.interrupt(self) check_db(self, "interrupt") end
  function DB.busy_timeout(self) check_db(self, "busy_timeout") return OK end

  for _, name in ipairs { "create_function", "create_aggregate", "create_collation", "load_extension",
                          "trace", "progress_handler", "busy_handler", "update_hook", "commit_hook",
                          "rollback_hook", "get_ptr", "close_vm", "db_filename" } do
    DB[name] = function()
      error("db:" .. name .. " is not available to Relic mods (the host owns the connection)", 2)
    end
  end

  -- Statements ---------------------------------------------------------------
  function Stmt.step(self) return (B.step(sid_of(self, "step"))) end
  function Stmt.reset(self) return (B.reset(sid_of(self, "reset"))) end
  function Stmt.finalize(self) return (B.finalize(sid_of(self, "finalize"))) end
  function Stmt.isopen(self) return (B.isopen_stmt(sid_of(self, "isopen"))) end
  function Stmt.columns(self) return #B.names(sid_of(self, "columns")) end
  function Stmt.bind(self, i, v) return (B.bind(sid_of(self, "bind"), i, v)) end
  function Stmt.bind_blob(self, i, v) return (B.bind_blob(sid_of(self, "bind_blob"), i, v)) end
  function Stmt.bind_values(self, ...) return (B.bind_values(sid_of(self, "bind_values"), ...)) end
  function Stmt.bind_parameter_count(self) return (B.param_count(sid_of(self, "bind_parameter_count"))) end
  function Stmt.bind_parameter_name(self, i)
    local sid = sid_of(self, "bind_parameter_name")
    local names, n = B.param_names(sid), B.param_count(sid)
    if type(i) ~= "number" or i < 1 or i > n then
      error("bind index out of range [1.." .. n .. "]", 2)
    end
    return names[i] or nil
  end

  --- stmt:bind_names(t): `:name`/`$name` parameters from t.name, others from t[i].
  function Stmt.bind_names(self, t)
    local sid = sid_of(self, "bind_names")
    if type(t) ~= "table" then error("bad argument #1 to 'bind_names' (table expected)", 2) end
    local names, n = B.param_names(sid), B.param_count(sid)
    local vals = {}
    for i = 1, n do
      local name = names[i]
      local c = name and name:sub(1, 1)
      if c == ":" or c == "$" then vals[i] = t[name:sub(2)] else vals[i] = t[i] end
    end
    return (B.bind_values(sid, unpack(vals, 1, n)))
  end

  function Stmt.get_value(self, i) return (B.value(sid_of(self, "get_value"), i)) end
  function Stmt.get_values(self) return (B.values(sid_of(self, "get_values"))) end
  function Stmt.get_uvalues(self)
    local v = B.values(sid_of(self, "get_uvalues"))
    return unpack(v, 1, #B.names(ids[self]))
  end
  function Stmt.get_named_values(self) return (B.named_values(sid_of(self, "get_named_values"))) end
  function Stmt.get_names(self) return (B.names(sid_of(self, "get_names"))) end
  function Stmt.get_unames(self) return unpack(B.names(sid_of(self, "get_unames"))) end
  function Stmt.get_name(self, i)
    local names = B.names(sid_of(self, "get_name"))
    if type(i) ~= "number" or i < 0 or i >= #names then
      error("index out of range [0.." .. (#names - 1) .. "]", 2)
    end
    return names[i + 1]
  end
  function Stmt.last_insert_rowid(self) sid_of(self, "last_insert_rowid") return (B.last_insert_rowid()) end
  function Stmt.rows(self) return iterator(sid_of(self, "rows"), "array"), self end
  function Stmt.nrows(self) return iterator(sid_of(self, "nrows"), "named"), self end
  function Stmt.urows(self) return iterator(sid_of(self, "urows"), "values"), self end
  Stmt.idata, Stmt.inames, Stmt.data = Stmt.get_values, Stmt.get_names, Stmt.get_named_values
  for _, name in ipairs { "get_type", "get_types", "get_utypes", "get_named_types", "itypes", "type" } do
    Stmt[name] = function()
      error("stmt:" .. name .. " is not available in Relic (declared column types are not "
            .. "exposed by the host's SQLite binding); use typeof() in SQL", 2)
    end
  end

  setmetatable(db, DB)

  function sqlite3.version() return (B.version()) end
  function sqlite3.lversion() return "relic-lsqlite3-0.9.6" end
  function sqlite3.complete(sql) check_sql(sql, "complete") return (B.complete(sql)) end
  --- sqlite3.reopen(): close the mod's database and open it again (CET).
  function sqlite3.reopen() B.reopen() end

  return db, sqlite3
end
