"""Helpers for the remote-backend tests: real llama-server processes on 127.0.0.1.

Import the fixtures into a test module (``from remote_util import server``) so
pytest finds them.  The server binary is the one `make llama-server` built
(`make test` builds it first); a missing one fails the tests that need it.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from host.setup.llama_server import LocalLlamaServer, server_path

CTX = 2048  # in all, split over the slots
SLOTS = 2
# a raw prompt the default model continues greedily for hundreds of tokens (no early end of text), so a
# test can act while it is mid-stream
STORY = "Once upon a time, in a kingdom by the sea, there lived an old dragon who"


def start_server(model_path, tmp_path_factory, *, parallel=SLOTS, ctx=CTX, extra=(), api_key=None, port=None):
    """A llama-server with ``model_path`` (its log in a temp folder), on ``port`` or a free one."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    return LocalLlamaServer.start(model_path, binary=server_path(allow_build=False), ctx=ctx, parallel=parallel,
                                  threads=1, extra=list(extra), api_key=api_key, log_path=log, port=port)


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    """One llama-server with the default model for a test module."""
    srv = start_server(model_path, tmp_path_factory)
    yield srv
    srv.stop()


def slots(url: str) -> list[dict]:
    """The server's /slots report."""
    with urllib.request.urlopen(f"{url}/slots", timeout=5) as resp:
        return json.loads(resp.read())


def wait_idle(url: str, timeout: float = 10.0) -> bool:
    """True once no slot of the server is processing (a cancelled stream stopped it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(s.get("is_processing") for s in slots(url)):
            return True
        time.sleep(0.05)
    return False


def remote_worker(url: str, *, say=None, **server_kw):
    """A started Worker on the server at ``url`` (lines it says go to ``say``, else are dropped)."""
    from host.remote.backend import ServerConfig, start_remote_worker
    from host.worker import WorkerConfig

    lines = []
    worker = start_remote_worker(ServerConfig(url, **server_kw), worker_config=WorkerConfig(max_pending_per_mod=8),
                                 say=say or lines.append)
    worker.start_lines = lines
    return worker


TOOL_MOD = """
local s = llm.session{ system = "You are Oona, a fishmonger. When asked for fish, call give_item.",
  tools = {
    give_item = {
      description = "Give the traveler an item from your cart.",
      parameters = { type = "object", properties = { item = { type = "string", enum = { "eel", "herring" } } },
                     required = { "item" } },
      run = function(args) print("ran give_item " .. tostring(args.item)); return { ok = true } end,
    },
  } }
registerForEvent("onInit", function()
  s:say("Please give me an eel, right now.", { max_tokens = 64, temperature = 0, tool_choice = "required",
    max_tool_calls = 1, on_token = function(t) print("tok " .. t) end,
    on_done = function(r)
      print("done " .. r.finish_reason .. " " .. tostring(r.error_type) .. " calls=" .. #r.tool_calls .. " "
            .. r.device .. " text=" .. r.text)
    end })
end)
"""


def check_tool_mod(server_config, tmp_path):
    """An unchanged Lua mod with a tool, on ``server_config``: the first step must call the tool (it runs,
    in Lua), then the NPC speaks; what streamed is exactly the spoken text.  A reply that max_tokens cut
    short is not valid JSON, so it fails closed as a schema error (the tiny model can repeat itself)."""
    from host.app import build_host
    from modhost_util import Console, run_until, write_mod

    write_mod(tmp_path / "mods", "seller", TOOL_MOD)
    console = Console()
    host = build_host(tmp_path / "mods", server=server_config, console=console, rag=False)
    try:
        run_until(host, lambda: any(l.startswith("done ") for l in console.mod_lines("seller")), 180)
        out = console.mod_lines("seller")
        done = next(l for l in out if l.startswith("done "))
        assert done.startswith(("done stop nil calls=1 server http://127.0.0.1",
                                "done length schema calls=1 server http://127.0.0.1")), out
        assert [l for l in out if l.startswith("ran give_item ")] in (["ran give_item eel"],
                                                                       ["ran give_item herring"]), out
        said = done.split(" text=", 1)[1]
        assert "".join(l[4:] for l in out if l.startswith("tok ")) == said and '"say"' not in said, out
    finally:
        host.shutdown()
