"""Child-process probes: try what may crash the process somewhere it cannot hurt the game.

A GPU backend can crash in its driver, and ggml-rpc aborts the process when a
server cannot be reached.  Before the host does either in-process, it runs the
same steps in a child (``python -m host.llama.probe``) and reads a one-line
JSON verdict; a child that crashed, aborted or hung becomes a clear error here.

* :func:`probe_gpu`: load the build, list its devices, load a model with every
  layer offloaded and decode a few tokens.
* :func:`probe_rpc`: register RPC servers (ggml connects and handshakes) and
  list their devices.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from host.errors import GpuProbeError, RpcError

PROBE_TIMEOUT_S = 180.0  # a software Vulkan driver compiles its pipelines on first use
_TAIL_LINES = 6


def _run_child(args: list[str], timeout: float) -> tuple[dict | None, str]:
    """Run the probe child; return (its JSON verdict or None, a short reason)."""
    root = str(Path(__file__).resolve().parents[2])  # the child imports this package from where it is
    boot = f"import sys; sys.path.insert(0, {root!r}); from host.llama.probe import main; sys.exit(main())"
    cmd = [sys.executable, "-c", boot, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"the probe did not finish within {timeout:.0f} s"
    verdict = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                verdict = json.loads(line)
            except ValueError:
                pass
            break
    if proc.returncode == 0 and verdict is not None:
        return verdict, ""
    return verdict, _why(proc.returncode, proc.stderr, verdict)


def _why(code: int, stderr: str, verdict: dict | None) -> str:
    if verdict and verdict.get("error"):
        return str(verdict["error"])
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    ggml = [ln for ln in lines if "GGML_ASSERT" in ln or "error" in ln.lower() or "failed" in ln.lower()
            or "ggml-rpc" in ln or ".cpp:" in ln]
    shown = (ggml or lines)[-_TAIL_LINES:]
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        head = f"the probe process died ({sig})"
    else:
        head = f"the probe process exited with status {code}"
    return head + (": " + " | ".join(shown)[-600:] if shown else "")


def _lib_args(lib_paths) -> list[str]:
    return ["--lib", str(lib_paths.lib_path), "--include", str(lib_paths.include_dir),
            "--artifacts", str(lib_paths.artifacts_dir)]


def probe_gpu(lib_paths, model: Path | None, *, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """Probe a GPU build in a child; return its verdict or raise GpuProbeError (reason in the message)."""
    args = ["gpu", *_lib_args(lib_paths)]
    if model is not None:
        args += ["--model", str(model)]
    verdict, reason = _run_child(args, timeout)
    if reason:
        raise GpuProbeError(reason)
    assert verdict is not None
    return verdict


def probe_rpc(lib, endpoints: list[str], *, timeout: float = 60.0) -> dict:
    """Register ``endpoints`` in a child; raise RpcError naming the server that failed."""
    verdict, reason = _run_child(["rpc", *_lib_args(lib.paths), *endpoints], timeout)
    if reason:
        bad = endpoints[0] if len(endpoints) == 1 else next((e for e in endpoints if e in reason), None)
        who = f"RPC server {bad}" if bad else f"RPC servers {', '.join(endpoints)}"
        raise RpcError(f"{who} failed the connection check in a child process "
                       f"(llama.cpp aborts a process whose RPC connection fails, so Relic checks "
                       f"first): {reason}")
    assert verdict is not None
    return verdict


# --- the child ---------------------------------------------------------------

def _child_load(ns):
    from host.llama import lib as _lib

    return _lib.load(_lib.LibPaths(Path(ns.lib), Path(ns.include), Path(ns.artifacts)))


def _devices_json(lib) -> list[dict]:
    from host.llama.devices import list_devices

    return [{"name": d.name, "backend": d.backend, "kind": d.kind, "description": d.description,
             "memory_free": d.memory_free, "memory_total": d.memory_total} for d in list_devices(lib)]


def _child_gpu(ns) -> dict:
    from host.llama.devices import offload_devices

    lib = _child_load(ns)
    out: dict = {"devices": _devices_json(lib)}
    if not offload_devices(lib):
        out["error"] = "the build loaded but llama.cpp sees no GPU device (driver missing or device not supported)"
        return out
    if ns.model:
        from host.llama.context import Context
        from host.llama.model import Model

        model = Model(ns.model, lib=lib, n_gpu_layers="all")
        ctx = Context(model, n_ctx=64, n_batch=32, n_threads=1)
        try:
            out["placement"] = model.placement
            out["text"] = _tiny_decode(ctx)
        finally:
            ctx.close()
            model.close()
    return out


def _tiny_decode(ctx) -> str:
    """A short prompt and four greedy tokens; the text they make."""
    from host.llama.generate import generate

    return "".join(generate(ctx, "The capital of France is", max_tokens=4))


def _child_rpc(ns) -> dict:
    from host.llama.devices import register_rpc_server

    lib = _child_load(ns)
    found = {}
    for endpoint in ns.endpoints:
        found[endpoint] = [d.name for d in register_rpc_server(lib, endpoint)]
    return {"servers": found, "devices": _devices_json(lib)}


def main(argv=None) -> int:
    """Child entry point: print one JSON line; exit 0 on success, 1 on a clean failure."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m host.llama.probe")
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("gpu", "rpc"):
        p = sub.add_parser(name)
        p.add_argument("--lib", required=True)
        p.add_argument("--include", required=True)
        p.add_argument("--artifacts", required=True)
        if name == "gpu":
            p.add_argument("--model")
        else:
            p.add_argument("endpoints", nargs="+")
    ns = ap.parse_args(argv)
    try:
        out = _child_gpu(ns) if ns.what == "gpu" else _child_rpc(ns)
    except Exception as exc:  # a clean failure: report it as the verdict
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(out), flush=True)
    return 1 if out.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
