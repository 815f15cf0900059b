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

-- A line is one sentence of 3 to 13 whole words that starts with a capital and ends on . ! or ?
-- (a word cap, not a character cap: a character cap made the grammar end lines in the middle of a word).
local LINE_PATTERN = "^[A-Z][a-z']*,?(?: [A-Za-z'-]+,?){1,11} [A-Za-z'-]+[.!?]$"

local LINE_SCHEMA = {
  type = "object",
  properties = {
    speaker = { type = "string" },
    line = { type = "string", pattern = LINE_PATTERN },
    emotion = { type = "string", enum = EMOTIONS },
    next_action = { type = "string", enum = ACTIONS },
  },
  required = { "speaker", "line", "emotion", "next_action" },
  additionalProperties = false,
}

-- One grammar per set of actions that fit an event (built once, then reused).  The speaker
-- is not in the grammar: each line's speaker is set to the NPC that said it.  The built-in
-- scene's grammars are built at load; inside the scene's coroutine a new one waits for the
-- next frame, so a frame builds at most one.
local grammars = {}
local function next_frame()
  local asked = 0
  await({ done = function() asked = asked + 1 return asked > 1 end, result = function() end })
end
local function line_grammar(actions, now)
  local key = table.concat(actions, ",")
  if grammars[key] == nil then
    if not now then next_frame() end
    local props = {}
    for k, v in pairs(LINE_SCHEMA.properties) do props[k] = v end
    props.next_action = { type = "string", enum = actions }
    grammars[key] = grammar.schema{ type = "object", properties = props, required = LINE_SCHEMA.required,
                                    additionalProperties = false }
  end
  return grammars[key]
end

for i, npc in ipairs(npcs) do
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
-- `actions`: the next_action values that fit the event (the grammar allows only those).
local RETRIES = 2  -- a line that is empty or says again what was said is sampled again this many times

local function said_lines()
  local out = {}
  for _, e in ipairs(scene.log) do out[#out + 1] = e.line end
  return out
end

local function ask(npc, round, event, actions, try)
  local prompt = "Scene: a busy market street in a flooded harbor town.\n"
    .. "What was said so far:\n" .. (#scene.log > 0 and recent(6) or "(nothing yet)") .. "\n"
    .. "Event: " .. event .. "\n"
    .. "What does " .. npc.name .. " the " .. npc.role .. " say now? Answer as JSON with the fields "
    .. "speaker, line, emotion and next_action."
  return llm.chat{
    messages = { { role = "system", content = npc.persona }, { role = "user", content = prompt } },
    grammar = line_grammar(actions), max_tokens = 160, temperature = 0.7,
    seed = scene.seed * 1000 + round * 10 + npc.index + try * 7919,
  }
end

local function react(round, event, who, actions)
  local handles = {}
  for _, npc in ipairs(who) do
    handles[#handles + 1] = ask(npc, round, event, actions, 0)
  end
  local lines = {}
  local earlier = said_lines()  -- the scene so far: a line copied from it is a repeat the player sees
  for i, h in ipairs(handles) do
    local r = await(h)
    local npc = who[i]
    local line = r.value and llm.clean_line(r.value.line or "", npc.name, 1) or ""
    local try = 0
    while (line == "" or llm.repeats(line, earlier)) and try < RETRIES do
      try = try + 1
      r = await(ask(npc, round, event, actions, try))
      line = r.value and llm.clean_line(r.value.line or "", npc.name, 1) or ""
    end
    if line ~= "" and llm.repeats(line, earlier) then
      spdlog.warning(npc.name .. " only said again what was said (the line is dropped): " .. line)
    elseif line ~= "" then
      earlier[#earlier + 1] = line
      r.value.speaker, r.value.line, r.value.round, r.value.event = npc.name, line, round, event
      lines[#lines + 1] = r.value
    else
      spdlog.warning(npc.name .. " said nothing usable: " .. tostring(r.error))
    end
  end
  for _, l in ipairs(lines) do scene.log[#scene.log + 1] = l end
  return lines
end

-- The built-in scene: { event, cast indexes, the actions that fit }.
local EVENTS = {
  { "A traveler walks into the market street.", { 1, 2, 3, 4 }, { "greet_player", "haggle", "keep_working" } },
  { "Oona shouts to Bram that his hooks are rusting in the damp.", { 2, 3 }, { "address_neighbor", "keep_working" } },
  { "The tide bell rings from the clock tower: high water within the hour.", { 1, 2, 3, 4 },
    { "keep_working", "leave", "address_neighbor" } },
}

local function run_scene()
  for round = 1, math.min(scene.rounds, #scene.events) do
    local e, who = scene.events[round], {}
    for _, i in ipairs(e[2]) do who[#who + 1] = npcs[i] end
    react(round, e[1], who, e[3])
  end
  scene.done = true
end

scene.events = EVENTS
for _, e in ipairs(EVENTS) do line_grammar(e[3], true) end

registerForEvent("onInit", function()
  Cron.After(0.25, function() async(run_scene) end)  -- the player arrives a moment after load
end)

--- The game reads the dialogue through this table (GetMod("market") from other mods).
return {
  --- Seed, number of rounds and (optionally) the scene's events, set before the first frame:
  --- events = { { text =, who = { cast indexes }, actions = { next_action values that fit } }, ... }
  configure = function(seed, rounds, events)
    scene.seed = seed
    scene.rounds = rounds or scene.rounds
    if type(events) == "table" and #events > 0 then
      local list = {}
      for i = 1, math.min(#events, 64) do
        local e = events[i]
        local who, acts = {}, {}
        for _, n in ipairs(e.who or {}) do if npcs[n] then who[#who + 1] = n end end
        for _, a in ipairs(e.actions or ACTIONS) do acts[#acts + 1] = a end
        if type(e.text) == "string" and #who > 0 and #acts > 0 then list[#list + 1] = { e.text:sub(1, 200), who, acts } end
      end
      if #list > 0 then scene.events = list end
    end
  end,
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
