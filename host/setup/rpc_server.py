"""llama.cpp's own ``ggml-rpc-server``: where setup built it, and running one locally.

The server is built with the library (same cache folder, same flags: the
``ggml-rpc-server`` target of the pinned source with ``-DGGML_RPC=ON``), so
``make rpc-server`` is instant once ``make setup`` ran.  On a machine with a
GPU, ``make setup GPU=cuda`` gives a server that serves that GPU.

ggml's RPC protocol has no authentication or encryption: bind a server to
127.0.0.1 or a private network only (the server itself warns otherwise).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from host.errors import SetupError


def server_path(kind: str | None = None, *, allow_build: bool = True) -> Path:
    """The ``ggml-rpc-server`` of the selected (or given) variant, building it if needed."""
    from host.setup import gpu, llama_build

    if os.environ.get(llama_build.ENV_LIB):
        raise SetupError(f"{llama_build.ENV_LIB} names an external library; the rpc-server comes from "
                         "the pinned build: unset it and run `make rpc-server`")
    kind = gpu.check_kind(kind) if kind else gpu.selected()[0]
    if kind != "cpu" and llama_build.find_library(gpu.flags(kind)) is None:
        gpu.check_toolchain(kind)
    info = llama_build.ensure_library(gpu.flags(kind), allow_build=allow_build)
    if info.rpc_server is None:
        raise SetupError(f"no {llama_build.RPC_SERVER_TARGET} in {info.lib_dir}; "
                         "delete that folder and run `make rpc-server` to rebuild it")
    return info.rpc_server


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalServer:
    """One ``ggml-rpc-server`` child process on this machine (tests, bench, examples).

    ``with LocalServer.start() as srv: ... srv.endpoint ...``; :meth:`stop`
    terminates it (then kills it if it lingers).  Its output goes to
    ``log_path`` (a file) so nothing blocks on a full pipe.
    """

    def __init__(self, proc: subprocess.Popen, host: str, port: int, log_path: Path | None):
        self.proc = proc
        self.host = host
        self.port = port
        self.log_path = log_path

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def start(cls, binary: Path | None = None, *, host: str = "127.0.0.1", port: int | None = None,
              threads: int = 1, log_path: Path | None = None, timeout: float = 30.0) -> "LocalServer":
        """Start a server and wait until it accepts connections; SetupError if it does not."""
        binary = Path(binary) if binary else server_path()
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between the check and the bind
            p = port or free_port(host)
            out = open(log_path, "ab") if log_path else subprocess.DEVNULL
            try:
                proc = subprocess.Popen([str(binary), "-H", host, "-p", str(p), "-t", str(threads)],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            finally:
                if log_path:
                    out.close()
            srv = cls(proc, host, p, log_path)
            if srv._wait_listening(timeout):
                return srv
            srv.stop()
            last_error = f"exit status {proc.returncode}" if proc.returncode is not None else "not listening"
            if port:
                break
        raise SetupError(f"{binary.name} did not start on {host} ({last_error})"
                         + (f"; see {log_path}" if log_path else ""))

    def _wait_listening(self, timeout: float) -> bool:
        """Wait until the port is bound: a bind attempt fails once the server owns it.

        Probing with connect() would take the server's single client slot.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if _port_listening(self.host, self.port):
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

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
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _port_listening(host: str, port: int) -> bool:
    """True when someone listens on host:port (read from /proc on Linux, else a bind test)."""
    try:
        want = f":{port:04X}"
        with open("/proc/net/tcp") as fh:
            for line in fh.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":  # 0A = LISTEN
                    return True
        return False
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False
