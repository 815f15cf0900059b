"""Chat sessions: a conversation that keeps its own sequence in the shared context.

Sessions live on the worker thread (the scheduler owns them); the frame thread
only knows their ids.  Each turn renders the whole conversation with the chat
template, and only the tokens after the longest common prefix with what the
sequence already holds are decoded (``usage.cached_tokens`` shows the reuse).

Overflow policies when a turn no longer fits:

- ``drop_oldest`` (default): drop the oldest user/assistant exchange, keep the
  system prompt;
- ``shift``: keep the system prompt's tokens (n_keep), discard the oldest
  tokens after them, and shift the KV cache instead of recomputing it;
- ``error``: fail the turn with a clear message.

The system prompt is never dropped: if it and the new message alone do not fit,
the turn fails whatever the policy.

Saved state is one file: a JSON header line (conversation, settings, the tokens
in the sequence) followed by llama.cpp's sequence state bytes; written to a
temporary file and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.errors import PromptTooLongError, RelicError

OVERFLOW_POLICIES = ("drop_oldest", "shift", "error")
SAVE_VERSION = 1


class SessionError(RelicError):
    """A session file could not be read or written, or a session is unknown."""


@dataclass
class SessionState:
    """Everything a session is; touched only by the worker thread."""

    id: int
    mod_id: str
    system: str | None = None
    sampler: dict | None = None
    overflow: str = "drop_oldest"
    template: str | None = None
    messages: list = field(default_factory=list)  # user/assistant turns (system kept apart)
    seq: int | None = None  # sequence id while resident in the context
    kv_tokens: list = field(default_factory=list)  # exactly what the sequence holds
    dropped: int = 0  # shift policy: tokens discarded after n_keep, cumulative
    last_used: int = 0
    busy: bool = False
    memory: Any = None  # augment(scheduler, text) -> text, applied to each user turn (rag memory)

    def all_messages(self, extra=()) -> list:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages + list(extra)


def common_prefix(a: list, b: list) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TurnPlan:
    """What to decode for one turn: the full prompt tokens and how many are reusable."""

    __slots__ = ("tokens", "user_message", "n_keep", "shift_by")

    def __init__(self, tokens, user_message, n_keep=0, shift_by=0):
        self.tokens = tokens
        self.user_message = user_message
        self.n_keep = n_keep
        self.shift_by = shift_by


def plan_turn(model, session: SessionState, user_text: str, max_tokens: int, budget: int,
              parse_special: bool = True) -> TurnPlan:
    """Render and tokenize a turn, applying the overflow policy to fit ``budget`` cells."""
    vocab = model.vocab
    user = {"role": "user", "content": user_text}

    def render(msgs):
        text = model.apply_chat_template(msgs, template=session.template)
        return vocab.tokenize(text, add_special=True, parse_special=parse_special)

    limit = budget - max_tokens
    if limit <= 0:
        raise PromptTooLongError(f"max_tokens {max_tokens} leaves no room in a context of {budget}")
    minimal = render(session.all_messages()[:1] + [user] if session.system else [user])
    if len(minimal) > limit:
        raise PromptTooLongError(f"the system prompt and this message are {len(minimal)} tokens; with max_tokens "
                                 f"{max_tokens} the context of {budget} cannot hold them")
    tokens = render(session.all_messages([user]))
    if len(tokens) <= limit and session.overflow != "shift":
        return TurnPlan(tokens, user)
    if session.overflow == "error":
        raise PromptTooLongError(f"the conversation is {len(tokens)} tokens and max_tokens is {max_tokens}: it no "
                                 f"longer fits the context of {budget} (overflow='error')")
    if session.overflow == "drop_oldest":
        while len(tokens) > limit and session.messages:
            # drop the oldest exchange (a user turn and the reply after it)
            n = 2 if len(session.messages) >= 2 and session.messages[1]["role"] == "assistant" else 1
            del session.messages[:n]
            tokens = render(session.all_messages([user]))
        return TurnPlan(tokens, user)
    # shift: keep the system prompt's tokens, discard the oldest ones after them
    n_keep = len(render(session.all_messages()[:1])) if session.system else 0
    n_keep = min(n_keep, common_prefix(tokens, minimal))
    dropped = session.dropped
    max_dropped = max(0, len(tokens) - len(minimal))  # never cut into the new message
    if len(tokens) - dropped > limit:
        need = len(tokens) - dropped - limit
        half = (len(tokens) - dropped - n_keep) // 2  # discard at least half, as llama.cpp's context shift does
        dropped = min(dropped + max(need, half), max_dropped)
    cut = tokens[:n_keep] + tokens[n_keep + dropped:]
    shift_by = dropped - session.dropped
    session.dropped = dropped
    return TurnPlan(cut, user, n_keep=n_keep, shift_by=shift_by)


def apply_shift(ctx, session: SessionState, plan: TurnPlan) -> None:
    """Discard plan.shift_by cells after n_keep in the session's sequence and move the rest down."""
    if not plan.shift_by or session.seq is None or not session.kv_tokens:
        return
    k, d = plan.n_keep, plan.shift_by
    if len(session.kv_tokens) <= k + d or not ctx.memory_can_shift():
        ctx.memory_seq_rm(session.seq, k, -1)
        session.kv_tokens = session.kv_tokens[:k]
        return
    ctx.memory_seq_rm(session.seq, k, k + d)
    ctx.memory_seq_add(session.seq, k + d, -1, -d)
    session.kv_tokens = session.kv_tokens[:k] + session.kv_tokens[k + d:]


