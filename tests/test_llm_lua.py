"""The Lua `llm` module through the real host, worker and model."""

from __future__ import annotations

import time

import pytest

from host.runtime.grants import Grant

from modhost_util import frames, run_until


def lines(console, mod_id, prefix):
    return [l for l in console.mod_lines(mod_id) if l.startswith(prefix)]


def test_stream_and_done_from_lua(llm_host):
    host, console = llm_host({"talker": """
        registerForEvent("onInit", function()
          handle = llm.chat{ messages = { {role = "user", content = "Say hello."} }, max_tokens = 12,
            on_token = function(t) print("tok " .. t) end,
            on_done = function(r)
              print("done " .. r.finish_reason .. " " .. r.usage.completion_tokens .. " " .. r.text)
            end }
          print("handle " .. tostring(handle.id) .. " " .. tostring(handle:done()))
        end)
    """})
    run_until(host, lambda: lines(console, "talker", "done "))
    assert lines(console, "talker", "handle ")[0].endswith("false"), "handles return at once"
    toks = [l[4:] for l in lines(console, "talker", "tok ")]
    done = lines(console, "talker", "done ")
    assert len(done) == 1 and toks
    assert done[0].split(" ", 3)[3] == "".join(toks)


def test_twenty_requests_by_three_mods_reach_their_owner(llm_host):
    src = """
        local me = "%s"
        got = 0
        registerForEvent("onInit", function()
          for i = 1, %d do
            llm.generate{ prompt = me .. " number " .. i, max_tokens = 3,
              on_done = function(r) got = got + 1; print("done " .. me .. " " .. i .. " " .. r.finish_reason) end }
          end
        end)
    """
    host, console = llm_host({"m1": src % ("m1", 7), "m2": src % ("m2", 7), "m3": src % ("m3", 6)})
    run_until(host, lambda: sum(len(lines(console, m, "done ")) for m in ("m1", "m2", "m3")) == 20, 300)
    for mod, n in (("m1", 7), ("m2", 7), ("m3", 6)):
        got = lines(console, mod, "done ")
        assert len(got) == n and all(l.split()[1] == mod for l in got)
        assert sorted(int(l.split()[2]) for l in got) == list(range(1, n + 1))


def test_await_inside_async(llm_host):
    host, console = llm_host({"waiter": """
        registerForEvent("onInit", function()
          async(function()
            local r = await(llm.generate{ prompt = "The sea is", max_tokens = 5 })
            print("awaited " .. r.finish_reason .. " " .. #r.text)
          end)
        end)
    """})
    run_until(host, lambda: lines(console, "waiter", "awaited "))


def test_cancel_from_lua_calls_on_done_once(llm_host):
    host, console = llm_host({"quitter": """
        n = 0
        registerForEvent("onInit", function()
          h = llm.chat{ messages = { {role = "user", content = "Count to one hundred."} }, max_tokens = 300,
            on_token = function(t) n = n + 1; if n == 2 then h:cancel() end end,
            on_done = function(r) print("done " .. r.finish_reason) end }
        end)
    """})
    run_until(host, lambda: lines(console, "quitter", "done "))
    frames(host, 30)
    assert lines(console, "quitter", "done ") == ["done cancelled"]


def test_bad_options_are_clear_lua_errors(llm_host):
    host, console = llm_host({"sloppy": """
        local function try(f) local ok, e = pcall(f); print("err " .. tostring(e)) end
        registerForEvent("onInit", function()
          try(function() llm.generate("just a string") end)
          try(function() llm.generate{ prompt = "x", max_tokens = -5 } end)
          try(function() llm.generate{ prompt = "x", bogus = 1 } end)
          try(function() llm.chat{ messages = { {role = "user"} } } end)
          try(function() llm.generate{ prompt = "x", sampler = { top_q = 1 } } end)
          try(function() llm.generate{ prompt = "x", stop = { 1, 2 } } end)
          try(function() llm.generate{ prompt = "x", on_done = 5 } end)
          print("still alive")
        end)
    """})
    frames(host, 2)
    errs = lines(console, "sloppy", "err ")
    assert len(errs) == 7
    for needle in ("one table argument", "max_tokens", "bogus", "messages[1]", "top_q", "stop", "on_done"):
        assert any(needle in e for e in errs), (needle, errs)
    assert lines(console, "sloppy", "still alive")
    assert host.mods["sloppy"].state == "loaded"


def test_queue_limit_is_an_error_result_not_a_crash(llm_host):
    host, console = llm_host({"flood": """
        registerForEvent("onInit", function()
          for i = 1, 12 do
            llm.generate{ prompt = "flood " .. i, max_tokens = 2,
              on_done = function(r) print("done " .. r.finish_reason .. " " .. tostring(r.error_type)) end }
          end
        end)
    """})
    run_until(host, lambda: len(lines(console, "flood", "done ")) == 12, 120)
    errors = [l for l in lines(console, "flood", "done error") if l.endswith(" queue_full")]
    assert len(errors) == 4  # the limit is 8 in flight
    assert host.mods["flood"].state == "loaded"


def test_sandboxed_mods_get_no_raw_binding(llm_host):
    host, console = llm_host({"plain": """
        print("llama " .. type(llama))
        print("ffi " .. type(ffi))
    """})
    assert lines(console, "plain", "llama ") == ["llama nil"]


