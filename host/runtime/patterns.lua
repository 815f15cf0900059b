-- relic/patterns.lua: bounded string.find/match/gmatch/gsub for sandboxed mods.
--
-- LuaJIT's pattern matcher is C code: the watchdog cannot stop it midway, and a backtracking pattern over a long subject ("a*a*a*b",
-- ".-.-.-x") can run for minutes in one call.  Each wrapped call first
-- estimates the matcher's worst-case work from the pattern and the subject:
--
--   cost = starts * (items + prod(reach_q + 1))
--
-- where starts is the number of start positions (1 when anchored), items is
-- the number of pattern items, and the product runs over the quantifiers that
-- can backtrack (a quantifier followed by something that can fail), reach_q
-- being the longest run of subject bytes that quantifier's class can eat.  The
-- estimate is an upper bound of the backtracking tree; it is cheap when the
-- subject is short and only scans the subject when that bound is too high.
--
-- Calls under the cap use the C matcher.  Calls over it run the same
-- algorithm ported to Lua below, which is slow but checks the watchdog's stop
-- flag in every loop, so the watchdog stops it when the mod's budget runs out.  The results are the same
-- either way (tests compare them on random patterns).

local M = {}

local byte, sub, char, format = string.byte, string.sub, string.char, string.format
local concat = table.concat
local type, tostring, tonumber, error, select = type, tostring, tonumber, error, select
local floor = math.floor
local ipairs, unpack, pcall, setmetatable = ipairs, unpack, pcall, setmetatable

local CAP_UNFINISHED, CAP_POSITION = -1, -2
-- LuaJIT built with LUAJIT_ENABLE_LUA52COMPAT (as CET builds it) makes
-- find/match return nil for a start past the end instead of clamping it.
local LJ52 = string.find("", "", 2) == nil
local MAXCAPTURES = 32

local P_OPEN, P_CLOSE, P_ESC, P_DOLLAR = 40, 41, 37, 36
local P_LBRACK, P_RBRACK, P_CARET, P_DOT, P_DASH = 91, 93, 94, 46, 45
local Q_OPT, Q_STAR, Q_PLUS, Q_MIN = 63, 42, 43, 45

local function isdigit(c) return c and c >= 48 and c <= 57 end

