-- relic/instrument.lua: watchdog checks placed in Lua source when it is loaded.
--
-- Sandboxed runtimes keep the JIT on.  Compiled code never calls a debug
-- hook, so instead every chunk a sandboxed runtime loads (init.lua, modules,
-- load/loadstring at run time, the shared lua/ library) is rewritten so that
-- it ticks the watchdog
--
--   __relic_wd.n = __relic_wd.n - 1 if __relic_wd.n < 0 then __relic_wd() end
--
-- at the start of every loop body (while, numeric and generic for, repeat),
-- at every function entry, and before every goto statement.  Any code that
-- runs unboundedly passes through one of those, whether it loops, recurses,
-- calls itself through pcall, metamethods, coroutines or C callbacks.  Every
-- few ticks __relic_wd() (sandbox.lua) reads the stop flag the watchdog
-- thread sets (host/runtime/watchdog.py).  The counter is a loop-carried
-- value, so the JIT compiles the tick to a subtract, a store and a compare
-- and cannot hoist it out of a loop (a plain read of the flag would be
-- hoisted: LuaJIT does not treat FFI memory as volatile for loop
-- optimization).
--
-- The rewrite works on tokens (a lexer with LuaJIT's rules for long strings,
-- long comments, escapes and numbers), inserts text only inside lines and
-- never adds a newline, so every line number, and with it every error message
-- and traceback, still points at the modder's file:line.  Labels are left
-- alone: a check after a label at the end of a block would break the "label
-- at the end of a block is outside the scope of its locals" rule; the check
-- before each goto covers goto loops instead.
--
-- The chunk becomes
--
--   local __relic_wd return function(...) <source, checks inserted>
--   end
--
-- and the loader sets that upvalue to the flag (sandbox.lua).  The name is
-- reserved: a source that uses it is refused, so mod code can neither read,
-- shadow nor replace the flag.
--
-- The upvalue counts against LuaJIT's limit of 60 upvalues per function.  A
-- function already at the limit fails to compile once the check is in
-- ("function at line N has more than 60 upvalues"); the loader then asks for
-- that function again with `slow` lines: the functions starting on those
-- lines, and every function inside them, tick through
--
--   do (true).__relic_wd() end
--
-- instead, which needs no upvalue: the boolean type's metatable (set by the
-- loader only when such a function exists) hands out the tick function.  A
-- mod that reaches that function itself can only make its own checks run
-- more often.
--
-- LuaJIT skips a UTF-8 byte order mark and a first line starting with "#"
-- (a shebang) in every chunk it loads; the rewrite does the same, keeping the
-- first line's newline so the line numbers stay.

local M = {}

local byte, sub, find, rep, gmatch = string.byte, string.sub, string.find, string.rep, string.gmatch
local concat = table.concat

M.NAME = "__relic_wd"
local CHECK = " __relic_wd.n = __relic_wd.n - 1 if __relic_wd.n < 0 then __relic_wd() end "
M.CHECK = CHECK
local SLOW_CHECK = " do (true).__relic_wd() end "
M.SLOW_CHECK = SLOW_CHECK
local PREFIX = "local __relic_wd return function(...) "
local SUFFIX = "\nend"

local KEYWORDS = {}
for w in ("and break do else elseif end false for function goto if in local nil not or "
          .. "repeat return then true until while"):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function line_of(src, i)
  local n = 1
  for _ in gmatch(sub(src, 1, i), "\n") do n = n + 1 end
  return n
end

-- A long bracket opening at i ("[" followed by "="s and "["): its level, and
-- the index just past it; nil when there is none.
local function long_open(src, i)
  local _, e = find(src, "^%[=*%[", i)
  if not e then return nil end
  return e - i - 1, e + 1
end

-- Index just past the long string/comment body starting at i, level `level`.
local function long_close(src, i, level)
  local _, e = find(src, "]" .. rep("=", level) .. "]", i, true)
  return e and e + 1
