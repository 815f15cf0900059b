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
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from host.errors import SetupError
from host.setup.rpc_server import free_port


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


class LocalLlamaServer:
    """One ``llama-server`` child process on this machine; :meth:`stop` / :meth:`kill` end it."""

    def __init__(self, proc: subprocess.Popen, host: str, port: int, args: list[str], log_path: Path | None):
        self.proc = proc
        self.host = host
        self.port = port
        self.args = args  # the command line, so restart() brings the same server back
        self.log_path = log_path

    @property
    def url(self) -> str:
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
        last = ""
        for _attempt in range(3):  # a free port can be taken between the check and the bind
            p = port or free_port(host)
            srv = cls(None, host, p, args, log_path)  # type: ignore[arg-type]
            srv._spawn()
            if srv.wait_ready(timeout):
                return srv
            last = f"exit status {srv.proc.returncode}" if srv.proc.poll() is not None else "not ready in time"
            srv.stop()
            if port:
                break
        raise SetupError(f"llama-server did not start on {host} ({last})" + (f"; see {log_path}" if log_path else ""))

    def _spawn(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([*self.args, "--port", str(self.port)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out)
        finally:
            if self.log_path:
                out.close()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until ``GET /health`` answers 200 (the model is loaded); False if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200 and json.loads(resp.read() or b"{}").get("status", "ok") == "ok":
                        return True
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def restart(self, timeout: float = 120.0) -> None:
        """Start the same server again on the same port (after :meth:`kill`)."""
        self.stop()
        self._spawn()
        if not self.wait_ready(timeout):
            raise SetupError(f"llama-server did not come back on {self.url}")

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crashed machine would go."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server and reap it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> "LocalLlamaServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

