--- json: strict JSON (RFC 8259) encoding and decoding for mods.
--
-- json.encode(value) -> string      json.decode(text [, opts]) -> value
--
-- Errors are Lua errors whose message starts with "json.encode:" or
-- "json.decode:" and says what and where (a $.path for encode, line and
-- column for decode).  Both directions refuse nesting deeper than
-- json.max_depth (128), invalid UTF-8, NaN and infinities; encode refuses
-- cycles, functions and other non-data values, sparse arrays and tables that
-- mix array and object keys.
--
-- Mapping: objects <-> tables with string keys, arrays <-> tables with keys
-- 1..n.  An empty table encodes as [] unless marked with json.object(); an
-- empty object decodes to a table marked that way, so it round-trips.  null
-- decodes to nil (pass opts.null = json.null to get the sentinel instead) and
-- json.null encodes as null.

local byte, char, sub, find, format, gsub = string.byte, string.char, string.sub, string.find, string.format, string.gsub
local concat, sort = table.concat, table.sort
local type, pairs, next, tostring, tonumber, error, setmetatable = type, pairs, next, tostring, tonumber, error, setmetatable
local floor, huge = math.floor, math.huge

local json = { max_depth = 128 }

json.null = setmetatable({}, {
  __tostring = function() return "json.null" end,
  __newindex = function() error("json.null is read-only", 2) end,
  __metatable = "json.null",
})

local marks = setmetatable({}, { __mode = "k" })   -- table -> "object" | "array"

--- json.object([t]) marks t (or a new table) to encode as a JSON object.
function json.object(t)
  t = t or {}
  marks[t] = "object"
  return t
end

--- json.array([t]) marks t (or a new table) to encode as a JSON array.
function json.array(t)
  t = t or {}
  marks[t] = "array"
  return t
end

-- UTF-8 --------------------------------------------------------------------

-- Position of the first byte that is not part of valid UTF-8 (no overlongs,
-- no surrogates, nothing past U+10FFFF), or nil.
local function utf8_error(s)
  if not find(s, "[\128-\255]") then return nil end
  local i, n = 1, #s
  while i <= n do
    local a = find(s, "[\128-\255]", i)
    if not a then return nil end
    i = a
    local c = byte(s, i)
    local need, lo, hi
    if c >= 0xC2 and c <= 0xDF then need, lo, hi = 1, 0x80, 0xBF
    elseif c == 0xE0 then need, lo, hi = 2, 0xA0, 0xBF
    elseif c == 0xED then need, lo, hi = 2, 0x80, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then need, lo, hi = 2, 0x80, 0xBF
    elseif c == 0xF0 then need, lo, hi = 3, 0x90, 0xBF
    elseif c >= 0xF1 and c <= 0xF3 then need, lo, hi = 3, 0x80, 0xBF
    elseif c == 0xF4 then need, lo, hi = 3, 0x80, 0x8F
    else return i end
    local c2 = byte(s, i + 1)
    if not c2 or c2 < lo or c2 > hi then return i end
    for k = 2, need do
      local ck = byte(s, i + k)
      if not ck or ck < 0x80 or ck > 0xBF then return i end
    end
    i = i + need + 1
  end
  return nil
end

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
              0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- Encoding -------------------------------------------------------------------

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}
local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

