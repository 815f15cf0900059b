"""A llama.cpp server program run as a child process on this machine.

:class:`ChildServer` holds what ``ggml-rpc-server`` (host.setup.rpc_server)
and ``llama-server`` (host.setup.llama_server) share: start on a free port
(retried, since a port can be taken between the check and the bind), wait
until the program is ready, restart on the same port, stop or kill and reap
it.  A subclass says how the program takes its port (:meth:`port_args`) and
when it is ready (:meth:`ready`).  The child's output goes to ``log_path``
(a file) or nowhere, so nothing blocks on a full pipe.
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import TypeVar

from host.errors import SetupError

S = TypeVar("S", bound="ChildServer")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ChildServer:
    """One server child process; ``with`` stops it."""

    name = "server"  # the program, as error messages name it
    poll_s = 0.05  # between two readiness checks
    stop_grace_s = 5.0  # after SIGTERM, before SIGKILL

    def __init__(self, args: list[str], host: str, port: int, log_path: Path | None):
        self.args = list(args)  # the command line without the port, so restart() brings the same server back
        self.host = host
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def port_args(self) -> list[str]:
        """The command-line arguments that give the program its port."""
        raise NotImplementedError

    def ready(self) -> bool:
        """One check of whether the running program serves (called while it runs)."""
        raise NotImplementedError

    @classmethod
    def launch(cls: type[S], args: list[str], *, host: str, port: int | None, log_path: Path | None,
               timeout: float) -> S:
        """Start ``args`` on ``port`` (or a free one, retried) and wait until ready; SetupError if not."""
        last = ""
        for _attempt in range(3):
            srv = cls(args, host, port or free_port(host), log_path)
            srv.spawn()
            if srv.wait_ready(timeout):
                return srv
            last = f"exit status {srv.proc.returncode}" if srv.proc.poll() is not None else "not ready in time"
            srv.stop()
            if port:
                break
        raise SetupError(f"{cls.name} did not start on {host} ({last})" + (f"; see {log_path}" if log_path else ""))

    def spawn(self) -> None:
        """Start the program (not waiting for it)."""
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([*self.args, *self.port_args()], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out)
        finally:
            if self.log_path:
                out.close()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until :meth:`ready`; False if the process ends first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(self.poll_s)
        return False

    def alive(self) -> bool:
        """Whether the child process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def restart(self, timeout: float = 120.0) -> None:
        """Start the same server again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        self.spawn()
        if not self.wait_ready(timeout):
            raise SetupError(f"{self.name} did not come back on {self.host}:{self.port}")

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crashed machine would go."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server and reap it (SIGKILL if it lingers)."""
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=self.stop_grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
