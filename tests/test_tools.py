"""Tools from Lua: llm.session{ tools = ... } and llm.chat{ tools = ... } with the real model."""

from __future__ import annotations

from modhost_util import run_until

from host.engine.tools import SayStream, ToolError, ToolSet, decode_step, tool_result_message

GIVE = """
  give_item = {
    description = "Give the traveler an item from your cart.",
    parameters = { type = "object", properties = { item = { type = "string", enum = { "eel", "herring" } } },
                   required = { "item" } },
    run = function(args) given = (given or 0) + 1; print("ran give_item " .. tostring(args.item)); return { ok = true } end,
  },
"""


def lines(console, mod_id, prefix):
    return [line for line in console.mod_lines(mod_id) if line.startswith(prefix)]


def test_session_tool_is_called_run_on_the_frame_thread_and_the_turn_goes_on(llm_host):
    # tool_choice = "required": the first step is a call, whatever the model would prefer
    host, console = llm_host({"seller": """
        local s = llm.session{ system = "You are Oona, a fishmonger. When asked for fish, call give_item.",
          tools = {""" + GIVE + """},
          on_tool = function(name, args) print("on_tool " .. name) end }
        registerForEvent("onInit", function()
          s:say("Please give me an eel, right now.", { max_tokens = 48, seed = 3, temperature = 0,
            tool_choice = "required", max_tool_calls = 1,
            on_token = function(t) print("tok " .. t) end,
            on_done = function(r)
              print("done " .. r.finish_reason .. " calls=" .. #r.tool_calls .. " text=" .. r.text)
            end })
        end)
    """})
    run_until(host, lambda: lines(console, "seller", "done "), 180)
    done = lines(console, "seller", "done ")[0]
    assert done.startswith("done stop") or done.startswith("done length"), done
    # whatever the model chose, the format held: what streamed is exactly the spoken text, no JSON
    said = done.split(" text=", 1)[1]
    assert "".join(t[4:] for t in lines(console, "seller", "tok ")) == said
    assert "{" not in said and '"say"' not in said
    calls = int(done.split("calls=")[1].split()[0])
    assert calls == 1, done  # required, and capped at one: then she speaks
    ran = lines(console, "seller", "ran give_item")
    assert ran in (["ran give_item eel"], ["ran give_item herring"]) and lines(console, "seller", "on_tool give_item")


def test_a_runaway_tool_is_stopped_by_the_mods_budget(llm_host):
    """The tool runs on the frame thread under the mod's time budget: a loop quarantines the mod only."""
    host, console = llm_host({"loopy": """
        registerForEvent("onInit", function()
          llm.chat{ messages = { { role = "user", content = "Do it." } }, max_tokens = 40, tool_choice = "required",
            tools = { spin = { description = "Spin.", run = function() while true do end end } },
            on_done = function(r) print("done " .. r.finish_reason) end }
        end)
    """, "calm": "registerForEvent('onUpdate', function() ticks = (ticks or 0) + 1 end)"})
    run_until(host, lambda: host.mods["loopy"].state == "quarantined", 180)
    assert host.mods["calm"].state == "loaded"
    assert not lines(console, "loopy", "done ")


def test_chat_tool_loop_cap_forces_speech(llm_host):
    host, console = llm_host({"asker": """
        registerForEvent("onInit", function()
          llm.chat{ messages = { { role = "system", content = "Always call give_item." },
                                 { role = "user", content = "Give me an eel." } },
            tools = {""" + GIVE + """}, max_tool_calls = 0, max_tokens = 40, temperature = 0,
            on_done = function(r) print("done " .. r.finish_reason .. " calls=" .. #r.tool_calls .. " " .. r.text) end }
        end)
    """})
    run_until(host, lambda: lines(console, "asker", "done "), 180)
    done = lines(console, "asker", "done ")[0]
    assert " calls=0 " in done and not lines(console, "asker", "ran give_item"), done


