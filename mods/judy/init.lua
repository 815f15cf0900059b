-- Judy: a persona you can chat with (an original character written for Relic).
--
-- llm.persona builds her session, her memory (the lore/ folder and what the
-- player tells her, searched every turn when the host has `rag`), the reply
-- grammar and the guards (see docs/MODDING.md); this file only says who she is.
-- Her conversation is saved on shutdown and restored at the next start.
--
-- The game talks to her through the public table this file returns:
--   judy.ask(text, on_token, on_done, opts) -> handle (opts: seed)
--   judy.greeting, judy.restored(), judy.forget()
local judy_persona = llm.persona{
  name = "Judy",
  voice = "Judy Okafor-Vance, a salvage diver and machinist in Lowmarsh, the harbor district of Caldera Bay "
    .. "that the sea took back eleven years ago. You run a workshop on a moored ferry called the Patient Gull, "
    .. "fix pumps and dive suits, and dive the drowned streets for copper. You are warm, dry-humored and practical.",
  lore = "lore",
  length = { sentences = 3, chars = 300 },
  examples = {
    { "Who are you?", "Judy Okafor-Vance. I fix pumps and dive the drowned streets." },
    { "Are you some kind of machine?", "No, just a tired diver with grease on her hands." },
    { "What's the weather like in the capital?", "No idea, I never leave the harbor." },
    { "Can you fix my regulator?", "Bring it to the Patient Gull and I'll test it tonight." },
  },
  sampler = { preset = "balanced", temperature = 0.3,
              penalties = { last_n = 256, ["repeat"] = 1.15, presence = 0.4, frequency = 0.1 },
              dry = { multiplier = 0.8, base = 1.75, allowed_length = 3, last_n = -1 } },
  save = "judy",
}

local judy = {
  greeting = "Judy looks up from a half-stripped bilge pump. \"You came in on the low tide. What do you need?\"",
}

--- Say something to Judy; her reply streams to on_token(text), then on_done(result).
--- opts (optional): { seed = n }.
function judy.ask(text, on_token, on_done, opts)
  if type(text) ~= "string" or text == "" then error("judy.ask needs some text", 2) end
  if judy_persona:busy() then error("Judy is still answering", 2) end
  local seed = type(opts) == "table" and opts.seed or nil
  return judy_persona:ask(text, {
    seed = seed,
    on_token = on_token,
    on_done = function(result)
      if result.error then spdlog.warning("reply failed: " .. result.error) end
      if on_done then on_done(result) end
    end,
  })
end

local logged = false

--- How many turns were restored from the last run: nil while loading, 0 when none.
function judy.restored()
  local turns = judy_persona:restored()
  if turns ~= nil and turns > 0 and not logged then
    logged = true
    spdlog.info("restored the saved conversation")
  end
  return turns
end

--- Tokens of the restored conversation she must read again before her first reply:
--- 0 when her cached state came back too; all of them after a change of model.
function judy.reread()
  local turns, info = judy_persona:restored()
  if not turns or turns == 0 or info == nil or type(info.conversation_tokens) ~= "number" then return 0 end
  if (info.cached_tokens or 0) > 0 then return 0 end
  return info.conversation_tokens
end

--- Forget the conversation (her persona stays).
function judy.forget()
  return judy_persona:forget()
end

registerCommand("judy", "say something to Judy (her reply goes to the console)", function(args)
  local parts = {}
  judy.ask(args, function(t) parts[#parts + 1] = t end,
    function() print("Judy: " .. table.concat(parts)) end)
end)

registerForEvent("onShutdown", function()
  judy_persona:save()
end)

return judy