function M.new(opts)
  local raw = opts.raw            -- the unwrapped string library
  local cap = opts.cap            -- estimated matcher steps allowed in C
  local rfind, rmatch, rgmatch, rgsub = raw.find, raw.match, raw.gmatch, raw.gsub
  -- The watchdog's tick (sandbox.lua's WDT): every loop of the Lua matcher
  -- ticks it, as instrumented mod code does.  Without one (tests), a counter
  -- that never runs out.
  local wd = opts.wd or { n = math.huge }
  -- costly(fname, units, kind, f, ...): sandbox.lua's charge for C calls that
  -- can run long (the subject's bytes, every one a possible match), checked
  -- against what is left of the budget before the C matcher runs.
  local costly = opts.costly or function(_, _, _, f, ...) return f(...) end
  -- The sandbox's string cap: a gsub result past it is an error (the Lua
  -- matcher stops as it passes it; the C one is checked when it returns).
  local max_string = opts.max_string or math.huge
  local BIG = 65536

  -- Character classes ------------------------------------------------------
  -- Built lazily from the C matcher itself, so %a etc. mean exactly what the
  -- C version means.
  local class_sets = {}
  local function class_set(letter)
    local set = class_sets[letter]
    if set then return set end
    set = {}
    local pat = "^%" .. char(letter)
    for b = 0, 255 do set[b] = rfind(char(b), pat) ~= nil end
    class_sets[letter] = set
    return set
  end

  local function is_class_letter(cl)
    return (cl >= 65 and cl <= 90) or (cl >= 97 and cl <= 122)
  end

  local KNOWN = {}
  for _, l in ipairs { "a", "c", "d", "g", "l", "p", "s", "u", "w", "x", "z" } do
    KNOWN[byte(l)] = true
    KNOWN[byte(l:upper())] = true
  end

  local function match_class(c, cl)
    if KNOWN[cl] then return class_set(cl)[c] end
    return cl == c
  end

  -- ms: { s, slen, p, plen, level, init = {}, len = {} }
  -- Index just past the class starting at pi, or nil and a message.
  local function class_end_or_nil(p, plen, pi)
    local c = byte(p, pi)
    pi = pi + 1
    if c == P_ESC then
      if pi > plen then return nil, "malformed pattern (ends with '%')" end
      return pi + 1
    elseif c == P_LBRACK then
      if byte(p, pi) == P_CARET then pi = pi + 1 end
      repeat
        if pi > plen then return nil, "malformed pattern (missing ']')" end
        local cc = byte(p, pi)
        pi = pi + 1
        if cc == P_ESC and pi <= plen then pi = pi + 1 end
      until byte(p, pi) == P_RBRACK
      return pi + 1
    end
    return pi
  end

  local function class_end(ms, pi)
    local ep, msg = class_end_or_nil(ms.p, ms.plen, pi)
    if not ep then error(msg, 0) end
    return ep
  end

  -- p: pattern, pi: index of '[', ec: index of the closing ']'
  local function match_bracket(c, p, pi, ec)
    local sig = true
    if byte(p, pi + 1) == P_CARET then
      sig = false
      pi = pi + 1
    end
    pi = pi + 1
    while pi < ec do
      local pc = byte(p, pi)
      if pc == P_ESC then
        pi = pi + 1
        if match_class(c, byte(p, pi)) then return sig end
      elseif byte(p, pi + 1) == P_DASH and pi + 2 < ec then
        pi = pi + 2
        if pc <= c and c <= byte(p, pi) then return sig end
      elseif pc == c then
        return sig
      end
      pi = pi + 1
    end
    return not sig
  end

  local function single(c, p, pi, ep)
    local pc = byte(p, pi)
    if pc == P_DOT then return true end
    if pc == P_ESC then return match_class(c, byte(p, pi + 1)) end
    if pc == P_LBRACK then return match_bracket(c, p, pi, ep - 1) end
    return pc == c
  end

  local do_match

  local function max_expand(ms, si, pi, ep)
    local s, slen, p = ms.s, ms.slen, ms.p
    local i = 0
    while si + i <= slen and single(byte(s, si + i), p, pi, ep) do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      i = i + 1
    end
    while i >= 0 do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      local r = do_match(ms, si + i, ep + 1)
      if r then return r end
      i = i - 1
    end
    return nil
  end

  local function min_expand(ms, si, pi, ep)
    local s, slen, p = ms.s, ms.slen, ms.p
    while true do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      local r = do_match(ms, si, ep + 1)
      if r then return r end
      if si <= slen and single(byte(s, si), p, pi, ep) then
        si = si + 1
      else
        return nil
      end
    end
  end

  local function start_capture(ms, si, pi, what)
    local level = ms.level
    if level >= MAXCAPTURES then error("too many captures", 0) end
    ms.init[level + 1] = si
    ms.len[level + 1] = what
    ms.level = level + 1
    local r = do_match(ms, si, pi)
    if not r then ms.level = ms.level - 1 end
    return r
  end

  local function end_capture(ms, si, pi)
    local l = nil
    for i = ms.level, 1, -1 do
      if ms.len[i] == CAP_UNFINISHED then l = i; break end
    end
    if not l then error("invalid pattern capture", 0) end
    ms.len[l] = si - ms.init[l]
    local r = do_match(ms, si, pi)
    if not r then ms.len[l] = CAP_UNFINISHED end
    return r
  end

  local function match_capture(ms, si, d)
    local l = d - 48
    if l < 1 or l > ms.level or ms.len[l] == CAP_UNFINISHED then
      error("invalid capture index", 0)
    end
    local len = ms.len[l]
    if len < 0 then return nil end
    local s = ms.s
    if ms.slen - si + 1 >= len
       and sub(s, ms.init[l], ms.init[l] + len - 1) == sub(s, si, si + len - 1) then
      return si + len
    end
    return nil
  end

  local function match_balance(ms, si, pi)
    local p, s = ms.p, ms.s
    if pi + 1 > ms.plen then error("unbalanced pattern", 0) end
    if si > ms.slen or byte(s, si) ~= byte(p, pi) then return nil end
    local b, e = byte(p, pi), byte(p, pi + 1)
    local cont = 1
    for i = si + 1, ms.slen do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      local c = byte(s, i)
      if c == e then
        cont = cont - 1
        if cont == 0 then return i + 1 end
      elseif c == b then
        cont = cont + 1
      end
    end
    return nil
  end

  do_match = function(ms, si, pi)
    local s, slen, p, plen = ms.s, ms.slen, ms.p, ms.plen
    while true do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      if pi > plen then return si end
      local pc = byte(p, pi)
      if pc == P_OPEN then
        if byte(p, pi + 1) == P_CLOSE then
          return start_capture(ms, si, pi + 2, CAP_POSITION)
        end
        return start_capture(ms, si, pi + 1, CAP_UNFINISHED)
      elseif pc == P_CLOSE then
        return end_capture(ms, si, pi + 1)
      elseif pc == P_DOLLAR and pi == plen then
        if si == slen + 1 then return si end
        return nil
      elseif pc == P_ESC and byte(p, pi + 1) == 98 then          -- %bxy
        si = match_balance(ms, si, pi + 2)
        if not si then return nil end
        pi = pi + 4
      elseif pc == P_ESC and byte(p, pi + 1) == 102 then         -- %f[set]
        pi = pi + 2
        if byte(p, pi) ~= P_LBRACK then error("missing '[' after '%f' in pattern", 0) end
        local ep = class_end(ms, pi)
        local prev = si == 1 and 0 or byte(s, si - 1)
        local cur = si <= slen and byte(s, si) or 0
        if match_bracket(prev, p, pi, ep - 1) or not match_bracket(cur, p, pi, ep - 1) then
          return nil
        end
        pi = ep
      elseif pc == P_ESC and isdigit(byte(p, pi + 1)) then       -- %1..%9
        si = match_capture(ms, si, byte(p, pi + 1))
        if not si then return nil end
        pi = pi + 2
      else
        local ep = class_end(ms, pi)
        local m = si <= slen and single(byte(s, si), p, pi, ep)
        local q = byte(p, ep)
        if q == Q_OPT then
          if m then
            local r = do_match(ms, si + 1, ep + 1)
            if r then return r end
          end
          pi = ep + 1
        elseif q == Q_STAR then
          return max_expand(ms, si, pi, ep)
        elseif q == Q_PLUS then
          if not m then return nil end
          return max_expand(ms, si + 1, pi, ep)
        elseif q == Q_MIN then
          return min_expand(ms, si, pi, ep)
        else
          if not m then return nil end
          si = si + 1
          pi = ep
        end
      end
    end
  end

  local function one_capture(ms, i, si, e)
    if i >= ms.level then
      if i == 0 then return sub(ms.s, si, e - 1) end
      error("invalid capture index", 0)
    end
    local l = ms.len[i + 1]
    if l == CAP_UNFINISHED then error("unfinished capture", 0) end
    if l == CAP_POSITION then return ms.init[i + 1] end
    return sub(ms.s, ms.init[i + 1], ms.init[i + 1] + l - 1)
  end

  local function captures(ms, si, e, whole)
    local n = (ms.level == 0 and whole) and 1 or ms.level
    local out = {}
    for i = 0, n - 1 do out[i + 1] = one_capture(ms, i, si, e) end
    return out, n
  end

  -- C patterns end at the first NUL byte; keep that.
  local function cut_nul(p)
    local z = rfind(p, "\0", 1, true)
    if z then return sub(p, 1, z - 1) end
    return p
  end

  local function new_state(s, p)
    p = cut_nul(p)
    return { s = s, slen = #s, p = p, plen = #p, level = 0, init = {}, len = {} }
  end

  -- Cost estimate ------------------------------------------------------------
  local SPECIALS = "[%^%$%*%+%?%.%(%[%%%-]"
  local analysis_cache, cache_size = {}, 0

  -- Byte sets of single-character classes, computed with the C matcher and
  -- cached: set[b] is true when byte b matches the class.
  local ANY = setmetatable({}, { __index = function() return true end })
  local NONE = {}
  local set_cache = {}
  local function set_of(cls)
    if cls == "." then return ANY end
    local set = set_cache[cls]
    if not set then
      set = {}
      local pat = "^" .. cls
      for b = 0, 255 do set[b] = rfind(char(b), pat) ~= nil end
      set_cache[cls] = set
    end
    return set
  end

  local function overlaps(a, list)
    for b = 0, 255 do
      if a[b] then
        for i = 1, #list do
          if list[i][b] then return true end
        end
      end
    end
    return false
  end

  -- Parse a pattern into the facts the estimate needs.  Every pattern item
  -- becomes { set, quant, mandatory, ... }.  A quantifier costs extra only
  -- when something after it can fail (otherwise the first try succeeds); it
  -- multiplies the work of what follows when its class overlaps the first
  -- class the rest of the pattern needs (a*a*b, .-x.-y), and only adds to it
  -- when they are disjoint (%w+%s*=).  %b and back-references scan up to the
  -- whole subject wherever they stand.
  local function analyze(p)
    local info = analysis_cache[p]
    if info then return info end
    p = cut_nul(p)
    local plen = #p
    local items, malformed = {}, false
    local pi = 1
    local anchored = byte(p, 1) == P_CARET
    if anchored then pi = 2 end
    while pi <= plen do
      local pc = byte(p, pi)
      if pc == P_OPEN or pc == P_CLOSE then
        pi = pi + 1
      elseif pc == P_DOLLAR and pi == plen then
        items[#items + 1] = { set = NONE, mandatory = true }
        pi = pi + 1
      elseif pc == P_ESC and byte(p, pi + 1) == 98 then
        items[#items + 1] = { set = ANY, mandatory = true, balance = sub(p, pi + 2, pi + 2) }
        pi = pi + 4
      elseif pc == P_ESC and byte(p, pi + 1) == 102 then
        items[#items + 1] = { set = ANY, mandatory = true }
        if byte(p, pi + 2) ~= P_LBRACK then malformed = true; break end
        pi = class_end_or_nil(p, plen, pi + 2)
        if not pi then malformed = true; break end
      elseif pc == P_ESC and isdigit(byte(p, pi + 1)) then
        items[#items + 1] = { set = ANY, mandatory = true, backref = true }
        pi = pi + 2
      else
        local ep = class_end_or_nil(p, plen, pi)
        if not ep then malformed = true; break end
        local q = byte(p, ep)
        local cls = sub(p, pi, ep - 1)
        if #cls == 1 and pc ~= P_DOT and not rfind(cls, "^%w") then
          cls = "%" .. cls      -- a literal punctuation byte
        end
        local set = set_of(cls)
        if q == Q_OPT or q == Q_STAR or q == Q_PLUS or q == Q_MIN then
          items[#items + 1] = { set = set, quant = q, cls = cls, dot = (pc == P_DOT),
                                mandatory = (q == Q_PLUS) }
          pi = ep + 1
        else
          items[#items + 1] = { set = set, mandatory = true }
          pi = ep
        end
      end
    end
    if malformed then
      info = { malformed = true, literal = not rfind(p, SPECIALS) }
    else
      local mult, add = {}, {}
      for i = 1, #items do
        local it = items[i]
        if it.balance or it.backref then
          add[#add + 1] = it
        elseif it.quant then
          -- the classes the rest can start with, up to its first mandatory item
          local first, failing = {}, false
          for j = i + 1, #items do
            first[#first + 1] = items[j].set
            if items[j].mandatory then failing = true; break end
          end
          if failing then
            if it.quant ~= Q_OPT and overlaps(it.set, first) then
              mult[#mult + 1] = it
            else
              add[#add + 1] = it
            end
          end
        end
      end
      info = { anchored = anchored, items = #items, mult = mult, add = add,
               literal = not rfind(p, SPECIALS) }
    end
    if cache_size > 512 then analysis_cache, cache_size = {}, 0 end
    analysis_cache[p] = info
    cache_size = cache_size + 1
    return info
  end

  -- Longest run of bytes of class cls in s, stopping early past `limit`.
  local run_cache_s, run_cache = nil, {}
  local function longest_run(s, cls, limit)
    if run_cache_s ~= s then run_cache_s, run_cache = s, {} end
    local key = cls .. "\0" .. limit
    local r = run_cache[key]
    if r then return r end
    r = 0
    local pat, init = cls .. "+", 1
    while true do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      local a, b = rfind(s, pat, init)
      if not a then break end
      if b - a + 1 > r then
        r = b - a + 1
        if r > limit then break end
      end
      init = b + 1
    end
    run_cache[key] = r
    return r
  end

  local function count_byte(s, c, limit)
    local n, init = 0, 1
    while n <= limit do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      local a = rfind(s, c, init, true)
      if not a then break end
      n, init = n + 1, a + 1
    end
    return n
  end

  local function reach(s, n, it, limit)
    if it.quant == Q_OPT then return 1 end
    if it.dot or it.backref then return n end
    if it.balance then return count_byte(s, it.balance, limit) end
    return longest_run(s, it.cls, limit)
  end

  -- Estimated steps: starts * (items + prod(mult reach + 1) * (1 + sum(add reach + 1)))
  local function estimate(info, starts, r_mult, r_add)
    return starts * (info.items + r_mult * (1 + r_add))
  end

  -- true when the C matcher is safe for this call
  -- Bytes of s inside runs of class cls (one C pass).
  local function run_bytes(s, cls)
    if run_cache_s ~= s then run_cache_s, run_cache = s, {} end
    local key = cls .. "\0T"
    local t = run_cache[key]
    if not t then
      t = #s - #rgsub(s, cls .. "+", "")
      run_cache[key] = t
    end
    return t
  end

  -- true when the C matcher is safe for this call
  local function cheap(s, p, init, gm, info)
    local n = #s - (init or 1) + 1
    if n < 0 then n = 0 end
    info = info or analyze(p)
    if info.malformed then return true end    -- C raises the error at once
    local starts = (info.anchored and not gm) and 1 or (n + 1)
    local mult, add = info.mult, info.add
    -- Upper bound first (every reach = n): most calls stop here.
    local pm, sa = 1, 0
    for i = 1, #mult do pm = pm * (n + 1) end
    for i = 1, #add do sa = sa + ((add[i].quant == Q_OPT) and 2 or (n + 1)) end
    if estimate(info, starts, pm, sa) <= cap then return true end
    -- Measure the real reaches, stopping as soon as the cap is passed.
    local limit = cap / starts + 1
    pm, sa = 1, 0
    for i = 1, #mult do
      pm = pm * (reach(s, n, mult[i], limit) + 1)
      if estimate(info, starts, pm, 0) > cap then return false end
    end
    if #mult > 0 then
      for i = 1, #add do
        sa = sa + reach(s, n, add[i], limit) + 1
        if estimate(info, starts, pm, sa) > cap then return false end
      end
      return true
    end
    -- No quantifier multiplies the work, so what the others cost is summed
    -- over the starts instead of bounded per start: a class quantifier
    -- followed by a disjoint item (%a+, ) eats, from each start, at most the
    -- rest of the run of its class it stands in, so all starts together cost
    -- at most (M + 1) / 2 per byte of such runs, M the longest run.  This
    -- keeps linear patterns over long texts on the C matcher.
    local total = starts * (info.items + 1)
    for i = 1, #add do
      local it = add[i]
      local r = reach(s, n, it, limit)
      local cost = starts * (r + 1)
      if it.cls and not it.dot and it.quant ~= Q_OPT then
        if r > limit then r = longest_run(s, it.cls, cap) end
        local agg = (r + 1) * run_bytes(s, it.cls) / 2 + starts
        if agg < cost then cost = agg end
      end
      total = total + cost
      if total > cap then return false end
    end
    return true
  end

  -- Plain search in Lua: memchr-speed probes through the C find on a short
  -- prefix, full comparisons in bytecode (the loop checks the stop flag).
  local function plain_find(s, p, init)
    local m = #p
    if m == 0 then return init, init - 1 end
    local probe = sub(p, 1, 16)
    local pos = init
    while true do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      local a = rfind(s, probe, pos, true)
      if not a then return nil end
      if sub(s, a, a + m - 1) == p then return a, a + m - 1 end
      pos = a + 1
    end
  end

  -- Lua versions of the four functions ----------------------------------------
  local function posrelat(pos, len)
    if pos < 0 then pos = pos + len + 1 end
    return pos >= 0 and pos or 0
  end

  local function find_aux(find, s, p, init, plain)
    local ls = #s
    init = posrelat(tonumber(init) or 1, ls) - 1
    if init < 0 then init = 0 elseif init > ls then
      if LJ52 then return nil end
      init = ls
    end
    if find and (plain or not rfind(cut_nul(p), SPECIALS)) then
      return plain_find(s, p, init + 1)
    end
    local ms = new_state(s, p)
    local pstart, anchor = 1, false
    if byte(ms.p, 1) == P_CARET then pstart, anchor = 2, true end
    local si = init + 1
    repeat
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      ms.level = 0
      local e = do_match(ms, si, pstart)
      if e then
        if find then
          local caps, n = captures(ms, si, e, false)
          return si, e - 1, unpack(caps, 1, n)
        end
        local caps, n = captures(ms, si, e, true)
        return unpack(caps, 1, n)
      end
      si = si + 1
    until si > ls + 1 or anchor
    return nil
  end

  local function lua_gmatch(s, p)
    local ms = new_state(s, p)
    local pos = 0
    return function()
      local si = pos + 1
      while si <= ms.slen + 1 do
        wd.n = wd.n - 1 if wd.n < 0 then wd() end
        ms.level = 0
        local e = do_match(ms, si, 1)
        if e then
          pos = e - 1
          if e == si then pos = pos + 1 end
          local caps, n = captures(ms, si, e, true)
          return unpack(caps, 1, n)
        end
        si = si + 1
      end
      return nil
    end
  end

  local function lua_gsub(s, p, repl, max_s)
    local tr = type(repl)
    local ms = new_state(s, p)
    local ls = ms.slen
    max_s = max_s or (ls + 1)
    local pstart, anchor = 1, false
    if byte(ms.p, 1) == P_CARET then pstart, anchor = 2, true end
    local rs = (tr == "number") and tostring(repl) or repl
    local buf, nb, made = {}, 0, 0
    local si, last, n = 1, 1, 0
    while n < max_s do
      wd.n = wd.n - 1 if wd.n < 0 then wd() end
      ms.level = 0
      local e = do_match(ms, si, pstart)
      if e then
        n = n + 1
        local value
        if tr == "string" or tr == "number" then
          local parts, i, rl = {}, 1, #rs
          while i <= rl do
            wd.n = wd.n - 1 if wd.n < 0 then wd() end
            local c = byte(rs, i)
            if c ~= P_ESC then
              parts[#parts + 1] = char(c)
            else
              i = i + 1
              local d = byte(rs, i)
              if not isdigit(d) then
                parts[#parts + 1] = d and char(d) or "\0"
              elseif d == 48 then
                parts[#parts + 1] = sub(s, si, e - 1)
              else
                parts[#parts + 1] = tostring(one_capture(ms, d - 49, si, e))
              end
            end
            i = i + 1
          end
          value = concat(parts)
        else
          if tr == "function" then
            local caps, nc = captures(ms, si, e, true)
            value = repl(unpack(caps, 1, nc))
          else
            value = repl[one_capture(ms, 0, si, e)]
          end
          if not value then
            value = sub(s, si, e - 1)
          elseif type(value) == "number" then
            value = tostring(value)
          elseif type(value) ~= "string" then
            error("invalid replacement value (a " .. type(value) .. ")", 0)
          end
        end
        nb = nb + 1; buf[nb] = sub(s, last, si - 1)
        nb = nb + 1; buf[nb] = value
        made = made + (si - last) + #value
        if made > max_string then
          error(format("string.gsub: result of more than %d bytes exceeds the sandbox limit of %d bytes",
                              max_string, max_string), 0)
        end
        last = e
      end
      if e and e > si then
        si = e
      elseif si <= ls then
        si = si + 1
      else
        break
      end
      if anchor then break end
    end
    nb = nb + 1; buf[nb] = sub(s, last)
    return concat(buf), n
  end

  -- Wrappers: argument checks as C does them, then C or Lua ---------------------
  -- Every argument is checked here, before the call is routed, so both
  -- matchers see the same values and a bad argument gives the same error
  -- whichever runs (LuaJIT's lib_string.c / lj_lib.c are the reference).
  -- level: the mod's call site, counted from argerror.
  local function argerror(n, fname, msg, level)
    error("bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")", level)
  end

  -- luaL_checklstring: strings, and numbers converted to strings.
  local function checkstr(v, n, fname, given)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then return tostring(v) end
    argerror(n, fname, "string expected, got " .. (given < n and "no value" or t), 4)
  end

  -- A number argument: numbers, and strings that convert to one; nil when absent.
  local function checknum(v, n, fname)
    if v == nil then return nil end
    local x = v
    if type(v) == "string" then x = tonumber(v) end
    if type(x) ~= "number" then argerror(n, fname, "number expected, got " .. type(v), 5) end
    return x
  end

  local function trunc(x)
    if x >= 0 then return floor(x) end
    return -floor(-x)
  end

  -- lj_lib_optint (init of find/match): (int32_t)x, which gives INT32_MIN
  -- for NaN and values out of range.
  local INT32_MIN = -2147483648
  local function optint32(v, n, fname, default)
    local x = checknum(v, n, fname)
    if x == nil then return default end
    if x ~= x or x >= 2147483648 or x < INT32_MIN then return INT32_MIN end
    return trunc(x)
  end

  -- luaL_optint (max of gsub): (int)(int64_t)x on 64-bit, the low 32 bits of
  -- the truncated value; 0 for NaN and values out of the int64 range.
  local function optint64low(v, n, fname, default)
    local x = checknum(v, n, fname)
    if x == nil then return default end
    if x ~= x or x >= 9223372036854775808 or x < -9223372036854775808 then return 0 end
    x = trunc(x) % 4294967296          -- exact: the divisor is a power of two
    if x >= 2147483648 then x = x - 4294967296 end
    return x
  end

  -- Errors of the Lua matcher are raised at the mod's call site, as the C
  -- functions do.  A watchdog stop passes through too: the flag stays set, so
  -- the mod's next check raises again.
  local function rethrow(ok, ...)
    if ok then return ... end
    error((...), 3)
  end
  local function run_lua(f, ...)
    return rethrow(pcall(f, ...))
  end

  local G = {}

  -- The common case first: string subject and pattern, init absent or an
  -- int32; anything else goes through the full checks.
  local function plain_int(v)
    return v == nil or (type(v) == "number" and v == floor(v)
                        and v >= INT32_MIN and v < 2147483648)
  end

  function G.find(...)
    local s, p, init, plain = ...
    if type(s) ~= "string" or type(p) ~= "string" or not plain_int(init) then
      local given = select("#", ...)
      s = checkstr(s, 1, "find", given); p = checkstr(p, 2, "find", given)
      init = optint32(init, 3, "find", 1)
    end
    init = init or 1
    local ls = #s
    local start = init
    if start < 0 then start = start + ls + 1; if start < 0 then start = 0 end end
    local info = analysis_cache[p] or analyze(p)
    if plain or info.literal then
      if (ls - start + 1) * #p <= cap * 256 then
        if ls > BIG then return costly("string.find", ls - start + 1, "bytes", rfind, s, p, init, plain) end
        return rfind(s, p, init, plain)
      end
      return run_lua(find_aux, true, s, p, init, plain)
    end
    if cheap(s, p, start, false, info) then
      if ls > BIG then return costly("string.find", ls - start + 1, "gsub", rfind, s, p, init, plain) end
      return rfind(s, p, init, plain)
    end
    return run_lua(find_aux, true, s, p, init, plain)
  end

  function G.match(...)
    local s, p, init = ...
    if type(s) ~= "string" or type(p) ~= "string" or not plain_int(init) then
      local given = select("#", ...)
      s = checkstr(s, 1, "match", given); p = checkstr(p, 2, "match", given)
      init = optint32(init, 3, "match", 1)
    end
    init = init or 1
    if cheap(s, p, posrelat(init, #s), false) then
      if #s > BIG then return costly("string.match", #s, "gsub", rmatch, s, p, init) end
      return rmatch(s, p, init)
    end
    return run_lua(find_aux, false, s, p, init)
  end

  function G.gmatch(...)
    local s, p = ...
    local given = select("#", ...)
    s = checkstr(s, 1, "gmatch", given); p = checkstr(p, 2, "gmatch", given)
    if cheap(s, p, 1, true) then return rgmatch(s, p) end
    local it = lua_gmatch(s, p)
    return function() return run_lua(it) end
  end

  function G.gsub(...)
    local s, p, repl, max_s = ...
    local given = select("#", ...)
    s = checkstr(s, 1, "gsub", given); p = checkstr(p, 2, "gsub", given)
    max_s = optint64low(max_s, 4, "gsub", #s + 1)
    local tr = type(repl)
    if not (tr == "string" or tr == "number" or tr == "function" or tr == "table") then
      argerror(3, "gsub", "string/function/table expected", 3)
    end
    if cheap(s, p, 1, false) then
      local r, n
      local rs = tr == "number" and tostring(repl) or repl
      if #s > BIG and type(rs) == "string" and #rs > 2 and not rfind(rs, "%", 1, true) then
        -- Copying the replacement costs per byte made (C adds it byte by byte): 1 MiB of
        -- matches made 20 MiB in 160 ms.  A first pass with an empty replacement tells
        -- how many matches and what is left, so the result's size is known before it is
        -- built: past the cap it is refused, else charged for what it makes.
        local rest, m = costly("string.gsub", #s, "gsub", rgsub, s, p, "", max_s)
        local size = #rest + m * #rs
        if size > max_string then
          error(format("string.gsub: result of %d bytes exceeds the sandbox limit of %d bytes", size, max_string), 2)
        end
        r, n = costly("string.gsub", #s + m * #rs, "gsub", rgsub, s, p, repl, max_s)
      elseif #s > BIG then
        r, n = costly("string.gsub", #s, "gsub", rgsub, s, p, repl, max_s)
      else
        r, n = rgsub(s, p, repl, max_s)
      end
      if #r > max_string then
        error(format("string.gsub: result of %d bytes exceeds the sandbox limit of %d bytes", #r, max_string), 2)
      end
      return r, n
    end
    return run_lua(lua_gsub, s, p, repl, max_s)
  end

  -- Exposed for tests: force the Lua matcher.
  G.lua = { find = function(s, p, i, pl) return find_aux(true, s, p, i, pl) end,
            match = function(s, p, i) return find_aux(false, s, p, i) end,
            gmatch = lua_gmatch, gsub = lua_gsub, cheap = cheap }
  return G
end

return M