end

-- Index just past the quoted string starting at i (quote byte q).
local function quoted_end(src, i, q)
  local pat = q == 34 and '[\\\n\r"]' or "[\\\n\r']"
  local j = i + 1
  while true do
    local k = find(src, pat, j)
    if not k then return nil end
    local c = byte(src, k)
    if c == q then return k + 1 end
    if c ~= 92 then return nil end          -- a raw newline: unfinished string
    local d = byte(src, k + 1)
    if d == 10 or d == 13 then              -- escaped newline, \r\n or \n\r as one
      local d2 = byte(src, k + 2)
      if (d2 == 10 or d2 == 13) and d2 ~= d then j = k + 3 else j = k + 2 end
    elseif d == 122 then                    -- \z skips the whitespace after it, newlines too
      local _, e = find(src, "^[ \t\n\r\f\v]*", k + 2)
      j = e + 1
    else
      j = k + 2
    end
  end
end

-- LuaJIT's lex_number: identifier bytes and dots, and a sign right after the
-- exponent letter (e for decimal, p for hex).
local function number_end(src, i)
  local xp = 101                            -- 'e'
  local j = i
  local c = byte(src, j)
  if c == 48 then
    local x = byte(src, j + 1)
    if x == 120 or x == 88 then xp = 112 end  -- 'p'
  end
  local prev = 0
  while true do
    c = byte(src, j)
    if not c then return j end
    if (c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)
       or c == 95 or c >= 128 or c == 46 then
      prev = c
      j = j + 1
    elseif (c == 45 or c == 43) and (prev == xp or prev == xp - 32) then
      prev = c
      j = j + 1
    else
      return j
    end
  end
end

-- The next token after index i: kind ("name", "other", "eof") and its text
-- for names.  Used to tell a goto statement (goto followed by a name) from
-- "goto" used as a plain identifier, which LuaJIT allows.
local next_token

-- Index of the first byte after LuaJIT's chunk header (a UTF-8 BOM, then a
-- line starting with "#" up to, not including, its end of line).
local function header_end(src)
  local i = 1
  if sub(src, 1, 3) == "\239\187\191" then i = 4 end
  if byte(src, i) == 35 then
    i = find(src, "[\n\r]", i) or #src + 1
  end
  return i
end
M.header_end = header_end

