"""overflow="summarize": a running summary of the turns that no longer fit.

When a session's conversation outgrows its context, the oldest exchanges are
dropped (down to :data:`REFILL` of the room, so this happens every few turns,
not every turn) and remembered in ``session.to_summarize``.  After that turn
has answered, the scheduler runs a short summarization request off the
critical path (:func:`request_messages`); its text becomes ``session.summary``,
which the session shows right after the system prompt from the next turn on.

No turn re-reads the history because of this: the dropped exchanges and the
changed summary are spliced in the KV cache (host.engine.session.splice).
"""

from __future__ import annotations

REFILL = 0.7  # after a summarize overflow the conversation takes at most this share of the room
# how the host writes a summary (its own generation, not a limit a mod meets)
SUMMARY_MAX_TOKENS = 80
MAX_SUMMARY_CHARS = 600
MAX_SOURCE_CHARS = 1500

SYSTEM = "You summarize conversations. Write plain sentences, no lists."


def drop_to_fit(session, render, limit: int) -> list:
    """Drop the oldest exchanges until ``render()`` fits ``limit`` tokens; returns its tokens.

    ``drop_oldest`` drops just enough; ``summarize`` drops down to REFILL of
    ``limit`` and keeps the dropped messages for the summary.
    """
    tokens = render()
    target = limit if session.overflow != "summarize" else int(limit * REFILL)
    while len(tokens) > target and session.messages:
        n = 2 if len(session.messages) >= 2 and session.messages[1]["role"] == "assistant" else 1
        while n < len(session.messages) and session.messages[n]["role"] == "tool":
            n += 1  # a tool result stays with the call it answers
        dropped = session.messages[:n]
        del session.messages[:n]
        if session.overflow == "summarize":
            session.to_summarize.extend(dropped)
        tokens = render()
    return tokens


def request_messages(session) -> list:
    """The chat messages of the summarization request for what was dropped."""
    said = "\n".join(f"{m['role']}: {m['content']}" for m in session.to_summarize)[-MAX_SOURCE_CHARS:]
    before = f"What you knew before: {session.summary}\n\n" if session.summary else ""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{before}Conversation:\n{said}\n\nIn two short sentences, what was said "
                                        "and what should be remembered?"}]


def apply(session, result: dict) -> None:
    """Store a finished summarization's text as the session's summary (a failed one changes nothing)."""
    session.summarizing = 0
    text = " ".join(str(result.get("text") or "").split())
    if result.get("finish_reason") in ("stop", "length") and text:
        session.summary = text[:MAX_SUMMARY_CHARS]
