"""llama.cpp's ``llama-server``: where setup built it, and running one on this machine.

``make llama-server`` (``python -m host.setup llama-server``) builds it from
the pinned source into the cache (host.setup.llama_build); :func:`server_path`
finds it.  :class:`LocalLlamaServer` starts one as a child process on
127.0.0.1 and waits until it has loaded its model (tests, bench, examples):

    with LocalLlamaServer.start(model_path, ctx=4096, parallel=4) as srv:
        ... srv.url ...

A llama-server started with ``--api-key`` refuses requests without it; one
bound to anything but a loopback or private address should have one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from host.errors import SetupError
from host.setup.child_server import ChildServer


def server_path(kind: str | None = None, *, allow_build: bool = True) -> Path:
    """The ``llama-server`` of the selected (or given) GPU variant, building it if needed and allowed."""
    from host.setup import gpu, llama_build

    kind = gpu.check_kind(kind) if kind else gpu.selected()[0]
    return llama_build.ensure_llama_server(gpu.flags(kind), allow_build=allow_build)


def find_server(kind: str | None = None) -> Path | None:
    """The built ``llama-server``, or None (never builds)."""
    from host.setup import gpu, llama_build

    kind = gpu.check_kind(kind) if kind else gpu.selected()[0]
    return llama_build.find_llama_server(gpu.flags(kind))


class LocalLlamaServer(ChildServer):
    """One ``llama-server`` child process on this machine; :meth:`stop` / :meth:`kill` end it."""

    name = "llama-server"
    poll_s = 0.1
    stop_grace_s = 10.0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(cls, model: Path, *, binary: Path | None = None, host: str = "127.0.0.1", port: int | None = None,
              ctx: int = 4096, parallel: int = 1, threads: int | None = None, api_key: str | None = None,
              extra: list[str] | tuple = (), log_path: Path | None = None, timeout: float = 120.0) -> "LocalLlamaServer":
        """Start a server with ``model`` (``ctx`` tokens in all, split over ``parallel`` slots) and wait
        until ``/health`` says the model is loaded; SetupError if it does not come up."""
        binary = Path(binary) if binary else server_path(allow_build=False)
        args = [str(binary), "-m", str(model), "--host", host, "-c", str(ctx), "-np", str(parallel),
                "--no-webui", *(["-t", str(threads)] if threads else []),
                *(["--api-key", api_key] if api_key else []), *map(str, extra)]
        return cls.launch(args, host=host, port=port, log_path=log_path, timeout=timeout)

    def port_args(self) -> list[str]:
        return ["--port", str(self.port)]

    def ready(self) -> bool:
        """Whether ``GET /health`` answers 200 (the model is loaded)."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return resp.status == 200 and json.loads(resp.read() or b"{}").get("status", "ok") == "ok"
        except (urllib.error.URLError, OSError, ValueError):
            return False
