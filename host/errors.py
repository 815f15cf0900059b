"""Every exception Relic raises, under one base class.

Messages say what went wrong and, where there is one, how to fix it.
Append new classes at the end of their section; never rename one.

Each class has an ``error_type``: the short, stable name a mod sees as
``result.error_type`` when a request fails with it (see docs/MODDING.md);
``error_type_of(exc)`` gives it for any exception ("internal" for a host bug).
"""


class RelicError(Exception):
    """Base class of every error Relic raises on purpose."""

    error_type = "error"


def error_type_of(exc: BaseException) -> str:
    """The ``result.error_type`` for an exception: its class's, or "internal" for a host bug."""
    return exc.error_type if isinstance(exc, RelicError) else "internal"


# --- setup and the native library -------------------------------------------

class SetupError(RelicError):
    """A set-up step (download, checksum, build, model fetch) failed."""


class ConfigError(RelicError):
    """A setting (argument, config file entry, environment variable or grant) has a bad value."""

    error_type = "config"


class LibraryLoadError(RelicError):
    """libllama could not be found or loaded."""


class ABIMismatchError(LibraryLoadError):
    """The cffi declarations do not match the compiled library's layout."""


class GpuProbeError(LibraryLoadError):
    """A GPU build failed its child-process probe (backend init, devices, a tiny decode)."""


# --- the llama.cpp binding ---------------------------------------------------

class ClosedError(RelicError):
    """A native object was used after close()."""

    error_type = "closed"


class ModelLoadError(RelicError):
    """A model file is missing, not a GGUF, truncated, corrupt or unsupported."""

    error_type = "model"


class ContextError(RelicError):
    """A llama context could not be created with the given parameters."""

    error_type = "context"


class DecodeError(RelicError):
    """llama_decode/llama_encode returned a failure code."""

    error_type = "decode"

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class TokenizeError(RelicError):
    """Text could not be tokenized, or a token id is out of range."""

    error_type = "tokenize"


class SamplerError(RelicError):
    """A sampler name or parameter is invalid."""

    error_type = "sampler"


class GrammarError(RelicError):
    """A GBNF grammar or JSON Schema is invalid or unsupported."""

    error_type = "grammar"


class TemplateError(RelicError):
    """A chat template is unknown or could not be applied."""

    error_type = "template"


class DeviceError(RelicError):
    """An offload setting (GPU layers, split mode, main GPU) is invalid for the devices present."""


class RpcError(DeviceError):
    """An RPC server is malformed, unreachable, or failed its check before registration."""


# --- the inference worker ----------------------------------------------------

class WorkerError(RelicError):
    """The inference worker refused or failed a request."""

    error_type = "worker"


class QueueFullError(WorkerError):
    """A mod has too many requests queued."""

    error_type = "queue_full"


class PromptTooLongError(WorkerError):
    """A prompt exceeds the configured cap or the context size."""

    error_type = "prompt_too_long"


class CancelledError(WorkerError):
    """A request was cancelled before it finished."""

    error_type = "cancelled"


class ShutdownError(WorkerError):
    """The worker is shut down and takes no more requests."""

    error_type = "shutdown"


class WorkerDeadError(WorkerError):
    """The inference worker thread died; every pending and later request fails with this."""

    error_type = "worker_dead"


class SessionError(WorkerError):
    """A session file could not be read or written, or a session is unknown or busy."""

    error_type = "session"


class OptionError(RelicError):
    """A mod passed a bad option or argument to an llm, session or store call."""

    error_type = "option"


# --- the mod runtime ---------------------------------------------------------

class ModError(RelicError):
    """A mod failed to load or misbehaved."""

    error_type = "mod"


class ManifestError(ModError):
    """A mod.toml is malformed or names invalid values."""


class SandboxViolation(ModError):
    """A sandboxed mod tried something the sandbox forbids."""


class BudgetExceeded(ModError):
    """A mod callback ran past its time budget and was stopped."""


class SqlCallbackStopped(ModError):
    """A mod's SQLite callback could not run or was stopped; its statement fails."""


class QuotaExceeded(ModError):
    """A mod exceeded a registration, event, log or request quota."""

    error_type = "quota"


class GameAPIError(RelicError):
    """The embedding game misused host.expose/emit/hookable (bad name, bad value)."""


# --- memory (RAG) ------------------------------------------------------------

class StoreError(RelicError):
    """A RAG store could not be opened, read or written."""

    error_type = "store"


class EmbeddingError(RelicError):
    """Text could not be embedded (too long, empty, or the model failed)."""

    error_type = "embedding"


# --- remote backends (a llama-server or an OpenAI-compatible server) ----------

class BackendError(WorkerError):
    """An inference server answered with an error (bad API key, bad request, server fault)."""

    error_type = "backend"


class BackendDownError(BackendError):
    """An inference server cannot be reached, stopped answering, or dropped the connection mid-stream."""

    error_type = "backend_down"


class UnsupportedError(RelicError):
    """The backend cannot do what was asked (e.g. raw GBNF on an OpenAI-compatible server)."""

    error_type = "unsupported"
