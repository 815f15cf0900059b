-- Oona, the fishmonger of the market street (examples/market).
--
-- The game sends two events: onHear(who, text) when someone speaks to her,
-- onStreetEvent(text) when something happens on the street.
-- Her body is the game's: `market.speak` streams into her bubble,
-- `market.finish` ends the line (and lets her neighbours react), and her
-- tools act on the street.  Each turn the model either speaks or calls a tool;
-- after a tool it goes on and speaks.
local tools = {
  give_item = {
    description = "Give the traveler something from your cart.",
    parameters = { type = "object", properties = { item = { type = "string", enum = { "eel", "mussels", "herring" } } },
                   required = { "item" } },
    run = function(args) return market.give(args.item) end,
  },
  call_guard = {
    description = "Call the street guard when someone steals or threatens you.",
    parameters = { type = "object", properties = { reason = { type = "string", maxLength = 60 } },
                   required = { "reason" } },
    run = function(args) return market.call_guard(args.reason) end,
  },
}

local me = llm.session{
  system = "You are Oona, a loud, cheerful fishmonger at a market in a flooded harbor town. You sell eel, mussels and herring from your cart and you haggle hard. "
    .. "Answer in one short sentence, in your own words.",
  sampler = { preset = "balanced", temperature = 0.8,
              penalties = { last_n = 128, ["repeat"] = 1.15, presence = 0.3 } },
  overflow = "summarize",
  tools = tools,
}
local npc = require("character").npc(me, "Oona", {
  start = function() market.bubble("") end,
  piece = function(text) market.speak(text) end,
  finish = function(text) market.finish(text) end,
  warn = function(msg) spdlog.warning(msg) end,
})
-- The game speaks to this NPC through its two events (examples/market/game.py).
registerForEvent("onHear", npc.hear)
registerForEvent("onStreetEvent", npc.event)
return npc