def test_trusted_mod_calls_raw_llama_on_the_shared_model(llm_host, model):
    host, console = llm_host({"raw": """
        local C, ffi = llama.C, llama.ffi
        local vocab = llama.vocab
        print("n_vocab " .. C.llama_vocab_n_tokens(vocab))
        print("eos_is_eog " .. tostring(C.llama_vocab_is_eog(vocab, C.llama_vocab_eos(vocab))))
        local text = "hello world"
        local buf = ffi.new("llama_token[16]")
        local n = C.llama_tokenize(vocab, text, #text, buf, 16, false, false)
        local ids = {}
        for i = 0, n - 1 do ids[#ids + 1] = tostring(buf[i]) end
        print("tokens " .. table.concat(ids, ","))
    """}, grants={"raw": Grant(trusted=True)})
    assert lines(console, "raw", "n_vocab ") == [f"n_vocab {model.vocab.n_tokens}"]
    assert lines(console, "raw", "eos_is_eog ") == ["eos_is_eog true"]
    expected = ",".join(map(str, model.vocab.tokenize("hello world", add_special=False)))
    assert lines(console, "raw", "tokens ") == [f"tokens {expected}"]


def test_reload_cancels_the_mods_requests(llm_host, shared_worker):
    host, console = llm_host({"reloader": """
        registerForEvent("onInit", function()
          llm.generate{ prompt = "A very long tale begins.", max_tokens = 400 }
          print("started")
        end)
    """})
    frames(host, 3)
    assert shared_worker.pending("reloader") == 1
    host.request_reload("reloader")
    run_until(host, lambda: shared_worker.pending("reloader") == 1 and len(lines(console, "reloader", "started")) == 2)
    # the old runtime's request was cancelled; only the new one is in flight
    deadline = time.monotonic() + 30
    while shared_worker.pending("reloader") > 1 and time.monotonic() < deadline:
        frames(host, 1)
    assert shared_worker.pending("reloader") <= 1


def test_loop_keeps_ticking_while_a_mod_generates(llm_host):
    host, console = llm_host({"streamer": """
        registerForEvent("onInit", function()
          llm.chat{ messages = { {role = "user", content = "Tell a long story about a harbor."} },
            max_tokens = 120, on_done = function(r) print("done " .. r.usage.completion_tokens) end }
        end)
    """})
    frame_ms = []
    deadline = time.monotonic() + 60
    while not lines(console, "streamer", "done ") and time.monotonic() < deadline:
        t0 = time.perf_counter()
        host.update(1 / 60)
        frame_ms.append((time.perf_counter() - t0) * 1000)
        time.sleep(max(0.0, 1 / 60 - (time.perf_counter() - t0)))
    assert lines(console, "streamer", "done ")
    assert len(frame_ms) > 10
    frame_ms.sort()
    # loose: the frame never waits for a generation (the real target lives in bench/)
    assert frame_ms[len(frame_ms) // 2] < 20


def test_quarantine_cancels_the_mods_requests(llm_host, shared_worker):
    host, console = llm_host({"looper": """
        registerForEvent("onInit", function()
          llm.generate{ prompt = "An endless story:", max_tokens = 400 }
        end)
        registerForEvent("onUpdate", function() while true do end end)
    """})
    frames(host, 2)
    assert host.mods["looper"].state == "quarantined"
    deadline = time.monotonic() + 30
    while shared_worker.pending("looper") and time.monotonic() < deadline:
        shared_worker.pump(0.01)
        time.sleep(0.01)
    assert shared_worker.pending("looper") == 0


SESSION_MOD = """
    registerForEvent("onInit", function()
      async(function()
        local s = %s
        if s.loaded then
          local l = await(s.loaded)
          print("loaded " .. tostring(l.error) .. " " .. tostring(l.value and l.value.messages))
        end
        for i, text in ipairs({ "Hello, who are you?", "What do you do all day?" }) do
          local r = await(s:say(text, { max_tokens = 16 }))
          print("turn " .. i .. " " .. r.finish_reason .. " cached " .. r.usage.cached_tokens)
        end
        local saved = await(s:save("mara"))
        print("saved " .. tostring(saved.error))
        local ok, err = pcall(function() s:save("../escape") end)
        print("bad name " .. tostring(err))
      end)
    end)
"""


def test_sessions_from_lua_reuse_and_persist(llm_host, tmp_path):
    mods_dir = tmp_path / "mods"
    host, console = llm_host({"mara": SESSION_MOD % 'llm.session{ system = "You are Mara, a ferry pilot." }'})
    run_until(host, lambda: lines(console, "mara", "bad name "), 120)
    turns = lines(console, "mara", "turn ")
    assert turns[0].endswith("cached 0") and not turns[1].endswith("cached 0"), turns
    assert lines(console, "mara", "saved ") == ["saved nil"]
    assert (mods_dir / "mara" / "sessions" / "mara.session").is_file()
    assert "must match" in lines(console, "mara", "bad name ")[0]
    host.shutdown()

    # a restart: the saved session comes back with its cached tokens
    console.clear()
    host2, console2 = llm_host({"mara": SESSION_MOD % 'llm.load_session("mara")'})
    run_until(host2, lambda: lines(console2, "mara", "saved "), 120)
    assert lines(console2, "mara", "loaded ") == ["loaded nil 4"]
    first = lines(console2, "mara", "turn ")[0]
    assert not first.endswith("cached 0"), "the restored session reused its saved KV state"


def test_load_missing_session_is_a_clear_error(llm_host):
    host, console = llm_host({"nosave": """
        local ok, err = pcall(llm.load_session, "never_saved")
        print("err " .. tostring(err))
    """})
    assert "no saved session named 'never_saved'" in lines(console, "nosave", "err ")[0]
