-- Oona, the fishmonger of the market street (examples/market).
--
-- The game calls the two functions this file returns: hear(who, text) when
-- someone speaks to her, event(text) when something happens on the street.
-- Her body is the game's: `market.speak` streams into her bubble,
-- `market.finish` ends the line (and lets her neighbours react).
local me = llm.session{
  system = "You are Oona, a loud, cheerful fishmonger at a market in a flooded harbor town. "
    .. "You sell eel, mussels and herring from your cart and you haggle hard. "
    .. "Answer in one short sentence, in your own words.",
  sampler = { preset = "balanced", temperature = 0.8,
              penalties = { last_n = 128, ["repeat"] = 1.15, presence = 0.3 } },
}
local talking = false

local function respond(prompt)
  if talking then return false end
  talking = true
  market.bubble("")
  me:say(prompt, {
    max_tokens = 48, stop = { "\n" },
    on_token = function(piece) market.speak(piece) end,
    on_done = function(result)
      talking = false
      market.finish(result.text)
    end,
  })
  return true
end

return {
  --- Someone said `text` to Oona (or near her). Returns true if she answers.
  hear = function(who, text) return respond(who .. " says: \"" .. text .. "\"") end,
  --- Something happened on the street. Returns true if she reacts.
  event = function(text) return respond(text .. " What do you say?") end,
}
