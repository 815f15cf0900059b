-- Tomas, the street guard of the market street (examples/market).
--
-- The game sends two events: onHear(who, text) when someone speaks to him,
-- onStreetEvent(text) when something happens on the street.
-- His body is the game's: `market.speak` streams into his bubble,
-- `market.finish` ends the line (and lets his neighbours react), and his
-- tools act on the street.  Each turn the model either speaks or calls a tool;
-- after a tool it goes on and speaks.
local tools = {
  follow_player = {
    description = "Escort the traveler through the market.",
    run = function() return market.follow(12) end,
  },
  leave = {
    description = "Go on patrol down the canal for a while.",
    run = function() return market.leave() end,
  },
}

local me = llm.session{
  system = "You are Tomas, a young street guard at a market in a flooded harbor town. You are nervous about trouble and eager to look important. "
    .. "Answer in one short sentence, in your own words.",
  sampler = { preset = "balanced", temperature = 0.8,
              penalties = { last_n = 128, ["repeat"] = 1.15, presence = 0.3 } },
  overflow = "summarize",
  tools = tools,
}
local npc = require("character").npc(me, "Tomas", {
  start = function() market.bubble("") end,
  piece = function(text) market.speak(text) end,
  finish = function(text) market.finish(text) end,
  warn = function(msg) spdlog.warning(msg) end,
})
-- The game speaks to this NPC through its two events (examples/market/game.py).
registerForEvent("onHear", npc.hear)
registerForEvent("onStreetEvent", npc.event)
return npc
