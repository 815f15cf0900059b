-- My mod: a starting point. See docs/MODDING.md for the whole API.
--
-- init.lua runs once at load; register callbacks here (registration works
-- only while this file runs). What it returns is the mod's public table,
-- which other mods read with GetMod("<your_id>").
local settings = require("settings")   -- settings.lua in this folder

local state = { greeted = false, time = 0 }

registerForEvent("onInit", function()
  spdlog.info("loaded, greeting " .. settings.who)
end)

registerForEvent("onUpdate", function(dt)
  state.time = state.time + dt
  -- Keep onUpdate cheap: it runs every frame within the mod's time budget.
end)

registerCommand("hello", "hello [topic]: ask the model for a one-line greeting", function(args)
  local topic = args ~= "" and args or "the weather"
  llm.chat{
    messages = {
      { role = "system", content = "You greet people in one short, friendly sentence." },
      { role = "user", content = "Greet " .. settings.who .. " and mention " .. topic .. "." },
    },
    max_tokens = 40,
    on_done = function(result)
      if result.error then
        spdlog.warning("no greeting: " .. result.error)
      else
        print(result.text)
        state.greeted = true
      end
    end,
  }
end)

registerForEvent("onShutdown", function()
  spdlog.info(string.format("ran for %.1f s", state.time))
end)

return {
  --- True once a greeting came back.
  greeted = function() return state.greeted end,
}
