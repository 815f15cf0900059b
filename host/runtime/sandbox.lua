-- relic/sandbox.lua: the privileged prelude of one mod runtime.
--
-- Runs once per lupa runtime, in the runtime's real globals, before any mod
-- code.  It captures the raw standard library in locals, installs the
-- watchdog (stop flag, CPU budget, wall-clock ceiling), builds the mod's environment
-- from whitelisted and wrapped functions, and returns the "box": the table
-- through which the Python host drives the runtime.  Nothing in here is
-- reachable from mod code: mods only ever see the environment table, whose
-- functions are closures over these locals (no debug library, no getfenv, so
-- upvalues cannot be read).
--
-- Chunk arguments: cfg (plain Lua table of settings), bridge (table of
-- Python callables; they never leave this file unwrapped), patterns (the
-- interruptible pattern matcher from relic/patterns.lua), instrument (the
-- source rewriter from relic/instrument.lua).

local cfg, bridge, patterns, instrument = ...

-- Raw library, captured before anything else can run ----------------------
local type, tostring, tonumber, select, error = type, tostring, tonumber, select, error
local pairs, ipairs, next = pairs, ipairs, next
local rawget, rawset, rawequal = rawget, rawset, rawequal
local setmetatable, getmetatable = setmetatable, getmetatable
local raw_pcall, raw_xpcall, unpack, raw_load = pcall, xpcall, unpack, load
local assert, collectgarbage = assert, collectgarbage
local string, table, math, os, coroutine, bit = string, table, math, os, coroutine, bit
local str_find, str_sub, str_rep, str_format, str_byte = string.find, string.sub, string.rep, string.format, string.byte
local str_gsub, str_match, str_gmatch = string.gsub, string.match, string.gmatch
local tbl_concat = table.concat
local co_create, co_resume, co_running, co_status = coroutine.create, coroutine.resume, coroutine.running, coroutine.status
local co_yield = coroutine.yield
local traceback, getupvalue, setupvalue = debug.traceback, debug.getupvalue, debug.setupvalue
local getinfo, debug_setmetatable = debug.getinfo, debug.setmetatable
local raw_rawlen, raw_loadfile, raw_require, raw_io = rawlen, loadfile, require, io
local floor, huge = math.floor, math.huge

local MOD_ID = cfg.mod_id
local SANDBOXED = cfg.sandboxed
local MAX_STRING = cfg.max_string_bytes
local MAX_SOURCE = cfg.max_source_bytes
local MAX_LOG_LINE = cfg.max_log_line

-- Clocks and the stop flag -----------------------------------------------------
-- The budget is the CPU time of the frame thread (CLOCK_THREAD_CPUTIME_ID)
-- during one call, with a wall-clock ceiling (CLOCK_MONOTONIC) as the
-- backstop; the watchdog thread (host/runtime/watchdog.py) watches both and
-- sets WD.stop, a word in host memory that instrumented code reads every few
-- loop iterations, function entries and gotos (relic/instrument.lua, WDT
-- below).  The FFI stays a local of this chunk; mods never see it.
local ffi = require("ffi")
local now, cpu_now
if (ffi.os == "Linux" or ffi.os == "OSX") and ffi.abi("64bit") and ffi.abi("le") then
  -- struct timespec on 64-bit little-endian, read as 32-bit halves: int64
  -- fields would come back boxed (an allocation per read, which can fail at
  -- the memory cap); int32 fields are plain numbers.
  ffi.cdef [[
    typedef struct { int32_t sec_lo, sec_hi, nsec_lo, nsec_hi; } relic_timespec_t;
    int clock_gettime(int clk_id, relic_timespec_t *tp);
  ]]
  local C, ts = ffi.C, ffi.new("relic_timespec_t")
  local function reader(clk)
    return function()
      C.clock_gettime(clk, ts)
      local lo = ts.sec_lo
      if lo < 0 then lo = lo + 4294967296 end
      return ts.sec_hi * 4294967296 + lo + ts.nsec_lo * 1e-9
    end
  end
  now = reader(ffi.os == "OSX" and 6 or 1)          -- CLOCK_MONOTONIC
  cpu_now = reader(ffi.os == "OSX" and 16 or 3)     -- CLOCK_THREAD_CPUTIME_ID
else
  now, cpu_now = bridge.clock, bridge.thread_clock
end

-- host/runtime/watchdog.py's SlotMemory
ffi.cdef [[ typedef struct { volatile int32_t stop; int32_t pad; double cpu_start; } relic_wd_t; ]]
local WD = ffi.cast("relic_wd_t *", cfg.wd_address)
local STOP_CEILING = 2

-- Watchdog ------------------------------------------------------------------
-- st is shared with Python (it reads fatal/depth after a call).  Invariant:
-- once st.fatal is set the runtime is dead: WD.stop stays set, so every check
-- in mod code and every catch point (pcall, xpcall, coroutine.resume)
-- re-raises, and the host quarantines the mod and drops the runtime without
-- running any more Lua in it.
local st = {
  cpu_budget = false,    -- CPU time the current host->mod entry may use (WD.cpu_start: its start)
  wall_start = false,    -- wall clock when it began,
  wall_deadline = false, -- and its wall-clock ceiling
  depth = 0,             -- nesting of guarded calls (only the outermost sets deadlines)
  fatal = false,         -- false | "budget" | "memory"
  fatal_msg = false,
  budget = cfg.budget_s,
}
local CEILING_FACTOR, CEILING_MIN = cfg.wall_ceiling_factor, cfg.wall_ceiling_min_s
local function ceiling(budget)
  local c = budget * CEILING_FACTOR
  if c < CEILING_MIN then c = CEILING_MIN end
  return c
end
local BUDGET_FMT = "watchdog: mod '" .. MOD_ID .. "' ran past its %d ms budget and was stopped"
local CEILING_FMT = "watchdog: mod '" .. MOD_ID .. "' ran past its %d ms wall-clock limit and was stopped"
-- A callback that starts with part of the mod's frame budget already spent
-- by its other callbacks of the frame is stopped with this one.
local FRAME_FMT = "watchdog: mod '" .. MOD_ID .. "' ran past its %d ms budget for one frame " ..
                  "(all its callbacks together) and was stopped"
