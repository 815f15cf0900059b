"""Streaming text: token pieces in, valid UTF-8 text out."""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Incremental UTF-8 decoder for token pieces.

    A character split across tokens is held back until complete, so no delta
    ever contains half a character; ``flush()`` emits what is left at the end
    (an incomplete tail becomes U+FFFD, as do invalid bytes).
    """

    __slots__ = ("_decoder",)

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)

    def reset(self) -> None:
        self._decoder.reset()
