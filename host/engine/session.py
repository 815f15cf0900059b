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
in the sequence, the SHA-256 of the state) followed by llama.cpp's sequence
state bytes; written to a temporary file and renamed, so a crash never leaves
half a file.  Reading checks every header field's type (a bad one is a
SessionError naming it) and the state's checksum: state bytes that do not
match it are never handed to llama.cpp, the conversation is read again instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.engine.chat_tokens import chat_tokens
from host.errors import CancelledError, PromptTooLongError, SessionError

__all__ = ["OVERFLOW_POLICIES", "SessionError", "SessionState", "plan_turn", "save", "read_header", "restore_state"]

OVERFLOW_POLICIES = ("drop_oldest", "shift", "summarize", "error")
SAVE_VERSION = 1


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
    memory: Any = None  # a store path: its hits are a note in each turn only (see Scheduler.memory_note)
    summary: str = ""  # overflow="summarize": what the dropped turns said, kept after the system prompt
    to_summarize: list = field(default_factory=list)  # dropped messages not yet in the summary
    summarizing: int = 0  # the id of the summary request queued or running for it (0: none)
    priority: str | None = None  # its turns' default priority (None: "normal"; see host.engine.admission)

    def text_size(self) -> int:
        """Characters of text this session holds (system prompt, summary, conversation): what quotas count."""
        return len(self.system or "") + len(self.summary) + sum(
            len(m.get("content") or "") for m in self.messages if isinstance(m, dict))

    def system_text(self) -> str | None:
        if self.summary and self.system:
            return f"{self.system}\n\nEarlier in this conversation: {self.summary}"
        return self.system or (f"Earlier in this conversation: {self.summary}" if self.summary else None)

    def all_messages(self, extra=()) -> list:
        system = self.system_text()
        head = [{"role": "system", "content": system}] if system else []
        return head + self.messages + list(extra)


def common_prefix(a: list, b: list) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TurnPlan:
    """What to decode for one turn: the full prompt tokens and how many are reusable.

    ``new_messages``: what the turn adds to the saved conversation (without the
    retrieved memory note, which is shown in this turn only).
    """

    __slots__ = ("tokens", "new_messages", "n_keep", "shift_by")

    def __init__(self, tokens, new_messages, n_keep=0, shift_by=0):
        self.tokens = tokens
        self.new_messages = new_messages
        self.n_keep = n_keep
        self.shift_by = shift_by


def with_note(messages: list, note: str | None) -> list:
    """The turn's messages as the model sees them: the memory note before the last message's text."""
    if not note or not messages:
        return messages
    last = messages[-1]
    return messages[:-1] + [{"role": last["role"], "content": f"{note}\n\n{last['content']}"}]


def _exchange_starts(messages: list) -> list[int]:
    """Indices where an exchange (a user turn and the replies and tool results after it) starts."""
    starts = [i for i, m in enumerate(messages) if i == 0 or m.get("role") == "user"]
    return starts + [len(messages)]


def _drop_oldest(session: SessionState, render, limit: int) -> list:
    """Drop the fewest oldest exchanges that make ``render()`` fit ``limit``; returns its tokens.

    A binary search over exchange boundaries: a long history costs log(n)
    renderings, not n (the worker is shared by every mod).
    """
    messages = session.messages
    starts = _exchange_starts(messages)
    lo, hi, best = 1, len(starts) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        session.messages = messages[starts[mid]:]
        trial = render()
        if len(trial) <= limit:
            best, hi = (mid, trial), mid - 1
        else:
            lo = mid + 1
    if best is None:  # even an empty history does not fit: the caller checked `minimal`
        session.messages = []
        return render()
    session.messages = messages[starts[best[0]]:]
    return best[1]