-- A cross-mod call runs within what is left of its caller's budget; past it,
-- only the call is stopped (the caller's fault), not the called mod.
local SOFT_MSG = "watchdog: the call was stopped: the calling mod's budget ran out"
local BUDGET_MSG = str_format(BUDGET_FMT, floor(cfg.budget_s * 1000 + 0.5))
local CEILING_MSG = str_format(CEILING_FMT, floor(ceiling(cfg.budget_s) * 1000 + 0.5))
local msg_budget = cfg.budget_s
local MEMORY_MSG = str_format("memory: mod '%s' reached its %d MiB memory cap", MOD_ID, cfg.memory_mb)
local OOM = "not enough memory"

-- Memory: lupa enforces max_memory, but its own C-API calls (building tables,
-- pushing strings, keeping references) are not protected, and an allocation
-- failure there aborts the process.  So the runtime's limit is the mod's cap
-- only while mod code runs (mem_enter/mem_leave around every outermost
-- guarded call); the rest of the time the host has headroom above it.
local mem_enter, mem_leave = bridge.mem_enter, bridge.mem_leave

local WDT   -- the tick counter instrumented code sees (below)

-- A soft call (a cross-mod call capped by its caller's budget) is unwound
-- like a fatal one, but at its outermost frame the runtime lives on.
local soft_call, soft_next = false, false

local function trip(kind, msg)
  if not st.fatal then
    mem_leave()      -- room for the error's traceback on the way out
    if soft_call and kind == "budget" then kind, msg = "soft", SOFT_MSG end
    st.fatal, st.fatal_msg = kind, msg
    -- Keep the flag set: every check raises from now on, so a handler that
    -- catches the error cannot run even one loop iteration further.
    WD.stop = 1
    WDT.n = 0
  end
  error(st.fatal_msg, 0)
end

local function stop_msg()
  return WD.stop == STOP_CEILING and CEILING_MSG or BUDGET_MSG
end

-- The flag as instrumented code sees it (relic/instrument.lua): a tick
-- counter, and a call every TICKS ticks that reads WD.stop.  Host code that
-- may have run long (a big C call) sets WDT.n = 0, so the next tick looks.
local TICKS = 32
local function stopped()
  if not st.fatal then trip("budget", stop_msg()) end
  error(st.fatal_msg, 0)
end
-- Every 8th call also looks at the clocks itself, so a runaway loop stops
-- on time even when the watchdog thread waits for a CPU (a loaded machine):
-- the wall clock first (a vDSO read), the CPU clock (a system call) only once
-- the call has run as long as its budget in wall time.
--
-- Heavy iterations: an iteration can take milliseconds without a C call
-- (`s .. "x"` copies all of a 16 MiB s), and TICKS of them would run far
-- past the budget before the flag is read.  So each look also reads the wall
-- clock: when the ticks since the last look took longer than look.heavy, the
-- next look is at the next tick (and reads the clocks too), else the window
-- doubles back up to TICKS every fourth cheap look (so the first iterations
-- of a loop are looked at closely; in full stride the clock is read every
-- fourth look); a heavy tick that one more like it would carry
-- past the budget stops the call there.  Every outermost call starts with a window of one,
-- so a loop heavy from its first iteration is caught at its second; a loop
-- that turns heavy later is caught by the collector (below) when it
-- allocates, as every heavy operation but a string comparison does.
local look = { heavy = 0.0005, window = 1, cheap = 0, skip = 0, last = 0, armed = true }   -- one local: the chunk has 200 at most
local slow_calls = 0
local over_budget   -- below
WDT = setmetatable({ n = TICKS }, {
  __call = function(t)
    if WD.stop ~= 0 then
      t.n = 0         -- stays run out: every tick from now on raises
      stopped()
    end
    local window = look.window
    if window == TICKS and look.skip < 3 then   -- cheap ticks in full stride: the clock every 4th look
      look.skip = look.skip + 1
      t.n = TICKS - 1
      return
    end
    look.skip = 0
    local t_now = now()
    local heavy = t_now - look.last > (window == TICKS and 4 * look.heavy or look.heavy)
    look.last = t_now
    if heavy then
      local c = cpu_now()
      -- window 1: the last look was heavy too, so c - look.cpu is what one tick cost; one more
      -- that would end past the budget is the same stop as running past it (as charge, below)
      if window == 1 and look.cpu and st.wall_start
         and (c - WD.cpu_start) + (c - look.cpu) > st.cpu_budget then
        trip("budget", BUDGET_MSG)
      end
      look.cpu, look.cheap = c, 0
      window = 1
    else
      look.cpu = false
      local cheap = look.cheap + 1
      if cheap >= 4 and window < TICKS then window, cheap = window + window, 0 end
      look.cheap = cheap
    end
    look.window, t.n = window, window - 1
    if not look.armed then look.armed = raw_pcall(look.arm) end
    slow_calls = slow_calls + 1
    if heavy or slow_calls >= 2 then
      slow_calls = 0
      local ws = st.wall_start
      if ws and t_now - ws >= st.cpu_budget then
        local over = over_budget()
        if over then trip("budget", over) end
      end
    end
  end,
  __metatable = false,
})

-- Allocation: a garbage-collection cycle ends about every time the mod has
-- allocated as much as it holds, so the end of each cycle (a finalizer on an
-- unreachable object, made anew after each) sets the next tick to look.  A
-- loop that allocates big strings is looked at every few iterations however
-- cheap it was before.
do
  local function collected()
    WDT.n = 0
    look.armed = raw_pcall(look.arm)   -- false at the memory cap: the next look tries again
  end
  look.arm = function() ffi.gc(ffi.new("char[1]"), collected) end
  look.armed = raw_pcall(look.arm)
end

-- The same tick, for this file's own loops over mod-sized data.
local function wd_check()
  local n = WDT.n - 1
  WDT.n = n
  if n < 0 then WDT() end
end

-- Past the budget by the clocks themselves: the second line, for where the
-- watchdog thread may not have looked yet (the end of a long C call).  The
-- CPU clock costs a system call; it cannot have run past the budget before
-- the wall clock did.
over_budget = function()
  local ws = st.wall_start
  if not ws then return false end
  local t = now()
  if t > st.wall_deadline then return CEILING_MSG end
  if t - ws >= st.cpu_budget and cpu_now() - WD.cpu_start > st.cpu_budget then return BUDGET_MSG end
  return false
end

-- Every place where Lua code can catch an error funnels through here: it
-- re-raises fatal errors and re-checks the flag and the clocks.  Near the Lua
-- stack limit a check's own call can fail with "stack overflow", which a pcall
-- loop would swallow forever, so the catch points are the second line.
local function after_catch(ok, ...)
  if not ok then
    if st.fatal then error(st.fatal_msg, 0) end
    if (...) == OOM then trip("memory", MEMORY_MSG) end
    if WD.stop ~= 0 then trip("budget", stop_msg()) end
    local over = over_budget()
    if over then trip("budget", over) end
  end
  return ok, ...
end

-- Error positions.  LuaJIT prefixes the message of a failing C function with
-- the position of the Lua code that called it, and error(msg, level) with
-- the position `level` calls up.  Where one of this file's functions sits in
-- between (string.rep, table.insert, rawlen, pcall itself), that position
-- would name this file; the same for the host's other Lua (relic/*.lua: the
-- checked concatenation, the pattern matcher, `llm`'s checks of a call's
-- options made inside a host function).  fix_position puts there the position LuaJIT would
-- have given: that of the first mod frame above the host frame named in the
-- message.  It runs where the error is caught, while the stack that raised
-- it is still there (co: the coroutine it was raised in).
local function frame(co, l)
  if co then return getinfo(co, l, "Sl") end
  return getinfo(l + 1, "Sl")
end

local function is_host(info)
  return info.what == "C" or info.currentline <= 0 or str_find(info.source, "^@relic/") ~= nil
end

local function fix_position(e, co, level)
  if type(e) ~= "string" then return e end
  local s, f, file, line = str_find(e, "^relic/([%w_]+)%.lua:(%d+): ")
  if not s then return e end
  local src, n = "@relic/" .. file .. ".lua", tonumber(line)
  local l, found = level, false
  while l < level + 200 do
    local info = frame(co, l)
    if not info then break end
    if found and not is_host(info) then
      return info.short_src .. ":" .. info.currentline .. ": " .. str_sub(e, f + 1)
    end
    if info.source == src and info.currentline == n then found = true end
    l = l + 1
  end
  return str_sub(e, f + 1)
end

-- "file:line: " of the nearest mod frame on the current stack ("" when none).
local function mod_where()
  for l = 2, 200 do
    local info = getinfo(l, "Sl")
    if not info then break end
    if not is_host(info) then return info.short_src .. ":" .. info.currentline .. ": " end
  end
  return ""
end

local function pcall_handler(e)
  if st.fatal or e == OOM then return e end
  return fix_position(e, nil, 1)
end

local function safe_pcall(f, ...)
  return after_catch(raw_xpcall(f, pcall_handler, ...))
end

local function safe_xpcall(f, handler, ...)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'xpcall' (function expected)", 2)
  end
  return after_catch(raw_xpcall(f, function(e)
    if st.fatal or e == OOM then return e end
    return handler(fix_position(e, nil, 1))
  end, ...))
end

local function resumed(co, ok, ...)
  if ok then return after_catch(ok, ...) end
  return after_catch(ok, fix_position((...), co, 0))
end

local function safe_resume(co, ...)
  return resumed(co, co_resume(co, ...))
end

local function wrap_result(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

local function safe_wrap(f)
  local co = co_create(f)
  return function(...)
    return wrap_result(resumed(co, co_resume(co, ...)))
  end
end


-- Guarded calls from the host ----------------------------------------------
local function tidy_traceback(msg)
  -- Cut the host's own frames (this file, the xpcall that runs the mod) so a
  -- traceback ends at the modder's code.
  local out = {}
  for line in str_gmatch(msg, "[^\n]+") do
    if not str_find(line, "relic/sandbox.lua", 1, true)
       and not str_find(line, "relic/patterns.lua", 1, true)
       and not str_find(line, "relic/concat.lua", 1, true)
       and not str_find(line, "[C]: in function 'raw_", 1, true) then
      out[#out + 1] = line
    end
  end
  return tbl_concat(out, "\n")
end

local function error_text(e)
  if type(e) == "string" then return e end
  if type(e) == "number" then return tostring(e) end
  local ok, s = raw_pcall(tostring, e)
  if ok and type(s) == "string" then return s end
  return "(error object of type " .. type(e) .. ")"
end

local function handler(e)
  if st.fatal then return st.fatal_msg end
  if e == OOM then return OOM end
  return tidy_traceback(traceback(error_text(fix_position(e, nil, 1)), 2))
end

local function late_stop()
  if WD.stop ~= 0 then trip("budget", stop_msg()) end
  local over = over_budget()
  if over then trip("budget", over) end
end

local function finish(ok, ...)
  local d = st.depth - 1
  st.depth = d
  if d == 0 then
    -- A single long C call (a pattern, a query) can end a callback past its
    -- budget before any check ran again: look once more here.
    if not st.fatal then raw_pcall(late_stop) end
    st.cpu_budget, st.wall_start, st.wall_deadline = false, false, false
    mem_leave()
    if st.fatal == "soft" then
      -- unwound to the host: this runtime lives on (the next arm clears WD.stop)
      local msg = st.fatal_msg
      st.fatal, st.fatal_msg, soft_call = false, false, false
      WDT.n = TICKS
      return false, msg
    end
    soft_call = false
  end
  if st.fatal then error(st.fatal_msg, 0) end
  if not ok and (...) == OOM then trip("memory", MEMORY_MSG) end
  return ok, ...
end

-- call(budget_s or nil, fn, ...) -> true, results... | false, message
-- Only the outermost call of a nesting sets the deadlines: a provider that
-- calls back into the mod from inside a host function shares its budget.
-- The host arms the watchdog thread for the same budget (Mod._invoke).
local function guarded_call(budget, fn, ...)
  if st.fatal then return false, st.fatal_msg end
  local d = st.depth
  if d == 0 then
    budget = budget or st.budget
    soft_call, soft_next = soft_next, false
    local t = now()
    st.cpu_budget, st.wall_start, st.wall_deadline = budget, t, t + ceiling(budget)
    WD.cpu_start = cpu_now()
    look.window, look.cheap, look.skip, look.last, look.cpu, WDT.n = 1, 0, 0, t, false, 0   -- look at once
    if budget ~= msg_budget then    -- formatted here, while memory is below the cap
      msg_budget = budget
      if budget < st.budget then     -- the rest of the frame's budget
        BUDGET_MSG = str_format(FRAME_FMT, floor(st.budget * 1000 + 0.5))
      else
        BUDGET_MSG = str_format(BUDGET_FMT, floor(budget * 1000 + 0.5))
      end
      CEILING_MSG = str_format(CEILING_FMT, floor(ceiling(budget) * 1000 + 0.5))
    end
    mem_enter()
  end
  st.depth = d + 1
  return finish(raw_xpcall(fn, handler, ...))
end

-- The same, for a cross-mod call capped by its caller's budget (soft stop).
local function guarded_call_soft(budget, fn, ...)
  if st.depth == 0 then soft_next = true end
  return guarded_call(budget, fn, ...)
end

-- Python <-> Lua calling convention -----------------------------------------
-- Host functions return (true, results...) or (false, message).  guard_py
-- also catches what lupa itself raises around the call (an argument that is
-- not valid UTF-8, say): lupa would hand the mod the Python exception object
-- itself as the error value, so it is turned into a plain message here.
local function py_error_text(e)
  local msg = error_text(e)
  if str_find(msg, "codec can't decode", 1, true) then
    msg = "strings passed to host functions must be valid UTF-8 (" .. msg .. ")"
  end
  return msg
end

local function checked(pok, ...)
  if st.fatal then error(st.fatal_msg, 0) end
  -- the watchdog may have stopped the call while the host function ran
  if WD.stop ~= 0 then trip("budget", stop_msg()) end
  if st.depth > 0 then mem_enter() end
  if pok then return ... end
  local e = ...
  if e == OOM then trip("memory", MEMORY_MSG) end
  return false, py_error_text(e)
end

-- Host functions run with the memory limit relaxed: lupa converts their
-- arguments and results with C-API calls that are not protected, and an
-- allocation failing there, inside the Python callback, hangs the process.
-- Whatever a host function hands the mod counts against the cap again as
-- soon as it returns.
local function guard_py(pyfn)
  return function(...)
    mem_leave()
    return checked(raw_pcall(pyfn, ...))
  end
end

-- unwrap turns (false, message) into a Lua error at the mod's call site
-- (level 2 through the tail call).  A host function returns 2 instead of true
-- when its results hold raw Python callables (inside tables, too): those are
-- replaced here by Lua closures, because Python cannot safely call into this
-- runtime to build them while the mod may be inside a coroutine.  Any other
-- raw Python object is refused: none may ever reach a mod.
local wrap_py
local function fix_value(v, depth)
  local tv = type(v)
  if tv == "userdata" then return wrap_py(v) end
  if tv == "table" and depth < 64 then
    for k, x in next, v do
      wd_check()
      local tx = type(x)
      if tx == "userdata" or tx == "table" then rawset(v, k, fix_value(x, depth + 1)) end
    end
  end
  return v
end

local function fix_all(...)
  local n = select("#", ...)
  local vals = { ... }
  for i = 1, n do vals[i] = fix_value(vals[i], 0) end
  return unpack(vals, 1, n)
end

local function unwrap(ok, ...)
  if not ok then error((...), 2) end
  if ok == 2 then return fix_all(...) end
  local n = select("#", ...)
  for i = 1, n do
    if type((select(i, ...))) == "userdata" then
      error("internal error: the host returned a raw object", 2)
    end
  end
  return ...
end

wrap_py = function(pyfn)
  local g = guard_py(pyfn)
  return function(...) return unwrap(g(...)) end
end

-- Read-only tables ----------------------------------------------------------
-- A mod only ever holds the proxy; the backing table must never reach it, not
-- through indexing, pairs/ipairs/next, rawget or table.* (select(2,
-- pairs(string)) once returned the writable backing).  Plain
-- tables nested in a backing are handed out as read-only proxies too; tables
-- with a metatable of their own (json.null) keep their identity.
local ro_backing = setmetatable({}, { __mode = "k" })   -- proxy -> backing table
local ro_cache = setmetatable({}, { __mode = "k" })     -- backing -> proxy
local ro_names = setmetatable({}, { __mode = "k" })     -- proxy -> name
local readonly

local function ro_value(p, k, v)
  if type(v) == "table" and getmetatable(v) == nil then
    return readonly(v, ro_names[p] .. "." .. tostring(k))
  end
  return v
end

local function has_plain_table(t)
  for _, v in next, t do
    if type(v) == "table" and getmetatable(v) == nil then return true end
  end
  return false
end

readonly = function(t, name)
  local p = ro_cache[t]
  if p then return p end
  local index = t
  -- A plain __index table is the fast path; only backings holding plain
  -- tables pay for a function that wraps them.
  if has_plain_table(t) then
    index = function(self, k) return ro_value(self, k, t[k]) end
  end
  p = setmetatable({}, {
    __index = index,
    __newindex = function(_, k)
      error(str_format("%s is read-only (cannot set field '%s')", name, tostring(k)), 2)
    end,
    __metatable = "locked",
    __tostring = function() return name end,
    -- #proxy: honored by LuaJIT's 5.2-compat build (setup builds it, as CET does).
    __len = function() return #t end,
  })
  ro_backing[p] = t
  ro_cache[t] = p
  ro_names[p] = name
  return p
end

-- Iterators over a proxy: the state is the proxy itself, never the backing.
local function ro_next(p, k)
  local b = ro_backing[p]
  if b == nil then error("bad argument #1 to 'next' (table expected)", 2) end
  local k2, v = next(b, k)
  if k2 == nil then return nil end
  return k2, ro_value(p, k2, v)
end

local function ro_inext(p, i)
  local b = ro_backing[p]
  if b == nil then error("bad argument #1 to 'ipairs' iterator (table expected)", 2) end
  i = i + 1
  local v = b[i]
  if v == nil then return nil end
  return i, ro_value(p, i, v)
end

-- GetMod views (see host/runtime/crossmod.py) --------------------------------
local views = setmetatable({}, { __mode = "k" })   -- view -> { id, path }
local view_get, view_keys = guard_py(bridge.view_get), guard_py(bridge.view_keys)
local bridge_getmod = guard_py(bridge.getmod)
local make_view

-- bridge.view_get/getmod return (true|2, kind, ...): "none" | "value", v |
-- "table", id, path | "function", fn (a raw Python callable: wrapped here).
local function view_value(ok, kind, value, path)
  if not ok then error(kind, 3) end
  if kind == "table" then return make_view(value, path) end
  if kind == "function" then return wrap_py(value) end
  return value
end

local view_mt = {
  __index = function(v, k)
    local info = views[v]
    return view_value(view_get(info.id, info.path, k))
  end,
  __newindex = function(v, k)
    error(str_format("GetMod('%s') is read-only (cannot set field '%s')", views[v].id, tostring(k)), 2)
  end,
  __metatable = "locked",
  __tostring = function(v) return "GetMod('" .. views[v].id .. "')" end,
}

make_view = function(id, path)
  local v = setmetatable({}, view_mt)
  views[v] = { id = id, path = path }
  return v
end

local function getmod(id)
  if type(id) ~= "string" then error("GetMod: mod id must be a string", 2) end
  local ok, kind, value, path = bridge_getmod(id)
  if not ok then error(kind, 2) end
  if kind == "table" then return make_view(value, path) end
  if kind == "function" then return wrap_py(value) end
  return value
end

-- Iteration that sees through read-only proxies and views.  Lua 5.1 has no
-- __pairs, so the sandbox's pairs/ipairs/next do it.
local function view_pairs(v)
  local info = views[v]
  local ok, keys = view_keys(info.id, info.path)
  if not ok then error(keys, 3) end
  local i = 0
  return function()
    i = i + 1
    local k = keys[i]
    if k == nil then return nil end
    return k, v[k]
  end, v, nil
end

local function safe_pairs(t)
  if ro_backing[t] then return ro_next, t, nil end
  if views[t] then return view_pairs(t) end
  return pairs(t)
end

local function view_ipairs_iter(v, i)
  i = i + 1
  local x = v[i]
  if x == nil then return nil end
  return i, x
end

local function safe_ipairs(t)
  if ro_backing[t] then return ro_inext, t, 0 end
  if views[t] then return view_ipairs_iter, t, 0 end
  return ipairs(t)
end

local function safe_next(t, k)
  if ro_backing[t] then return ro_next(t, k) end
  if views[t] then error("next() does not work on GetMod views; use pairs()", 2) end
  return next(t, k)
end

local function safe_rawget(t, k)
  local b = ro_backing[t]
  if b then return ro_value(t, k, rawget(b, k)) end
  return rawget(t, k)
end

local function safe_rawset(t, k, v)
  if ro_backing[t] or views[t] then
    error("rawset: " .. tostring(t) .. " is read-only", 2)
  end
  return rawset(t, k, v)
end

local function safe_getmetatable(x)
  local tx = type(x)
  if tx == "table" or tx == "string" then return getmetatable(x) end
  return nil   -- never hand out the metatable of host objects or cdata
end

-- Size caps for C functions the watchdog cannot interrupt --------------------
-- A C call that built a big string took a while: look at the stop flag at the
-- next tick instead of up to TICKS ticks later.
local BIG_RESULT = 256 * 1024
local function big_result(r)
  if #r > BIG_RESULT then WDT.n = 0 end
  return r
end

-- C calls charged before they run (host/runtime/ccost.py measured the rates):
-- an estimate that does not fit in what is left of the call's budget is
-- refused; one that fits runs, and the clocks are read right after it, so a
-- loop of such calls stops at the first one past the budget.  Calls estimated
-- under CHEAP seconds run unchecked (the watchdog's ticks catch their loops).
local RATES = cfg.c_cost or {}
local CHEAP = 0.00025
local function charge(fname, units, kind)
  local est = units * (RATES[kind] or 0) * 1e-9
  if est < CHEAP then return false end
  if not st.wall_start then return false end    -- outside a guarded call (host library code)
  local whole = st.cpu_budget > st.budget and st.cpu_budget or st.budget
  if est > whole then          -- it could not run within any frame (or init.lua's allowance)
    error(str_format("%s: about %.1f ms of work for its %d %s, more than the mod's %d ms budget "
                     .. "for a frame; split the work over frames", fname, est * 1000, units,
                     kind == "sort" and "comparisons" or kind == "move" and "elements to move" or "bytes",
                     floor(whole * 1000 + 0.5)), 3)
  end
  -- it would run past what is left: the same stop as running past it
  if est > st.cpu_budget - (cpu_now() - WD.cpu_start) then trip("budget", BUDGET_MSG) end
  return true
end

local function checked_after(...)
  local over = over_budget()
  if over then trip("budget", over) end
  return ...
end

-- costly(fname, units, kind, f, ...): f(...) charged as above.
local function costly(fname, units, kind, f, ...)
  if charge(fname, units, kind) then return checked_after(f(...)) end
  return f(...)
end

local function cap_error(fname, size)
  error(str_format("%s: result of %d bytes exceeds the sandbox limit of %d bytes",
                   fname, size, MAX_STRING), 3)
end

-- String concatenation ------------------------------------------------------
-- relic/instrument.lua rewrites every chain of `..` in sandboxed code,
-- `a .. b .. c`, into a call of the function below for that many operands
-- (c2 ... c16, cn for more): the result is held to the string cap before it
-- is built, with the error at the mod's line, and a big one is charged like
-- the C calls above.  Strings and numbers (the common case) take the first
-- branch; anything else goes through cat_other, which does what LuaJIT's
-- concatenation does with it (__concat metamethods, the same error but
-- without the variable's name).
do
local debug_getmetatable = debug.getmetatable
local CAT_NAME = "string concatenation (..)"
local CAT_BIG = 65536

-- A number concatenates as "%.14g": 24 bytes at most.
local function cat_len(x)
  local t = type(x)
  if t == "string" then return #x end
  if t == "number" then return 24 end
  return false
end

-- cat_check(n, ...): n bytes or fewer (exact for strings) over CAT_BIG: refused past the
-- cap, else charged; true when the clocks are to be read after the copy.
local function cat_check(n, ...)
  if n > MAX_STRING then
    n = 0
    for k = 1, select("#", ...) do n = n + #tostring((select(k, ...))) end
    if n > MAX_STRING then
      error(str_format("%s: result of %d bytes exceeds the sandbox limit of %d bytes",
                       CAT_NAME, n, MAX_STRING), 3)
    end
  end
  return charge(CAT_NAME, n, "bytes")
end

local function has_concat(x)
  local mt = debug_getmetatable(x)
  return type(mt) == "table" and rawget(mt, "__concat") ~= nil
end

-- Right to left, as LuaJIT's lj_meta_cat: strings and numbers join, any other pair
-- goes to the __concat metamethod of its left value, else of its right one.
local function cat_other(...)
  local n = select("#", ...)
  local v = { ... }
  local acc = v[n]
  for k = n - 1, 1, -1 do
    local x = v[k]
    local lx, la = cat_len(x), cat_len(acc)
    if lx and la then
      if lx + la > CAT_BIG and cat_check(lx + la, x, acc) then
        acc = checked_after(big_result(x .. acc))
      else
        acc = x .. acc
      end
    elseif has_concat(x) or has_concat(acc) then
      acc = x .. acc
    else
      local bad = x
      if lx then bad = acc end
      error("attempt to concatenate a " .. type(bad) .. " value", 2)
    end
  end
  return acc
end

local cat = {}
do
  local TEMPLATE = [[
local cat_len, cat_check, cat_other, big_result, checked_after, CAT_BIG = ...
return function(%s)
  local %s = %s
  if %s then
    local n = %s
    if n > CAT_BIG then
      if cat_check(n, %s) then return checked_after(big_result(%s)) end
      return big_result(%s)
    end
    return %s
  end
  return cat_other(%s)
end]]
  for k = 2, instrument.MAX_ARITY do
    local a, l, ls = {}, {}, {}
    for j = 1, k do a[j], l[j], ls[j] = "a" .. j, "l" .. j, "cat_len(a" .. j .. ")" end
    local args, lens = tbl_concat(a, ", "), tbl_concat(l, ", ")
    local joined = tbl_concat(a, " .. ")
    local src = str_format(TEMPLATE, args, lens, tbl_concat(ls, ", "), tbl_concat(l, " and "),
                           tbl_concat(l, " + "), args, joined, joined, joined, args)
    cat["c" .. k] = assert(raw_load(src, "@relic/concat.lua"))(cat_len, cat_check, cat_other,
                                                                 big_result, checked_after, CAT_BIG)
  end
  cat.cn = function(...)
    local total = 0
    for k = 1, select("#", ...) do
      local lk = cat_len((select(k, ...)))
      if not lk then return cat_other(...) end
      total = total + lk
    end
    if total > CAT_BIG and cat_check(total, ...) then
      return checked_after(big_result(tbl_concat({ ... })))
    end
    return tbl_concat({ ... })
  end
  for name, f in pairs(cat) do rawset(WDT, name, f) end
end
look.cat_view = readonly(cat, "concatenation")   -- (true).__relic_cat, for slow functions
end

local function safe_rep(s, n, sep)
  if type(s) == "number" then s = tostring(s) end
  if type(sep) == "number" then sep = tostring(sep) end
  if type(s) == "string" and type(n) == "number" and n > 0 then
    local total = #s * n + (type(sep) == "string" and #sep * (n - 1) or 0)
    if total > MAX_STRING or n > MAX_STRING then cap_error("string.rep", total) end
    if charge("string.rep", total, "bytes") then return checked_after(big_result(str_rep(s, n, sep))) end
  end
  return big_result(str_rep(s, n, sep))
end

local function safe_concat(t, sep, i, j)
  if type(t) == "table" then
    i = i or 1
    j = j or #t
    local total, seplen = 0, (type(sep) == "string" and #sep or 0)
    for k = i, j do
      wd_check()
      local v = t[k]
      if type(v) == "string" then total = total + #v + seplen
      elseif type(v) == "number" then total = total + 24 + seplen
      else break end          -- the C function raises its own error for it
      if total > MAX_STRING then cap_error("table.concat", total) end
    end
    local n = j - i + 1
    if charge("table.concat", total + n * ((RATES.concat or 0) / (RATES.bytes or 1)), "bytes") then
      return checked_after(big_result(tbl_concat(t, sep, i, j)))
    end
  end
  return big_result(tbl_concat(t, sep, i, j))
end

local function safe_date(fmt, t)
  if type(fmt) == "string" and #fmt > 256 then
    error("os.date: format string longer than 256 bytes", 2)
  end
  return os.date(fmt, t)
end

local function safe_collectgarbage(opt, arg)
  opt = opt or "collect"
  if opt == "collect" or opt == "count" or opt == "step" then
    return collectgarbage(opt, arg)
  end
  error(str_format("collectgarbage('%s') is not allowed in the sandbox", tostring(opt)), 2)
end

-- Strings ------------------------------------------------------------------
local safe_string = {}
for k, v in pairs(string) do safe_string[k] = v end
safe_string.dump = nil
safe_string.rep = safe_rep
-- Whole-string C functions: charged by the bytes they read or make.
for _, fname in ipairs { "upper", "lower", "reverse" } do
  local f = string[fname]
  safe_string[fname] = function(s, ...)
    if type(s) == "string" and #s > 65536 then return costly("string." .. fname, #s, "bytes", f, s, ...) end
    return f(s, ...)
  end
end
do
  local f = string.sub
  safe_string.sub = function(s, i, j)
    if type(s) == "string" and #s > 65536 then return costly("string.sub", #s, "bytes", f, s, i, j) end
    return f(s, i, j)
  end
  local fmt = string.format
  -- The bytes of its string arguments a format's result holds at least: its
  -- literal text, and each %s (up to its precision) and %q string.
  local function format_floor(form, ...)
    local n, k, i = 0, 0, 1
    while true do
      wd_check()
      local s, e, prec, conv = str_find(form, "%%[-+ #0]*%d*(%.?%d*)(.)", i)
      if not s then break end
      n = n + (s - i)
      i = e + 1
      if conv ~= "%" then
        k = k + 1
        local v = select(k, ...)
        if (conv == "s" or conv == "q") and type(v) == "string" then
          local p = conv == "s" and prec ~= "" and (tonumber(str_sub(prec, 2)) or 0)
          n = n + ((p and p < #v) and p or #v)
        end
      end
    end
    return n + #form - i + 1
  end
  -- Held to the string cap: refused before it runs when its strings alone are
  -- past it; anything else (%q's escapes, __tostring results) checked after.
  safe_string.format = function(form, ...)
    local n = type(form) == "string" and #form or 0
    for k = 1, select("#", ...) do
      local v = select(k, ...)
      if type(v) == "string" then n = n + #v end
    end
    local r
    if n > 65536 then
      if n > MAX_STRING then
        local lo = format_floor(form, ...)
        if lo > MAX_STRING then cap_error("string.format", lo) end
      end
      r = costly("string.format", n, "bytes", fmt, form, ...)
    else
      r = fmt(form, ...)
    end
    if #r > MAX_STRING then cap_error("string.format", #r) end
    return r
  end
end
if SANDBOXED then
  local guard = patterns.new { cap = cfg.pattern_cost_cap, raw = string, wd = WDT, costly = costly,
                               max_string = MAX_STRING }
  safe_string.find = guard.find
  safe_string.match = guard.match
  safe_string.gmatch = guard.gmatch
  safe_string.gsub = guard.gsub
  safe_string.gfind = nil
end

-- Loading code ---------------------------------------------------------------
local env, libenv   -- forward
local loaded = {}    -- require cache of this mod: name -> module value
local LOADING = {}   -- sentinel for circular requires

-- Functions at LuaJIT's upvalue limit tick through the boolean metatable
-- (relic/instrument.lua); it is set the first time such a function loads.
local UPVALUE_LIMIT = "function at line (%d+) has more than %d+ upvalues"
local MAX_SLOW = 32
local slow_ticks = false
local function enable_slow_ticks()
  if slow_ticks then return end
  slow_ticks = true
  local NAME = instrument.NAME
  debug_setmetatable(true, {
    __index = function(_, k)
      if k == NAME then return wd_check end
      if k == "__relic_cat" then return look.cat_view end
      error("attempt to index a boolean value", 2)
    end,
    __metatable = false,
  })
end

-- A chunk name as LuaJIT shows it in messages (lj_debug_shortname's rules).
local ID_SIZE = 60
local function short_src(name)
  local c = str_sub(name, 1, 1)
  if c == "=" then return str_sub(name, 2, ID_SIZE) end
  if c == "@" then
    if #name - 1 >= ID_SIZE then return "..." .. str_sub(name, -(ID_SIZE - 4)) end
    return str_sub(name, 2)
  end
  local len = (str_find(name, "%c") or #name + 1) - 1
  if len > ID_SIZE - 12 then len = ID_SIZE - 12 end
  if len < #name then
    if len > ID_SIZE - 15 then len = ID_SIZE - 15 end
    return '[string "' .. str_sub(name, 1, len) .. '..."]'
  end
  return '[string "' .. name .. '"]'
end

-- The chunk compiled again with the watchdog checks in (relic/instrument.lua).
local function instrumented(src, chunkname, fenv)
  local slow
  for _ = 1, MAX_SLOW do
    local isrc, ierr = instrument.instrument(src, wd_check, slow)
    if not isrc then
      local line, msg = str_match(ierr, "^line (%d+): (.*)")
      if line then return nil, str_format("%s:%s: %s", short_src(chunkname), line, msg) end
      return nil, str_format("%s: %s", short_src(chunkname), ierr)
    end
    local outer, err = raw_load(isrc, chunkname, "t", fenv)
    if outer then
      if slow then enable_slow_ticks() end
      return outer
    end
    local line = tonumber((str_match(tostring(err), UPVALUE_LIMIT)))
    if not line or (slow and slow[line]) then
      return nil, "cannot add the watchdog checks: " .. tostring(err)
    end
    slow = slow or {}
    slow[line] = true
  end
  return nil, "cannot add the watchdog checks: more than " .. MAX_SLOW
              .. " functions at LuaJIT's limit of 60 upvalues"
end

-- load_text(src, chunkname, fenv [, mode]) -> function | nil, message
-- chunkname as LuaJIT takes it ("@file", "=name", or source text shown as
-- [string "..."]).
local function load_text(src, chunkname, fenv, mode)
  if type(src) ~= "string" then return nil, "source must be a string" end
  if #src > MAX_SOURCE then
    return nil, str_format("source of %d bytes exceeds the limit of %d bytes", #src, MAX_SOURCE)
  end
  if str_byte(src, 1) == 27 then return nil, "loading precompiled bytecode is not allowed" end
  -- "t" unless the caller asked for binary only: LuaJIT then refuses the
  -- text with its own message, and bytecode never gets this far.
  if mode == nil or str_find(mode, "t", 1, true) then mode = "t" end
  local f, err = raw_load(src, chunkname, mode, fenv)
  if not f or not SANDBOXED then return f, err end
  -- It compiles as written (so syntax errors read as usual); now compile it
  -- again with the watchdog checks in and hand out that.
  local outer
  outer, err = instrumented(src, chunkname, fenv)
  if not outer then return nil, err end
  f = outer()
  if getupvalue(f, 1) == instrument.NAME then
    setupvalue(f, 1, WDT)   -- the chunk's only upvalue, when it has checks
  end
  return f
end

-- A load reader's pieces, read as LuaJIT reads them: strings (numbers as
-- strings) until nil or "", an error inside the reader ends the load with
-- that error as the message.
local function collect_reader(reader)
  local parts, total = {}, 0
  while true do
    local ok, piece = safe_pcall(reader)
    if not ok then return nil, piece end
    if piece == nil or piece == "" then break end
    if type(piece) == "number" then piece = tostring(piece) end
    if type(piece) ~= "string" then return nil, mod_where() .. "reader function must return a string" end
    total = total + #piece
    if total > MAX_SOURCE then
      return nil, str_format("source exceeds the limit of %d bytes", MAX_SOURCE)
    end
    parts[#parts + 1] = piece
  end
  return tbl_concat(parts)
end

-- load(chunk [, chunkname [, mode [, env]]]) as LuaJIT's, text only.
local function safe_load(chunk, chunkname, mode, fenv)
  if chunkname ~= nil and type(chunkname) ~= "string" and type(chunkname) ~= "number" then
    error("bad argument #2 to 'load' (string expected, got " .. type(chunkname) .. ")", 2)
  end
  if mode ~= nil and type(mode) ~= "string" then
    error("bad argument #3 to 'load' (string expected, got " .. type(mode) .. ")", 2)
  end
  if fenv ~= nil and type(fenv) ~= "table" then
    return nil, "bad argument #4 to 'load' (table expected)"
  end
  local src = chunk
  if type(chunk) == "number" then
    src = tostring(chunk)
  elseif type(chunk) == "function" then
    local err
    src, err = collect_reader(chunk)
    if not src then return nil, err end
    if chunkname == nil then chunkname = "=(load)" end
  elseif type(chunk) ~= "string" then
    error("bad argument #1 to 'load' (function expected, got " .. type(chunk) .. ")", 2)
  end
  if chunkname == nil then chunkname = src end
  return load_text(src, tostring(chunkname), fenv or env, mode)
end

local function safe_loadstring(s, chunkname)
  if type(s) ~= "string" and type(s) ~= "number" then
    error("bad argument #1 to 'loadstring' (string expected, got " .. type(s) .. ")", 2)
  end
  return safe_load(s, chunkname)
end

local read_source = guard_py(bridge.read_source)

local function safe_loadfile(path)
  if type(path) ~= "string" then return nil, "loadfile: path must be a string" end
  local ok, where, chunkname, src = read_source("file", path)
  if not ok then return nil, where end
  return load_text(src, chunkname, where == "lib" and libenv or env)
end

local function safe_dofile(path)
  if type(path) ~= "string" then error("dofile: path must be a string", 2) end
  local ok, where, chunkname, src = read_source("file", path)
  if not ok then error(where, 2) end
  local f, err = load_text(src, chunkname, where == "lib" and libenv or env)
  if not f then error(err, 2) end
  return f()
end

-- Trusted mods: the same loaders without the sandbox's checks, in the mod's
-- globals, with relative paths taken from the mod's folder.
local FOLDER = cfg.folder
local function mod_path(path)
  if type(path) == "string" and FOLDER and not str_find(path, "^[/\\]")
     and not str_find(path, "^%a:") then
    return FOLDER .. "/" .. path
  end
  return path
end

local function trusted_loadfile(path, mode, fenv)
  if type(path) ~= "string" or not FOLDER or str_find(path, "^[/\\]") or str_find(path, "^%a:") then
    return raw_loadfile(path, mode, fenv or env)
  end
  local fh, err = raw_io.open(FOLDER .. "/" .. path, "rb")
  if not fh then
    local s, e = str_find(err, FOLDER .. "/", 1, true)
    if s then err = str_sub(err, e + 1) end
    return nil, "cannot open " .. err
  end
  local src = fh:read("*a")
  fh:close()
  return raw_load(src, "@mods/" .. MOD_ID .. "/" .. path, mode, fenv or env)
end

local function trusted_dofile(path)
  local f, err = trusted_loadfile(path)
  if not f then error(err, 2) end
  return f()
end

local function trusted_load(chunk, chunkname, mode, fenv)
  if type(chunk) == "function" then
    -- read here: an error inside the reader would otherwise reach the host's
    -- error handler (which adds a traceback) before load catches it
    local src, err = collect_reader(chunk)
    if not src then return nil, err end
    return raw_load(src, chunkname or "=(load)", mode, fenv or env)
  end
  return raw_load(chunk, chunkname, mode, fenv or env)
end

-- Library modules (lua/) run in libenv and are handed to mods read-only, so a
-- mod cannot change the code the host itself relies on (Cron, async, json).
local lib_loaded = {}

local function require_lib(name)
  local m = lib_loaded[name]
  if m ~= nil then return m end
  local ok, where, chunkname, src = read_source("lib", name)
  if not ok then error(where, 0) end
  local f, err = load_text(src, chunkname, libenv)
  if not f then error(err, 0) end
  m = f(name)
  if m == nil then m = true end
  lib_loaded[name] = m
  return m
end

-- require(name) -> module | nil, message.  As CET's: a module that cannot be
-- found (or loaded, or that fails while it runs) gives nil and the reason
-- instead of an error, and a module's failure is logged.  Trusted mods then
-- also try LuaJIT's own require (package.preload, C modules, ffi).
local log   -- below

local function safe_require(name)
  if type(name) ~= "string" then error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2) end
  local m = loaded[name]
  if m == LOADING then error("require: circular require of '" .. name .. "'", 2) end
  if m ~= nil then return m end
  local ok, where, chunkname, src = read_source("module", name)
  if not ok then
    if not SANDBOXED then
      local okr, res = raw_pcall(raw_require, name)
      if okr then return res end
    end
    return nil, where
  end
  if where == "lib" then
    local okl, res = raw_pcall(require_lib, name)
    if not okl then return nil, res end
    m = res
    if type(m) == "table" then m = readonly(m, name) end
  else
    -- One file, one module: require("a.b") and require("a/b") share it.
    local prev = loaded[chunkname]
    if prev == LOADING then error("require: circular require of '" .. name .. "'", 2) end
    if prev ~= nil then loaded[name] = prev; return prev end
    local f, err = load_text(src, chunkname, env)
    if not f then return nil, err end
    loaded[name] = LOADING
    loaded[chunkname] = LOADING
    local okr, res = safe_pcall(f, name)
    if not okr then
      loaded[name] = nil; loaded[chunkname] = nil
      res = error_text(res)
      log("error", "cannot load module '" .. name .. "': " .. res)
      return nil, res
    end
    m = res
    if m == nil then m = true end
    loaded[chunkname] = m
  end
  loaded[name] = m
  if not SANDBOXED and package and package.loaded then package.loaded[name] = m end
  return m
end

-- Logging ------------------------------------------------------------------
local pylog = guard_py(bridge.log)
local LEVELS = { trace = true, debug = true, info = true, warning = true, error = true, critical = true }

local function escape_bytes(c) return str_format("\\x%02X", str_byte(c)) end

log = function(level, text)
  if #text > MAX_LOG_LINE then text = str_sub(text, 1, MAX_LOG_LINE) .. " [...]" end
  -- lupa decodes strings as UTF-8 on the way to Python; escape whatever
  -- would not decode instead of failing the print.
  if str_find(text, "[\128-\255]") then
    if pylog(level, text) then return end
    text = str_gsub(text, "[\128-\255]", escape_bytes)
  end
  pylog(level, text)
end

-- The line is cut at MAX_LOG_LINE: each value is cut before they are joined,
-- so a print of many big strings builds no string past that.
local function safe_print(...)
  local n = select("#", ...)
  local parts, total = {}, 0
  for i = 1, n do
    local s = tostring((select(i, ...)))
    if total > MAX_LOG_LINE then s = "" elseif #s > MAX_LOG_LINE then s = str_sub(s, 1, MAX_LOG_LINE + 1) end
    total = total + #s + 1
    parts[i] = s
  end
  log("info", tbl_concat(parts, "\t"))
end

local spdlog = {}
do
  local format = safe_string.format   -- the capped one, as the host has it (the mod's string table is its own)
  for level in pairs(LEVELS) do
    spdlog[level] = function(msg, ...)
      if select("#", ...) > 0 then msg = format(msg, ...) end
      log(level, tostring(msg))
    end
  end
end

-- Environments ---------------------------------------------------------------
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local safe_coroutine = {
  create = co_create, resume = safe_resume, running = co_running,
  status = co_status, wrap = safe_wrap, yield = co_yield,
  isyieldable = coroutine.isyieldable,
}
local safe_table = copy(table)
safe_table.concat = safe_concat
-- table.insert/remove/sort write with raw sets: refuse read-only proxies and
-- GetMod views instead of letting them grow fields of their own.
-- insert/remove at a position move the elements after it, sort (without a
-- Lua comparator, whose calls the watchdog checks) does n*log2(n)
-- comparisons in C: charged before they run.
local log2 = math.log(2)
for _, fname in ipairs { "insert", "remove", "sort" } do
  local f = table[fname]
  safe_table[fname] = function(t, ...)
    if ro_backing[t] or views[t] then
      error(str_format("table.%s: %s is read-only", fname, tostring(t)), 2)
    end
    if type(t) == "table" then
      local n = #t
      if n > 4096 then
        local nargs = select("#", ...)
        if fname == "sort" and (...) == nil then
          return costly("table.sort", floor(n * math.log(n) / log2), "sort", f, t, ...)
        elseif fname == "insert" and nargs >= 2 and type((...)) == "number" then
          return costly("table.insert", n - (...), "move", f, t, ...)
        elseif fname == "remove" and nargs >= 1 and type((...)) == "number" then
          return costly("table.remove", n - (...), "move", f, t, ...)
        end
      end
    end
    return f(t, ...)
  end
end
-- Lua 5.2 names that CET's LuaJIT (LUAJIT_ENABLE_LUA52COMPAT) has.
if safe_table.unpack == nil then safe_table.unpack = unpack end
if safe_table.pack == nil then
  safe_table.pack = function(...) return { n = select("#", ...), ... } end
end
local safe_os = { clock = os.clock, time = os.time, date = safe_date, difftime = os.difftime }

-- rawlen: the length without __len (a 5.1 build's # is already raw there);
-- a read-only proxy reports its backing table's.
local function safe_rawlen(v)
  local b = ro_backing[v]
  if b then v = b end
  if raw_rawlen then return raw_rawlen(v) end
  local tv = type(v)
  if tv ~= "table" and tv ~= "string" then
    error("bad argument #1 to 'rawlen' (table or string expected)", 2)
  end
  return #v
end

local function base_env()
  local e = {
    assert = assert, error = error, ipairs = safe_ipairs, next = safe_next,
    pairs = safe_pairs, pcall = safe_pcall, xpcall = safe_xpcall,
    rawequal = rawequal, rawget = safe_rawget, rawset = safe_rawset, rawlen = safe_rawlen,
    select = select, setmetatable = setmetatable, getmetatable = safe_getmetatable,
    tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
    collectgarbage = safe_collectgarbage, print = safe_print,
    load = safe_load, loadstring = safe_loadstring,
    _VERSION = _VERSION,
  }
  e._G = e
  return e
end

-- libenv: host library code (lua/, host/runtime/lua/).  Safe functions, raw string library (the
-- library code is ours and its patterns are linear), not reachable by mods.
-- Its tables are the host's own: the mod's copies below may change freely.
libenv = base_env()
libenv.string = string
libenv.table = safe_table
libenv.math = math
libenv.os = safe_os
libenv.bit = bit
libenv.coroutine = safe_coroutine
libenv.require = require_lib

-- Each mod has its own runtime, so its library tables are its own writable
-- copies (CET mods add string.split, table.unpack, ...).  The host's code
-- keeps what it captured at the top of this file and in libenv.
if SANDBOXED then
  env = base_env()
  env.string = safe_string
  env.table = copy(safe_table)
  env.math = copy(math)
  env.os = copy(safe_os)
  env.bit = copy(bit)
  env.coroutine = copy(safe_coroutine)
  env.require = safe_require
  env.dofile = safe_dofile
  env.loadfile = safe_loadfile
else
  -- Trusted: the full standard library, JIT on, no watchdog.  Only the host
  -- bridge (python) stays out of reach.  Code it loads runs in its globals.
  env = {}
  for k, v in pairs(_G) do env[k] = v end
  env.python = nil
  env._G = env
  env.print = safe_print
  env.string = copy(string)
  env.table = copy(table)
  env.table.unpack, env.table.pack = safe_table.unpack, safe_table.pack
  env.math = copy(math)
  env.os = copy(os)
  env.bit = copy(bit)
  env.coroutine = copy(coroutine)
  env.rawlen = safe_rawlen
  env.require = safe_require
  env.load = trusted_load
  env.loadstring = trusted_load
  env.loadfile = trusted_loadfile
  env.dofile = trusted_dofile
  local tio = copy(io)
  tio.open = function(path, ...) return raw_io.open(mod_path(path), ...) end
  tio.lines = function(path, ...)
    if path == nil then return raw_io.lines() end
    return raw_io.lines(mod_path(path), ...)
  end
  tio.input = function(x) return raw_io.input(mod_path(x)) end
  tio.output = function(x) return raw_io.output(mod_path(x)) end
  env.io = tio
  if package and cfg.package_path then package.path = cfg.package_path end
end
-- Method calls on strings ("x"):rep(...) go through the string metatable:
-- point it at the mod's string table (so its own additions work as methods)
-- and, in the sandbox, lock it.
do
  local smt = getmetatable("")
  smt.__index = env.string
  if SANDBOXED then smt.__metatable = "locked" end
end

env.spdlog = readonly(spdlog, "spdlog")
env.GetMod = getmod

-- Library instances the host drives ------------------------------------------
local report = guard_py(bridge.report)
local stats = { timers = 0, waiting = 0, tasks = 0 }

local cron_mod = require_lib("cron")
local cron = cron_mod.new {
  report = function(msg) report("Cron", msg) end,
  traceback = function(e) return tidy_traceback(traceback(error_text(e), 2)) end,
  max_timers = cfg.max_timers, stats = stats,
}
local async_mod = require_lib("async")
local sched = async_mod.new {
  report = function(msg) report("async", msg) end,
  traceback = function(co, e) return tidy_traceback(traceback(co, error_text(e))) end,
  max_tasks = cfg.max_tasks, stats = stats,
}
local json = require_lib("json")

env.Cron = readonly(cron.api, "Cron")
env.json = readonly(json, "json")
env.async = sched.async
env.await = sched.await
loaded.json = env.json
loaded.cron = readonly(cron_mod, "cron")
loaded.async = readonly(async_mod, "async")

-- The box -------------------------------------------------------------------
local box = {
  env = env,
  st = st,
  stats = stats,
  now = now,
  call = guarded_call,
  call_soft = guarded_call_soft,
  wrap_py = wrap_py,
  readonly = readonly,
  cron_tick = cron.tick,
  async_step = sched.step,
  require_lib = require_lib,
}

-- log_info(text): a line in the mod's log, as print writes it (io.stdout).
function box.log_info(text)
  log("info", text)
end

function box.load_chunk(src, chunkname)
  return load_text(src, chunkname, env)
end

-- expose(name, value, ro): put a value into the mod's globals; tables are
-- handed out read-only unless ro == false.
function box.expose(name, value, ro)
  if type(value) == "table" and ro ~= false then value = readonly(value, name) end
  env[name] = value
end

-- Python-side helper: mod.api tables built from Python callables.
function box.api_table(name, fns, ro)
  local t = {}
  for k, f in pairs(fns) do t[k] = wrap_py(f) end
  if ro == false then return t end
  return readonly(t, name)
end

-- walk(root, k1, k2, ...): raw lookups along a path (GetMod views); no
-- metamethod of the owning mod runs.
function box.walk(root, ...)
  local t = root
  for i = 1, select("#", ...) do
    if type(t) ~= "table" then return nil end
    t = rawget(t, (select(i, ...)))
  end
  return t
end

return box
