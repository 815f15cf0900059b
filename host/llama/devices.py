"""The devices llama.cpp sees (ggml's backend registry), and RPC servers as devices.

Every pointer ggml's registry hands out (``ggml_backend_reg_t``,
``ggml_backend_dev_t`` and the strings they name) is borrowed and lives as
long as the process: nothing here frees anything.  Registering an RPC server
adds a backend to the registry for the rest of the process; llama.cpp offers
no way to remove one.

ggml-rpc *aborts the process* when it cannot connect to a server or the
handshake fails (``GGML_ABORT("Failed to connect to ...")`` at this commit),
so :func:`add_rpc_servers` never lets it try a server that has not answered
first: a TCP connect and ggml-rpc's HELLO handshake from Python, each with a
timeout of a few seconds (an HTTP server or a silent port fails here at once,
with an error that says what it is), then the same registration in a child
process (:mod:`host.llama.probe`).  Only when both pass is the server
registered in this process.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from dataclasses import dataclass

from host.errors import RpcError

ENV_RPC = "RELIC_RPC"
RPC_ADD_SERVER = "ggml_backend_rpc_add_server"
MAX_RPC_SERVERS = 16  # GGML_RPC_MAX_SERVERS in ggml-rpc.h
# The HELLO handshake of the pinned ggml-rpc (ggml-rpc.h, ggml-rpc.cpp): the
# client sends | cmd = 14 (1 byte) | size (uint64 LE) | conn_caps (24 bytes) |,
# the server answers | size (uint64 LE) = 28 | major, minor, patch, pad,
# conn_caps (24 bytes) |.  Zero caps ask for no transport upgrade.
RPC_CMD_HELLO = 14
RPC_CONN_CAPS_SIZE = 24
RPC_PROTO_MAJOR = 7
HANDSHAKE_TIMEOUT_S = 3.0

_KINDS = {"GGML_BACKEND_DEVICE_TYPE_CPU": "cpu", "GGML_BACKEND_DEVICE_TYPE_GPU": "gpu",
          "GGML_BACKEND_DEVICE_TYPE_IGPU": "igpu", "GGML_BACKEND_DEVICE_TYPE_ACCEL": "accel",
          "GGML_BACKEND_DEVICE_TYPE_META": "meta"}


@dataclass(frozen=True)
class Device:
    """One ggml device: ``backend`` is its registry's name (CPU, Vulkan, CUDA, RPC, ...)."""

    index: int
    name: str
    description: str
    backend: str
    kind: str  # cpu, gpu, igpu, accel
    memory_free: int
    memory_total: int

    @property
    def offloads(self) -> bool:
        """True for the devices llama.cpp puts model layers on (GPU, iGPU, RPC)."""
        return self.kind in ("gpu", "igpu")

    def summary(self) -> str:
        mem = (f"{self.memory_free / 2**30:.1f}/{self.memory_total / 2**30:.1f} GiB free"
               if self.memory_total else "memory unknown")
        return f"{self.name} [{self.backend}, {self.kind}] {self.description} ({mem})"


def _str(lib, ptr) -> str:
    return "" if ptr == lib.ffi.NULL else lib.ffi.string(ptr).decode("utf-8", "replace")


def _kind_names(lib) -> dict[int, str]:
    out = {}
    for const, word in _KINDS.items():
        value = getattr(lib.C, const, None)
        if value is not None:
            out[int(value)] = word
    return out


def backends(lib) -> list[str]:
    """Names of the registered backends (``CPU``, ``RPC``, ``Vulkan``, ...)."""
    C = lib.C
    return [_str(lib, C.ggml_backend_reg_name(C.ggml_backend_reg_get(i)))
            for i in range(C.ggml_backend_reg_count())]


