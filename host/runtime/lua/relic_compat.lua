-- relic_compat: Lua 5.2 names that CET's LuaJIT (built with LUAJIT_ENABLE_LUA52COMPAT)
-- has, for a LuaJIT built without that flag.  With the flag they already exist
-- and nothing is replaced.
local compat = {}

--- table.pack(...) -> { n = select("#", ...), ... } (Lua 5.2).
local function pack(...)
  return { n = select("#", ...), ... }
end

--- A copy of the `table` library with table.unpack and table.pack added when missing.
function compat.table(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  if out.unpack == nil then out.unpack = unpack end
  if out.pack == nil then out.pack = pack end
  return out
end

--- rawlen(t) -> the length of a table or string without metamethods (Lua 5.2).
function compat.rawlen(v)
  local tv = type(v)
  if tv ~= "table" and tv ~= "string" then
    error("table or string expected", 2)
  end
  if tv == "string" then return #v end
  -- # ignores __len on a 5.1 build, so it is already raw there.
  return #v
end

--- Host plumbing: { name = function(...) } for each name, each a tail call into
--- the one host dispatcher `call(name, ...)` (host/runtime/cet.py bridge_table).
function compat.bridge(call, names)
  local t = {}
  for i = 1, #names do
    local name = names[i]
    t[name] = function(...) return call(name, ...) end
  end
  return t
end

return compat
