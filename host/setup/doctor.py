"""``relic doctor``: report what setup produced and whether the binding fits it.

Prints the library path, llama.cpp commit, build flags, model path and the
result of the ABI check (``host.llama.lib.load``, which compares the cffi
declarations with the probe compiled against the same header), then the GPU
choice, the backends and devices llama.cpp sees with their memory, the
configured RPC servers, and how many layers of the model are offloaded (the
model is loaded with the configured settings to find out).  Doctor never
starts a build or a download; it says which command fixes what is missing.
"""

from __future__ import annotations

import os
import sys

from host.errors import RelicError
from host.setup import llama_build, model_fetch, paths

_FIX = "run `make setup` (or `python -m host.setup all`)"


def _line(label: str, value: str) -> None:
    print(f"  {label:<12} {value}")


def _check_library(config) -> tuple[llama_build.LibInfo | None, list[str]]:
    try:
        info = llama_build.ensure_library(allow_build=False, external=config.library)
    except RelicError as exc:
        _line("library", f"MISSING: {exc}")
        return None, [f"library: {_FIX}"]
    where = "the library setting" if info.external else "built by setup"
    _line("library", f"{info.lib_path} ({where})")
    _line("llama.cpp", f"commit {info.commit} (llama-cpp-python {llama_build.LLAMA_CPP_PYTHON_VERSION} sdist)")
    _line("build flags", " ".join(info.build_flags) if info.build_flags else "(external library)")
    _line("headers", str(info.include_dir))
    _line("artifacts", str(info.artifacts_dir))
    return info, []


def _check_model(config) -> list[str]:
    if config.model is not None:
        path = config.model
        if not path.is_file():
            _line("model", f"MISSING: {path} (the model setting)")
            return ["model: the model setting names no file"]
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"GGUF":
            _line("model", f"{path} (the model setting) is NOT a GGUF file (starts with {magic!r})")
            return ["model: the configured model is not a GGUF file"]
        _line("model", f"{path} (the model setting, {path.stat().st_size / 1e6:.1f} MB, GGUF header ok)")
        return []
    path = model_fetch.cached_default_model()
    if path is None:
        _line("model", f"MISSING: {model_fetch.default_model_file()}")
        return [f"model: {_FIX}"]
    _line("model", f"{path} (default, {path.stat().st_size / 1e6:.1f} MB, sha256 verified)")
    return []


def _check_abi(info: llama_build.LibInfo) -> list[str]:
    try:
        from host.llama.lib import load

        load(info)
    except RelicError as exc:  # ABIMismatchError names the field; LibraryLoadError the cause
        _line("ABI check", f"FAILED ({type(exc).__name__}): {exc}")
        return ["ABI check failed"]
    except Exception as exc:  # doctor reports; it must not die with a traceback
        _line("ABI check", f"ERROR ({type(exc).__name__}): {exc}")
        return ["ABI check could not run"]
    _line("ABI check", "OK (cffi declarations match the compiled layout)")
    return []


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _check_devices(config) -> list[str]:
    """GPU choice, backends, devices, RPC servers and the model's offload."""
    from host.llama import devices, lib as _lib
    from host.setup.library import choose_library

    info, sel = choose_library(config.gpu, config.library, say=lambda line: None)
    lib = _lib.load(info)
    if sel is not None:
        used = sel.used if sel.used == sel.requested else f"{sel.used} (FALLBACK: {sel.reason})"
        _line("GPU choice", f"{sel.requested} (from {sel.source}); in use: {used}")
    _line("backends", ", ".join(devices.backends(lib)) or "(none)")
    problems: list[str] = []
    try:
        rpc = devices.add_rpc_servers(lib, config.rpc) if config.rpc else []
    except RelicError as exc:
        _line("RPC", f"FAILED: {exc}")
        problems.append("a configured RPC server failed its check")
    else:
        if rpc:
            _line("RPC", ", ".join(sorted({d.description for d in rpc})) + f" ({len(rpc)} device(s))")
    for d in devices.list_devices(lib):
        mem = f"{_gib(d.memory_free)} free of {_gib(d.memory_total)}" if d.memory_total else "memory n/a"
        _line(f"device {d.index}", f"{d.name} [{d.backend}, {d.kind}] {d.description}: {mem}")
    if problems:
        return problems
    try:
        from host.llama import Model

        path = config.model or model_fetch.cached_default_model()
        model = Model(path, lib=lib, offload=config.offload())
    except RelicError as exc:
        _line("offload", f"FAILED: {exc}")
        return ["the model did not load with the offload settings"]
    try:
        done, total = model.offloaded
        _line("offload", f"{done}/{total} layers of {model.path.name} on {model.placement} "
                         f"({model.offload.reason}; split {model.offload.split_mode}, "
                         f"main GPU {model.offload.main_gpu})")
    finally:
        model.close()
    return []


def doctor(config=None) -> int:
    """Print the set-up report for ``config`` (a host.config.Config); 0 only when everything is usable."""
    if config is None:
        from host.config import Config

        config = Config()
    if config.cache_dir is not None:
        paths.use_root(config.cache_dir)
    print("relic doctor")
    _line("python", f"{sys.version.split()[0]} ({sys.executable})")
    _line("cache", str(paths.cache_root()))
    problems: list[str] = []
    info, found = _check_library(config)
    problems += found
    problems += _check_model(config)
    if info is not None:
        found = _check_abi(info)
        problems += found
        if not found and not problems:
            problems += _check_devices(config)
    else:
        _line("ABI check", "SKIPPED (no library)")
    if problems:
        print(f"status: {len(problems)} problem(s): " + "; ".join(problems))
        return 1
    print("status: all well")
    return 0


def doctor_server(server) -> int:
    """Check an inference server (a host.remote.backend.ServerConfig): model, context, template, features.

    Returns 0 when it answers and can chat, 1 otherwise (the reason is printed).
    """
    from host.remote.backend import probe

    print("relic doctor --server")
    try:
        url, dialect = server.resolved()
    except RelicError as exc:
        _line("server", f"BAD URL: {exc}")
        print("status: 1 problem(s): the URL")
        return 1
    _line("server", f"{url} ({dialect} API{', with an API key' if server.api_key else ''})")
    info, problem = probe(server)
    if info is None:
        _line("answer", f"NONE: {problem}")
        print("status: 1 problem(s): the server")
        return 1
    _line("model", info.model)
    per = "tokens per slot" if info.dialect == "llama-server" else "tokens (the model's training window)"
    _line("context", f"{info.n_ctx} {per}" if info.n_ctx else "not reported")
    _line("slots", str(info.slots) if info.slots else "not reported")
    template = (info.template or "").strip().splitlines()
    _line("template", (template[0][:70] + (" ..." if len(template) > 1 else "")) if template
          else "the server's own (not reported)")
    missing = {"embeddings": "no (stores use the embedded embedding model)",
               "prompt cache per session": "no (sessions work; a turn may re-read the conversation)"}
    for feature, ok in info.features.items():
        _line(feature, "yes" if ok else missing.get(feature, "no (requests that need it fail with "
                                                             "error_type \"unsupported\")"))
    print("status: all well")
    return 0


if __name__ == "__main__":
    from host.config import Config

    sys.exit(doctor(Config.load(environ=os.environ)))