def list_devices(lib) -> list[Device]:
    """Every device in ggml's registry, in llama.cpp's order, with its memory."""
    ffi, C = lib.ffi, lib.C
    kinds = _kind_names(lib)
    out = []
    for i in range(C.ggml_backend_dev_count()):
        dev = C.ggml_backend_dev_get(i)
        props = ffi.new("struct ggml_backend_dev_props *")
        C.ggml_backend_dev_get_props(dev, props)
        reg = C.ggml_backend_dev_backend_reg(dev)
        out.append(Device(
            index=i,
            name=_str(lib, C.ggml_backend_dev_name(dev)),
            description=_str(lib, C.ggml_backend_dev_description(dev)),
            backend=_str(lib, C.ggml_backend_reg_name(reg)) if reg != ffi.NULL else "?",
            kind=kinds.get(int(props.type), str(int(props.type))),
            memory_free=int(props.memory_free),
            memory_total=int(props.memory_total),
        ))
    return out


def offload_devices(lib) -> list[Device]:
    """The devices a model's layers can go to (empty on a CPU-only build without RPC)."""
    return [d for d in list_devices(lib) if d.offloads]


# --- RPC servers ---------------------------------------------------------------

_ENDPOINT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9.-]{0,252}):(\d{1,5})$")


def parse_endpoints(value) -> list[str]:
    """``"host:port,host:port"`` (or a list) to a list of checked endpoints.

    Raises RpcError naming the bad entry: ggml-rpc aborts the process on an
    endpoint it cannot parse, so nothing unchecked reaches it.
    """
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[str] = []
    for raw in items:
        item = str(raw).strip()
        if not item:
            continue
        m = _ENDPOINT.match(item)
        if not m or not (0 < int(m.group(2)) < 65536):
            raise RpcError(f"RPC server {item!r} is not host:port (IPv4 address or host name, port 1-65535)")
        if item not in out:
            out.append(item)
    if len(out) > MAX_RPC_SERVERS:
        raise RpcError(f"{len(out)} RPC servers given; ggml-rpc supports at most {MAX_RPC_SERVERS}")
    return out


def check_reachable(endpoint: str, timeout: float = 3.0) -> None:
    """Raise RpcError unless a TCP connection to ``endpoint`` opens within ``timeout``.

    IPv4 only, like ggml-rpc's own client.
    """
    host, port = endpoint.rsplit(":", 1)
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RpcError(f"RPC server {endpoint}: cannot resolve {host!r} ({exc.strerror})") from None
    last = None
    for family, type_, proto, _, addr in infos:
        try:
            with socket.socket(family, type_, proto) as s:
                s.settimeout(timeout)
                s.connect(addr)
                return
        except OSError as exc:
            last = exc
    reason = "timed out" if isinstance(last, socket.timeout) else (getattr(last, "strerror", None) or str(last))
    raise RpcError(f"RPC server {endpoint} is unreachable ({reason}); start it with "
                   f"`make rpc-server` on that machine, or remove it from --rpc / ${ENV_RPC}")


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def check_handshake(endpoint: str, timeout: float = HANDSHAKE_TIMEOUT_S) -> tuple[int, int, int]:
    """Raise RpcError unless ``endpoint`` answers ggml-rpc's HELLO within ``timeout``; return its version.

    ggml-rpc's own client waits on the socket without a timeout and aborts
    the process on a bad answer, so a peer that is not an RPC server (an HTTP
    server, a silent TCP port) is caught here first, in a few seconds.
    """
    host, port = endpoint.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(struct.pack("<BQ", RPC_CMD_HELLO, RPC_CONN_CAPS_SIZE) + bytes(RPC_CONN_CAPS_SIZE))
            head = _recv_exact(s, 8, deadline)
            if len(head) < 8:
                raise RpcError(f"RPC server {endpoint} closed the connection during the ggml-rpc handshake "
                               "(is it an rpc-server of this llama.cpp build?)")
            if head[:4] in (b"HTTP", b"<htm", b"<!DO"):
                raise RpcError(f"{endpoint} answers HTTP, not ggml-rpc: give the address of a "
                               "`make rpc-server` process (not a llama-server or web server)")
            (size,) = struct.unpack("<Q", head)
            if size != 4 + RPC_CONN_CAPS_SIZE:
                raise RpcError(f"{endpoint} did not answer the ggml-rpc handshake (a reply of {size} bytes); "
                               "is it an rpc-server of this llama.cpp build?")
            body = _recv_exact(s, size, deadline)
    except socket.timeout:
        raise RpcError(f"{endpoint} accepted the connection but did not answer the ggml-rpc handshake within "
                       f"{timeout:g} s: it is not an rpc-server (or it is stuck)") from None
    except OSError as exc:
        raise RpcError(f"RPC server {endpoint} is unreachable ({exc.strerror or exc}); start it with "
                       f"`make rpc-server` on that machine, or remove it from --rpc / ${ENV_RPC}") from None
    if len(body) < 3:
        raise RpcError(f"RPC server {endpoint} closed the connection during the ggml-rpc handshake")
    version = (body[0], body[1], body[2])
    if version[0] != RPC_PROTO_MAJOR:
        raise RpcError(f"RPC server {endpoint} speaks ggml-rpc {'.'.join(map(str, version))}; this llama.cpp "
                       f"build needs {RPC_PROTO_MAJOR}.x (run the rpc-server of the same build)")
    return version


