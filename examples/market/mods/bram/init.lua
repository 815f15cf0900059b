-- Bram, the blacksmith of the market street (examples/market).
--
-- The game sends two events: onHear(who, text) when someone speaks to him,
-- onStreetEvent(text) when something happens on the street.
-- His body is the game's: `market.speak` streams into his bubble,
-- `market.finish` ends the line (and lets his neighbours react), and his
-- tools act on the street.  Each turn the model either speaks or calls a tool;
-- after a tool it goes on and speaks.
local tools = {
  give_item = {
    description = "Give the traveler a hook or a knife you made.",
    parameters = { type = "object", properties = { item = { type = "string", enum = { "fish hook", "knife" } } },
                   required = { "item" } },
    run = function(args) return market.give(args.item) end,
  },
  leave = {
    description = "Go to the forge behind the houses for a while.",
    run = function() return market.leave() end,
  },
  call_guard = {
    description = "Call the street guard when a stranger makes trouble.",
    parameters = { type = "object", properties = { reason = { type = "string", maxLength = 60 } },
                   required = { "reason" } },
    run = function(args) return market.call_guard(args.reason) end,
  },
}

local me = llm.session{
  system = "You are Bram, a gruff old blacksmith at a market in a flooded harbor town. You mend hooks, knives and anchors and you distrust strangers. "
    .. "Answer in one short sentence, in your own words.",
  sampler = { preset = "balanced", temperature = 0.8,
              penalties = { last_n = 128, ["repeat"] = 1.15, presence = 0.3 } },
  overflow = "summarize",
  tools = tools,
}
local npc = require("character").npc(me, "Bram", {
  start = function() market.bubble("") end,
  piece = function(text) market.speak(text) end,
  finish = function(text) market.finish(text) end,
  warn = function(msg) spdlog.warning(msg) end,
})
-- The game speaks to this NPC through its two events (examples/market/game.py).
registerForEvent("onHear", npc.hear)
registerForEvent("onStreetEvent", npc.event)
return npc