-- instrument(src, tick, slow) -> new source | nil, message
-- tick (optional) is called every few thousand tokens, so the watchdog can
-- stop the rewrite of a huge chunk as it stops any other work.  slow
-- (optional): a set of line numbers; functions starting on them, and all
-- functions inside those, get SLOW_CHECK (see the top of this file).
function M.instrument(src, tick, slow)
  local out, no = { PREFIX }, 1
  local i = header_end(src)
  local last = i                   -- first byte of src not yet copied to out
  local stack, sp = {}, 0          -- open blocks: "head" (while/for before do), "loop",
                                   -- "do", "function", "if", "repeat"
  local params = 0                 -- 1: after `function`, before its "("; 2: inside the params
  local n = #src
  local count = 0
  local check = CHECK
  local slow_sp = false            -- stack depth of the outermost slow function
  local line, line_at = 1, 1       -- line number of byte line_at (counted only with `slow`)

  local function insert_after(e)   -- put the check after byte e
    no = no + 1; out[no] = sub(src, last, e)
    no = no + 1; out[no] = check
    last = e + 1
  end

  while true do
    count = count + 1
    if count % 4096 == 0 and tick then tick() end
    -- jump over whitespace and the operators that matter to nothing here
    i = find(src, "[%w_\128-\255\"'%[%-%(%)%.]", i)
    if not i then break end
    local c = byte(src, i)
    if c == 45 and byte(src, i + 1) == 45 then                  -- comment
      local level, body = long_open(src, i + 2)
      if level then
        i = long_close(src, body, level)
        if not i then return nil, "unfinished long comment" end
      else
        local nl = find(src, "[\n\r]", i + 2)
        i = nl or n + 1
      end
    elseif (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 or c >= 128 then
      local _, e = find(src, "^[%w_\128-\255]+", i)
      local word = sub(src, i, e)
      if word == M.NAME then
        return nil, "line " .. line_of(src, i) .. ": the name '" .. M.NAME .. "' is reserved"
      end
      if KEYWORDS[word] then
        if word == "function" then
          sp = sp + 1; stack[sp] = "function"
          params = 1
          if slow and not slow_sp then
            for _ in gmatch(sub(src, line_at, i - 1), "\n") do line = line + 1 end
            line_at = i
            if slow[line] then slow_sp = sp; check = SLOW_CHECK end
          end
        elseif word == "while" or word == "for" then
          sp = sp + 1; stack[sp] = "head"
        elseif word == "do" then
          if stack[sp] == "head" then
            stack[sp] = "loop"
            insert_after(e)
          else
            sp = sp + 1; stack[sp] = "do"
          end
        elseif word == "repeat" then
          sp = sp + 1; stack[sp] = "repeat"
          insert_after(e)
        elseif word == "if" then
          sp = sp + 1; stack[sp] = "if"
        elseif word == "end" then
          local k = stack[sp]
          if k ~= "loop" and k ~= "do" and k ~= "function" and k ~= "if" then
            return nil, "line " .. line_of(src, i) .. ": unexpected 'end'"
          end
          if sp == slow_sp then slow_sp = false; check = CHECK end
          stack[sp] = nil; sp = sp - 1
        elseif word == "until" then
          if stack[sp] ~= "repeat" then
            return nil, "line " .. line_of(src, i) .. ": unexpected 'until'"
          end
          stack[sp] = nil; sp = sp - 1
        elseif word == "goto" then
          local kind, text = next_token(src, e + 1)
          if kind == "name" and not KEYWORDS[text] then     -- a goto statement
            no = no + 1; out[no] = sub(src, last, i - 1)
            no = no + 1; out[no] = check
            last = i
          end
        end
      end
      i = e + 1
    elseif c >= 48 and c <= 57 then                             -- number
      i = number_end(src, i)
    elseif c == 46 then                                         -- . .. ... or .5
      local d = byte(src, i + 1)
      if d and d >= 48 and d <= 57 then i = number_end(src, i) else i = i + 1 end
    elseif c == 34 or c == 39 then                              -- quoted string
      i = quoted_end(src, i, c)
      if not i then return nil, "unfinished string" end
    elseif c == 91 then                                         -- [ or a long string
      local level, body = long_open(src, i)
      if level then
        i = long_close(src, body, level)
        if not i then return nil, "unfinished long string" end
      else
        i = i + 1
      end
    elseif c == 40 then                                         -- (
      if params == 1 then params = 2 end
      i = i + 1
    elseif c == 41 then                                         -- )
      if params == 2 then
        params = 0
        insert_after(i)
      end
      i = i + 1
    else
      i = i + 1
    end
  end
  if sp ~= 0 then return nil, "unclosed block at the end of the chunk" end
  no = no + 1; out[no] = sub(src, last)
  no = no + 1; out[no] = SUFFIX
  return concat(out)
end

next_token = function(src, i)
  while true do
    local _, ws = find(src, "^[ \t\n\r\f\v]*", i)
    i = ws + 1
    local c = byte(src, i)
    if not c then return "eof" end
    if c == 45 and byte(src, i + 1) == 45 then
      local level, body = long_open(src, i + 2)
      if level then
        i = long_close(src, body, level)
        if not i then return "eof" end
      else
        local nl = find(src, "[\n\r]", i + 2)
        if not nl then return "eof" end
        i = nl
      end
    elseif (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 or c >= 128 then
      local _, e = find(src, "^[%w_\128-\255]+", i)
      return "name", sub(src, i, e)
    else
      return "other"
    end
  end
end

return M
