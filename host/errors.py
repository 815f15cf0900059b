"""Every exception Relic raises, under one base class.

Messages say what went wrong and, where there is one, how to fix it.
Append new classes at the end of their section; never rename one.
"""


class RelicError(Exception):
    """Base class of every error Relic raises on purpose."""


# --- setup and the native library -------------------------------------------

class SetupError(RelicError):
    """A set-up step (download, checksum, build, model fetch) failed."""


class LibraryLoadError(RelicError):
    """libllama could not be found or loaded."""


class ABIMismatchError(LibraryLoadError):
    """The cffi declarations do not match the compiled library's layout."""


class GpuProbeError(LibraryLoadError):
    """A GPU build failed its child-process probe (backend init, devices, a tiny decode)."""


# --- the llama.cpp binding ---------------------------------------------------

class ClosedError(RelicError):
    """A native object was used after close()."""


class ModelLoadError(RelicError):
    """A model file is missing, not a GGUF, truncated, corrupt or unsupported."""


class ContextError(RelicError):
    """A llama context could not be created with the given parameters."""


class DecodeError(RelicError):
    """llama_decode/llama_encode returned a failure code."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class TokenizeError(RelicError):
    """Text could not be tokenized, or a token id is out of range."""


class SamplerError(RelicError):
    """A sampler name or parameter is invalid."""


class GrammarError(RelicError):
    """A GBNF grammar or JSON Schema is invalid or unsupported."""


class TemplateError(RelicError):
    """A chat template is unknown or could not be applied."""


class DeviceError(RelicError):
    """An offload setting (GPU layers, split mode, main GPU) is invalid for the devices present."""


class RpcError(DeviceError):
    """An RPC server is malformed, unreachable, or failed its check before registration."""


# --- the inference worker ----------------------------------------------------

class WorkerError(RelicError):
    """The inference worker refused or failed a request."""


class QueueFullError(WorkerError):
    """A mod has too many requests queued."""


class PromptTooLongError(WorkerError):
    """A prompt exceeds the configured cap or the context size."""


class CancelledError(WorkerError):
    """A request was cancelled before it finished."""


class ShutdownError(WorkerError):
    """The worker is shut down and takes no more requests."""


# --- the mod runtime ---------------------------------------------------------

class ModError(RelicError):
    """A mod failed to load or misbehaved."""


class ManifestError(ModError):
    """A mod.toml is malformed or names invalid values."""


class SandboxViolation(ModError):
    """A sandboxed mod tried something the sandbox forbids."""


class BudgetExceeded(ModError):
    """A mod callback ran past its time budget and was stopped."""


class QuotaExceeded(ModError):
    """A mod exceeded a registration, event, log or request quota."""


class GameAPIError(RelicError):
    """The embedding game misused host.expose/emit/hookable (bad name, bad value)."""


# --- memory (RAG) ------------------------------------------------------------

class StoreError(RelicError):
    """A RAG store could not be opened, read or written."""


class EmbeddingError(RelicError):
    """Text could not be embedded (too long, empty, or the model failed)."""
