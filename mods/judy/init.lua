-- Judy: a persona you can chat with.
--
-- Keeps one session with the player (each turn reuses the cached prefix),
-- restores it on init and saves it on shutdown, and streams her replies.
-- When the host has the `rag` module, her lore (lore/*.md) and what the player
-- told her live in a store that the session searches every turn.
--
-- The game talks to her through the public table this file returns:
--   judy.ask(text, on_token, on_done) -> handle
--   judy.greeting
local persona = require("persona")

local judy = { greeting = persona.greeting }
local session
local memory      -- her rag store (lore and what the player told her), when the host has rag
local talking = false
local exchanges = 0
local restored = nil  -- turns restored from the saved conversation, once known

local function new_session(memory)
  return llm.session{
    system = persona.system,
    sampler = persona.sampler,
    overflow = "summarize",  -- a running summary of what no longer fits, after her persona
    memory = memory,
  }
end

registerForEvent("onInit", function()
  if rag ~= nil then
    memory = rag.open("memory")
    -- lore files are listed in lore/index.lua so the sandbox needs no directory access
    for _, name in ipairs(require("lore.index")) do
      memory:add("lore:" .. name, require("lore." .. name))
    end
  end
  local ok, loaded = pcall(llm.load_session, "judy", { memory = memory })
  if ok then
    session = loaded
    spdlog.info("restored the saved conversation")
  else
    session = new_session(memory)
    restored = 0
  end
end)

--- Say something to Judy; her reply streams to on_token(text), then on_done(result).
function judy.ask(text, on_token, on_done)
  if type(text) ~= "string" or text == "" then error("judy.ask needs some text", 2) end
  if talking then error("Judy is still answering", 2) end
  talking = true
  return session:say(text, {
    max_tokens = 96,
    stop = { "\n\n", "\nUser:" },
    on_token = on_token,
    on_done = function(result)
      talking = false
      if result.error then spdlog.warning("reply failed: " .. result.error) end
      if memory ~= nil and result.text ~= "" then
        -- remember the exchange: later turns (and later runs) can retrieve it
        exchanges = exchanges + 1
        memory:add(string.format("chat:%d:%d", os.time(), exchanges),
          "The player said: " .. text .. "\nJudy answered: " .. result.text, { kind = "conversation" })
      end
      if on_done then on_done(result) end
    end,
  })
end

--- How many turns were restored from the last run: nil while loading, 0 when none.
function judy.restored()
  if restored == nil and session ~= nil and session.loaded ~= nil and session.loaded:done() then
    local r = session.loaded:result()
    local v = r and (r.value or r)
    restored = (v and type(v.messages) == "number") and math.floor(v.messages / 2) or 0
  end
  return restored
end

--- Forget the conversation (her persona stays).
function judy.forget()
  return session:reset()
end

registerCommand("judy", "say something to Judy (her reply goes to the console)", function(args)
  local parts = {}
  judy.ask(args, function(t) parts[#parts + 1] = t end,
    function() print("Judy: " .. table.concat(parts)) end)
end)

registerForEvent("onShutdown", function()
  if session ~= nil then session:save("judy") end
end)

return judy