def plan_turn(model, session: SessionState, user_text: str | None, max_tokens: int, budget: int,
              *, extra=None, note: str | None = None, cancelled=None) -> TurnPlan:
    """Render and tokenize a turn, applying the overflow policy to fit ``budget`` cells.

    The turn adds a user message ``user_text``, or the messages ``extra``
    (e.g. a tool result, for the next step of a turn with tools).  ``note``
    (retrieved memory) goes into this turn's last message only: it is never
    saved in the conversation.  Message contents are plain text (see
    host.engine.chat_tokens).  ``cancelled()`` is checked before each
    rendering; when it returns True, CancelledError is raised.
    """
    new = [dict(m) for m in extra] if extra else [{"role": "user", "content": user_text or ""}]
    shown = with_note(new, note)

    def render(msgs):
        if cancelled is not None and cancelled():
            raise CancelledError("cancelled while preparing the turn")
        return chat_tokens(model, msgs, template=session.template, cancelled=cancelled)

    limit = budget - max_tokens
    if limit <= 0:
        raise PromptTooLongError(f"max_tokens {max_tokens} leaves no room in a context of {budget}")
    minimal = render(session.all_messages()[:1] + shown if session.system_text() else shown)
    if len(minimal) > limit:
        raise PromptTooLongError(f"the system prompt and this message are {len(minimal)} tokens; with max_tokens "
                                 f"{max_tokens} the context of {budget} cannot hold them")
    tokens = render(session.all_messages(shown))
    if session.overflow == "drop_oldest" and len(tokens) > limit:
        tokens = _drop_oldest(session, lambda: render(session.all_messages(shown)), limit)
    elif session.overflow == "summarize" and len(tokens) > limit:
        from host.engine import summary

        tokens = summary.drop_to_fit(session, lambda: render(session.all_messages(shown)), limit)
    if len(tokens) <= limit and session.overflow != "shift":
        return TurnPlan(tokens, new)
    if session.overflow == "error":
        raise PromptTooLongError(f"the conversation is {len(tokens)} tokens and max_tokens is {max_tokens}: it no "
                                 f"longer fits the context of {budget} (overflow='error')")
    # shift: keep the system prompt's tokens, discard the oldest ones after them
    n_keep = len(render(session.all_messages()[:1])) if session.system_text() else 0
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
    return TurnPlan(cut, new, n_keep=n_keep, shift_by=shift_by)


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


PRIME_REPLIES = 4  # earlier replies a session's sampler is shown before it samples
PRIME_TOKENS = 512


def prime_sampler(vocab, session: SessionState, sampler) -> int:
    """Show the sampler the character's recent replies, so repetition penalties and DRY see them.

    llama.cpp's penalty and DRY samplers only know the tokens they accepted,
    which are this reply's: without this, a reply that copies an earlier one
    word for word is not penalized at all.  A grammar is not shown them (its
    state must start at the beginning).  Returns how many tokens were shown.
    """
    replies = [m["content"] for m in session.messages if m["role"] == "assistant"][-PRIME_REPLIES:]
    if not replies:
        return 0
    tokens = vocab.tokenize("\n".join(replies), add_special=False, parse_special=False)[-PRIME_TOKENS:]
    inner = getattr(sampler, "chain", sampler)  # a GrammarChain's plain samplers
    for t in tokens:
        inner.accept(t)
    return len(tokens)


MIN_SPLICE_REUSE = 16  # tokens: below this a splice is not worth the approximation
MAX_SPLICE_INSERT = 192  # tokens a splice may decode in the middle (a new summary)
MAX_SPLICES = 4  # splices per turn: each fixes the next difference between the cache and the prompt


def splice(ctx, session: SessionState, prompt: list, decode_at=None) -> int:
    """Reuse the cache past a change in the middle of the conversation; returns the cells reused.

    When the sequence holds ``A + X + B`` and the prompt is ``A + Y + B + ...``
    (an exchange dropped on overflow: Y empty; last turn's memory note left
    out: Y empty; a new running summary: X the old one, Y the new one), the
    cells of ``X`` are removed, those of ``B`` moved to their new positions,
    and ``Y`` (at most MAX_SPLICE_INSERT tokens) is decoded in place by
    ``decode_at(tokens, first_pos)``; ``B`` is not read again.  Like
    llama.cpp's context shift this is an approximation: the cells of ``B``
    were computed next to ``X``.  Does nothing (returns 0) when the cache
    cannot shift or less than MIN_SPLICE_REUSE tokens would be saved.
    """
    kv = session.kv_tokens
    p = common_prefix(kv, prompt)
    if session.seq is None or p >= len(kv) - MIN_SPLICE_REUSE or p >= len(prompt) - MIN_SPLICE_REUSE:
        return 0
    where: dict = {}
    for k in range(p + 1, len(kv)):
        where.setdefault(kv[k], []).append(k)
    best = (0, 0, 0)  # (gain, n cut, r inserted)
    max_r = min(MAX_SPLICE_INSERT if decode_at is not None else 0, len(prompt) - p - 1)
    for r in range(0, max_r + 1):
        for k in where.get(prompt[p + r], ()):
            m = 0
            while k + m < len(kv) and p + r + m < len(prompt) - 1 and kv[k + m] == prompt[p + r + m]:
                m += 1
            if m - r > best[0]:
                best = (m - r, k - p, r)
        if best[0] >= 4 * MIN_SPLICE_REUSE:
            break  # good enough: do not scan further insertions
    gain, n, r = best
    if gain < MIN_SPLICE_REUSE or not ctx.memory_can_shift():
        return 0
    seq = session.seq
    ctx.memory_seq_rm(seq, p, p + n)
    ctx.memory_seq_add(seq, p + n, -1, -n)  # B now at [p, p + lb)
    if r:
        # llama.cpp only appends (a batch starts right after the last stored position):
        # decode Y after B, then rotate the positions so that Y comes first
        lb = len(kv) - p - n
        decode_at(prompt[p:p + r], p + lb)
        far = 2 * (lb + r)
        ctx.memory_seq_add(seq, p + lb, p + lb + r, far)  # Y out of the way
        ctx.memory_seq_add(seq, p, p + lb, r)  # B up by r
        ctx.memory_seq_add(seq, p + lb + far, p + lb + r + far, -(lb + far))  # Y to [p, p + r)
    session.kv_tokens = prompt[:p + r] + kv[p + n:]
    return gain + r


