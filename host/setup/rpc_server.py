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
from pathlib import Path

from host.errors import SetupError
from host.setup.child_server import ChildServer


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


class LocalServer(ChildServer):
    """One ``ggml-rpc-server`` child process on this machine (tests, bench, examples).

    ``with LocalServer.start() as srv: ... srv.endpoint ...``; :meth:`stop`
    terminates it (then kills it if it lingers).
    """

    name = "ggml-rpc-server"

    @property
    def endpoint(self) -> str:
        """``host:port``, as ``--rpc`` takes it."""
        return f"{self.host}:{self.port}"

    @classmethod
    def start(cls, binary: Path | None = None, *, host: str = "127.0.0.1", port: int | None = None,
              threads: int = 1, log_path: Path | None = None, timeout: float = 30.0) -> "LocalServer":
        """Start a server and wait until it accepts connections; SetupError if it does not."""
        binary = Path(binary) if binary else server_path()
        return cls.launch([str(binary), "-H", host, "-t", str(threads)], host=host, port=port,
                          log_path=log_path, timeout=timeout)

    def port_args(self) -> list[str]:
        return ["-p", str(self.port)]

    def ready(self) -> bool:
        """Whether the port is bound.  Probing with connect() would take the server's single client slot."""
        return _port_listening(self.host, self.port)


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
