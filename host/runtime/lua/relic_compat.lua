-- relic_compat: small helpers for installing CET's globals (host/runtime/cet.py).
local compat = {}

--- A shallow copy of a library table (each mod's own, writable).
function compat.copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
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