local function path_of(path, depth)
  local out = { "$" }
  for i = 1, depth do
    local k = path[i]
    if type(k) == "number" then out[#out + 1] = "[" .. k .. "]"
    else out[#out + 1] = "." .. tostring(k) end
  end
  return concat(out)
end

local function encode_string(s, path, depth)
  local bad = utf8_error(s)
  if bad then
    error(format("json.encode: invalid UTF-8 at byte %d of the string at %s", bad, path_of(path, depth)), 0)
  end
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local function encode_number(x, path, depth)
  if x ~= x or x == huge or x == -huge then
    error("json.encode: cannot encode NaN or infinity at " .. path_of(path, depth), 0)
  end
  if x == floor(x) and x > -2^53 and x < 2^53 then return format("%d", x) end
  local s = format("%.14g", x)
  if tonumber(s) ~= x then s = format("%.17g", x) end
  return s
end

local encode_value

local function encode_table(t, out, seen, path, depth)
  if seen[t] then error("json.encode: table at " .. path_of(path, depth) .. " contains a cycle", 0) end
  if depth >= json.max_depth then
    error(format("json.encode: nesting deeper than %d levels at %s", json.max_depth, path_of(path, depth)), 0)
  end
  seen[t] = true
  local mark = marks[t]
  local nkeys, nstr, maxn = 0, 0, 0
  for k in pairs(t) do
    nkeys = nkeys + 1
    local tk = type(k)
    if tk == "string" then
      nstr = nstr + 1
    elseif tk == "number" and k > 0 and k == floor(k) then
      if k > maxn then maxn = k end
    else
      error(format("json.encode: table at %s has a key of type %s (keys must be strings or 1..n)",
                   path_of(path, depth), tk), 0)
    end
  end
  local as_array
  if nkeys == 0 then
    as_array = mark ~= "object"
  elseif nstr == nkeys then
    as_array = false
  elseif nstr == 0 then
    if maxn ~= nkeys then
      error(format("json.encode: sparse array at %s (%d elements, highest index %d)",
                   path_of(path, depth), nkeys, maxn), 0)
    end
    as_array = true
  else
    error("json.encode: table at " .. path_of(path, depth) .. " mixes array and object keys", 0)
  end
  if as_array then
    out[#out + 1] = "["
    for i = 1, maxn do
      if i > 1 then out[#out + 1] = "," end
      path[depth + 1] = i
      encode_value(t[i], out, seen, path, depth + 1)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    sort(keys)
    out[#out + 1] = "{"
    for i = 1, #keys do
      local k = keys[i]
      if i > 1 then out[#out + 1] = "," end
      path[depth + 1] = k
      out[#out + 1] = encode_string(k, path, depth + 1)
      out[#out + 1] = ":"
      encode_value(t[k], out, seen, path, depth + 1)
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
end

encode_value = function(v, out, seen, path, depth)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = encode_number(v, path, depth)
  elseif tv == "string" then
    out[#out + 1] = encode_string(v, path, depth)
  elseif tv == "table" then
    encode_table(v, out, seen, path, depth)
  else
    error(format("json.encode: cannot encode a %s at %s", tv, path_of(path, depth)), 0)
  end
end

--- json.encode(value) -> string. Raises a Lua error on values JSON cannot hold.
function json.encode(value)
  local out = {}
  encode_value(value, out, {}, {}, 0)
  return concat(out)
end

-- Decoding -------------------------------------------------------------------

local function position(text, i)
  local line, col, pos = 1, 1, 1
  while true do
    local nl = find(text, "\n", pos, true)
    if not nl or nl >= i then break end
    line, pos = line + 1, nl + 1
  end
  col = i - pos + 1
  return line, col
end

local function fail(text, i, msg)
  if i > #text then msg = "unexpected end of input (" .. msg .. ")" end
  local line, col = position(text, i)
  error(format("json.decode: %s at line %d column %d", msg, line, col), 0)
end

local function skip_ws(text, i)
  local _, e = find(text, "^[ \t\r\n]*", i)
  return e + 1
end

local decode_value

local function decode_string(text, i)
  -- i points at the opening quote
  local parts, j = {}, i + 1
  while true do
    local a = find(text, '["\\%c]', j)
    if not a then fail(text, i, "unterminated string") end
    if a > j then parts[#parts + 1] = sub(text, j, a - 1) end
    local c = byte(text, a)
    if c == 34 then            -- closing quote
      local s = concat(parts)
      local bad = utf8_error(s)
      if bad then fail(text, i, "invalid UTF-8 in string") end
      return s, a + 1
    elseif c == 92 then        -- backslash
      local e = sub(text, a + 1, a + 1)
      if e == "u" then
        local hex = sub(text, a + 2, a + 5)
        if not find(hex, "^%x%x%x%x$") then fail(text, a, "invalid \\u escape") end
        local cp = tonumber(hex, 16)
        local nexti = a + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = find(text, "^\\u[dD][c-fC-F]%x%x", nexti)
          if not lo then fail(text, a, "invalid \\u escape (unpaired surrogate)") end
          local cp2 = tonumber(sub(text, nexti + 2, nexti + 5), 16)
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (cp2 - 0xDC00)
          nexti = nexti + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail(text, a, "invalid \\u escape (unpaired surrogate)")
        end
        parts[#parts + 1] = utf8_char(cp)
        j = nexti
      else
        local map = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }
        local r = map[e]
        if not r then fail(text, a, "invalid escape '\\" .. e .. "'") end
        parts[#parts + 1] = r
        j = a + 2
      end
    else
      fail(text, a, "control character in string")
    end
  end
end

local function decode_number(text, i)
  local a, e = find(text, "^-?%d+", i)
  if not a then fail(text, i, "unexpected character '" .. sub(text, i, i) .. "'") end
  if find(text, "^-?0%d", i) then fail(text, i, "number with a leading zero") end
  local _, e2 = find(text, "^%.%d+", e + 1)
  if e2 then e = e2 elseif byte(text, e + 1) == 46 then fail(text, e + 1, "digit expected after '.'") end
  local _, e3 = find(text, "^[eE][-+]?%d+", e + 1)
  if e3 then e = e3 elseif find(text, "^[eE]", e + 1) then fail(text, e + 1, "digits expected in exponent") end
  local x = tonumber(sub(text, i, e))
  if x == huge or x == -huge then fail(text, i, "number out of range") end
  return x, e + 1
end

local literals = { t = { "true", true }, f = { "false", false }, n = { "null", nil } }

decode_value = function(text, i, depth, opts)
  i = skip_ws(text, i)
  local c = byte(text, i)
  if c == nil then fail(text, i, "a value expected") end
  if c == 123 or c == 91 then   -- { or [
    if depth >= json.max_depth then
      fail(text, i, format("nesting deeper than %d levels", json.max_depth))
    end
  end
  if c == 123 then
    local t = json.object({})
    i = skip_ws(text, i + 1)
    if byte(text, i) == 125 then return t, i + 1 end
    while true do
      if byte(text, i) ~= 34 then fail(text, i, "object key (string) expected") end
      local k
      k, i = decode_string(text, i)
      i = skip_ws(text, i)
      if byte(text, i) ~= 58 then fail(text, i, "':' expected") end
      local v
      v, i = decode_value(text, i + 1, depth + 1, opts)
      t[k] = v
      marks[t] = nil
      i = skip_ws(text, i)
      local d = byte(text, i)
      if d == 125 then return t, i + 1 end
      if d ~= 44 then fail(text, i, "',' or '}' expected") end
      i = skip_ws(text, i + 1)
    end
  elseif c == 91 then
    local t, n = {}, 0
    i = skip_ws(text, i + 1)
    if byte(text, i) == 93 then return t, i + 1 end
    while true do
      local v
      v, i = decode_value(text, i, depth + 1, opts)
      n = n + 1
      t[n] = v
      i = skip_ws(text, i)
      local d = byte(text, i)
      if d == 93 then return t, i + 1 end
      if d ~= 44 then fail(text, i, "',' or ']' expected") end
      i = i + 1
    end
  elseif c == 34 then
    return decode_string(text, i)
  elseif c == 45 or (c >= 48 and c <= 57) then
    return decode_number(text, i)
  else
    local lit = literals[char(c)]
    if lit and sub(text, i, i + #lit[1] - 1) == lit[1] then
      local v = lit[2]
      if lit[1] == "null" then v = opts.null end
      return v, i + #lit[1]
    end
    fail(text, i, "unexpected character '" .. char(c) .. "'")
  end
end

--- json.decode(text [, opts]) -> value. opts.null: value to use for null.
function json.decode(text, opts)
  if type(text) ~= "string" then
    error("json.decode: expected a string, got " .. type(text), 2)
  end
  opts = opts or {}
  local value, i = decode_value(text, 1, 0, opts)
  i = skip_ws(text, i)
  if i <= #text then fail(text, i, "unexpected data after the JSON value") end
  return value
end

return json
