--- character: a game character that answers from one llm session, one reply at a time.
--
--   local character = require("character")
--   local me = llm.session{ system = "You are Bram, ...", tools = tools }
--   return character.npc(me, "Bram", {
--     start  = function() end,          -- a reply begins (clear the bubble)
--     piece  = function(text) end,      -- each streamed piece of the spoken text
--     finish = function(text) end,      -- the reply ended (text may be empty)
--     warn   = spdlog.warning,          -- where request errors go
--   })
--
-- The returned table is a mod's public table for the game: hear(who, text)
-- and event(text), each true when the character starts a reply, false while
-- one is still running.

local M = {}

--- Wrap `session` as a character named `name` whose speech goes to `hooks`.
-- opts (optional): max_tokens (60), max_tool_calls (1).
function M.npc(session, name, hooks, opts)
  opts = opts or {}
  local talking = false
  local function respond(prompt)
    if talking then return false end
    talking = true
    hooks.start()
    session:say(prompt, {
      max_tokens = opts.max_tokens or 60, max_tool_calls = opts.max_tool_calls or 1,
      on_token = function(piece) hooks.piece(piece) end,
      on_done = function(result)
        talking = false
        if result.error then hooks.warn(name .. ": " .. result.error) end
        hooks.finish(result.text)
      end,
    })
    return true
  end
  return {
    --- Someone said `text` to the character (or near it). True if it answers.
    hear = function(who, text) return respond(who .. " says: \"" .. text .. "\"") end,
    --- Something happened on the street. True if the character reacts.
    event = function(text) return respond("(" .. text .. ") Say something about it to the people around you.") end,
  }
end

return M