def registered_rpc_endpoints(lib) -> list[str]:
    """Endpoints whose devices are in the registry (the RPC device's description is its endpoint)."""
    seen: list[str] = []
    for d in list_devices(lib):
        if d.backend == "RPC" and d.description not in seen:
            seen.append(d.description)
    return seen


def register_rpc_server(lib, endpoint: str) -> list[Device]:
    """Register one *already checked* server in this process; return its devices.

    Unsafe on an unchecked endpoint (ggml-rpc aborts the process when the
    connection fails): use :func:`add_rpc_servers`.
    """
    ffi, C = lib.ffi, lib.C
    rpc = C.ggml_backend_reg_by_name(b"RPC")
    if rpc == ffi.NULL:
        raise RpcError("this llama.cpp build has no RPC backend; rebuild it with `make setup` "
                       "(the pinned build enables -DGGML_RPC=ON)")
    fn = C.ggml_backend_reg_get_proc_address(rpc, RPC_ADD_SERVER.encode())
    if fn == ffi.NULL:
        raise RpcError(f"the RPC backend does not export {RPC_ADD_SERVER}")
    add = ffi.cast("ggml_backend_reg_t (*)(const char *)", fn)
    if endpoint not in registered_rpc_endpoints(lib):
        reg = add(endpoint.encode())
        if reg == ffi.NULL:
            raise RpcError(f"RPC server {endpoint} reports no devices")
        C.ggml_backend_register(reg)
    return [d for d in list_devices(lib) if d.backend == "RPC" and d.description == endpoint]


def add_rpc_servers(lib, endpoints, *, probe: bool = True, timeout: float = 60.0) -> list[Device]:
    """Check, then register, RPC servers as devices of this process; return their devices.

    Each server must accept a TCP connection, then pass a registration in a
    child process (which ggml may abort without harming us); only then is it
    registered here.  Raises RpcError naming the first server that failed.
    Call before loading the model: its layers are split over the devices
    present at load time.
    """
    endpoints = parse_endpoints(endpoints)
    todo = [e for e in endpoints if e not in registered_rpc_endpoints(lib)]
    for endpoint in todo:
        check_reachable(endpoint)
        check_handshake(endpoint)
    if probe:
        from host.llama.probe import probe_rpc

        for endpoint in todo:  # one child each, so a failure names its server
            probe_rpc(lib, [endpoint], timeout=timeout)
    devices: list[Device] = []
    for endpoint in endpoints:
        devices += register_rpc_server(lib, endpoint)
    return devices


def check_registered_alive(lib) -> None:
    """RpcError if a registered server no longer accepts connections.

    Called before a model load: llama.cpp would abort the process on the
    first allocation on a dead server.
    """
    for endpoint in registered_rpc_endpoints(lib):
        check_reachable(endpoint)
