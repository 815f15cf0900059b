"""llm.persona with the real model: whole clean sentences, guards against out-of-character lines, gated tools."""

from __future__ import annotations

import re
import time

from host.engine.lines import breaks_character

PERSONA = """
  local maren = llm.persona{
    name = "Maren",
    voice = "the keeper of a lighthouse on a stormy northern coast. You are calm and kind.",
    length = 2,
    examples = { { "Hello!", "Welcome, traveler. Mind the wet steps." } },
    %s
  }
  local function ask(tag, text, opts)
    opts = opts or {}
    local pieces = {}
    opts.on_token = function(t) pieces[#pieces + 1] = t end
    opts.on_done = function(r)
      print(tag .. "|" .. r.finish_reason .. "|" .. tostring(r.retries) .. "|" .. #(r.tool_calls or {}) .. "|"
        .. table.concat(pieces) .. "|" .. r.text)
    end
    return maren:ask(text, opts)
  end
"""


def run_until(host, cond, timeout=240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        host.update(1 / 60)
        time.sleep(0.002)
    assert cond(), "timed out"


def done_lines(console, mod, tag):
    return [l.split("|") for l in console.mod_lines(mod) if l.startswith(tag + "|")]


def test_replies_are_whole_clean_sentences_and_stream_what_they_end_with(llm_host):
    host, console = llm_host({"keeper": PERSONA % "" + """
      local n = 0
      local questions = { "Who are you?", "What is the weather like?", "Tell me a long story about the sea." }
      local function next_q()
        n = n + 1
        if questions[n] then ask("r" .. n, questions[n], { seed = n }) end
      end
      registerForEvent("onUpdate", function() if not maren:busy() and n < #questions then next_q() end end)
    """})
    run_until(host, lambda: all(done_lines(console, "keeper", f"r{i}") for i in (1, 2, 3)))
    for i in (1, 2, 3):
        _, reason, _, _, streamed, text = done_lines(console, "keeper", f"r{i}")[0]
        assert reason in ("stop", "length") and text, (reason, text)
        assert streamed == text, "the stream shows exactly the final line"
        assert re.search(r"[.!?]['\")]*$", text), text
        assert not re.search(r"[{}\[\]<>*#]|^\W|Maren\s*:", text), text
        assert len(re.findall(r"[.!?]+(?:\s|$)", text)) <= 2, text


def test_a_line_that_breaks_character_is_sampled_again_or_replaced(llm_host):
    """A character asked "Are you an AI?" once answered "Yes, I am an AI"."""
    forbid = ("the", "a", "you", "I")
    host, console = llm_host({"keeper": PERSONA % ('forbid = { "the", "a", "you", "I" }, fallback = "Hmm."') + """
      registerForEvent("onInit", function() ask("f", "Tell me about you and the lighthouse.", { seed = 3 }) end)
    """})
    run_until(host, lambda: done_lines(console, "keeper", "f"))
    _, reason, retries, _, streamed, text = done_lines(console, "keeper", "f")[0]
    assert reason == "stop" and text
    assert breaks_character(text, forbid) is None, text
    assert streamed == text


def test_a_tool_runs_only_on_a_turn_its_when_words_fit(llm_host):
    """A fishmonger called the guard twice when the player only asked for eel."""
    host, console = llm_host({"keeper": PERSONA % """tools = {
      call_guard = { description = "Call the guard on a thief.", when = { "thief", "steal" },
                     run = function() print("GUARD CALLED") return { ok = true } end },
    }""" + """
      local asked = false
      registerForEvent("onInit", function()
        ask("calm", "I would like some tea, please.", { seed = 1, tool_choice = "required" })
      end)
      registerForEvent("onUpdate", function()
        if not maren:busy() and not asked then
          asked = true
          ask("thief", "A thief steals your lamp!", { seed = 2, tool_choice = "required" })
        end
      end)
    """})
    run_until(host, lambda: done_lines(console, "keeper", "thief"))
    calm = done_lines(console, "keeper", "calm")[0]
    thief = done_lines(console, "keeper", "thief")[0]
    assert calm[3] == "0", "no tool on a turn its words do not fit, even when a tool call is required"
    assert thief[3] == "1" and console.mod_lines("keeper").count("GUARD CALLED") == 1


def test_bad_options_name_the_modders_line(llm_host):
    host, console = llm_host({"bad": 'local p = llm.persona{ name = "X", voice = "a smith", length = 9 }\n'})
    mod = host.mods["bad"]
    assert mod.state != "loaded"
    assert "init.lua:1" in mod.reason and "length" in mod.reason, mod.reason
    host2, _ = llm_host({"bad2": 'local p = llm.persona{ name = "X", voice = "a smith", colour = 1 }\n'})
    assert "unknown option colour" in host2.mods["bad2"].reason


def test_asked_its_name_the_character_says_it(llm_host):
    """A character asked its name once answered "My name is Alex"; the kit makes the first words say it."""
    host, console = llm_host({"keeper": PERSONA % "" + """
      local n = 0
      local questions = { "What's your name?", "Sorry, I didn't catch your name.", "And who are you, exactly?" }
      registerForEvent("onUpdate", function()
        if not maren:busy() and n < #questions then n = n + 1; ask("n" .. n, questions[n], { seed = 40 + n }) end
      end)
    """})
    run_until(host, lambda: all(done_lines(console, "keeper", f"n{i}") for i in (1, 2, 3)))
    for i in (1, 2, 3):
        _, reason, _, _, streamed, text = done_lines(console, "keeper", f"n{i}")[0]
        assert "Maren" in re.split(r"(?<=[.!?])\s", text)[0], text
        assert streamed == text


def test_asked_its_name_a_character_with_tools_says_it_too(llm_host):
    """The market NPCs (personas with tools) said their name one time in three: the spoken part of a
    tool turn now has the same name-first shape (a `say_pattern`), and every line is whole sentences."""
    host, console = llm_host({"keeper": PERSONA % """retries = 0, tools = {
      call_guard = { description = "Call the guard on a thief.", when = { "thief", "steal" },
                     run = function() return { ok = true } end },
      give_item = { description = "Give the traveler a candle.", run = function() return { ok = true } end },
    }""" + """
      local n = 0
      local questions = { "What's your name?", "Who are you, exactly?", "Tell me your name and give me a candle.",
                          "Nice weather today." }
      registerForEvent("onUpdate", function()
        if not maren:busy() and n < #questions then n = n + 1; ask("t" .. n, questions[n], { seed = 60 + n }) end
      end)
    """})
    run_until(host, lambda: all(done_lines(console, "keeper", f"t{i}") for i in (1, 2, 3, 4)))
    for i in (1, 2, 3, 4):
        _, reason, retries, _, streamed, text = done_lines(console, "keeper", f"t{i}")[0]
        assert text and streamed == text, (streamed, text)
        assert re.search(r"^[A-Z0-9].*[.!?]$", text) and not re.search(r"[{}\[\]<>*#]", text), text
        if i < 4:
            assert re.match(r"(I'm |My name is |Call me )?Maren\b", text), text  # no resampling: the pattern


def test_a_say_pattern_is_checked_and_capped():
    from host.engine.tools import ToolError, ToolSet
    from host.limits import ToolLimits

    made = []
    ToolSet({"a": {}}, lambda s: made.append(s) or s, say_pattern="^Hi[a-z ]*[.]$")
    assert made[0]["properties"]["say"] == {"type": "string", "pattern": "^Hi[a-z ]*[.]$"}
    for bad in ("", "x" * 9, 5):
        try:
            ToolSet({"a": {}}, lambda s: s, say_pattern=bad, limits=ToolLimits(max_say_pattern_chars=8))
        except ToolError as exc:
            assert "say_pattern must be a regular expression of 1 to 8 characters" in str(exc)
        else:
            raise AssertionError(f"say_pattern {bad!r} was accepted")


def test_a_character_does_not_say_again_what_it_said(llm_host):
    """The same question in the same state with the same seed gives the same line; the second time
    the kit samples again (or ends the line before the repeated sentence)."""
    host, console = llm_host({"keeper": PERSONA % "" + """
      local step = 0
      registerForEvent("onUpdate", function()
        if maren:busy() then return end
        step = step + 1
        if step == 1 then ask("x1", "Tell me about the sea.", { seed = 5 })
        elseif step == 2 then maren:forget()
        elseif step == 3 then ask("x2", "Tell me about the sea.", { seed = 5 }) end
      end)
    """})
    run_until(host, lambda: done_lines(console, "keeper", "x2"))
    first = done_lines(console, "keeper", "x1")[0]
    second = done_lines(console, "keeper", "x2")[0]
    from host.engine.lines import repeats
    assert first[5] and second[5], (first, second)
    assert not repeats(second[5], [first[5]]), (first[5], second[5])


QUOTE_MOD = """
  local keeper = llm.persona{ name = "Maren", voice = "the keeper of a lighthouse.", memory = false,
    lore = { light = "# The light\\nMaren lights the lamp at dusk and trims the wick at midnight. "
                    .. "She never lets the oil run low. The lens came from a wrecked steamer called the Albatross.",
             people = "# People Maren knows\\nOld Hesk brings the oil and pays Maren in smoked fish." } }
  for _, q in ipairs({ "When do you light the lamp?", "Where did the lens come from?", "Who brings the oil?",
                       "Do you ever let the oil run low?", "How are you today?", "What colour was the Albatross?",
                       "Do people pay you for the light?" }) do
    local said, share = keeper:quote_for(q)
    print(string.format("q|%s|%s|%.2f", q, tostring(said), share))
  end
  local n = 0
  local asks = { "Where did the lens come from?", "What colour was the Albatross?" }
  registerForEvent("onUpdate", function()
    if keeper:busy() or n >= #asks then return end
    n = n + 1
    local tag = "a" .. n
    keeper:ask(asks[n], { seed = n, on_done = function(r) print(tag .. "|" .. r.text) end })
  end)
"""


def test_a_question_its_lore_answers_is_answered_with_that_lore_in_its_own_voice(llm_host):
    """Judy answered 17 % of her lore questions from her lore: the model ignored the note it was given.
    A line that matches a lore sentence strongly is answered with that sentence (third person about
    the character becomes first person); a question about what the lore lacks begins "I don't know"."""
    host, console = llm_host({"keeper": QUOTE_MOD})
    run_until(host, lambda: any(l.startswith("a2|") for l in console.mod_lines("keeper")))
    q = {l.split("|")[1]: l.split("|")[2] for l in console.mod_lines("keeper") if l.startswith("q|")}
    assert q["When do you light the lamp?"] == "I light the lamp at dusk and trim the wick at midnight."
    assert q["Do you ever let the oil run low?"] == "I never let the oil run low."
    assert q["Where did the lens come from?"] == "The lens came from a wrecked steamer called the Albatross."
    assert q["Who brings the oil?"] == "Old Hesk brings the oil and pays me in smoked fish."
    assert q["How are you today?"] == "nil" and q["What colour was the Albatross?"] == "nil"
    # one shared word ("pays") and a heading's word ("People") do not make a three-word line Hesk's
    assert q["Do people pay you for the light?"] == "nil"
    said = {l.split("|")[0]: l.split("|", 1)[1] for l in console.mod_lines("keeper") if l[:3] in ("a1|", "a2|")}
    assert said["a1"] == "The lens came from a wrecked steamer called the Albatross."
    assert re.match(r"(I don't know|No idea|I'm not sure)\b", said["a2"]), said["a2"]


LORE_MOD = """
  local facts = {}
  for i = 1, 30 do facts[#facts + 1] = "Fact number " .. i .. " is that the keeper owns lamp" .. i .. "." end
  local keeper = llm.persona{ name = "Maren", voice = "the keeper of a lighthouse.",
                              lore = { lamps = "# Lamps\\n" .. table.concat(facts, " ") } }
  local searched = nil
  registerForEvent("onUpdate", function()
    if searched == nil and not keeper:busy() and keeper:feed() then
      searched = rag.open("memory"):search("lamp30", { k = 1, mode = "bm25" })
    elseif searched ~= nil and searched ~= true and searched:done() then
      local r = searched:result()
      print("hit|" .. tostring(r.hits and r.hits[1] and r.hits[1].id) .. "|" .. tostring(r.hits and r.hits[1] and r.hits[1].text))
      searched = true
    end
  end)
"""


def test_lore_is_stored_one_sentence_a_document_all_of_it(tmp_path):
    """30 sentences: more adds than a mod may have in flight; the kit sends them a few at a time."""
    from host.app import host_with_mod
    from modhost_util import write_mod

    write_mod(tmp_path / "mods", "keeper", LORE_MOD, None)
    lines = []
    host, mod = host_with_mod(tmp_path / "mods", "keeper", console=lines.append)
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end and not any("hit|" in str(l) for l in lines):
            host.update(1 / 60)
            time.sleep(0.002)
    finally:
        host.shutdown()
    hit = [str(l) for l in lines if "hit|" in str(l)]
    assert hit, lines[-20:]
    assert "|lore:lamps:30|Lamps: Fact number 30 is that the keeper owns lamp30." in hit[0], hit


DENSE_MOD = """
  local keeper = llm.persona{ name = "Maren", voice = "the keeper of a lighthouse.",
    lore = { light = "# The light\\nMaren lights the lamp at dusk and trims the wick at midnight. "
                    .. "She never lets the oil run low. The lens came from a wrecked steamer called the Albatross.",
             people = "# People Maren knows\\nOld Hesk brings the oil and pays Maren in smoked fish.",
             habits = "# Habits\\nMaren refuses to fish on Sundays." } }
  print("r|" .. tostring((keeper:quote_for("Do you refuse to fish on Sundays?"))))
  local asks = { "Where was the glass of the lamp salvaged from?", "What is your favourite colour?",
                 "Where was the glass of the lamp salvaged from?" }
  local n, handle = 0, nil
  registerForEvent("onUpdate", function()
    if n == #asks and handle ~= nil and handle:done() then  -- cancelled while its lore search ran
      print("c|" .. tostring(keeper:busy()) .. "|" .. handle:result().finish_reason)
      handle = nil
    end
    if not keeper:feed() or keeper:busy() or n >= #asks then return end
    n = n + 1
    local tag, q = "a" .. n, asks[n]
    print("w|" .. q .. "|" .. tostring((keeper:quote_for(q))))
    handle = keeper:ask(q, { seed = n, on_done = function(r)
      print(tag .. "|" .. r.finish_reason .. "|" .. r.text)
    end })
    print("h|" .. tostring(handle ~= nil and type(handle.done) == "function" and type(handle.cancel) == "function"))
    if n == #asks then keeper:cancel() end
  end)
"""


def test_a_paraphrased_question_finds_its_lore_sentence_by_meaning(tmp_path):
    """The word match missed lines that ask with other words than the lore ("owes" for "debt"): the
    store's dense search finds the sentence; an unrelated question is not answered with the lore; a
    turn cancelled while its search runs ends "cancelled" and frees the character."""
    from host.app import host_with_mod
    from modhost_util import write_mod

    write_mod(tmp_path / "mods", "keeper", DENSE_MOD, None)
    lines = []
    host, mod = host_with_mod(tmp_path / "mods", "keeper", console=lines.append)
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end and not any("c|" in str(l) for l in lines):
            host.update(1 / 60)
            time.sleep(0.002)
    finally:
        host.shutdown()
    printed = [re.sub(r"^.*?\b(?=[awhrc]\d?\|)", "", str(l), count=1) for l in lines]  # the mod's print, unprefixed
    said = {l.split("|")[0]: l.split("|", 2)[1:] for l in printed if l[:3] in ("a1|", "a2|")}
    assert "a2" in said, lines[-20:]
    words = [l for l in printed if l.startswith("w|")]
    assert words[0] == "w|Where was the glass of the lamp salvaged from?|nil"  # the words alone miss it
    assert said["a1"] == ["stop", "The lens came from a wrecked steamer called the Albatross."]
    lore = ("lens", "Albatross", "wick", "oil run low", "smoked fish")
    assert said["a2"][1] and not any(w in said["a2"][1] for w in lore), said["a2"]
    assert [l for l in printed if l.startswith("h|")] == ["h|true", "h|true", "h|true"]
    assert "a3|cancelled|" in printed and "c|false|cancelled" in printed  # a cancel during the search
    assert "r|I refuse to fish on Sundays." in printed  # "refuses" -> "refuse", not "refus"
