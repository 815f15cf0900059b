"""What a remote dialect is: request bodies out, stream chunks in (shared by both dialects).

A dialect turns a Relic request into an HTTP call and a server's streamed
chunks back into text, a finish reason and token counts.  It holds no
connection (host.remote.client does) and no state (host.remote.engine does):
every method is a pure function of its arguments, apart from the few calls
that ask the server something (``probe``, ``tokenize``, ``embed``).

Two dialects: host.remote.llama_server (llama.cpp's own API: prompt cache,
slots, GBNF, /tokenize) and host.remote.openai (any OpenAI-compatible server).
What a dialect cannot express raises UnsupportedError naming the feature,
before anything is sent: a constraint is never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from host.errors import UnsupportedError


@dataclass
class ServerInfo:
    """What a server said about itself (``probe``): for doctor, the engine and the one start line."""

    url: str
    dialect: str
    model: str = "?"
    n_ctx: int | None = None  # tokens per slot (llama-server) or the model's window, when the server says
    slots: int | None = None  # requests it decodes at once (llama-server's -np)
    template: str | None = None  # chat template (its source or name), when the server says
    model_path: str | None = None  # the GGUF it loaded (llama-server), for a local tokenizer
    features: dict = field(default_factory=dict)  # feature -> True/False (doctor prints them)

    def line(self) -> str:
        """One line for the console at start."""
        parts = [f"{self.dialect} server {self.url}", f"model {self.model}"]
        if self.n_ctx:
            parts.append(f"context {self.n_ctx}")
        if self.slots:
            parts.append(f"{self.slots} slots")
        return ", ".join(parts)


@dataclass
class Chunk:
    """One decoded stream event: new text, and at the end a finish reason and counts."""

    text: str = ""
    finish: str | None = None  # "stop" | "length" once the server says it is done
    prompt_tokens: int | None = None  # the prompt's tokens in all (re-read + cached)
    cached_tokens: int | None = None  # of those, taken from the server's prompt cache
    completion_tokens: int | None = None
    timings: dict | None = None  # the server's own timings when it sends them


def finish_reason(value) -> str | None:
    """Relic's finish reason for a server's (None while it goes on)."""
    if value in (None, ""):
        return None
    return "length" if value in ("length", "limit") else "stop"


def unsupported(dialect: str, feature: str, hint: str = "") -> UnsupportedError:
    """The error for a feature a dialect cannot express."""
    return UnsupportedError(f"{feature} is not supported on {dialect}{': ' + hint if hint else ''}")
