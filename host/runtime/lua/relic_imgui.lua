-- relic_imgui: ImGui flag tables for a host without Dear ImGui (headless).
-- Every flag reads as 0 there, so `ImGuiWindowFlags.NoResize + ImGuiWindowFlags.NoMove`
-- works in any mod whether or not the game renders an overlay.
local M = {}

--- The ImGui table: one function per name, each a tail call into the host's
--- dispatcher (a tail call, so an error is reported at the mod's own line).
function M.functions(call, names)
  local t = {}
  for i = 1, #names do
    local name = names[i]
    t[name] = function(...) return call(name, ...) end
  end
  return t
end

--- A table whose every field is 0 (and cannot be written).
function M.zero_flags(name)
  return setmetatable({}, {
    __index = function() return 0 end,
    __newindex = function(_, k) error(name .. " is read-only (cannot set field '" .. tostring(k) .. "')", 2) end,
    __metatable = false,
  })
end

--- Put the flag tables into a mod's globals: Dear ImGui's values (read-only)
--- when `values` has them, tables of zeros otherwise (headless).
function M.expose_flags(env, values, names, readonly)
  for i = 1, #names do
    local name = names[i]
    local t = values and values[name]
    if t then rawset(env, name, readonly(t, name)) else rawset(env, name, M.zero_flags(name)) end
  end
end

return M
