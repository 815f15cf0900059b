-- My mod: a starting point. See docs/MODDING.md for the whole API.
--
-- init.lua runs once at load; register callbacks here (registration works
-- only while this file runs). What it returns is the mod's public table,
-- which other mods read with GetMod("<your_id>").
local settings = require("settings")   -- settings.lua in this folder

local state = { greeted = false, time = 0 }

-- A character: llm.persona builds the session, the guards and (with lore = "folder"
-- and the host's rag) the memory; its lines are whole sentences in its own voice.
local keeper = llm.persona{
  name = settings.name,
  voice = settings.voice,
  length = 1,
  examples = settings.examples,
}

registerForEvent("onInit", function()
  spdlog.info("loaded, greeting " .. settings.who)
end)

registerForEvent("onUpdate", function(dt)
  state.time = state.time + dt
  -- Keep onUpdate cheap: it runs every frame within the mod's time budget.
end)

registerCommand("hello", "hello [topic]: the character greets you and talks about the topic", function(args)
  local topic = args ~= "" and args or "the weather"
  keeper:ask("Hello! What do you think of " .. topic .. "?", {
    on_done = function(result)
      if result.error then
        spdlog.warning("no greeting: " .. result.error)
      else
        print(settings.name .. ": " .. result.text)
        state.greeted = true
      end
    end,
  })
end)

registerForEvent("onShutdown", function()
  spdlog.info(string.format("ran for %.1f s", state.time))
end)

return {
  --- True once a greeting came back.
  greeted = function() return state.greeted end,
}
