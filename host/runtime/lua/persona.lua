-- persona: characters that stay themselves on small models (`llm.persona{...}`, see docs/MODDING.md).
--
-- Built once per mod by the host: `factory(llm, lines, env)` returns the
-- `llm.persona` function.  `lines` holds the host's line functions
-- (host/engine/lines.py: clean, visible, shape, breaks); `env` is the mod's own
-- environment, read for the mod's own `rag`, `grammar`, `io` and `dir` (the kit
-- can do nothing the mod could not).
--
-- What a persona does for every line:
--   * a short system prompt: who the character is, how long it speaks, a few
--     example exchanges in its voice;
--   * retrieval: its lore, one document per sentence (and what the player told it), is
--     searched every turn; the note goes right before the player's line;
--   * asked its name, the reply says it (a grammar, or with tools a `say_pattern`, makes it
--     begin with the name);
--   * a line that matches one lore sentence strongly is answered with that sentence, in the
--     character's voice (by words; a fact question the words miss is searched in the store by
--     meaning first); a question for a fact the lore does not answer begins "I don't know";
--   * a sentence the character said before is not said again (sampled again, or the line ends);
--   * without tools, a grammar makes the reply start with "Name: " (the model
--     writes as the character) and be whole sentences without markup (with tools, the
--     spoken text has the same shape);
--   * the stream shows complete sentences only, cleaned (no speaker tags, braces,
--     instruction echoes or leading punctuation), within the length;
--   * a line that claims what the character never claims (an AI, a model, ...) is
--     stopped and sampled again with another seed; forbidden single-token words
--     are banned in the sampler;
--   * tools may have `when = function(text) ... end`: the tool runs only on a turn
--     whose text makes `when` true (a fishmonger calls the guard on a thief, not
--     on a customer).
return function(llm, lines, env)
  -- the host's limits (the `persona` group of host.limits)
  local MAX_EXAMPLES, MAX_LORE_FILES, MAX_LORE_BYTES = lines.max_examples, lines.max_lore_files, lines.max_lore_bytes
  local MAX_LORE_PIECES = 512  -- lore sentences (one store document each)
  local LORE_IN_FLIGHT = 6  -- lore adds sent at once (a mod has a bounded number of requests in flight)
  local KNOWN = { name = true, voice = true, lore = true, length = true, examples = true, forbid = true,
                  sampler = true, tools = true, save = true, memory = true, player = true, max_tokens = true,
                  retries = true, fallback = true, seed = true, remember = true, lore_quote = true,
                  unsure = true, lore_dense = true }
  local DENSE_MARGIN = 0.05  -- the best lore sentence's cosine ahead of the next one's, at least

  local Persona = {}
  Persona.__index = Persona
  Persona.__metatable = false

  local function fail(msg) error("llm.persona: " .. msg, 3) end

  local function str(o, key, needed, cap)
    local v = o[key]
    if v == nil and not needed then return nil end
    if type(v) ~= "string" or v == "" then fail(key .. " must be a non-empty string") end
    if #v > cap then fail(string.format("%s is %d characters; at most %d", key, #v, cap)) end
    return v
  end

  -- lore = "folder" (its .md and .txt files) or { "text", ... } / { name = "text" }
  local function read_lore(lore)
    local docs = {}
    if type(lore) == "table" then
      for k, v in pairs(lore) do
        if type(v) ~= "string" then fail("lore entries must be strings") end
        docs[#docs + 1] = { name = tostring(k), text = v:sub(1, MAX_LORE_BYTES) }
        if #docs > MAX_LORE_FILES then fail("at most " .. MAX_LORE_FILES .. " lore entries") end
      end
      table.sort(docs, function(a, b) return a.name < b.name end)
      return docs
    end
    if type(lore) ~= "string" then fail("lore must be a folder name or a table of texts") end
    if env.dir == nil or env.io == nil then fail("lore = folder needs the mod's io and dir") end
    local ok, entries = pcall(env.dir, lore)
    if not ok or type(entries) ~= "table" then fail("no lore folder " .. lore .. " in this mod") end
    for _, e in ipairs(entries) do
      local name = e.name
      if e.type == "file" and (name:match("%.md$") or name:match("%.txt$")) then
        if #docs >= MAX_LORE_FILES then fail("at most " .. MAX_LORE_FILES .. " lore files in " .. lore) end
        local f = env.io.open(lore .. "/" .. name, "r")
        if f ~= nil then
          local text = f:read(MAX_LORE_BYTES) or ""
          f:close()
          docs[#docs + 1] = { name = name:gsub("%.%w+$", ""), text = text }
        end
      end
    end
    table.sort(docs, function(a, b) return a.name < b.name end)
    return docs
  end

  -- a lore text as its sentences (markdown headings and markup dropped; a sentence under
  -- three words joins the next one)
  local function lore_sentences(text)
    local body, title = {}, nil
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      local heading = line:match("^%s*#+%s*(.-)%s*$")
      if heading == nil then body[#body + 1] = line elseif title == nil and heading ~= "" then title = heading end
    end
    local flat = table.concat(body, " "):gsub("[*_`]", ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
    local out, carry, pos = {}, "", 1
    while pos <= #flat do
      local s, e = flat:find("[.!?]+[\"')]*%s", pos)
      local piece
      if s ~= nil then piece, pos = flat:sub(pos, e - 1), e + 1 else piece, pos = flat:sub(pos), #flat + 1 end
      local sentence = carry == "" and piece or (carry .. " " .. piece)
      local _, words = sentence:gsub("%S+", "")
      if words >= 3 or pos > #flat then out[#out + 1], carry = sentence, "" else carry = sentence end
    end
    local raw = {}
    for i, sentence in ipairs(out) do raw[i] = sentence end
    if title ~= nil then  -- "Lowmarsh: The lower two floors ...": the sentence keeps what it is about
      for i, sentence in ipairs(out) do out[i] = title:gsub("[*_`]", "") .. ": " .. sentence end
    end
    return out, raw
  end

  -- Quoting the lore.  A player's line that matches one lore sentence strongly (most of its content
  -- words are in it) is answered with that sentence, in the character's own voice: a small model
  -- mostly ignores the note it is given, but a reply that begins with the right sentence is right.
  local STOP = {}
  for w in ([[a an the is are was were be been am do does did done you your yours yourself i me my mine we us our
    he him his she her it its they them their what who whom whose where when why how which that this these those
    of to in on at by for from with about around here there and or but if so not no nor can could would will shall
    should may might must have has had any some much many tell know please just really ever exactly also very
    one get got like into over up down out off then than too only even still again once more most other such
    let lets say said own thing things something anything come comes came go goes went]]):gmatch("%a+") do STOP[w] = true end

  -- the content words of a text, normalized ("families" -> "family", "Judy's" -> "judy")
  local function content_words(text, skip)
    local out = {}
    for w in text:lower():gsub("'s%f[%A]", ""):gmatch("%a+") do
      if #w >= 3 and not STOP[w] and w ~= skip then
        out[#out + 1] = w:gsub("ies$", "y")
      end
    end
    return out
  end

  -- one word matches another: the same, or one is the other with a short ending ("pays", "dives")
  local function word_match(a, b)
    if a == b then return true end
    if #a > #b then a, b = b, a end
    return #a >= 3 and #b - #a <= 3 and b:sub(1, #a) == a
  end

  -- a verb after "I" ("dives" -> "dive", "is" -> "am", "carries" -> "carry")
  local VERB_AS_IS = { was = true, will = true, would = true, can = true, could = true, should = true,
                       must = true, may = true, might = true, shall = true }
  local ADVERB = { never = true, always = true, also = true, still = true, often = true, usually = true,
                   only = true, rarely = true, sometimes = true, even = true, just = true, really = true }
  local CLAUSE = { ["and"] = true, but = true, so = true, because = true, ["while"] = true, when = true, where = true }
  local function first_person_verb(w)
    local low = w:lower()
    if low == "is" then return "am" elseif low == "has" then return "have" elseif low == "does" then return "do"
    elseif low == "goes" then return "go" elseif VERB_AS_IS[low] then return w end
    if low:match("ies$") and #low > 4 then return w:sub(1, -4) .. "y" end
    if low:match("ses$") and not low:match("sses$") then return w:sub(1, -2) end  -- "refuses" -> "refuse"
    if low:match("[sxz]es$") or low:match("[cs]hes$") or low:match("oes$") then return w:sub(1, -3) end
    if low:match("[^su]s$") then return w:sub(1, -2) end
    return w
  end

  -- a lore sentence about the character (written in the third person) in the character's own voice:
  -- "Judy dives in a drysuit she rebuilt herself." -> "I dive in a drysuit I rebuilt myself."
  -- `about`: the sentence's file is about the character, so a sentence-initial "She"/"He" is them.
  local function first_person(name, sentence, about)
    local words = {}
    for w in sentence:gmatch("%S+") do words[#words + 1] = w end
    local me = false  -- the character is the subject somewhere in the sentence
    local i = 1
    local function verb_after(j)
      if words[j] ~= nil and ADVERB[words[j]:lower()] then j = j + 1 end
      if words[j] ~= nil and words[j]:match("^%a+$") then words[j] = first_person_verb(words[j]) end
    end
    while i <= #words do
      local w = words[i]
      local bare, tail = w:match("^(%a[%a'-]*)(.*)$")
      local nxt = words[i + 1] and words[i + 1]:match("^%a+$") and words[i + 1]:lower() or nil
      if bare == name .. "'s" then
        words[i] = (i == 1 and "My" or "my") .. tail
      elseif bare == name or (about and i == 1 and (bare == "She" or bare == "He")) or (me and (bare == "she" or bare == "he")) then
        local prev = words[i - 1]
        local starts = i == 1 or prev:match("[;,:]$") ~= nil or CLAUSE[prev:lower()] == true  -- a clause's subject
        local verb = nxt ~= nil and (nxt:match("[^su]s$") ~= nil or ADVERB[nxt] == true or VERB_AS_IS[nxt] == true)
        if bare ~= name or (tail == "" and (starts or verb)) then
          words[i] = "I" .. tail
          me = true
          verb_after(i + 1)
        else
          words[i] = "me" .. tail
        end
      elseif me and (bare == "herself" or bare == "himself") then
        words[i] = "myself" .. tail
      elseif me and (bare == "her" or bare == "his") then
        words[i] = "my" .. tail
      elseif me and (w:match(",$") or bare == "and") and nxt ~= nil and nxt:match("[^su]s$") and i + 1 > 2 then
        verb_after(i + 1)  -- "I repair pumps, rebuild motors, and test regulators"
      end
      i = i + 1
    end
    return table.concat(words, " ")
  end

  -- does a sentence's word list hold a word that matches `a`?
  local function holds(words, a)
    for _, w in ipairs(words) do
      if word_match(a, w) then return true end
    end
    return false
  end

  -- the lore sentence a player's line asks about (its index and share), or nil: each content word
  -- of the line weighs by how rare it is in the lore (a word the lore never uses weighs most, so a
  -- question about something the lore lacks matches nothing well); a word found only in the
  -- sentence's heading counts half; the sentence must hold `lore_quote` of the line's weight
  local function best_quote(p, text)
    if p.quotes == nil or #p.quotes == 0 then return nil end
    local asked = content_words(text, p.name:lower())
    if #asked == 0 then return nil end
    local n, weight, total = #p.quotes, {}, 0
    for k, a in ipairs(asked) do
      local df = 0
      for _, q in ipairs(p.quotes) do
        if holds(q.words, a) or holds(q.heading, a) then df = df + 1 end
      end
      weight[k] = math.log((n + 1) / (df + 0.5))
      total = total + weight[k]
    end
    local best, best_share, best_words = nil, 0, 0
    for i, q in ipairs(p.quotes) do
      local got, words = 0, 0
      for k, a in ipairs(asked) do
        if holds(q.words, a) then got, words = got + weight[k], words + 1
        elseif holds(q.heading, a) then got = got + weight[k] / 2 end
      end
      if got / total > best_share then best, best_share, best_words = i, got / total, words end
    end
    -- one shared word does not decide it when the line has several ("How do people pay you for
    -- repairs?" is not about the one sentence that says "pays")
    if best ~= nil and best_share >= p.lore_quote and (best_words >= 2 or #asked <= 2) then return best, best_share end
    return nil, best_share
  end

  local function system_prompt(p, examples)
    local who = p.voice
    if not who:match("^[Yy]ou are") then who = "You are " .. p.name .. ", " .. who end
    local n = p.sentences
    local parts = {
      who,
      string.format("You always speak as %s, a person in this world, in %s.", p.name,
        n == 1 and "one short sentence" or ("one to " .. ({ "one", "two", "three", "four", "five" })[n] ..
          " short sentences")),
      "If you do not know something, say you don't know.",
    }
    if #examples > 0 then
      local ex = { "For example:" }
      for _, e in ipairs(examples) do
        ex[#ex + 1] = p.player .. ": " .. e[1]
        ex[#ex + 1] = p.name .. ": " .. e[2]
      end
      parts[#parts + 1] = table.concat(ex, "\n")
    end
    return table.concat(parts, "\n")
  end

  -- the reply grammar: "Name: " and 1..n sentences of plain words ending in . ! or ?;
  -- `named`: the first sentence must say the character's name (the reply to "what's your name?")
  local function reply_grammar(p, named)
    if env.grammar == nil then return nil end
    -- (asked its name, one sentence: a small model's next one is where it says another name)
    local more = (p.sentences > 1 and not named) and string.format(' (" " s){0,%d}', p.sentences - 1) or ""
    local name = p.name:gsub('[\\"]', "")
    -- asked its name, the character's first words are one of a few ways of saying it
    -- (the name is a whole word: "Oona," or "Oona." but never "Oonah")
    local first = named and string.format('("I\'m %s" | "My name is %s" | "Call me %s" | "%s") ([.!?] | [ ,;:-] c* [.!?])',
      name, name, name, name) or "s"
    return env.grammar.gbnf(string.format([[
root ::= "%s: " first%s
first ::= %s
s ::= [A-Z0-9] c* [.!?]
c ::= [^.!?\n\r{}<>\[\]*#_|`\\"~^]
]], name, more, first))
  end

  -- the same shape for the spoken part of a tool turn (`say_pattern`, a regular expression: the tool
  -- flow's JSON carries the text, so there is no "Name: " prefix); `named` as above
  local SAY_CHAR = '[^.!?\\n\\r{}<>\\[\\]*#_|`\\\\"~^]'
  local function say_pattern(p, named)
    local more = (p.sentences > 1 and not named)
      and string.format("( [A-Z0-9]%s*[.!?]){0,%d}", SAY_CHAR, p.sentences - 1) or ""
    local name = p.name:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?{}|\\/\"]", function(ch) return "\\" .. ch end)
    local first = named and string.format("(I'm %s|My name is %s|Call me %s|%s)", name, name, name, name)
      or "[A-Z0-9]"
    local rest = named and ("([.!?]|[ ,;:-]" .. SAY_CHAR .. "*[.!?])") or (SAY_CHAR .. "*[.!?]")
    return "^" .. first .. rest .. more .. "$"
  end

  -- the reply that is lore sentence `i` (alone: a small model's own next sentence is where it invents):
  -- a grammar without tools, a say_pattern with them; built once per sentence
  local function quote_shape(p, i)
    p.quote_shapes = p.quote_shapes or {}
    if p.quote_shapes[i] ~= nil then return p.quote_shapes[i] end
    local said = p.quotes[i].text
    local shape
    if p.tools == nil and env.grammar ~= nil then
      shape = env.grammar.gbnf(string.format([[
root ::= "%s: " "%s"
]], p.name:gsub('[\\"]', ""), said))
    elseif p.tools ~= nil then
      shape = "^" .. said:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?{}|\\/\"]", function(ch) return "\\" .. ch end) .. "$"
    end
    p.quote_shapes[i] = shape or false
    return p.quote_shapes[i]
  end

  -- does the player ask for a fact? (an English question that begins with who, what, where, ...)
  local FACT_ASKS = { "^who ", "^what ", "^where ", "^when ", "^which ", "^whose ", "^why ", "^how many ", "^how much ",
                      "^how long ", "^how old ", "^how far ", "^how does ", "^how do ", "^how did " }
  local function asks_fact(text)
    text = text:lower():gsub("%s+", " "):gsub("^%W+", "")
    if not text:match("%?[%s\"')]*$") then return false end
    for _, start in ipairs(FACT_ASKS) do
      if text:find(start) then return true end
    end
    return false
  end

  -- the reply that begins by saying the character does not know (one of `p.unsure`): one sentence
  local function unsure_shape(p)
    if p.unsure_shape ~= nil then return p.unsure_shape end
    local shape
    if p.tools == nil and env.grammar ~= nil then
      local alts = {}
      for _, u in ipairs(p.unsure) do alts[#alts + 1] = '"' .. u .. '"' end
      shape = env.grammar.gbnf(string.format([[
root ::= "%s: " (%s) ([.!?] | [ ,;:-] c* [.!?])
c ::= [^.!?\n\r{}<>\[\]*#_|`\\"~^]
]], p.name:gsub('[\\"]', ""), table.concat(alts, " | ")))
    elseif p.tools ~= nil then
      local alts = {}
      for _, u in ipairs(p.unsure) do
        alts[#alts + 1] = (u:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?{}|\\/\"]", function(ch) return "\\" .. ch end))
      end
      shape = "^(" .. table.concat(alts, "|") .. ")([.!?]|[ ,;:-]" .. SAY_CHAR .. "*[.!?])$"
    end
    p.unsure_shape = shape or false
    return p.unsure_shape
  end

  -- does the player ask the character's name? (English phrasings)
  local NAME_ASKS = { "your name", "who are you", "who're you", "call you", "who might you be", "introduce yourself",
                      "who am i talking to", "who am i speaking" }
  local function asks_name(text)
    text = text:lower():gsub("%s+", " ")
    for _, phrase in ipairs(NAME_ASKS) do
      if text:find(phrase, 1, true) then return true end
    end
    return false
  end

  -- the first complete sentence of a shown line (nil while there is none)
  local function first_sentence(text)
    return text:match("^(.-[.!?])[\"')]*%s") or text:match("^(.-[.!?])[\"')]*$")
  end

  -- forbidden words that are one token (with or without a leading space) get a large negative bias
  local function bans(forbid)
    local bias = {}
    for _, word in ipairs(forbid) do
      if not word:find(" ", 1, true) then
        for _, form in ipairs({ " " .. word, word, " " .. word:lower(), " " .. word:sub(1, 1):upper() .. word:sub(2) }) do
          local ok, ids = pcall(llm.tokenize, form)
          if ok and #ids == 1 then bias[ids[1]] = -100 end
        end
      end
    end
    return bias
  end

  local function merge_sampler(sampler, bias)
    local out = {}
    for k, v in pairs(sampler or { preset = "balanced", temperature = 0.7 }) do out[k] = v end
    local lb = {}
    for k, v in pairs(out.logit_bias or {}) do lb[k] = v end
    for k, v in pairs(bias) do lb[k] = v end
    if next(lb) ~= nil then out.logit_bias = lb end
    return out
  end

  -- tools: keep description/parameters, wrap run so that `when` gates it
  local function gate_tools(p, tools)
    if tools == nil then return nil end
    if type(tools) ~= "table" then fail("tools must be a table") end
    local out = {}
    for name, t in pairs(tools) do
      if type(t) ~= "table" or type(t.run) ~= "function" then fail("tool " .. tostring(name) .. " needs run = function(args)") end
      local when = t.when
      if type(when) == "table" then  -- a list of words: the turn's text mentions one of them
        local words = {}
        for i, w in ipairs(when) do
          if type(w) ~= "string" or w == "" then fail("tool " .. tostring(name) .. ": when[" .. i .. "] must be a word") end
          words[#words + 1] = w:lower()
        end
        when = function(text)
          text = text:lower()
          for _, w in ipairs(words) do
            if text:find(w, 1, true) then return true end
          end
          return false
        end
      elseif when ~= nil and type(when) ~= "function" then
        fail("tool " .. tostring(name) .. ": when must be a function(text) or a list of words")
      end
      p._when = p._when or {}
      p._when[name] = when or false
      local run = t.run
      out[name] = { description = t.description, parameters = t.parameters, run = function(args)
        if when ~= nil and not when(p._turn_text or "") then
          return { error = "nothing here calls for " .. name .. " now" }
        end
        return run(args)
      end }
    end
    return out
  end

  --- llm.persona{ name=, voice=, lore=, length=, examples=, forbid=, sampler=, tools=, save=, memory=,
  ---   player=, max_tokens=, retries=, fallback=, seed= } -> a persona (see docs/MODDING.md)
  local function persona(o)
    if type(o) ~= "table" then error("llm.persona takes one table argument", 2) end
    for k in pairs(o) do
      if not KNOWN[k] then fail("unknown option " .. tostring(k)) end
    end
    local p = setmetatable({}, Persona)
    p.name = str(o, "name", true, 40)
    p.voice = str(o, "voice", true, 1200)
    p.player = str(o, "player", false, 40) or "Player"
    local length = o.length or 2
    if type(length) == "number" then length = { sentences = length } end
    if type(length) ~= "table" then fail("length must be a number of sentences or { sentences =, chars = }") end
    p.sentences = math.floor(tonumber(length.sentences) or 2)
    if p.sentences < 1 or p.sentences > 5 then fail("length: sentences must be 1 to 5") end
    p.chars = math.floor(tonumber(length.chars) or (110 * p.sentences))
    if p.chars < 20 or p.chars > 1000 then fail("length: chars must be 20 to 1000") end
    p.max_tokens = o.max_tokens or (36 * p.sentences + 8)
    p.retries = o.retries or 2
    p.fallback = o.fallback or "I'd rather not say."
    p.seed = o.seed
    local examples = {}
    if o.examples ~= nil then
      if type(o.examples) ~= "table" or #o.examples > MAX_EXAMPLES then
        fail("examples must be a list of at most " .. MAX_EXAMPLES .. " { question, answer } pairs")
      end
      for i, e in ipairs(o.examples) do
        if type(e) ~= "table" or type(e[1]) ~= "string" or type(e[2]) ~= "string" or #e[1] > 300 or #e[2] > 300 then
          fail("examples[" .. i .. "] must be { \"what the player says\", \"what " .. p.name .. " answers\" } (300 characters each)")
        end
        examples[#examples + 1] = { e[1], e[2] }
      end
    end
    p.forbid = {}
    for _, w in ipairs(lines.default_forbid) do p.forbid[#p.forbid + 1] = w end
    if o.forbid ~= nil then
      if type(o.forbid) ~= "table" or #o.forbid > lines.max_forbid then
        fail("forbid must be a list of at most " .. lines.max_forbid .. " phrases")
      end
      for _, w in ipairs(o.forbid) do
        if type(w) ~= "string" or w == "" or #w > 60 then fail("forbid entries must be phrases of 1 to 60 characters") end
        p.forbid[#p.forbid + 1] = w
      end
    end
    p.system = system_prompt(p, examples)
    p.sampler = merge_sampler(o.sampler, bans(p.forbid))
    -- memory: her lore and what she is told, searched every turn (when the host has rag)
    -- Each lore sentence is its own document: a turn's note then holds the few sentences that fit the
    -- question, whole, rather than the start of a long file cut off before the answer.
    local lore_docs = o.lore ~= nil and read_lore(o.lore) or {}
    -- the lore sentences the character may quote (in its own voice), with the words they match
    if o.lore_quote ~= nil and o.lore_quote ~= false and (type(o.lore_quote) ~= "number" or o.lore_quote <= 0
        or o.lore_quote > 1) then
      fail("lore_quote must be a share of the player's words from 0 to 1 (e.g. 0.6), or false")
    end
    p.lore_quote = o.lore_quote == nil and 0.5 or o.lore_quote
    if o.lore_dense ~= nil and o.lore_dense ~= false and (type(o.lore_dense) ~= "number" or o.lore_dense <= 0
        or o.lore_dense > 1) then
      fail("lore_dense must be a cosine from 0 to 1 (e.g. 0.4), or false")
    end
    p.lore_dense = p.lore_quote and (o.lore_dense == nil and 0.4 or o.lore_dense) or false
    if o.unsure ~= nil and o.unsure ~= false and type(o.unsure) ~= "table" then
      fail("unsure must be a list of phrases (e.g. { \"I don't know\" }) or false")
    end
    if o.unsure ~= false and p.lore_quote then
      p.unsure = {}
      for i, u in ipairs(o.unsure or { "I don't know", "No idea", "I'm not sure" }) do
        if type(u) ~= "string" or u == "" or #u > 60 or u:find('[{}<>%[%]*#_|`\\"~^\n\r.!?]') or i > 8 then
          fail("unsure: at most 8 phrases of 1 to 60 characters, plain words")
        end
        p.unsure[#p.unsure + 1] = u
      end
    end
    if p.lore_quote then
      p.quotes, p.quote_ids = {}, {}
      local bad = '[{}<>%[%]*#_|`\\"~^\n\r]'
      for _, doc in ipairs(lore_docs) do
        local full, raw = lore_sentences(doc.text)
        local about = raw[1] ~= nil and raw[1]:sub(1, #p.name + 1) == p.name .. " "
        for i, sentence in ipairs(raw) do
          local said = first_person(p.name, sentence, about)
          if not said:match("[.!?]$") then said = said .. "." end
          if #said <= p.chars and not said:find(bad) and #p.quotes < MAX_LORE_PIECES then
            p.quotes[#p.quotes + 1] = { text = said, words = content_words(sentence, p.name:lower()),
                                        heading = content_words(full[i]:sub(1, #full[i] - #sentence), p.name:lower()) }
            p.quote_ids[string.format("lore:%s:%d", doc.name, i)] = #p.quotes  -- its store document
          end
        end
      end
    end
    if o.memory ~= false and env.rag ~= nil and (o.lore ~= nil or o.memory ~= nil) then
      p.store = env.rag.open(type(o.memory) == "string" and o.memory or "memory")
      -- the adds are queued and sent a few at a time (a mod has a bounded number of requests in flight)
      p.ingest, p.ingesting = {}, {}
      for _, doc in ipairs(lore_docs) do
        p.ingest[#p.ingest + 1] = { "lore:" .. doc.name }  -- a whole-file document an older version added
        for i, sentence in ipairs(lore_sentences(doc.text)) do
          if #p.ingest >= MAX_LORE_PIECES then fail("lore has more than " .. MAX_LORE_PIECES .. " sentences") end
          p.ingest[#p.ingest + 1] = { string.format("lore:%s:%d", doc.name, i), sentence }
        end
      end
      p.ingest_next = 1
      p:feed()
    end
    p.remember = o.remember ~= false and p.store ~= nil
    p.tools = gate_tools(p, o.tools)
    if p.tools == nil then
      p.grammar, p.named_grammar = reply_grammar(p, false), reply_grammar(p, true)
    elseif env.grammar ~= nil then
      p.say_pattern, p.named_say_pattern = say_pattern(p, false), say_pattern(p, true)
    end
    local session_opts = { system = p.system, sampler = p.sampler, overflow = "summarize", memory = p.store,
                           tools = p.tools }
    if o.save ~= nil then
      p.save_name = str(o, "save", false, 64)
      local ok, loaded = pcall(llm.load_session, p.save_name, { memory = p.store })
      if ok then p.session = loaded end
    end
    if p.session == nil then
      p.session = llm.session(session_opts)
      p.restored_turns = 0
    end
    p.talking, p.turns, p.said = false, 0, {}
    return p
  end

  --- Send more of the queued lore to the store (a few requests in flight at a time).
  --- True once all of it is stored.
  function Persona:feed()
    if self.ingest == nil then return true end
    local busy = {}
    for _, h in ipairs(self.ingesting) do
      if not h:done() then busy[#busy + 1] = h end
    end
    while #busy < LORE_IN_FLIGHT and self.ingest_next <= #self.ingest do
      local item = self.ingest[self.ingest_next]
      self.ingest_next = self.ingest_next + 1
      busy[#busy + 1] = item[2] == nil and self.store:remove(item[1]) or self.store:add(item[1], item[2])
    end
    self.ingesting = busy
    if #busy == 0 and self.ingest_next > #self.ingest then self.ingest = nil end
    return self.ingest == nil
  end

  --- The lore sentence the kit would quote for a player's line `text` (in the character's voice),
  --- and how well it matches (0..1); nil and the best share when none matches well enough.
  function Persona:quote_for(text)
    if type(text) ~= "string" then error("persona:quote_for needs a string", 2) end
    if not self.lore_quote then return nil, 0 end
    local i, share = best_quote(self, text:sub(1, 2000))
    return i and self.quotes[i].text or nil, share or 0
  end

  --- How many turns were restored from a saved conversation: nil while loading, 0 when none.
  --- Also (as a second value) the load's result table (messages, cached_tokens, conversation_tokens).
  function Persona:restored()
    self:feed()
    if self.restored_turns == nil and self.session.loaded ~= nil and self.session.loaded:done() then
      local r = self.session.loaded:result()
      local v = r and (r.value or r)
      self.load_info = v
      self.restored_turns = (v and type(v.messages) == "number") and math.floor(v.messages / 2) or 0
    end
    return self.restored_turns, self.load_info
  end

  --- Save the conversation under the persona's save name (a handle), or nil when it has none.
  function Persona:save()
    if self.save_name == nil then return nil end
    return self.session:save(self.save_name)
  end

  --- Forget the conversation (the persona stays). Returns a handle.
  function Persona:forget()
    return self.session:reset()
  end

  --- True while a reply is being generated.
  function Persona:busy()
    self:feed()
    return self.talking
  end

  -- one reply: stream complete clean sentences to on_token, then on_done(result) with
  -- result.text the line as shown; a line that breaks character is sampled again
  local function reply(self, prompt, opts, tries)
    local raw, shown, rejected, ended, claim = {}, "", nil, false, false
    local handle
    local seed = opts.seed or (self.seed ~= nil and (self.seed + self.turns * 7919) or nil)
    if seed ~= nil and tries > 0 then seed = (seed + tries * 104729) % 4294967296 end
    local function on_token(piece)
      if rejected or ended then return end
      raw[#raw + 1] = piece
      local text = table.concat(raw)
      if lines.breaks(text, self.forbid) ~= nil then
        rejected, claim = true, true
        if handle ~= nil then handle:cancel() end
        return
      end
      local now = lines.visible(text, self.name, self.sentences, self.chars)
      if self._asks_name and tries < self.retries and shown == "" and now ~= "" then
        local first = first_sentence(now)
        if first ~= nil and not first:find(self.name, 1, true) then  -- asked its name, it says another
          rejected = true
          if handle ~= nil then handle:cancel() end
          return
        end
      end
      if #now > #shown and now:sub(1, #shown) == shown then
        local delta = now:sub(#shown + 1)
        -- a sentence the character said before (six words in a row, or a whole line) is not said
        -- again: the first one is sampled again, a later one ends the line before it
        if self._quote == nil and lines.repeats(delta, self.said) then
          if shown == "" and tries < self.retries then
            rejected = true
          elseif shown ~= "" then
            ended = true
          end
          if rejected or ended then
            if handle ~= nil then handle:cancel() end
            return
          end
        end
        shown = now
        if opts.on_token then opts.on_token(delta) end
      end
    end
    local function on_done(result)
      if rejected and result.finish_reason == "cancelled" and tries < self.retries then
        return reply(self, prompt, opts, tries + 1)  -- stopped in time: the conversation did not keep it
      end
      if rejected and not claim and result.finish_reason ~= "cancelled" then
        rejected = nil  -- a repeat or a missing name the cancel came too late for: the line as it is
      end
      local final = ""
      if rejected or ended or result.finish_reason == "cancelled" or result.finish_reason == "error" then
        final = shown  -- stopped: what was shown stays the line
      elseif not rejected then
        final = lines.shape(lines.clean(result.text or table.concat(raw), self.name), self.sentences, self.chars,
          result.finish_reason == "stop")
        if lines.breaks(final, self.forbid) ~= nil then final = "" end
      end
      if final == "" and shown == "" and (rejected or result.finish_reason == "stop"
          or result.finish_reason == "length") then
        final = self.fallback
      end
      if final:sub(1, #shown) ~= shown then final = shown end  -- never take back what was shown
      if shown ~= "" and #final > #shown and self._quote == nil and lines.repeats(final:sub(#shown + 1), self.said) then
        final = shown  -- the unstreamed rest says something again
      end
      if #final > #shown and opts.on_token then opts.on_token(final:sub(#shown + 1)) end
      self.talking = false
      local out = {}
      for k, v in pairs(result) do out[k] = v end
      out.text, out.raw, out.retries = final, table.concat(raw), tries
      if (rejected or ended) and out.finish_reason == "cancelled" then
        out.finish_reason, out.error, out.error_type = "stop", nil, nil
      end
      if final ~= "" then
        self.said[#self.said + 1] = final
        if #self.said > 32 then table.remove(self.said, 1) end
      end
      -- what the player told the character is remembered (searched in later turns); questions and the
      -- character's own replies are not: a small model's invention would come back as a "fact"
      if self.remember and self._told ~= nil and opts.remember ~= false then
        self.store:add(string.format("chat:%d:%d", os.time(), self.turns), self._told, { kind = "conversation" })
      end
      if opts.on_done then opts.on_done(out) end
    end
    local say = { max_tokens = opts.max_tokens or self.max_tokens, seed = seed, on_token = on_token, on_done = on_done }
    if tries > 0 then  -- another try: warmer, or a cool sampler says the same line again
      say.temperature = math.min(1.2, math.max(tonumber(self.sampler.temperature) or 0.7, 0.6) + 0.2 * tries)
    end
    if self.tools ~= nil then
      -- a turn whose text no tool fits gets no tool calls at all (the grammar allows only speech)
      local any = false
      for _, when in pairs(self._when or {}) do
        if when == false or when(self._turn_text or "") then any = true end
      end
      say.max_tool_calls = any and (opts.max_tool_calls or 1) or 0
      say.tool_choice = opts.tool_choice
      say.say_pattern = self._asks_name and self.named_say_pattern
        or (self._quote and quote_shape(self, self._quote)) or (self._unsure and unsure_shape(self)) or self.say_pattern
    else
      say.grammar = self._asks_name and self.named_grammar
        or (self._quote and quote_shape(self, self._quote)) or (self._unsure and unsure_shape(self)) or self.grammar
    end
    handle = self.session:say(prompt, say)
    self.handle = handle
    return handle
  end

  -- the lore sentence the store's dense (embedding) search puts first for a turn, or nil: its cosine
  -- must reach `lore_dense` and lead the next lore sentence's by DENSE_MARGIN (words the lore does not
  -- use, "owes" for "debt", still find their sentence; a question near two sentences quotes neither)
  local function dense_quote(p, result)
    local found = {}
    for _, hit in ipairs(type(result) == "table" and type(result.hits) == "table" and result.hits or {}) do
      local i = type(hit) == "table" and p.quote_ids[hit.id] or nil
      if i ~= nil and type(hit.score) == "number" then found[#found + 1] = { i = i, score = hit.score } end
    end
    if found[1] == nil or found[1].score < p.lore_dense then return nil end
    if found[2] ~= nil and found[1].score - found[2].score < DENSE_MARGIN then return nil end
    return found[1].i
  end

  -- a turn that waits for the lore search before its reply starts: cancel(), done(), result() like a
  -- handle (and awaitable); once the reply runs they are the reply's
  local Turn = {}
  Turn.__index = Turn
  Turn.__metatable = false
  function Turn:cancel()
    if self.reply ~= nil then return self.reply:cancel() end
    self.cancelled = true
    if self.search ~= nil then self.search:cancel() end
  end
  function Turn:done()
    if self.reply ~= nil then return self.reply:done() end
    return self.final ~= nil
  end
  function Turn:result()
    if self.reply ~= nil then return self.reply:result() end
    return self.final
  end

  local function start(self, prompt, turn_text, opts, who)
    if self.talking then return nil end
    self:feed()
    opts = opts or {}
    if type(opts) ~= "table" then error("persona: options must be a table", 3) end
    self.talking, self.turns, self._turn_text = true, self.turns + 1, turn_text
    self._asks_name = who ~= nil and asks_name(turn_text)
    -- a line that asks about one lore sentence is answered with it (once: not the same sentence twice)
    -- and a question for a fact that no lore sentence matches begins with "I don't know" (`unsure`)
    self._quote, self._unsure = nil, false
    local search = false  -- ask the store which lore sentence the question means (words missed it)
    if who ~= nil and not self._asks_name and self.lore_quote then
      local i, share = best_quote(self, turn_text)
      -- (a question about something the lore never names is not the lore's: "Who made you?")
      if i ~= nil then self._quote = i elseif self.unsure and (share or 0) > 0 and asks_fact(turn_text) then
        self._unsure = true
      end
      search = i == nil and self.lore_dense and self.store ~= nil and asks_fact(turn_text)
    end
    self._told = nil
    if who ~= nil and not turn_text:match("%?[%s\"')]*$") then
      self._told = string.format("%s told %s: \"%s\"", who, self.name, turn_text:sub(1, 500))
    end
    if not search then
      local ok, h = pcall(reply, self, prompt, opts, 0)
      if not ok then self.talking = false; error(h, 3) end
      return h
    end
    local turn = setmetatable({}, Turn)
    local function finish(result)  -- the turn ends before a reply started
      self.talking = false
      turn.final = result
      if opts.on_done then opts.on_done(result) end
    end
    local ok, h = pcall(self.store.search, self.store, turn_text:sub(1, 2000), { k = 5, mode = "dense",
      on_done = function(result)
        if turn.cancelled or result.finish_reason == "cancelled" then
          return finish({ text = "", finish_reason = "cancelled" })
        end
        local i = result.error == nil and dense_quote(self, result) or nil  -- a failed search: words decide
        if i ~= nil then self._quote, self._unsure = i, false end
        local went, r = pcall(reply, self, prompt, opts, 0)
        if went then turn.reply = r else finish({ text = "", finish_reason = "error", error = tostring(r),
                                                  error_type = "internal" }) end
      end })
    if not ok then self.talking = false; error(h, 3) end
    turn.search = h
    self.handle = turn
    return turn
  end

  --- The player says `text`; the reply streams to opts.on_token(text), then opts.on_done(result).
  --- opts: on_token, on_done, seed, max_tokens, tool_choice ("required": act first). Returns a handle, or nil while a reply is running.
  function Persona:ask(text, opts)
    if type(text) ~= "string" or text == "" then error("persona:ask needs some text", 2) end
    return start(self, text:sub(1, 2000), text, opts, self.player)
  end

  --- Someone else (`who`) says `text` near the character. Returns a handle, or nil while busy.
  function Persona:hear(who, text, opts)
    if type(who) ~= "string" or type(text) ~= "string" then error("persona:hear(who, text) takes two strings", 2) end
    local function norm(n) return (n:lower():gsub("^the ", "")) end
    local prompt = (who == "" or norm(who) == norm(self.player)) and text or (who .. " says: " .. text)
    return start(self, prompt:sub(1, 2000), text, opts, who == "" and self.player or who)
  end

  --- Something happens around the character (`text` describes it). Returns a handle, or nil while busy.
  function Persona:event(text, opts)
    if type(text) ~= "string" or text == "" then error("persona:event needs a description", 2) end
    return start(self, "(" .. text:sub(1, 1000) .. ")", text, opts)
  end

  --- Stop the reply in progress (its on_done reports "cancelled").
  function Persona:cancel()
    if self.talking and self.handle ~= nil then self.handle:cancel() end
  end

  --- The public table a game drives an NPC through: hear(who, text), event(text) (true when it
  --- starts a reply), reseed(n). hooks: start(), piece(text), finish(text), warn(message).
  function Persona:npc(hooks)
    if type(hooks) ~= "table" then error("persona:npc takes a table of hooks", 2) end
    local me = self
    local function opts()
      return {
        on_token = function(piece) if hooks.piece then hooks.piece(piece) end end,
        on_done = function(result)
          if result.error and hooks.warn then hooks.warn(me.name .. ": " .. result.error) end
          if hooks.finish then hooks.finish(result.text or "") end
        end,
      }
    end
    return {
      --- Someone said `text` to the character (or near it). True if it answers.
      hear = function(who, text)
        if me.talking then return false end
        if hooks.start then hooks.start() end
        return me:hear(who, text, opts()) ~= nil
      end,
      --- Something happened on the street. True if the character reacts.
      event = function(text)
        if me.talking then return false end
        if hooks.start then hooks.start() end
        return me:event(text, opts()) ~= nil
      end,
      --- Fix the seed of the character's replies (each turn derives its own from it).
      reseed = function(n) me.seed = math.floor(tonumber(n) or 0) % 4294967296 end,
    }
  end

  return persona
end
