"""Stop strings over a stream of text deltas.

A stop string split across tokens is still caught; the stop text is never
emitted; text that could be the start of a stop string is held back until the
next delta resolves it.  Deltas come from :class:`host.llama.Utf8Stream`, so
matching on them is matching on the byte stream at character boundaries.
"""

from __future__ import annotations


class StopMatcher:
    """Feed deltas with :meth:`push`; it returns what is safe to emit."""

    __slots__ = ("stops", "_held", "_longest", "stopped")

    def __init__(self, stops=()):
        self.stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)
        self._held = ""
        self.stopped = False

    def push(self, delta: str) -> str:
        """Text that may be emitted now; sets ``stopped`` when a stop string appears."""
        if not self.stops:
            return delta
        text = self._held + delta
        cut = -1
        for s in self.stops:
            i = text.find(s)
            if i != -1 and (cut == -1 or i < cut):
                cut = i
        if cut != -1:
            self._held = ""
            self.stopped = True
            return text[:cut]
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest tail of text that begins some stop string."""
        for n in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self.stops):
                return n
        return 0

    def flush(self) -> str:
        """At the end of generation a held partial match is ordinary text."""
        out, self._held = self._held, ""
        return out
