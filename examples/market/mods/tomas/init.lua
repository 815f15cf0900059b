-- Tomas, the street guard of the market street (examples/market).
--
-- The game sends two events: onHear(who, text) when someone speaks to him, onStreetEvent(text)
-- when something happens on the street.  His body is
-- the game's: `market.speak` streams into his bubble, `market.finish` ends the
-- line (and lets his neighbours react), and his tools act on the street.
-- llm.persona (docs/MODDING.md) keeps his lines his: whole sentences, no format
-- text, and each tool only on a turn its `when` words fit.
local tomas = llm.persona{
  name = "Tomas",
  voice = "a young street guard at a market in a flooded harbor town. You are nervous about trouble "
    .. "and eager to look important.",
  player = "Traveler",
  length = { sentences = 2, chars = 180 },
  examples = {
    { "Hello, guard.", "Move along, citizen. I mean, good day! Everything is under control." },
    { "What's your name?", "Tomas, of the street watch. Well, I am the street watch." },
  },
  sampler = { preset = "balanced", temperature = 0.8, penalties = { last_n = 128, ["repeat"] = 1.15, presence = 0.3 } },
  tools = {
    follow_player = {
      description = "Escort the traveler through the market.",
      when = { "way", "where", "show me", "lead", "escort", "take me", "follow", "calls you", "pickpocket", "thief" },
      run = function() return market.follow(12) end,
    },
    leave = {
      description = "Go on patrol down the canal for a while.",
      when = { "patrol", "bell", "tide", "canal", "pickpocket", "shout", "fight" },
      run = function() return market.leave() end,
    },
  },
}
local npc = tomas:npc{
  start = function() market.bubble("") end,
  piece = function(text) market.speak(text) end,
  finish = function(text) market.finish(text) end,
  warn = function(msg) spdlog.warning(msg) end,
}
-- The game speaks to this NPC through its two events (examples/market/game.py).
registerForEvent("onHear", npc.hear)
registerForEvent("onStreetEvent", npc.event)
return npc
