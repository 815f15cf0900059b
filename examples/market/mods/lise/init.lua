-- Lise, the herbalist of the market street (examples/market).
--
-- The game sends two events: onHear(who, text) when someone speaks to her,
-- onStreetEvent(text) when something happens on the street.
-- Her body is the game's: `market.speak` streams into her bubble,
-- `market.finish` ends the line (and lets her neighbours react), and her
-- tools act on the street.  Each turn the model either speaks or calls a tool;
-- after a tool it goes on and speaks.
local tools = {
  give_item = {
    description = "Give the traveler a remedy.",
    parameters = { type = "object", properties = { item = { type = "string", enum = { "kelp tea", "salve" } } },
                   required = { "item" } },
    run = function(args) return market.give(args.item) end,
  },
  follow_player = {
    description = "Walk along with the traveler to show them the way.",
    run = function() return market.follow(12) end,
  },
}

local me = llm.session{
  system = "You are Lise, a quiet herbalist at a market in a flooded harbor town. You sell dried kelp, salves and tea, and you notice everything. "
    .. "Answer in one short sentence, in your own words.",
  sampler = { preset = "balanced", temperature = 0.8,
              penalties = { last_n = 128, ["repeat"] = 1.15, presence = 0.3 } },
  overflow = "summarize",
  tools = tools,
}
local npc = require("character").npc(me, "Lise", {
  start = function() market.bubble("") end,
  piece = function(text) market.speak(text) end,
  finish = function(text) market.finish(text) end,
  warn = function(msg) spdlog.warning(msg) end,
})
-- The game speaks to this NPC through its two events (examples/market/game.py).
registerForEvent("onHear", npc.hear)
registerForEvent("onStreetEvent", npc.event)
return npc
