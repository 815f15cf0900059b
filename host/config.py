"""One configuration, read once at the entry point and passed down frozen.

    from host import Config
    config = Config.load(args=vars(parsed_args), file="relic.toml", environ=os.environ)

Sources, highest first: arguments (a mapping of setting names, e.g. from
argparse), the environment (``RELIC_*`` variables), the config file (TOML:
setting names as keys, a ``[limits]`` table, ``[mods.ID]`` grant tables and a
``[backends]`` table of mod id -> backend), then the defaults.  Nothing below
the entry points (``relic``, the examples, an embedding game) reads
``os.environ``: every layer gets what it needs from this object.

Every setting is declared once in :data:`SETTINGS`; the settings table in the
README is generated from it (``python -m host.config``) and a test keeps the
two equal.  A bad value raises :class:`host.errors.ConfigError` naming the
setting, where it came from and what is allowed.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from host.errors import ConfigError
from host.runtime.grants import Grant
from host.limits import DEFAULT_LIMITS, Limits, is_group

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

MAX_CONFIG_BYTES = 256 * 1024  # a sanity bound on the player's own file, not a mod limit
GPU_KINDS = ("cpu", "cuda", "vulkan", "metal", "hip")
SPLIT_MODES = ("none", "layer", "row")
KV_TYPES = ("f16", "bf16", "f32", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")


# --- value parsers: text (environment, flags) or TOML values -> typed values ----------------

def _int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value):
        if isinstance(value, bool):
            raise ValueError("an integer")
        if isinstance(value, str):
            if not re.fullmatch(r"\s*-?\d{1,12}\s*", value):
                raise ValueError("an integer")
            value = int(value)
        if not isinstance(value, int):
            raise ValueError("an integer")
        if not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}")
        return value
    parse.allowed = f"an integer from {low} to {high}"
    return parse


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value):
        text = str(value).strip().lower()
        if text not in options:
            raise ValueError("one of " + ", ".join(options))
        return text
    parse.allowed = "one of " + ", ".join(options)
    return parse


def _path(value) -> Path:
    text = str(value).strip()
    if not text or "\0" in text:
        raise ValueError("a file path")
    return Path(text).expanduser().absolute()


_path.allowed = "a path"


def _text(value) -> str:
    text = str(value).strip()
    if not text or len(text) > 512 or any(ord(c) < 32 for c in text):
        raise ValueError("a short line of text")
    return text


_text.allowed = "text"


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


_bool.allowed = "true or false"


def _layers(value) -> int:
    if isinstance(value, bool):
        raise ValueError("a number of layers or 'all'")
    text = str(value).strip().lower()
    if text in ("all", "max", "-1"):
        return -1
    if not re.fullmatch(r"\d{1,6}", text):
        raise ValueError("a number of layers or 'all'")
    return int(text)


_layers.allowed = "a number of layers or all"


def _endpoints(value) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or len(text) > 256:
            raise ValueError("host:port[,host:port...]")
        out.append(text)
    if len(out) > 64:
        raise ValueError("at most 64 servers")
    return tuple(dict.fromkeys(out))


_endpoints.allowed = "host:port[,host:port...]"


def _url(value) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", text) or len(text) > 2048:
        raise ValueError("an http:// or https:// URL")
    return text.rstrip("/")


_url.allowed = "an http(s) URL"


def _seconds(value) -> float:
    if isinstance(value, bool):
        raise ValueError("a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("a number of seconds") from None
    if not math.isfinite(number) or not 0 < number <= 3600:
        raise ValueError("a number of seconds above 0 and at most 3600")
    return number


_seconds.allowed = "seconds (0 < s <= 3600)"


# --- the settings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    """One setting: its name (config file key and ``Config`` field), variable, parser and help."""

    name: str
    env: str | None
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("mods_dir", "RELIC_MODS", _path, "the mods folder (default `mods`)"),
    Setting("model", "RELIC_MODEL", _path, "a GGUF chat model (default: SmolLM2-135M-Instruct, fetched by set-up)"),
    Setting("template", "RELIC_TEMPLATE", _text, "a llama.cpp chat template name for a model without one (`chatml`, ...)"),
    Setting("embed_model", "RELIC_EMBED_MODEL", _path, "a GGUF embedding model for `rag` (default: all-MiniLM-L6-v2, converted by set-up)"),
    Setting("library", "LLAMA_CPP_LIB", _path, "use an existing `libllama.so` instead of building the pinned one"),
    Setting("gpu", "RELIC_GPU", _choice(*GPU_KINDS), "which llama.cpp build to load (default: what `make setup GPU=...` chose, else cpu)"),
    Setting("gpu_layers", "RELIC_GPU_LAYERS", _layers, "layers of the chat model to offload (default: all when a GPU or RPC server is seen, else 0)"),
    Setting("embed_gpu_layers", "RELIC_EMBED_GPU_LAYERS", _layers, "the same for the embedding model (default: as `gpu_layers`)"),
    Setting("split_mode", "RELIC_SPLIT_MODE", _choice(*SPLIT_MODES), "how to split a model over several devices (default `layer`)"),
    Setting("main_gpu", "RELIC_MAIN_GPU", _int(0, 255), "the device that holds the model with split mode `none` (default 0)"),
    Setting("rpc", "RELIC_RPC", _endpoints, "llama.cpp rpc-servers (`host:port,...`) to spread the model over"),
    Setting("n_ctx", "RELIC_N_CTX", _int(64, 1 << 20), "context tokens per sequence (default 2048)"),
    Setting("n_seq_max", "RELIC_N_SEQ_MAX", _int(1, 64), "sequences decoded together (default 4)"),
    Setting("n_threads", "RELIC_N_THREADS", _int(1, 1024), "generation threads (default: cores - 1, at least 1)"),
    Setting("n_threads_batch", "RELIC_N_THREADS_BATCH", _int(1, 1024), "prompt-reading threads (default: as `n_threads`)"),
    Setting("worker_nice", "RELIC_WORKER_NICE", _int(0, 19), "niceness of the inference worker thread (default 5: the frame thread wins ties)"),
    Setting("kv_type", "RELIC_KV_TYPE", _choice(*KV_TYPES), "KV cache element type (default `q8_0`: about half the memory of `f16`)"),
    Setting("server", "RELIC_SERVER", _url, "a llama-server or OpenAI-compatible server URL for the `llm` module (default: the embedded model)"),
    Setting("api_key", "RELIC_API_KEY", _text, "the API key sent to `server` (environment or config file only)", secret=True),
    Setting("server_timeout", "RELIC_SERVER_TIMEOUT", _seconds, "seconds to wait for a server to answer before a request fails (default 30)"),
    Setting("trust", None, lambda v: tuple(_text(x) for x in (v if isinstance(v, (list, tuple)) else [v])),
            "mod ids to run trusted (`relic run --trust ID`; in the file: `[mods.ID] trusted = true`)"),
    Setting("rag", "RELIC_RAG", _bool, "give mods the `rag` module (default true; its embedding model is prepared at start)"),
    Setting("debug", "RELIC_DEBUG", _bool, "show Python tracebacks for errors (default false)"),
    Setting("cache_dir", "RELIC_HOME", _path, "the cache of builds and models (default `$XDG_CACHE_HOME/relic` or `~/.cache/relic`)"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def _worker_defaults():
    from host.worker import WorkerConfig

    return WorkerConfig()


@dataclass(frozen=True)
class Config:
    """Every setting of a Relic process (see :data:`SETTINGS`); build it with :meth:`load`."""

    mods_dir: Path = Path("mods")
    model: Path | None = None
    template: str | None = None
    embed_model: Path | None = None
    library: Path | None = None
    gpu: str | None = None
    gpu_layers: int | None = None
    embed_gpu_layers: int | None = None
    split_mode: str = "layer"
    main_gpu: int = 0
    rpc: tuple[str, ...] = ()
    n_ctx: int | None = None
    n_seq_max: int | None = None
    n_threads: int | None = None
    n_threads_batch: int | None = None
    worker_nice: int | None = None
    kv_type: str | None = None
    server: str | None = None
    api_key: str | None = field(default=None, repr=False)
    server_timeout: float = 30.0
    trust: tuple[str, ...] = ()
    rag: bool = True
    debug: bool = False
    cache_dir: Path | None = None
    limits: Limits = DEFAULT_LIMITS
    # mod id -> Grant: privileges given by the player (the config file, --trust) or the game
    grants: Mapping[str, Grant] = field(default_factory=lambda: MappingProxyType({}))
    # mod id -> "embedded" or a server URL: where that mod's `llm` requests run
    backends: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        # frozen all the way down: mappings become read-only views
        object.__setattr__(self, "grants", MappingProxyType(dict(self.grants)))
        object.__setattr__(self, "backends", MappingProxyType(dict(self.backends)))

    # -- derived views -------------------------------------------------------------------

    def mod_grants(self) -> dict[str, Grant]:
        """The grants with ``trust`` folded in (what ``Host(grants=...)`` takes)."""
        out = dict(self.grants)
        for mod_id in self.trust:
            out[mod_id] = replace(out.get(mod_id, Grant()), trusted=True)
        return out

    def offload(self, *, embed: bool = False):
        """The offload request for the chat model (or the embedding model)."""
        from host.llama.offload import OffloadConfig

        layers = self.embed_gpu_layers if embed and self.embed_gpu_layers is not None else self.gpu_layers
        return OffloadConfig(layers, self.split_mode, self.main_gpu)

    def worker_config(self, **overrides):
        """The inference worker's settings (host.worker.WorkerConfig)."""
        cfg = replace(_worker_defaults(), limits=self.limits, max_pending_per_mod=self.limits.llm.max_pending,
                      max_pending_bytes_per_mod=self.limits.llm.max_pending_bytes)
        for name, attr in (("n_ctx", "n_ctx"), ("n_seq_max", "n_seq_max"), ("n_threads", "n_threads"),
                           ("n_threads_batch", "n_threads_batch"), ("worker_nice", "nice"),
                           ("kv_type", "kv_type")):
            value = getattr(self, name)
            if value is not None:
                cfg = replace(cfg, **{attr: value})
        return replace(cfg, **overrides) if overrides else cfg

    def backend_for(self, mod_id: str) -> str:
        """Where ``mod_id``'s `llm` requests run: "embedded" or a server URL."""
        return self.backends.get(mod_id) or self.server or "embedded"

    # -- building ------------------------------------------------------------------------

    @classmethod
    def load(cls, args: Mapping[str, Any] | None = None, file: str | os.PathLike | None = None,
             environ: Mapping[str, str] | None = None, **overrides) -> "Config":
        """Arguments over the environment over the config file over the defaults.

        ``args``: setting names to values (None values are ignored, so an
        argparse namespace's ``vars()`` can be passed as is; unknown names are
        ignored too).  ``file``: a TOML config file (``RELIC_CONFIG`` names one
        when ``file`` is None).  ``environ``: the environment to read (pass
        ``os.environ`` at an entry point; None reads no variables).
        ``overrides``: fields set directly (``limits=``, ``grants=``...).
        """
        environ = environ or {}
        values: dict[str, Any] = {}
        limits_table: dict = {}
        grants: dict[str, Grant] = {}
        backends: dict[str, str] = {}
        file = file or environ.get("RELIC_CONFIG") or None
        if file:
            data = _read_file(Path(file))
            where = str(file)
            for key, raw in data.items():
                if key == "limits":
                    limits_table = _table(raw, f"{where}: [limits]")
                elif key == "mods":
                    grants = _grants(_table(raw, f"{where}: [mods]"), where)
                elif key == "backends":
                    backends = {str(k): _parse("backend", _backend, v, f"{where}: [backends] {k}")
                                for k, v in _table(raw, f"{where}: [backends]").items()}
                elif key in _BY_NAME:
                    values[key] = _parse(key, _BY_NAME[key].parse, raw, f"{where}: {key}")
                else:
                    raise ConfigError(f"{where}: unknown setting '{key[:64]}' (known: "
                                      f"{', '.join(_BY_NAME)}, [limits], [mods.ID], [backends])")
        for s in SETTINGS:
            if s.env and environ.get(s.env, "").strip():
                values[s.name] = _parse(s.name, s.parse, environ[s.env], f"${s.env}")
        for key, raw in (dict(args) if args else {}).items():
            if key in _BY_NAME and raw is not None and raw != [] and key != "api_key":
                values[key] = _parse(key, _BY_NAME[key].parse, raw, f"--{key.replace('_', '-')}")
        limits = _limits(limits_table, file) if limits_table else DEFAULT_LIMITS
        merged = dict(values, limits=limits, grants=grants, backends=backends)
        merged.update(overrides)
        return cls(**merged)


