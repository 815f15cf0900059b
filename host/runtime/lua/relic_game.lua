-- relic_game: stand-ins for Cyberpunk 2077's API in a game that is not Cyberpunk.
--
-- Run once per mod by the host: `factory(env, tables, functions, describe)`
-- puts a stub for each name into the mod's globals `env`.  A CET mod that reaches for `Game.GetPlayer()` or
-- `NewObject(...)` gets one clear line naming what this game does publish
-- (describe() returns that text) instead of "attempt to index a nil value".
-- The game's own `host.expose` replaces any of these names.
return function(env, tables, functions, describe)
  local stubs = env
  local function message(what)
    return "`" .. what .. "` is a Cyberpunk 2077 API; " .. describe()
  end
  for _, name in ipairs(tables) do
    rawset(stubs, name, setmetatable({}, {
      __index = function(_, k) error(message(name .. "." .. tostring(k)), 2) end,
      __newindex = function(_, k) error(message(name .. "." .. tostring(k)), 2) end,
      __call = function() error(message(name), 2) end,
      __tostring = function() return name .. " (not published by this game)" end,
      __metatable = false,
    }))
  end
  for _, name in ipairs(functions) do
    rawset(stubs, name, function() error(message(name), 2) end)
  end
end
