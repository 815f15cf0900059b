-- relic_io: the mod's `io` library (CET's subset, confined to the mod's folder).
--
-- Built once per mod by the host: `factory(bridge, write_log)` returns `io, dir`.
-- The host (host/runtime/modio.py) checks every path and owns the open files;
-- this file gives them Lua's file API: f:read/write/lines/seek/flush/setvbuf/close,
-- io.open/lines/type/close/read/write/input/output/flush.  There is no io.popen,
-- io.tmpfile or io.stdin.  The default output (io.write, io.stdout, io.stderr)
-- goes to the mod's log, one line per "\n", as print does; the default input is
-- empty.  Strings are bytes: whatever a file holds reads back as is, and
-- whatever a mod writes lands as is (see binary_args).
return function(bridge, write_log)
  local type, error, select, setmetatable, pcall, tostring, unpack =
        type, error, select, setmetatable, pcall, tostring, unpack
  -- The mod's string table is its own to change: never call methods on strings here.
  local find, sub, gsub, char = string.find, string.sub, string.gsub, string.char

  -- Lua strings reach the host decoded as UTF-8, which bytes that are not
  -- UTF-8 would fail.  So a write with any byte >= 0x80 goes to the host's
  -- write_binary with each such byte sent as the character of the same number
  -- (two bytes of UTF-8); the host turns them back into the bytes (latin-1).
  local LATIN1 = {}
  for b = 128, 255 do LATIN1[char(b)] = char(192 + (b >= 192 and 3 or 2), 128 + b % 64) end
  local function binary_args(...)
    local n = select("#", ...)
    local high = false
    for i = 1, n do
      local v = select(i, ...)
      if type(v) == "string" and find(v, "[\128-\255]") then high = true break end
    end
    if not high then return false end
    local out = { ... }
    for i = 1, n do
      if type(out[i]) == "string" then out[i] = gsub(out[i], "[\128-\255]", LATIN1) end
    end
    return true, out, n
  end

  -- Host errors carry this file's position: re-raise them at the mod's line.
  -- Rule: call B.* only in non-tail position from a function the mod called.
  local function rethrow(ok, ...)
    if not ok then
      local msg = (...)
      if type(msg) == "string" then msg = gsub(msg, "^[^\n]-relic_io%.lua:%d+: ", "") end
      error(msg, 3)
    end
    return ...
  end
  local B = {}
  for k, f in pairs(bridge) do
    B[k] = function(...) return rethrow(pcall(f, ...)) end
  end

  local handles = setmetatable({}, { __mode = "k" })   -- file object -> handle id
  local File = { __metatable = false }
  File.__index = File
  File.__tostring = function(f)
    local h = handles[f]
    if h and bridge.is_open(h) then return "file (" .. h .. ")" end
    return "file (closed)"
  end

  local function hid(f, fname)
    local h = handles[f]
    if not h then
      error("bad argument #1 to '" .. fname .. "' (file expected; call it with a colon: f:" .. fname .. "(...))", 3)
    end
    return h
  end

  local function new_file(h)
    local f = setmetatable({}, File)
    handles[f] = h
    return f
  end

  --- f:read(...) -> one value per format: "n", "a", "l", "L" (also with "*") or a byte count.
  function File.read(f, ...)
    local h = hid(f, "read")
    local r = { B.read(h, ...) }
    if r[1] == nil and r[2] ~= nil then return nil, r[2], r[3] end
    local n = select("#", ...)
    return unpack(r, 1, n > 0 and n or 1)
  end

  --- f:write(...) -> f (strings and numbers), or nil, message, code.
  function File.write(f, ...)
    local h = hid(f, "write")
    local ok, msg, code
    local binary, args, n = binary_args(...)
    if binary then
      ok, msg, code = B.write_binary(h, unpack(args, 1, n))
    else
      ok, msg, code = B.write(h, ...)
    end
    if ok == nil then return nil, msg, code end
    return f
  end

  --- f:lines(...) -> iterator over lines (or the given formats), leaving the file open.
  function File.lines(f, ...)
    local h = hid(f, "lines")
    local n, fmts = select("#", ...), { ... }
    return function()
      if not bridge.is_open(h) then error("file is already closed", 2) end
      local ok, a, b, c = pcall(bridge.read, h, unpack(fmts, 1, n))
      if not ok then error(a, 2) end
      return a, b, c
    end
  end

  --- f:seek([whence [, offset]]) -> position from the start ("set", "cur", "end").
  function File.seek(f, whence, offset)
    local h = hid(f, "seek")
    local pos, msg, code = B.seek(h, whence, offset)
    return pos, msg, code
  end

  function File.flush(f) local h = hid(f, "flush") local r = B.flush(h) return r and true end
  function File.setvbuf(f) hid(f, "setvbuf") return true end
  function File.close(f) local h = hid(f, "close") local r = B.close(h) return r end

  local io = {}
  -- The default output: the mod's log (io.stdout, io.stderr), with a file's methods.
  local Std = { __metatable = false }
  Std.__index = Std
  Std.__tostring = function() return "file (log)" end
  local log_out = setmetatable({}, Std)
  local partial = ""
  local function log_write(_, ...)
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if type(v) ~= "string" and type(v) ~= "number" then
        error("bad argument #" .. i .. " to 'write' (string expected, got " .. type(v) .. ")", 3)
      end
      partial = partial .. tostring(v)
    end
    while true do
      local nl = find(partial, "\n", 1, true)
      if not nl then break end
      write_log(sub(partial, 1, nl - 1))
      partial = sub(partial, nl + 1)
    end
    if #partial > 4096 then write_log(partial) partial = "" end
    return log_out
  end
  local default_in, default_out = nil, log_out
  Std.write = log_write
  function Std.flush() return true end
  function Std.setvbuf() return true end
  function Std.close() return nil, "cannot close standard file" end
  function Std.read() return nil, "Bad file descriptor", 9 end
  function Std.lines() error("the standard output cannot be read", 2) end
  function Std.seek() return nil, "Illegal seek", 29 end
  io.stdout, io.stderr = log_out, log_out

  --- io.open(path [, mode]) -> file, or nil, message, code.  Paths are relative to the mod folder.
  function io.open(path, mode)
    if type(path) ~= "string" then
      error("bad argument #1 to 'open' (string expected, got " .. type(path) .. ")", 2)
    end
    local h, msg, code = B.open(path, mode)
    if not h then return nil, msg, code end
    return new_file(h)
  end

  --- io.lines([path, ...]) -> iterator over the lines of a file in the mod folder; closes it at the end.
  function io.lines(path, ...)
    if path == nil then
      if not default_in then return function() return nil end end
      return default_in:lines(...)
    end
    if type(path) ~= "string" then
      error("bad argument #1 to 'lines' (string expected, got " .. type(path) .. ")", 2)
    end
    local h, msg = B.open(path, "r", true)
    if not h then error(msg, 2) end
    local n, fmts = select("#", ...), { ... }
    return function()
      if not bridge.is_open(h) then return nil end
      local ok, a, b, c = pcall(bridge.read, h, unpack(fmts, 1, n))
      if not ok then error(a, 2) end
      if a == nil then bridge.close(h) end
      return a, b, c
    end
  end

  --- io.type(x) -> "file", "closed file" or nil.
  function io.type(x)
    if x == log_out then return "file" end
    local h = handles[x]
    if not h then return nil end
    return bridge.is_open(h) and "file" or "closed file"
  end

  function io.close(f)
    if f == nil then f = default_out end
    if f == log_out then return nil, "cannot close standard file" end
    local h = hid(f, "close")
    return (B.close(h))
  end

  function io.write(...)
    if default_out == log_out then return log_write(nil, ...) end
    return default_out:write(...)
  end

  --- io.flush(): flush the default output (the log writes whole lines as they come).
  function io.flush()
    if default_out == log_out then return true end
    return default_out:flush()
  end

  function io.read(...)
    if not default_in then return nil end
    return default_in:read(...)
  end

  --- io.input([file or path]) / io.output([file or path]): the default files.
  function io.input(x)
    if x == nil then return default_in end
    if type(x) == "string" then
      local f, msg = io.open(x, "r")
      if not f then error(msg, 2) end
      x = f
    elseif not handles[x] then
      error("bad argument #1 to 'input' (file or path expected)", 2)
    end
    default_in = x
    return x
  end

  function io.output(x)
    if x == nil then return default_out end
    if type(x) == "string" then
      local f, msg = io.open(x, "w")
      if not f then error(msg, 2) end
      x = f
    elseif not handles[x] and x ~= log_out then
      error("bad argument #1 to 'output' (file or path expected)", 2)
    end
    default_out = x
    return x
  end

  function io.popen()
    error("io.popen is not available to mods (no processes)", 2)
  end
  function io.tmpfile()
    error("io.tmpfile is not available to mods; io.open a file in your folder", 2)
  end

  --- dir(path) -> { {name=, type="file"|"directory"}, ... } for a folder inside the mod's (CET).
  local function dir(path)
    if path ~= nil and type(path) ~= "string" then
      error("bad argument #1 to 'dir' (string expected, got " .. type(path) .. ")", 2)
    end
    return (B.listdir(path))
  end

  return io, dir
end