def _parse(name: str, parse, raw, where: str):
    try:
        return parse(raw)
    except ValueError as exc:
        shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:76] + "..."
        raise ConfigError(f"{where}={shown}: {name} must be {exc}") from None


def _backend(value) -> str:
    text = str(value).strip()
    return "embedded" if text == "embedded" else _url(text)


def _read_file(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: the config file is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: values nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def _table(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    return raw


def _grants(table: dict, where: str) -> dict[str, Grant]:
    from host.runtime.manifest import valid_id

    out = {}
    for mod_id, entry in table.items():
        entry = _table(entry, f"{where}: [mods.{mod_id}]")
        if not valid_id(mod_id):
            raise ConfigError(f"{where}: [mods.{mod_id[:64]}] is not a valid mod id")
        unknown = set(entry) - {"trusted", "budget_ms", "memory_mb"}
        if unknown:
            raise ConfigError(f"{where}: [mods.{mod_id}] has unknown keys {sorted(unknown)} "
                              "(known: trusted, budget_ms, memory_mb)")
        try:
            out[mod_id] = Grant(**entry)
        except ConfigError as exc:
            raise ConfigError(f"{where}: [mods.{mod_id}] {exc}") from None
    return out


def _limits(table: dict, where, base=DEFAULT_LIMITS, path: str = "[limits]"):
    """The limits tree with a ``[limits]`` table's values (``[limits.GROUP]`` tables for the groups)."""
    known = {f.name for f in fields(base)}
    values = {}
    for key, raw in table.items():
        if key not in known:
            raise ConfigError(f"{where}: {path} has no '{str(key)[:64]}' (see the limits table in docs/MODDING.md)")
        default = getattr(base, key)
        if is_group(default):
            values[key] = _limits(_table(raw, f"{where}: {path[:-1]}.{key}]"), where, default, f"{path[:-1]}.{key}]")
            continue
        kind = type(default)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (kind is int and not isinstance(raw, int)):
            raise ConfigError(f"{where}: {path} {key} must be {'an integer' if kind is int else 'a number'}")
        if not math.isfinite(raw) or raw <= 0:
            raise ConfigError(f"{where}: {path} {key} must be above 0")
        values[key] = kind(raw)
    return replace(base, **values)


def settings_table() -> str:
    """The README's settings table (markdown), generated from :data:`SETTINGS`."""
    rows = ["| setting (config file key) | environment | what it is |", "|---|---|---|"]
    for s in SETTINGS:
        rows.append(f"| `{s.name}` | {f'`{s.env}`' if s.env else '—'} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - prints the table for the docs
    print(settings_table())
