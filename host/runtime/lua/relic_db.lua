-- relic_db: the mod's `db` (lsqlite3 semantics, as in CET) and the `sqlite3` table.
--
-- Built once per mod by the host: `factory(bridge, handle, strptr)` returns
-- `db, sqlite3`.  The bridge (host/runtime/moddb.py through
-- host/runtime/cet.py) holds the connections, statements and backups under
-- ids; this file gives them lsqlite3's shape: userdata handles with methods
-- (`handle(index, tostring_fn)` makes one, from the host's privileged side:
-- no __gc, and getmetatable returns false), the row iterators, the db:exec
-- callback loop, and the SQLite callbacks into the mod's functions.
-- `strptr(s)` gives the address of a string the caller holds, so bound
-- strings reach SQLite byte for byte (nil when unavailable).
-- Relic extension: `?` values may follow the SQL in exec/nrows/urows/rows.
return function(bridge, handle, strptr)
  local OK, ABORT, ERROR, ROW, DONE = 0, 4, 1, 100, 101
  -- the host's string functions, captured: a mod's own `string` table is its to change
  local sgsub, sfind, ssub = string.gsub, string.find, string.sub
  local select, type, error, pcall, unpack, tostring, pairs =
        select, type, error, pcall, unpack, tostring, pairs

  local sqlite3 = {}
  for k, v in pairs(bridge.constants()) do sqlite3[k] = v end
  local CALLBACK = bridge.callback_marker()
  bridge.constants, bridge.callback_marker = nil, nil

  -- Errors from the host carry this file's position; re-raise them at the
  -- mod's call site instead (`level` counts from the function calling `call`).
  local function rethrow(level, ok, ...)
    if not ok then
      local msg = (...)
      if type(msg) == "string" then msg = sgsub(msg, "^[^\n]-relic_db%.lua:%d+: ", "") end
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

  -- Callbacks the mod registered: id -> { kind, fn, udata, extra }.
  local callbacks, next_cb = {}, 1
  local function new_callback(kind, fn, udata, extra)
    local id = next_cb
    next_cb = next_cb + 1
    callbacks[id] = { kind = kind, fn = fn, udata = udata, extra = extra }
    return id
  end

  -- Function contexts (lsqlite3's ctx): result setters and aggregate data.
  local Ctx = {}
  local ctx_state = setmetatable({}, { __mode = "k" })
  local agg_data = {}                  -- aggregate key -> { data, count }

  local function new_ctx(cb, agg)
    local st = { kind = "null", value = nil, cb = cb, agg = agg }
    local ctx, addr = handle(Ctx, function() return "sqlite function context (" .. st.addr .. ")" end)
    st.addr = addr
    ctx_state[ctx] = st
    return ctx, st
  end
  local function ctx_of(self, fname)
    local st = ctx_state[self]
    if not st then error("bad argument #1 to '" .. fname .. "' (sqlite function context expected)", 3) end
    return st
  end
  function Ctx.result(self, v)
    local st = ctx_of(self, "result")
    local tv = type(v)
    if v == nil then st.kind, st.value = "null", nil
    elseif tv == "number" or tv == "boolean" then st.kind, st.value = "value", v
    elseif tv == "string" then st.kind, st.value = "text", v
    else error("bad argument #1 to 'result' (nil, number, boolean or string expected, got " .. tv .. ")", 2) end
  end
  function Ctx.result_null(self) local st = ctx_of(self, "result_null") st.kind, st.value = "null", nil end
  function Ctx.result_number(self, v) local st = ctx_of(self, "result_number") st.kind, st.value = "double", tonumber(v) end
  Ctx.result_double = Ctx.result_number
  function Ctx.result_int(self, v) local st = ctx_of(self, "result_int") st.kind, st.value = "int", math.floor(tonumber(v) or 0) end
  function Ctx.result_text(self, v) local st = ctx_of(self, "result_text") st.kind, st.value = "text", tostring(v) end
  function Ctx.result_blob(self, v) local st = ctx_of(self, "result_blob") st.kind, st.value = "blob", tostring(v) end
  function Ctx.result_error(self, v) local st = ctx_of(self, "result_error") st.kind, st.value = "error", tostring(v) end
  function Ctx.user_data(self) return ctx_of(self, "user_data").cb.udata end
  local function agg_slot(st)
    local a = agg_data[st.agg]
    if not a then a = { count = 0 } agg_data[st.agg] = a end
    return a
  end
  function Ctx.aggregate_data(self)
    local a = agg_slot(ctx_of(self, "aggregate_data"))
    if a.data == nil then a.data = {} end
    return a.data
  end
  function Ctx.get_aggregate_data(self) return agg_slot(ctx_of(self, "get_aggregate_data")).data end
  function Ctx.set_aggregate_data(self, v) agg_slot(ctx_of(self, "set_aggregate_data")).data = v end
  function Ctx.aggregate_count(self) return agg_slot(ctx_of(self, "aggregate_count")).count end

  -- Run one callback SQLite asked for: (ok, kind, value) for B.resume.
  local function run_callback(id, args, agg)
    local cb = callbacks[id]
    if not cb then return false, nil, "callback no longer registered" end
    local n = #args
    local k = cb.kind
    if k == "function" or k == "step" or k == "final" then
      local ctx, st = new_ctx(cb, agg)
      if k == "step" then local a = agg_slot(st) a.count = a.count + 1 end
      local ok, err = pcall(cb.fn, ctx, unpack(args, 1, n))
      if k == "final" then agg_data[agg] = nil end
      if not ok then return false, nil, tostring(err) end
      return true, st.kind, st.value
    elseif k == "collation" then
      local ok, r = pcall(cb.fn, args[1], args[2])
      if not ok then return false, nil, tostring(r) end
      return true, nil, tonumber(r) or 0
    elseif k == "update" then
      local ok, err = pcall(cb.fn, cb.udata, args[1], args[2], args[3], args[4])
      return ok, nil, not ok and tostring(err) or nil
    else         -- progress, commit, rollback, trace
      local ok, r
      if k == "trace" then ok, r = pcall(cb.fn, cb.udata, args[1])
      else ok, r = pcall(cb.fn, cb.udata) end
      if not ok then return false, nil, tostring(r) end
      return true, nil, (r ~= nil and r ~= false and r ~= 0) and true or false
    end
  end

  -- settle(B.x(...)): run the callbacks SQLite asks for until the call ends.
  local function settle(first, ...)
    if first ~= CALLBACK then return first, ... end
    local id, args, agg = ...
    local ok, kind, value = run_callback(id, args, agg)
    if type(value) == "string" and strptr then       -- any bytes, held here meanwhile
      return settle(B.resume(ok, kind, nil, strptr(value), #value))
    end
    return settle(B.resume(ok, kind, value))
  end

  -- Handles -------------------------------------------------------------------
  local DB, Stmt, Backup = {}, {}, {}
  local db_cid = setmetatable({}, { __mode = "k" })      -- db handle -> connection id
  local stmt_sid = setmetatable({}, { __mode = "k" })    -- statement handle -> id
  local stmt_db = setmetatable({}, { __mode = "k" })     -- statement handle -> its db handle
  local backup_bid = setmetatable({}, { __mode = "k" })

  -- Handles the mod dropped without closing them: their __gc (which runs no
  -- host code) notes them here, and the next prepare/open closes them, as
  -- lsqlite3's __gc would.
  local dead = {}
  local function on_drop(kind, id)
    return function() dead[#dead + 1] = kind dead[#dead + 1] = id end
  end
  local function flush_dead()
    if dead[1] == nil then return end
    local d = dead
    dead = {}
    for i = 1, #d, 2 do
      local kind, id = d[i], d[i + 1]
      if kind == "stmt" then pcall(bridge.finalize, id)
      elseif kind == "db" then pcall(bridge.close, id)
      else pcall(bridge.backup_finish, id) end
    end
  end

  -- B.prepare, and at the statement quota a full collection (statements the
  -- mod dropped are finalized) and one more try.  Raises at the quota.
  -- Called from functions the mod called (directly or by a tail call), so
  -- its errors are raised at level 3 (rethrow: 4), the mod's line.
  local function prepare(cid, sql, temp)
    flush_dead()
    local sid, tail = rethrow(4, pcall(bridge.prepare, cid, sql, temp))
    if sid == false then
      collectgarbage("collect")
      flush_dead()
      sid, tail = rethrow(4, pcall(bridge.prepare, cid, sql, temp))
      if sid == false then error(tail, 3) end
    end
    return sid, tail
  end

  local function new_db(cid)
    local d
    local addr
    d, addr = handle(DB, function()
      return B.isopen(cid) and ("sqlite database (" .. addr .. ")") or "sqlite database (closed)"
    end, cid ~= 1 and on_drop("db", cid) or nil)
    db_cid[d] = cid
    return d
  end

  local function cid_of(self, fname)
    local cid = db_cid[self]
    if not cid then
      error("bad argument #1 to '" .. fname .. "' (sqlite database expected; call it with a colon: db:"
            .. fname .. "(...))", 3)
    end
    return cid
  end

  local function check_sql(sql, fname)
    if type(sql) ~= "string" then
      error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(sql) .. ")", 3)
    end
  end

  local function sid_of(self, fname)
    local sid = stmt_sid[self]
    if not sid then
      error("bad argument #1 to '" .. fname .. "' (sqlite statement expected; call it with a colon)", 3)
    end
    return sid
  end

  -- Bind one value; strings travel as (address, length) when strptr exists.
  local function bind_one(sid, i, v, blob)
    if type(v) == "string" and strptr then
      return (settle(B.bind_raw(sid, i, strptr(v), #v, blob)))
    end
    return (B.bind(sid, i, v, blob))
  end

  -- Bind vals[1..n] in one host call: `kinds` has "v" for a value passed as
  -- it is and "s" for a string passed as (address, length); `vals` holds the
  -- strings meanwhile.
  local function bind_all(sid, n, vals)
    if not strptr then
      for i = 1, n do
        local rc = bind_one(sid, i, vals[i], false)
        if rc ~= OK then return rc end
      end
      return OK
    end
    local kinds, args, k = {}, {}, 0
    for i = 1, n do
      local v = vals[i]
      if type(v) == "string" then
        kinds[i] = "s"
        args[k + 1], args[k + 2] = strptr(v), #v
        k = k + 2
      else
        kinds[i] = "v"
        args[k + 1] = v
        k = k + 1
      end
    end
    return (B.bind_packed(sid, table.concat(kinds), unpack(args, 1, k)))
  end

  -- Iterators (lsqlite3: db:rows -> arrays, db:nrows -> tables by column
  -- name, db:urows -> the values unpacked).  Errors are Lua errors.
  local function iterator(sid, shape)
    return function()
      local more, row, n = settle(B.next_row(sid, shape))
      if not more then return nil end
      if shape == "values" then return unpack(row, 1, n) end
      return row
    end
  end

  local function query(self, fname, shape, sql, ...)
    local cid = cid_of(self, fname)
    check_sql(sql, fname)
    local sid, err = prepare(cid, sql, true)
    if not sid then error(B.errmsg(cid), 2) end
    local n = select("#", ...)
    if n > 0 then
      local count = B.param_count(sid)
      if n ~= count then
        B.finalize(sid)
        error("incorrect number of parameters to bind (" .. n .. " given, " .. count .. " to bind)", 2)
      end
      if bind_all(sid, n, { ... }) ~= OK then error(B.errmsg(cid), 2) end
    end
    return iterator(sid, shape), self
  end

  --- db:nrows(sql [, ...]) -> iterator over rows as { column = value } tables.
  function DB.nrows(self, sql, ...) return query(self, "nrows", "named", sql, ...) end
  --- db:rows(sql [, ...]) -> iterator over rows as arrays { v1, v2, ... }.
  function DB.rows(self, sql, ...) return query(self, "rows", "array", sql, ...) end
  --- db:urows(sql [, ...]) -> iterator over the values of each row, unpacked.
  function DB.urows(self, sql, ...) return query(self, "urows", "values", sql, ...) end

  local function exec_callback(cid, sql, cb, udata)
    local rest = sql
    while true do
      local sid, tail = prepare(cid, rest, false)
      if not sid then return tail end
      local names, n
      while true do
        local code = settle(B.step(sid))
        if code ~= ROW then
          B.finalize(sid)
          if code ~= DONE then return code end
          break
        end
        if not names then names = B.names(sid); n = #names end
        local ok, r = pcall(cb, udata, n, B.exec_values(sid), names)
        if not ok or (type(r) == "number" and r ~= 0) then
          B.finalize(sid)
          B.set_error(cid, ABORT, "callback requested query abort")
          return ABORT
        end
      end
      if not sfind(tail, "%S") then return OK end
      rest = tail
    end
  end

  --- db:exec(sql [, callback, udata]) -> result code (sqlite3.OK = 0).
  --- callback(udata, ncols, values, names) runs per row (values as text);
  --- returning a non-zero number aborts.  Relic extension: db:exec(sql, v1, ...)
  --- binds `?` values (one statement).
  function DB.exec(self, sql, ...)
    local cid = cid_of(self, "exec")
    check_sql(sql, "exec")
    local n, cb = select("#", ...), (...)
    if type(cb) == "function" then return exec_callback(cid, sql, cb, (select(2, ...))) end
    if n == 0 or (n == 1 and cb == nil) then return (settle(B.exec(cid, sql))) end
    local sid, tail = prepare(cid, sql, false)
    if not sid then return tail end
    if sfind(tail, "%S") then
      B.finalize(sid)
      error("db:exec: with ? parameters the SQL must be one statement", 2)
    end
    local count = B.param_count(sid)
    if n ~= count then
      B.finalize(sid)
      error("incorrect number of parameters to bind (" .. n .. " given, " .. count .. " to bind)", 2)
    end
    local rc = bind_all(sid, n, { ... })
    if rc == OK then
      repeat rc = settle(B.step(sid)) until rc ~= ROW
      if rc == DONE then rc = OK end
    end
    B.finalize(sid)
    return rc
  end
  DB.execute = DB.exec

  local function new_stmt(d, sid)
    local s, addr
    s, addr = handle(Stmt, function()
      return B.isopen_stmt(sid) and ("sqlite virtual machine (" .. addr .. ")")
             or "sqlite virtual machine (closed)"
    end, on_drop("stmt", sid))
    stmt_sid[s] = sid
    stmt_db[s] = d
    return s
  end

  --- db:prepare(sql) -> statement, tail | nil, result code.
  function DB.prepare(self, sql)
    local cid = cid_of(self, "prepare")
    check_sql(sql, "prepare")
    local sid, tail = prepare(cid, sql, false)
    if not sid then return nil, tail end
    return new_stmt(self, sid), tail
  end

  function DB.errcode(self) return (B.errcode(cid_of(self, "errcode"))) end
  function DB.errmsg(self) return (B.errmsg(cid_of(self, "errmsg"))) end
  DB.error_code, DB.error_message = DB.errcode, DB.errmsg
  function DB.last_insert_rowid(self) return (B.last_insert_rowid(cid_of(self, "last_insert_rowid"))) end
  function DB.changes(self) return (B.changes(cid_of(self, "changes"))) end
  function DB.total_changes(self) return (B.total_changes(cid_of(self, "total_changes"))) end
  function DB.isopen(self) return (B.isopen(cid_of(self, "isopen"))) end
  --- db:close() -> sqlite3.OK; the mod's own `db` stays closed until sqlite3.reopen().
  function DB.close(self) return (B.close(cid_of(self, "close"))) end
  function DB.close_vm(self) cid_of(self, "close_vm") return OK end
  function DB.interrupt(self) B.interrupt(cid_of(self, "interrupt")) end
  function DB.busy_timeout(self) cid_of(self, "busy_timeout") return OK end
  function DB.busy_handler(self) cid_of(self, "busy_handler") return OK end
  --- db:db_filename(name) -> the database file's path ("" for memory or temp).
  function DB.db_filename(self, name)
    local cid = cid_of(self, "db_filename")
    if type(name) ~= "string" then error("bad argument #1 to 'db_filename' (string expected)", 2) end
    return (B.db_filename(cid, name))
  end

  local function check_fn(f, fname, argn)
    if type(f) ~= "function" then
      error("bad argument #" .. argn .. " to '" .. fname .. "' (function expected, got " .. type(f) .. ")", 3)
    end
  end

  --- db:create_function(name, nargs, fn [, udata]): fn(ctx, ...) sets ctx:result(v).
  function DB.create_function(self, name, nargs, fn, udata)
    local cid = cid_of(self, "create_function")
    check_fn(fn, "create_function", 3)
    return (B.create_function(cid, name, nargs, new_callback("function", fn, udata)))
  end
  --- db:create_aggregate(name, nargs, step, final [, udata]).
  function DB.create_aggregate(self, name, nargs, step, final, udata)
    local cid = cid_of(self, "create_aggregate")
    check_fn(step, "create_aggregate", 3)
    check_fn(final, "create_aggregate", 4)
    return (B.create_function(cid, name, nargs, new_callback("step", step, udata),
                              new_callback("final", final, udata)))
  end
  --- db:create_collation(name, fn): fn(a, b) -> negative, 0 or positive.
  function DB.create_collation(self, name, fn)
    local cid = cid_of(self, "create_collation")
    check_fn(fn, "create_collation", 2)
    return (B.create_collation(cid, name, new_callback("collation", fn)))
  end

  -- Hooks: each returns nothing (lsqlite3 returns the previous one; rarely used).
  local function hook(kind, fname)
    return function(self, fn, udata)
      local cid = cid_of(self, fname)
      if fn == nil then B.set_hook(cid, kind, nil) return end
      check_fn(fn, fname, 1)
      B.set_hook(cid, kind, new_callback(kind, fn, udata))
    end
  end
  DB.commit_hook = hook("commit", "commit_hook")
  DB.rollback_hook = hook("rollback", "rollback_hook")
  DB.update_hook = hook("update", "update_hook")
  DB.trace = hook("trace", "trace")
  --- db:progress_handler(n, fn [, udata]): fn(udata) every n VM steps; true aborts.
  function DB.progress_handler(self, n, fn, udata)
    local cid = cid_of(self, "progress_handler")
    if fn == nil then B.set_hook(cid, "progress", nil) return end
    if type(n) ~= "number" then error("bad argument #1 to 'progress_handler' (number expected)", 2) end
    check_fn(fn, "progress_handler", 2)
    B.set_hook(cid, "progress", new_callback("progress", fn, udata), n)
  end
  function DB.load_extension()
    error("db:load_extension is not available to Relic mods (no native code)", 2)
  end
  function DB.get_ptr()
    error("db:get_ptr is not available to Relic mods (no raw pointers)", 2)
  end

  -- Statements ---------------------------------------------------------------
  function Stmt.step(self) return (settle(B.step(sid_of(self, "step")))) end
  function Stmt.reset(self) return (B.reset(sid_of(self, "reset"))) end
  function Stmt.finalize(self) return (B.finalize(sid_of(self, "finalize"))) end
  function Stmt.isopen(self) return (B.isopen_stmt(sid_of(self, "isopen"))) end
  function Stmt.columns(self) return (B.columns(sid_of(self, "columns"))) end
  function Stmt.bind(self, i, v)
    local sid = sid_of(self, "bind")
    return bind_one(sid, i, v, false)
  end
  function Stmt.bind_blob(self, i, v)
    local sid = sid_of(self, "bind_blob")
    if type(v) ~= "string" then
      error("bad argument #2 to 'bind_blob' (string expected, got " .. type(v) .. ")", 2)
    end
    return bind_one(sid, i, v, true)
  end
  function Stmt.bind_values(self, ...)
    local sid = sid_of(self, "bind_values")
    local n, count = select("#", ...), B.param_count(sid)
    if n ~= count then
      error("incorrect number of parameters to bind (" .. n .. " given, " .. count .. " to bind)", 2)
    end
    return bind_all(sid, n, { ... })
  end
  function Stmt.bind_parameter_count(self) return (B.param_count(sid_of(self, "bind_parameter_count"))) end
  function Stmt.bind_parameter_name(self, i) return (B.param_name(sid_of(self, "bind_parameter_name"), i)) end

  --- stmt:bind_names(t): `:name`/`$name`/`@name` parameters from t.name, others from t[i].
  function Stmt.bind_names(self, t)
    local sid = sid_of(self, "bind_names")
    if type(t) ~= "table" then error("bad argument #1 to 'bind_names' (table expected)", 2) end
    local names = B.param_names(sid)
    local vals = {}
    for i = 1, #names do
      local name = names[i]
      if name then vals[i] = t[ssub(name, 2)] else vals[i] = t[i] end
    end
    return bind_all(sid, #names, vals)
  end

  function Stmt.get_value(self, i) return (B.value(sid_of(self, "get_value"), i)) end
  function Stmt.get_values(self) return (B.values(sid_of(self, "get_values"))) end
  function Stmt.get_uvalues(self)
    local sid = sid_of(self, "get_uvalues")
    local v = B.values(sid)
    return unpack(v, 1, B.columns(sid))
  end
  function Stmt.get_named_values(self) return (B.named_values(sid_of(self, "get_named_values"))) end
  function Stmt.get_names(self) return (B.names(sid_of(self, "get_names"))) end
  function Stmt.get_unames(self)
    local sid = sid_of(self, "get_unames")
    return unpack(B.names(sid), 1, B.columns(sid))
  end
  function Stmt.get_name(self, i)
    local names = B.names(sid_of(self, "get_name"))
    if type(i) ~= "number" or i < 0 or i >= #names then
      error("index out of range [0.." .. (#names - 1) .. "]", 2)
    end
    return names[i + 1]
  end
  function Stmt.get_types(self) return (B.types(sid_of(self, "get_types"))) end
  function Stmt.get_utypes(self)
    local sid = sid_of(self, "get_utypes")
    return unpack(B.types(sid), 1, B.columns(sid))
  end
  function Stmt.get_type(self, i)
    local types = B.types(sid_of(self, "get_type"))
    if type(i) ~= "number" or i < 0 or i >= #types then
      error("index out of range [0.." .. (#types - 1) .. "]", 2)
    end
    return types[i + 1]
  end
  function Stmt.get_named_types(self)
    local sid = sid_of(self, "get_named_types")
    local names, types, t = B.names(sid), B.types(sid), {}
    for i = 1, #names do t[names[i]] = types[i] end
    return t
  end
  function Stmt.last_insert_rowid(self)
    sid_of(self, "last_insert_rowid")
    return (B.last_insert_rowid(db_cid[stmt_db[self]]))
  end
  function Stmt.rows(self) return iterator(sid_of(self, "rows"), "array"), self end
  function Stmt.nrows(self) return iterator(sid_of(self, "nrows"), "named"), self end
  function Stmt.urows(self) return iterator(sid_of(self, "urows"), "values"), self end
  Stmt.idata, Stmt.inames, Stmt.data = Stmt.get_values, Stmt.get_names, Stmt.get_named_values
  Stmt.itypes, Stmt.type = Stmt.get_types, Stmt.get_named_types

  -- Backups -------------------------------------------------------------------
  local function bid_of(self, fname)
    local bid = backup_bid[self]
    if not bid then error("bad argument #1 to '" .. fname .. "' (sqlite backup expected)", 3) end
    return bid
  end
  function Backup.step(self, n) return (B.backup_step(bid_of(self, "step"), n or -1)) end
  function Backup.remaining(self) return (B.backup_remaining(bid_of(self, "remaining"))) end
  function Backup.pagecount(self) return (B.backup_pagecount(bid_of(self, "pagecount"))) end
  function Backup.finish(self) return (B.backup_finish(bid_of(self, "finish"))) end

  --- sqlite3.backup_init(target_db, target_name, source_db, source_name) -> backup | nil.
  function sqlite3.backup_init(target, tname, source, sname)
    local tcid, scid = db_cid[target], db_cid[source]
    if not tcid then error("bad argument #1 to 'backup_init' (sqlite database expected)", 2) end
    if not scid then error("bad argument #3 to 'backup_init' (sqlite database expected)", 2) end
    flush_dead()
    local bid = B.backup_init(tcid, tname or "main", scid, sname or "main")
    if not bid then return nil end
    local b, addr
    b, addr = handle(Backup, function() return "sqlite backup (" .. addr .. ")" end, on_drop("backup", bid))
    backup_bid[b] = bid
    return b
  end

  local db = new_db(1)

  function sqlite3.version() return (B.version()) end
  function sqlite3.lversion() return "0.9.5" end
  function sqlite3.complete(sql) check_sql(sql, "complete") return (B.complete(sql)) end
  local function open_memory()
    flush_dead()
    local cid, err = rethrow(4, pcall(bridge.open_memory))
    if cid == false then
      collectgarbage("collect")
      flush_dead()
      cid, err = rethrow(4, pcall(bridge.open_memory))
      if cid == false then error(err, 3) end
    end
    return new_db(cid)
  end
  --- sqlite3.open_memory() -> a new in-memory database (inside the mod's db budget).
  function sqlite3.open_memory() return (open_memory()) end
  --- sqlite3.open(path): only ":memory:" (a mod's file database is `db`).
  function sqlite3.open(path)
    if path == ":memory:" then return (open_memory()) end
    return nil, sqlite3.CANTOPEN, "sqlite3.open: mods use `db` (their db.sqlite3) or "
      .. "sqlite3.open_memory(); other files cannot be opened"
  end
  --- sqlite3.reopen(): close the mod's database and open it again (CET).
  function sqlite3.reopen() B.reopen() end
  function sqlite3.temp_directory()
    error("sqlite3.temp_directory is not available to Relic mods (the host owns temp storage)", 2)
  end

  return db, sqlite3
end
