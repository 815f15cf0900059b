-- Market street: NPC dialogue scripted from Lua.
--
-- Game events (the player arriving, one NPC addressing another, the tide bell)
-- make the NPCs speak.  Each line is constrained by a JSON schema (speaker,
-- line, emotion, next_action from a fixed list) and every NPC of an event
-- answers at once: their requests run as one batch of sequences on the worker.
-- A round starts only after the previous one finished, so the scene is the
-- same for the same seed however fast the machine is.
local npcs = require("npcs")

local EMOTIONS = { "happy", "angry", "curious", "worried", "bored" }
local ACTIONS = { "keep_working", "greet_player", "haggle", "call_guard", "leave", "address_neighbor" }

local scene = { seed = 7, rounds = 3, log = {}, done = false }

local LINE_SCHEMA = {
  type = "object",
  properties = {
    speaker = { type = "string" },
    line = { type = "string", pattern = "^[A-Z][A-Za-z ,.!?'-]{8,70}$" },
    emotion = { type = "string", enum = EMOTIONS },
    next_action = { type = "string", enum = ACTIONS },
  },
  required = { "speaker", "line", "emotion", "next_action" },
  additionalProperties = false,
}

local function line_grammar(name)
  local props = {}
  for k, v in pairs(LINE_SCHEMA.properties) do props[k] = v end
  props.speaker = { const = name }   -- each NPC can only speak as itself
  return grammar.schema{ type = "object", properties = props, required = LINE_SCHEMA.required,
                         additionalProperties = false }
end

for i, npc in ipairs(npcs) do
  npc.grammar = line_grammar(npc.name)
  npc.index = i
end

local function recent(n)
  local out = {}
  for i = math.max(1, #scene.log - n + 1), #scene.log do
    local e = scene.log[i]
    out[#out + 1] = e.speaker .. ": " .. e.line
  end
  return table.concat(out, "\n")
end

-- Every NPC in `who` reacts to `event` at once; returns their lines in cast order.
local function react(round, event, who)
  local handles = {}
  for _, npc in ipairs(who) do
    local prompt = "Scene: a busy market street in a flooded harbor town.\n"
      .. "What was said so far:\n" .. (#scene.log > 0 and recent(6) or "(nothing yet)") .. "\n"
      .. "Event: " .. event .. "\n"
      .. "What does " .. npc.name .. " the " .. npc.role .. " say now? Answer as JSON with the fields "
      .. "speaker, line (one short sentence in " .. npc.name .. "'s own words), emotion and next_action."
    handles[#handles + 1] = llm.chat{
      messages = { { role = "system", content = npc.persona }, { role = "user", content = prompt } },
      grammar = npc.grammar, max_tokens = 100, temperature = 0.7,
      seed = scene.seed * 1000 + round * 10 + npc.index,
    }
  end
  local lines = {}
  for i, h in ipairs(handles) do
    local r = await(h)
    local npc = who[i]
    if r.value then
      r.value.round, r.value.event = round, event
      lines[#lines + 1] = r.value
    else
      spdlog.warning(npc.name .. " said nothing usable: " .. tostring(r.error))
    end
  end
  for _, l in ipairs(lines) do scene.log[#scene.log + 1] = l end
  return lines
end

local EVENTS = {
  { "A traveler (the player) walks into the market street.", { 1, 2, 3, 4 } },
  { "Oona shouts to Bram that his hooks are rusting in the damp.", { 2, 3 } },
  { "The tide bell rings from the clock tower: high water within the hour.", { 1, 2, 3, 4 } },
}

local function run_scene()
  for round = 1, math.min(scene.rounds, #EVENTS) do
    local event, who = EVENTS[round][1], {}
    for _, i in ipairs(EVENTS[round][2]) do who[#who + 1] = npcs[i] end
    react(round, event, who)
  end
  scene.done = true
end

registerForEvent("onInit", function()
  Cron.After(0.25, function() async(run_scene) end)  -- the player arrives a moment after load
end)

--- The game reads the dialogue through this table (GetMod("market") from other mods).
return {
  --- Seed and number of rounds (1-3) for the scene (set before the first frame).
  configure = function(seed, rounds) scene.seed = seed; scene.rounds = rounds or scene.rounds end,
  --- The JSON Schema every line follows, minus the per-NPC speaker constant.
  schema = function() return LINE_SCHEMA end,
  --- Lines so far: { {speaker=, line=, emotion=, next_action=, round=, event=}, ... }
  lines = function() return scene.log end,
  --- True once every round has been spoken.
  done = function() return scene.done end,
  actions = ACTIONS,
  emotions = EMOTIONS,
  cast = npcs,
}