def test_bad_tools_are_clear_errors(llm_host):
    host, console = llm_host({"bad": """
        local ok1, e1 = pcall(llm.session, { tools = { give = { description = "x" } } })
        print("e1 " .. tostring(e1))
        local ok2, e2 = pcall(llm.chat, { messages = { { role = "user", content = "hi" } },
          tools = { ["bad name"] = { run = function() end } } })
        print("e2 " .. tostring(e2))
        local ok3, e3 = pcall(llm.chat, { messages = { { role = "user", content = "hi" } },
          tools = { t = { run = function() end } }, max_tool_calls = 99 })
        print("e3 " .. tostring(e3))
    """})
    assert "must be a table with run = function(args)" in lines(console, "bad", "e1 ")[0]
    assert "tool name 'bad name'" in lines(console, "bad", "e2 ")[0]
    assert "max_tool_calls must be an integer from 0 to 8" in lines(console, "bad", "e3 ")[0]


def test_toolset_and_stream_units():
    made = []
    ts = ToolSet({"leave": {"description": "Leave the street."}}, lambda schema: made.append(schema) or schema)
    assert made[1]["anyOf"][1]["properties"]["tool"] == {"const": "leave"}
    assert "- leave: Leave the street." in ts.describe()
    for bad in ({}, {"say": {}}, {"x": {"parameters": {"type": "string"}}}, {"x": {"description": 5}}):
        try:
            ToolSet(bad, lambda s: s)
        except ToolError:
            continue
        raise AssertionError(f"accepted {bad}")
    s = SayStream()
    assert "".join(s.push(c) for c in ['{ "sa', 'y": "a\\', 'u00e9 \\"b\\"', '"}']) == 'a\u00e9 "b"'
    assert SayStream().push('{"tool": "leave", "arguments": {}}') == ""
    assert decode_step({"tool": "leave"}) == ("tool", ("leave", {}))
    assert decode_step({"say": "hi"}) == ("say", "hi") and decode_step(None) == ("none", None)
    msg = tool_result_message("t", "x" * 5000)
    assert msg["role"] == "tool" and len(msg["content"]) < 1100


def test_a_huge_tool_result_is_not_copied_whole_into_the_host(llm_host):
    """Tool results lived whole in host memory (result.tool_calls): RSS grew by hundreds of MB."""
    host, console = llm_host({"hoarder": """
        local big = {} for i = 1, 50000 do big[i] = "r" .. i end
        registerForEvent("onInit", function()
          llm.chat{ messages = { { role = "user", content = "Look it up." } }, max_tokens = 96,
            tool_choice = "required", max_tool_calls = 1,
            tools = { lookup = { description = "Look it up.", run = function() return big end },
                      small = { description = "A little.", run = function() return { a = ("x"):rep(5000) } end } },
            on_done = function(r)
              local c = r.tool_calls[1]
              local kept = c and c.result
              print("done " .. r.finish_reason .. " " .. tostring(c and c.name) .. " " .. type(kept) .. " " ..
                    (type(kept) == "table" and tostring(kept.error) or type(kept) == "string" and tostring(#kept)
                     or tostring(r.error)))
            end }
        end)
    """, "good": """
        registerForEvent("onInit", function()
          llm.generate{ prompt = "Hello", max_tokens = 4, on_done = function(r) print("good " .. r.finish_reason) end }
        end)
    """})
    run_until(host, lambda: lines(console, "hoarder", "done ") and lines(console, "good", "good "), 180)
    assert lines(console, "good", "good ")[0] in ("good stop", "good length")
    assert host.mods["hoarder"].state == "loaded" and host.mods["good"].state == "loaded"
    done = lines(console, "hoarder", "done ")[0]
    if " lookup " in done:
        assert "table the result of lookup was too big" in done, done
    else:   # the small one: kept cut to the conversation's length
        assert " small string " in done and int(done.rsplit(" ", 1)[1]) <= 1010, done


def test_a_tool_turn_is_checked_against_the_session_text_quota(llm_host):
    """say with tools skipped the per-turn session text check that say does."""
    host, console = llm_host({"big": """
        local s = llm.session{ system = "You help.", tools = {""" + GIVE + """} }
        registerForEvent("onInit", function()
          s:say(("w"):rep(300 * 1024), { max_tokens = 8, on_done = function(r)
            print("done " .. r.finish_reason .. " " .. tostring(r.error_type)) end })
        end)
    """})
    run_until(host, lambda: lines(console, "big", "done "), 60)
    assert lines(console, "big", "done ") == ["done error quota"]
