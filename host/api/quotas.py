"""Per-mod quotas on what a mod holds on the host side, outside its Lua heap.

A mod's Lua memory is capped by its runtime; sessions, stores, grammars and
requests in flight live in Python (and llama.cpp) instead, so they are counted
here, per mod, against the host's limits (``host.limits``: the ``llm``,
``grammar`` and ``rag`` groups).  Going over one is a clear error for
that mod only: a Lua error at the call site for something the mod creates
(``llm.session``, ``rag.open``, ``grammar.*``), or a result with
``error_type = "quota"`` for a request (``session:say`` past the session
text quota; the worker refuses requests past ``limits.llm.max_pending`` /
``max_pending_bytes`` itself).

Sessions and grammars are given back when the mod closes them or when its
Lua object is garbage-collected (the Lua side reports collected ids with its
next creation call, and runs a full collection once before giving up on a
quota), and all of a mod's at once when it is unloaded.

The ledger is used on the frame thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from host.errors import QuotaExceeded
from host.limits import DEFAULT_LIMITS, Limits

@dataclass
class _ModUsage:
    sessions: dict = field(default_factory=dict)  # session id -> text characters
    stores: set = field(default_factory=set)
    grammars: int = 0


class QuotaLedger:
    """Counts each mod's host-side objects against the limits tree (frame thread only)."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or DEFAULT_LIMITS
        self._mods: dict[str, _ModUsage] = {}

    def _use(self, mod_id: str) -> _ModUsage:
        u = self._mods.get(mod_id)
        if u is None:
            u = self._mods[mod_id] = _ModUsage()
        return u

    def usage(self, mod_id: str) -> dict:
        """What a mod holds now: {sessions, session_chars, stores, grammars}."""
        u = self._use(mod_id)
        return {"sessions": len(u.sessions), "session_chars": sum(u.sessions.values()),
                "stores": len(u.stores), "grammars": u.grammars}

    def forget(self, mod_id: str) -> None:
        """Everything of a mod is gone (unloaded or reloaded)."""
        self._mods.pop(mod_id, None)

    # --- sessions ----------------------------------------------------------------
    def check_session(self, mod_id: str, chars: int) -> str | None:
        """Why a new session with ``chars`` characters of text would pass a quota (None: it fits)."""
        q, u = self.limits.llm, self._use(mod_id)
        if len(u.sessions) >= q.max_sessions:
            return (f"mod '{mod_id}' already has {q.max_sessions} sessions (its quota); close some "
                    f"(session:close()) or reuse them")
        return self._chars_problem(mod_id, u, None, chars)

    def _chars_problem(self, mod_id: str, u: _ModUsage, sid, more: int) -> str | None:
        q = self.limits.llm
        own = u.sessions.get(sid, 0) + more
        if own > q.max_session_chars:
            return (f"a session of mod '{mod_id}' would hold {own} characters of text; the quota is "
                    f"{q.max_session_chars} per session (keep system prompts and turns shorter, or reset it)")
        total = sum(u.sessions.values()) + more
        if total > q.max_total_session_chars:
            return (f"the sessions of mod '{mod_id}' would hold {total} characters of text; the quota is "
                    f"{q.max_total_session_chars} for all of them (close or reset some)")
        return None

    def add_session(self, mod_id: str, sid: int, chars: int) -> None:
        """Count a new session (after check_session said it fits)."""
        self._use(mod_id).sessions[sid] = chars

    def check_turn(self, mod_id: str, sid: int, chars: int) -> None:
        """Raise QuotaExceeded if a turn of ``chars`` characters would pass a session quota."""
        problem = self._chars_problem(mod_id, self._use(mod_id), sid, chars)
        if problem:
            raise QuotaExceeded(problem)

    def session_size(self, mod_id: str, sid: int, chars: int) -> None:
        """The worker reported a session's current size (after a turn, reset or load)."""
        u = self._mods.get(mod_id)
        if u is not None and sid in u.sessions:
            u.sessions[sid] = chars

    def drop_session(self, mod_id: str, sid: int) -> bool:
        """A session was closed or collected; False when it was not counted."""
        u = self._mods.get(mod_id)
        return u is not None and u.sessions.pop(sid, None) is not None

    # --- stores and grammars ---------------------------------------------------------
    def open_store(self, mod_id: str, name: str) -> None:
        """Count a store name; QuotaExceeded past max_stores distinct names."""
        u = self._use(mod_id)
        if name in u.stores:
            return
        if len(u.stores) >= self.limits.rag.max_stores:
            raise QuotaExceeded(f"mod '{mod_id}' already uses {self.limits.rag.max_stores} stores (its quota): "
                                f"{sorted(u.stores)}; keep documents in fewer stores")
        u.stores.add(name)

    def check_grammar(self, mod_id: str) -> str | None:
        """Why one more grammar would pass the quota (None: it fits)."""
        cap = self.limits.grammar.max_grammars
        if self._use(mod_id).grammars >= cap:
            return (f"mod '{mod_id}' holds {cap} grammars (its quota); reuse grammar objects "
                    f"instead of building one per request")
        return None

    def grammars(self, mod_id: str, delta: int) -> None:
        """A grammar was made (+1) or freed (-1)."""
        u = self._use(mod_id)
        u.grammars = max(0, u.grammars + delta)


_GC_PROXY = """
local newproxy, getmetatable = newproxy, getmetatable
return function(fn)
  local p = newproxy(true)
  local mt = getmetatable(p)
  mt.__gc = fn
  mt.__metatable = false
  return p
end
"""


def gc_proxy(mod):
    """A Lua function ``gc_proxy(fn)`` -> a userdata whose collection calls ``fn()``.

    Built in the runtime's privileged globals (``newproxy`` and the raw
    ``getmetatable`` are not in any mod's or library's environment); the
    llm and grammar libraries anchor one per object in a weak table, so the
    mod never sees it.  Call from ``install`` (not from a bridge function).
    """
    return mod.lua.execute(_GC_PROXY)