# --- save / restore ------------------------------------------------------

def save(ctx, session: SessionState, path: Path, model_id: str) -> int:
    """Write conversation + sequence state atomically; returns bytes written."""
    lib = ctx.lib
    header = {
        "version": SAVE_VERSION, "model": model_id, "system": session.system, "sampler": session.sampler,
        "overflow": session.overflow, "template": session.template, "messages": session.messages,
        "summary": session.summary,
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
    header["state_sha256"] = hashlib.sha256(state).hexdigest() if state else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    data = json.dumps(header, ensure_ascii=False).encode() + b"\n" + state
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _remove_stale_temps(path)
    return len(data)


def _remove_stale_temps(path: Path) -> None:
    """Delete `<name>.tmp<pid>` files that processes killed mid-save left behind (a disk leak otherwise)."""
    for p in path.parent.glob(path.name + ".tmp*"):
        pid = p.name[len(path.name) + 4:]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:   # that writer is gone
            p.unlink(missing_ok=True)
        except OSError:
            pass


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
        if not (sep and isinstance(header, dict) and header.get("version") == SAVE_VERSION):
            raise ValueError
    except (ValueError, RecursionError):
        raise SessionError(f"{path} is not a saved session (or from an incompatible version)") from None
    problem = _header_problem(header)
    if problem:
        raise SessionError(f"{path}: a corrupt saved session ({problem})")
    digest = header.get("state_sha256")
    if state and (not isinstance(digest, str) or hashlib.sha256(state).hexdigest() != digest):
        state = b""          # damaged (or unverifiable) state: recompute from the conversation
        header["kv_tokens"] = []
    return header, state


def _opt(header: dict, key: str, types) -> bool:
    v = header.get(key)
    return v is None or isinstance(v, types)


def _header_problem(h: dict) -> str | None:
    """What is wrong with a saved session's header fields (None: nothing)."""
    for key, types in (("model", str), ("system", str), ("sampler", dict), ("template", str),
                       ("summary", str), ("state_sha256", str)):
        if not _opt(h, key, types):
            return f"'{key}' must be {types.__name__}, not {type(h[key]).__name__}"
    if h.get("overflow") is not None and h["overflow"] not in OVERFLOW_POLICIES:
        return f"'overflow' must be one of {', '.join(OVERFLOW_POLICIES)}"
    dropped = h.get("dropped", 0)
    if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
        return "'dropped' must be a whole number"
    msgs = h.get("messages")
    if not isinstance(msgs, list):
        return "'messages' must be a list"
    for i, m in enumerate(msgs):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            return f"message {i + 1} must have a string role and content"
    toks = h.get("kv_tokens")
    if not isinstance(toks, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in toks):
        return "'kv_tokens' must be a list of whole numbers"
    return None


def restore_state(ctx, session: SessionState, header: dict, state: bytes, model_id: str) -> None:
    """Load the saved sequence state into session.seq when it matches this model."""
    session.kv_tokens = []
    if not state or header.get("model") != model_id or session.seq is None:
        return
    ctx.memory_seq_rm(session.seq)
    if not ctx.set_seq_state(session.seq, state):  # incompatible state: fall back to recomputing from the conversation
        ctx.memory_seq_rm(session.seq)
        return
    session.kv_tokens = [int(t) for t in header["kv_tokens"]]