# --- save / restore ------------------------------------------------------

def save(ctx, session: SessionState, path: Path, model_id: str) -> int:
    """Write conversation + sequence state atomically; returns bytes written."""
    lib = ctx.lib
    header = {
        "version": SAVE_VERSION, "model": model_id, "system": session.system, "sampler": session.sampler,
        "overflow": session.overflow, "template": session.template, "messages": session.messages,
        "kv_tokens": session.kv_tokens if session.seq is not None else [], "dropped": session.dropped,
    }
    state = b""
    if session.seq is not None and session.kv_tokens:
        size = lib.C.llama_state_seq_get_size(ctx.ptr, session.seq)
        buf = lib.ffi.new("uint8_t[]", size)
        n = lib.C.llama_state_seq_get_data(ctx.ptr, buf, size, session.seq)
        state = lib.ffi.buffer(buf, n)[:]
        if n == 0:
            header["kv_tokens"] = []
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    data = json.dumps(header, ensure_ascii=False).encode() + b"\n" + state
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(data)


def read_header(path: Path) -> tuple[dict, bytes]:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SessionError(f"no saved session at {path}") from None
    except OSError as exc:
        raise SessionError(f"cannot read {path}: {exc.strerror}") from None
    head, sep, state = raw.partition(b"\n")
    try:
        header = json.loads(head)
        assert sep and isinstance(header, dict) and header.get("version") == SAVE_VERSION
        assert isinstance(header.get("messages"), list) and isinstance(header.get("kv_tokens"), list)
    except (ValueError, AssertionError):
        raise SessionError(f"{path} is not a saved session (or from an incompatible version)") from None
    return header, state


def restore_state(ctx, session: SessionState, header: dict, state: bytes, model_id: str) -> None:
    """Load the saved sequence state into session.seq when it matches this model."""
    session.kv_tokens = []
    if not state or header.get("model") != model_id or session.seq is None:
        return
    lib = ctx.lib
    buf = lib.ffi.from_buffer(state)
    ctx.memory_seq_rm(session.seq)
    n = lib.C.llama_state_seq_set_data(ctx.ptr, buf, len(state), session.seq)
    if n == 0:  # incompatible state: fall back to recomputing from the conversation
        ctx.memory_seq_rm(session.seq)
        return
    session.kv_tokens = [int(t) for t in header["kv_tokens"]]
