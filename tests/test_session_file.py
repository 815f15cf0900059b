"""A saved session file that is corrupt is refused with a SessionError naming the field, and
state bytes that do not match their checksum are never handed to llama.cpp."""

from __future__ import annotations

import hashlib
import json

import pytest

from host.engine.session import SAVE_VERSION, read_header
from host.errors import SessionError

GOOD = {"version": SAVE_VERSION, "model": "m", "system": "You are Bram.", "sampler": None,
        "overflow": "drop_oldest", "template": None, "summary": "",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "kv_tokens": [1, 2, 3], "dropped": 0}


def write(path, header, state=b""):
    path.write_bytes(json.dumps(header).encode() + b"\n" + state)
    return path


@pytest.mark.parametrize("field,value", [
    ("system", 5), ("messages", {"a": 1}), ("messages", [{"role": "user", "content": 3}]),
    ("messages", ["hi"]), ("kv_tokens", ["x"]), ("kv_tokens", 7), ("overflow", "explode"),
    ("dropped", "many"), ("sampler", "greedy"), ("template", 1.5), ("summary", []),
])
def test_a_header_field_of_the_wrong_type_is_a_session_error(tmp_path, field, value):
    """A corrupt header type gave a raw TypeError deep in the scheduler."""
    header = dict(GOOD, **{field: value})
    with pytest.raises(SessionError) as info:
        read_header(write(tmp_path / "s.session", header))
    assert f"'{field}'" in str(info.value) or "message 1" in str(info.value)


def test_a_sound_file_reads_back_with_its_state(tmp_path):
    state = bytes(range(256)) * 4
    header = dict(GOOD, state_sha256=hashlib.sha256(state).hexdigest())
    got, st = read_header(write(tmp_path / "s.session", header, state))
    assert st == state and got["kv_tokens"] == [1, 2, 3]


def test_flipped_state_bytes_are_dropped_and_the_conversation_is_read_again(tmp_path):
    """A flipped-bytes state was restored and produced garbage text."""
    state = bytes(range(256)) * 4
    header = dict(GOOD, state_sha256=hashlib.sha256(state).hexdigest())
    bad = bytearray(state)
    bad[100] ^= 0xFF
    got, st = read_header(write(tmp_path / "s.session", header, bytes(bad)))
    assert st == b"" and got["kv_tokens"] == [] and got["messages"] == GOOD["messages"]


def test_state_without_a_checksum_is_not_trusted(tmp_path):
    got, st = read_header(write(tmp_path / "s.session", GOOD, b"\x01\x02\x03"))
    assert st == b"" and got["kv_tokens"] == []


def test_a_mod_cannot_write_its_saved_sessions_through_io(tmp_path):
    from host.runtime.modio import ModIO

    folder = tmp_path / "m"
    (folder / "sessions").mkdir(parents=True)
    fio = ModIO("m", folder, max_open=4, max_file_bytes=1 << 20, max_folder_bytes=1 << 20,
                max_read_bytes=1 << 20)
    res = fio.open("sessions/bram.session", "w")
    assert res[0] is None and "not reachable through io" in res[1]


KEEPER = """
local function show(tag, r)
  print(tag .. " " .. r.finish_reason .. " " .. tostring(r.error) .. " " .. (tostring(r.text):gsub("%c", "|")))
end
registerForEvent("onInit", function()
  async(function()
    local npc = llm.session{ system = "You are Bram, a blacksmith. Answer in one sentence." }
    show("first", await(npc:say("Can you fix my anchor?", { max_tokens = 8, temperature = 0 })))
    await(npc:save("bram"))
    print("saved")
  end)
end)
registerCommand("reload_all", "", function()
  async(function()
    for _, name in ipairs { "typed", "flipped", "bram" } do
      local s = llm.load_session(name)
      local r = await(s.loaded)
      show("load " .. name, r)
      if r.finish_reason ~= "error" then
        local t = await(s:say("How much?", { max_tokens = 8, temperature = 0 }))
        show("turn " .. name, t)
        print("cached " .. name .. " " .. tostring(r.value and r.value.cached_tokens))
      end
    end
  end)
end)
"""


def test_a_mod_loading_corrupt_or_flipped_session_files_beside_a_good_mod(llm_host):
    """From a real mod: a header field of the wrong type is an error result naming the field (it was a
    raw TypeError); a state with flipped bytes is not restored but read again from the conversation
    (it produced garbage text), so the next turn says what the sound file's turn says."""
    from modhost_util import run_until

    host, console = llm_host({"keeper": KEEPER, "good": """
        registerForEvent("onInit", function()
          llm.generate{ prompt = "Hello", max_tokens = 4, on_done = function(r) print("good " .. r.finish_reason) end }
        end)
    """})
    run_until(host, lambda: "saved" in console.mod_lines("keeper"), 180)
    sessions = host.mods_dir / "keeper" / "sessions"
    sound = (sessions / "bram.session").read_bytes()
    head, _, state = sound.partition(b"\n")
    assert len(state) > 200, "the saved file carries a state"
    flipped = bytearray(state)
    flipped[len(state) // 2] ^= 0xFF
    (sessions / "flipped.session").write_bytes(head + b"\n" + bytes(flipped))
    header = json.loads(head)
    header["system"] = 5
    (sessions / "typed.session").write_bytes(json.dumps(header).encode() + b"\n" + state)
    host.run_command("reload_all")
    run_until(host, lambda: any(l.startswith("cached bram") for l in console.mod_lines("keeper")), 180)
    out = {" ".join(l.split(" ", 2)[:2]): l for l in console.mod_lines("keeper")}
    assert out["load typed"].startswith("load typed error ") and "'system'" in out["load typed"]
    assert out["load flipped"].startswith("load flipped ") and " error " not in out["load flipped"][:20]
    assert out["cached flipped"] == "cached flipped 0"        # nothing restored from the flipped state
    assert int(out["cached bram"].split()[2]) > 0             # the sound one restores its state
    said = lambda name: out["turn " + name].split(" ", 4)[4]  # noqa: E731
    assert said("flipped") == said("bram")
    assert console.mod_lines("good")[0] in ("good stop", "good length")
    assert host.mods["keeper"].state == "loaded" and host.mods["good"].state == "loaded"
