-- relic_imgui: ImGui flag tables for a host without Dear ImGui (headless).
-- Every flag reads as 0 there, so `ImGuiWindowFlags.NoResize + ImGuiWindowFlags.NoMove`
-- works in any mod whether or not the game renders an overlay.
local M = {}

--- A table whose every field is 0 (and cannot be written).
function M.zero_flags(name)
  return setmetatable({}, {
    __index = function() return 0 end,
    __newindex = function(_, k) error(name .. " is read-only (cannot set field '" .. tostring(k) .. "')", 2) end,
    __metatable = false,
  })
end

return M
