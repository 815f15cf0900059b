"""Put retrieved hits into a prompt, bounded by a token budget (for sessions with memory)."""

from __future__ import annotations

from typing import Callable, Sequence

DEFAULT_HEADER = "Relevant notes from memory:"


def format_context(hits: Sequence[dict], budget_tokens: int, count_tokens: Callable[[str], int], *,
                   header: str = DEFAULT_HEADER, min_piece_tokens: int = 16, show_ids: bool = True) -> str:
    """Hits as a numbered list under ``header``, at most ``budget_tokens`` tokens in all.

    ``count_tokens`` is the *chat* model's counter (the budget is spent in
    the prompt, not in the embedding model).  Hits are taken best first; a
    repeated chunk (same document and offsets) is skipped; the first hit that
    does not fit whole is cut at a word boundary (marked with "...") if at
    least ``min_piece_tokens`` of it fit, and nothing after it is added.
    Returns "" when there are no hits or the header alone does not fit.
    ``show_ids=False`` leaves the hits' ids out (for text a character reads:
    an id like ``(lore:diving)`` would leak into what it says).
    """
    if budget_tokens <= 0 or not hits:
        return ""
    lines = [header]
    used = count_tokens(header)
    if used > budget_tokens:
        return ""
    seen = set()
    for hit in hits:
        key = (hit.get("doc_id", hit.get("id")), hit.get("start"), hit.get("end"))
        if key in seen:
            continue
        seen.add(key)
        text = " ".join(str(hit.get("text", "")).split())
        if not text:
            continue
        prefix = f"[{len(lines)}] ({hit.get('id')}) " if show_ids else "- "
        line = prefix + text
        cost = count_tokens("\n" + line)
        if used + cost <= budget_tokens:
            lines.append(line)
            used += cost
            continue
        cut = _fit_prefix(prefix, text, budget_tokens - used, count_tokens)
        if cut is not None and count_tokens(cut) >= min_piece_tokens:
            lines.append(cut)
        break
    return "\n".join(lines) if len(lines) > 1 else ""


def _fit_prefix(prefix: str, text: str, budget: int, count_tokens) -> str | None:
    """The longest ``prefix + words... + '...'`` costing at most ``budget`` tokens (bisection on words)."""
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens("\n" + prefix + " ".join(words[:mid]) + " ...") <= budget:
            lo = mid
        else:
            hi = mid - 1
    return prefix + " ".join(words[:lo]) + " ..." if lo else None
