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

local byte, sub, find, rep, gmatch, char = string.byte, string.sub, string.find, string.rep, string.gmatch, string.char
local concat, sort = table.concat, table.sort

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

-- String concatenation.  `..` is an operator: it runs in the VM, no library
-- function is called, so nothing could hold its result to the sandbox's
-- string cap, and one `..` copies whatever it is given.  So every chain of
-- `..` at one level of an expression, `a .. b .. c`, becomes a call of the
-- sandbox's checked concatenation of that many operands (sandbox.lua):
--
--   (__relic_wd.c3(a , b , (c)))
--
-- The operands are the expressions `..` binds (Lua's precedence: arithmetic
-- and unary operators bind tighter; comparisons, `and`, `or` and everything
-- that ends an expression do not), found by following brackets, blocks and
-- statement boundaries over the tokens; no newline is added or removed.  The
-- last operand is put in parentheses (as a call's last argument a call
-- or `...` would pass all its values), and so is the call (a `return` of it
-- would be a tail call, and the mod's line would be gone from the stack).  Chains of more than MAX_ARITY operands
-- call `cn`.  Inside `slow` functions the same functions are reached through
-- the boolean metatable, `(true).__relic_cat.c3(...)`.
local CAT = " (" .. M.NAME .. "."
local SLOW_CAT = " ((true).__relic_cat."
local MAX_ARITY = 16
M.MAX_ARITY = MAX_ARITY

-- Words after which an expression goes on (or starts): they end no operand.
local OPERAND_WORDS = { ["not"] = true, ["nil"] = true, ["true"] = true, ["false"] = true }
-- Words that end an expression when they come last in it.
local ENDING_WORDS = { ["nil"] = true, ["true"] = true, ["false"] = true, ["end"] = true }
local CLOSER = { [41] = "(", [93] = "[", [125] = "{" }

-- instrument(src, tick, slow) -> new source | nil, message
-- tick (optional) is called every few thousand tokens, so the watchdog can
-- stop the rewrite of a huge chunk as it stops any other work.  slow
-- (optional): a set of line numbers; functions starting on them, and all
-- functions inside those, get SLOW_CHECK (see the top of this file).
function M.instrument(src, tick, slow)
  local i = header_end(src)
  local first = i
  -- Edits, applied in source order at the end: { position, rank, sequence, text, bytes replaced }.
  -- At one position: a chain's closing parentheses, then checks, then a chain's opening call.
  local edits, ne = {}, 0
  local function edit(pos, rank, text, skip)
    ne = ne + 1
    edits[ne] = { pos, rank, ne, text, skip or 0 }
  end
  -- Open levels: blocks ("head" (while/for before do), "loop", "do", "function", "if",
  -- "repeat") and brackets ("(", "[", "{"); level 0 is the chunk.  Per level: where the
  -- next operand of `..` starts, and the open chain (its start, operands, last operand).
  local stack, sp = {}, 0
  local opstart, cstart, cn, clast = { [0] = i }, {}, {}, {}
  local params = 0                 -- 1: after `function`, before its "("; 2: inside the params
  local n = #src
  local count = 0
  local check = CHECK
  local slow_sp = false            -- stack depth of the outermost slow function
  local line, line_at = 1, 1       -- line number of byte line_at (counted only with `slow`)
  local prev_ends = false          -- the last token can end an expression
  local prev_end = i               -- index just past the last token
  local want_start, want_last = false, false   -- the next token starts an operand / a chain's last

  local function insert_after(e)   -- put the check after byte e
    edit(e + 1, 1, check)
  end
  local function close_chain(level)
    local s = cstart[level]
    if s then
      local k = cn[level]
      edit(s, 2, (check == SLOW_CHECK and SLOW_CAT or CAT) .. (k <= MAX_ARITY and "c" .. k or "cn") .. "(")
      edit(clast[level], 3, "(")
      edit(prev_end, 0, ")))")
      cstart[level] = nil
    end
  end
  local function reset()           -- a token that no operand of `..` reaches over
    close_chain(sp)
    want_start = true
  end
  local function push(kind)
    sp = sp + 1; stack[sp] = kind; cstart[sp] = nil
    want_start = true
  end
  local function pop()
    close_chain(sp)
    stack[sp] = nil; sp = sp - 1
  end

  while true do
    count = count + 1
    if count % 4096 == 0 and tick then tick() end
    i = find(src, "[^ \t\n\r\f\v]", i)
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
    else
      local ts = i
      if want_start then opstart[sp] = ts; want_start = false end
      if want_last then clast[sp] = ts; want_last = false end
      local ends = false           -- this token can end an expression
      if (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 or c >= 128 then
        local _, e = find(src, "^[%w_\128-\255]+", i)
        local word = sub(src, i, e)
        if word == M.NAME then
          return nil, "line " .. line_of(src, i) .. ": the name '" .. M.NAME .. "' is reserved"
        end
        -- a word right after a complete expression starts the next statement
        -- (or is `and`/`or`/a block's keyword): no operand reaches over it
        if prev_ends then reset(); opstart[sp] = ts; want_start = false end
        if not KEYWORDS[word] then
          ends = true
        elseif OPERAND_WORDS[word] then
          ends = ENDING_WORDS[word] or false
        elseif word == "function" then
          push("function")
          params = 1
          if slow and not slow_sp then
            for _ in gmatch(sub(src, line_at, i - 1), "\n") do line = line + 1 end
            line_at = i
            if slow[line] then slow_sp = sp; check = SLOW_CHECK end
          end
        elseif word == "while" or word == "for" then
          reset()
          push("head")
        elseif word == "do" then
          if stack[sp] == "head" then
            reset()
            stack[sp] = "loop"
            insert_after(e)
          else
            reset()
            push("do")
          end
        elseif word == "repeat" then
          reset()
          push("repeat")
          insert_after(e)
        elseif word == "if" then
          reset()
          push("if")
        elseif word == "end" then
          local k = stack[sp]
          if k ~= "loop" and k ~= "do" and k ~= "function" and k ~= "if" then
            return nil, "line " .. line_of(src, i) .. ": unexpected 'end'"
          end
          local was_slow = sp == slow_sp
          pop()
          if was_slow then slow_sp = false; check = CHECK end
          ends = true
        elseif word == "until" then
          if stack[sp] ~= "repeat" then
            return nil, "line " .. line_of(src, i) .. ": unexpected 'until'"
          end
          pop()
          reset()
        elseif word == "goto" then
          local kind, text = next_token(src, e + 1)
          if kind == "name" and not KEYWORDS[text] then     -- a goto statement
            edit(i, 1, check)
            reset()
          else
            ends = true                                     -- goto as a plain name
          end
        else                       -- and or return local then else elseif in break
          reset()
        end
        i = e + 1
      elseif c >= 48 and c <= 57 then                             -- number
        if prev_ends then reset(); opstart[sp] = ts; want_start = false end
        i = number_end(src, i)
        ends = true
      elseif c == 46 then                                         -- . .. ... or .5
        local d = byte(src, i + 1)
        if d and d >= 48 and d <= 57 then
          i = number_end(src, i)
          ends = true
        elseif d == 46 and byte(src, i + 2) == 46 then            -- ...
          i = i + 3
          ends = true
        elseif d == 46 then                                       -- ..: a chain's operator
          if not cstart[sp] then cstart[sp] = opstart[sp]; cn[sp] = 1 end
          cn[sp] = cn[sp] + 1
          edit(i, 1, ",", 2)
          want_last = true
          i = i + 2
        else
          i = i + 1
        end
      elseif c == 34 or c == 39 then                              -- quoted string
        i = quoted_end(src, i, c)
        if not i then return nil, "unfinished string" end
        ends = true
      elseif c == 91 then                                         -- [ or a long string
        local level, body = long_open(src, i)
        if level then
          i = long_close(src, body, level)
          if not i then return nil, "unfinished long string" end
          ends = true
        else
          push("[")
          i = i + 1
        end
      elseif c == 40 or c == 123 then                             -- ( {
        if c == 40 and params == 1 then params = 2 end
        push(c == 40 and "(" or "{")
        i = i + 1
      elseif CLOSER[c] then                                       -- ) ] }
        if stack[sp] ~= CLOSER[c] then
          return nil, "line " .. line_of(src, i) .. ": unexpected '" .. char(c) .. "'"
        end
        pop()
        if c == 41 and params == 2 then
          params = 0
          insert_after(i)
        end
        i = i + 1
        ends = true
      elseif c == 58 then                                         -- : or ::
        if byte(src, i + 1) == 58 then
          if prev_ends then reset() end
          reset()
          i = i + 2
        else
          i = i + 1
        end
      elseif c == 43 or c == 45 or c == 42 or c == 47 or c == 37 or c == 94 or c == 35 then
        i = i + 1                                                 -- + - * / % ^ #: inside an operand
      else                                                        -- = == ~= < <= > >= , ; ...
        reset()
        local d = byte(src, i + 1)
        if d == 61 and (c == 61 or c == 126 or c == 60 or c == 62) then i = i + 2 else i = i + 1 end
      end
      prev_ends = ends
      prev_end = i
    end
  end
  if sp ~= 0 then return nil, "unclosed block at the end of the chunk" end
  close_chain(0)
  sort(edits, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  local out, no, last = { PREFIX }, 1, first
  for k = 1, ne do
    local ed = edits[k]
    no = no + 1; out[no] = sub(src, last, ed[1] - 1)
    no = no + 1; out[no] = ed[4]
    last = ed[1] + ed[5]
  end
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
