"""A peer given as an RPC server is checked with ggml-rpc's HELLO, with a short timeout, before
ggml connects (its own client waits without one and aborts the process on a bad answer)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from host.errors import RpcError
from host.llama import devices


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_an_http_server_fails_fast_with_a_clear_error():
    server = HTTPServer(("127.0.0.1", 0), _Quiet)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    endpoint = f"127.0.0.1:{server.server_address[1]}"
    try:
        t0 = time.monotonic()
        with pytest.raises(RpcError) as info:
            devices.check_handshake(endpoint, timeout=3.0)
        assert time.monotonic() - t0 < 10.0
        assert endpoint in str(info.value) and "rpc-server" in str(info.value)   # HTTP waits for a line
    finally:
        server.shutdown()
        server.server_close()


def test_a_silent_tcp_peer_fails_at_the_handshake_timeout():
    """A port that accepts and never answers blocked start for a minute before a clear error."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        t0 = time.monotonic()
        with pytest.raises(RpcError) as info:
            devices.check_handshake(endpoint, timeout=0.5)
        assert time.monotonic() - t0 < 10.0
        assert "did not answer the ggml-rpc handshake" in str(info.value)
    finally:
        listener.close()


def test_a_real_rpc_server_passes_the_handshake(tmp_path):
    from host.setup.rpc_server import LocalServer, server_path

    try:
        binary = server_path("cpu", allow_build=False)
    except Exception as e:   # the set-up has not built it
        pytest.skip(f"no rpc-server built: {e}")
    srv = LocalServer.start(binary, log_path=tmp_path / "rpc.log")
    try:
        major, _minor, _patch = devices.check_handshake(srv.endpoint)
        assert major == devices.RPC_PROTO_MAJOR
        devices.check_handshake(srv.endpoint)       # the server takes the next client as before
    finally:
        srv.stop()
