"""Faults on a real llama-server: down at start, killed mid-stream, hung, back again; mods on servers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from host.setup.child_server import free_port
from modhost_util import Console, run_until, write_mod
from remote_util import STORY, remote_worker, start_server



def _first_token(worker, handle_tokens, timeout=60):
    deadline = time.monotonic() + timeout
    while not handle_tokens and time.monotonic() < deadline:
        worker.pump(0.05)
    assert handle_tokens, "no token came"


def test_down_at_start_then_back(model_path, tmp_path_factory):
    """One line at start; requests fail as backend_down; once a server listens there, the next one works."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    w = remote_worker(url)
    try:
        assert len(w.start_lines) == 1 and "cannot be reached" in w.start_lines[0] and url in w.start_lines[0]
        r = w.wait(w.submit("m", prompt="Hello", max_tokens=4), 30)
        assert r["finish_reason"] == "error" and r["error_type"] == "backend_down", r
        srv = start_server(model_path, tmp_path_factory, port=port)  # the address the worker was given
        try:
            r = w.wait(w.submit("m", prompt="Hello", max_tokens=4), 60)
            assert r["error"] is None and r["usage"]["completion_tokens"] > 0, r
        finally:
            srv.stop()
    finally:
        w.shutdown()


def test_killed_mid_stream_then_restarted(model_path, model, tmp_path_factory, no_thread_left):
    """The stream ends as backend_down; an embedded mod beside it goes on; after a restart it works again."""
    from host.remote.routing import WorkerRouter
    from host.worker import Worker, WorkerConfig

    srv = start_server(model_path, tmp_path_factory)
    local = Worker(model, WorkerConfig(n_ctx=512, n_seq_max=1)).start()
    remote = remote_worker(srv.url)
    router = WorkerRouter(local, {"far": remote})
    try:
        tokens = []
        far = router.submit("far", prompt=STORY, max_tokens=900, temperature=0.0, on_token=tokens.append)
        near = router.submit("near", prompt="The market opens at", max_tokens=16)
        _first_token(router, tokens)
        srv.kill()
        r = router.wait(far, 30)
        assert r["finish_reason"] == "error" and r["error_type"] == "backend_down", r
        assert r["text"].startswith("".join(tokens[:1]))
        assert router.wait(near, 120)["error"] is None  # the embedded mod was not held up
        srv.restart()
        r = router.wait(router.submit("far", prompt="Hello", max_tokens=4), 60)
        assert r["error"] is None, r
    finally:
        router.shutdown()
        srv.stop()


def _reader_alive(request_id) -> bool:
    return any(t.name == f"relic-remote-{request_id}" for t in threading.enumerate())


def test_hung_server_neither_holds_the_worker_nor_a_cancel(model_path, tmp_path_factory):
    """A stopped (SIGSTOP) server: a cancel returns at once and shuts its connection (its reader thread
    ends long before the stall limit), a stall ends as backend_down, quotas still count."""
    srv = start_server(model_path, tmp_path_factory)
    w = remote_worker(srv.url, stall_s=6)
    try:
        assert w.wait(w.submit("m", prompt="Hi", max_tokens=2), 60)["error"] is None
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            stuck = w.submit("m", prompt=STORY, max_tokens=50)
            hung = w.submit("m", prompt=STORY, max_tokens=50)
            assert w.pending("m") == 2  # counted against the mod's quota while the server hangs
            time.sleep(0.3)
            t0 = time.monotonic()
            hung.cancel()
            r = w.wait(hung, 5)
            assert r["finish_reason"] == "cancelled" and time.monotonic() - t0 < 1.0
            while _reader_alive(hung.id) and time.monotonic() - t0 < 3:
                time.sleep(0.02)
            assert not _reader_alive(hung.id), "the cancelled request's connection stayed open"
            assert _reader_alive(stuck.id)  # the other one still waits on the hung server...
            r = w.wait(stuck, 20)
            assert r["error_type"] == "backend_down", r  # ...until the stall limit
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        assert w.wait(w.submit("m", prompt="Hi", max_tokens=2), 60)["error"] is None
    finally:
        w.shutdown()
        srv.stop()


def test_bad_url_is_one_clear_line():
    from host.errors import BackendError
    from host.remote.backend import ServerConfig

    with pytest.raises(BackendError, match="not an http:// or https:// URL"):
        ServerConfig("localhost:8080").resolved()
    assert ServerConfig("http://h:1/v1/").resolved() == ("http://h:1", "openai")
    assert ServerConfig("http://h:1").resolved() == ("http://h:1", "llama-server")


MOD = """
registerForEvent("onInit", function()
  llm.chat{ messages = { {role = "user", content = "Say hello."} }, max_tokens = 8,
    on_done = function(r) print("chat " .. tostring(r.error_type) .. " " .. r.device) end }
  local s = llm.session{ system = "You are a guard." }
  s:say("Halt! Who goes there?", { max_tokens = 8, on_done = function(r)
    print("say " .. tostring(r.error_type) .. " " .. #r.text)
  end })
  print("count " .. llm.count("hello world"))
end)
"""


def test_an_unchanged_mod_runs_on_a_server_and_another_embedded(tmp_path, model_path, tmp_path_factory):
    """build_host(server=...) with a per-mod backend: one mod on the server, one on the embedded model."""
    from host.app import build_host
    from host.remote.backend import ServerConfig

    srv = start_server(model_path, tmp_path_factory)
    try:
        root = tmp_path / "mods"
        write_mod(root, "guard", MOD)
        write_mod(root, "ambient", MOD)
        console = Console()
        host = build_host(root, server=ServerConfig(srv.url), backends={"ambient": "embedded"}, console=console,
                          rag=False)
        try:
            run_until(host, lambda: len([l for l in console.lines if " say " in l or "] say " in l]) >= 2, 240)
            for mod in ("guard", "ambient"):
                out = console.mod_lines(mod)
                chat = next(l for l in out if l.startswith("chat "))
                assert chat.startswith("chat nil "), out
                assert ("server http://127.0.0.1" in chat) == (mod == "guard")
                assert any(l.startswith("say nil ") for l in out), out
                assert any(l.startswith("count ") and int(l.split()[1]) > 0 for l in out), out
            assert any(srv.url in l for l in console.lines)  # the one start line
        finally:
            host.shutdown()
    finally:
        srv.stop()
