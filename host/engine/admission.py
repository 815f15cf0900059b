"""Admission and fairness: who gets a sequence, who is in a step, who gives a sequence up.

Three rules, each over priorities first and mods second:

- **Priorities.**  ``"player"`` (the NPC the player talks to) before
  ``"normal"`` before ``"background"``; the scheduler's own work (running
  summaries) comes after all of them.  While a request of some priority reads
  its prompt, the sequences of lower priorities pause (their KV stays) and
  resume when it is read; lower priorities go on whenever nothing higher is
  reading.  Only one request per mod runs as "player" at a time (a mod's other
  "player" requests count as "normal"), so a mod cannot take every step by
  asking for it.
- **Fair service per mod, counted in tokens.**  :class:`ServiceLedger` charges
  every mod the tokens the model processed for it (prompt tokens and decoded
  tokens alike; on a CPU one costs about what the other does), decayed with a
  half-life of a few seconds.  Waiting requests start in order of priority,
  then least recent service (ties: the mod served longest ago), first-come
  within a mod; a long prompt costs its mod as much as the many short ones it
  replaces, so a mod with long turns cannot starve one that asks for little.
  While another mod has asked within ``FAIR_WINDOW_S`` (or was declared
  present) and has nothing running, no mod that already runs something takes
  the last free sequence.
- **Heavy and light mods.**  A mod is *heavy* beside another when its recent
  service is over ``HEAVY`` times the other's and over ``HEAVY_FLOOR``
  tokens (:meth:`Admission.heavier`).  A "player" request is never held back
  as heavy (reading its long prompt makes its mod heavy).  Beside a light mod
  that runs something, a heavy mod reads no prompt (host.engine.step_builder),
  and its sequences decode only every other step (below); beside a light mod
  that asked lately and waits or is about to ask again, a heavy mod's
  prompt-only steps stay short, so the light mod's next request never waits
  long for a step to end.
- **A fair share of every step.**  Mods get equal numbers of tokens in a
  step: each decodes at most as many of its sequences as the light mod with
  the fewest (a mod only reading counts as one; a heavy mod counts for
  nothing, so a light mod's chats are not paused for a heavy reader; the others
  pause that step, the longest-paused first next time), so a mod with many
  chats gets no more tokens per step than a mod with one, and the one chat of
  a well-behaved mod waits for at most one token of each other mod between
  two of its own.  A heavy mod decodes only every other step while the light
  one runs: the light mod's short turn goes at nearly its own pace, the heavy
  one's gap at most doubles.
- **Preemption.**  A waiting request that finds no free sequence may take the
  sequence of a running one: of a lower priority, or, at equal priority, of
  a mod holding more than its share of sequences while the waiting mod holds
  less.  The preempted request is swapped out (host.engine.pool) and waits at
  the front of its mod's queue; it is not preempted again for equal priority
  within ``MIN_RUN_S`` of resuming (no thrashing).
"""

from __future__ import annotations

import collections
import math
import time

from host.messages import PRIORITIES

FAIR_WINDOW_S = 10.0  # a mod that asked within this many seconds is "active" for admission
HALF_LIFE_S = 4.0  # service counts half after this many seconds
MIN_RUN_S = 0.5  # a resumed request runs at least this long before an equal-priority preemption
HEAVY = 2.0  # a mod with this many times another's recent service is heavy beside it (see module docstring)
HEAVY_FLOOR = 64.0  # ... once its recent service is over this many tokens
RANK = {name: i for i, name in enumerate(PRIORITIES)}
INTERNAL_RANK = len(PRIORITIES)  # the scheduler's own work: after every priority


class ServiceLedger:
    """Recent service per mod in tokens processed (prompt and decoded), exponentially decayed."""

    def __init__(self, half_life_s: float = HALF_LIFE_S, clock=time.perf_counter):
        self.half_life_s = half_life_s
        self.clock = clock
        self._used: dict[str, tuple[float, float]] = {}  # mod -> (tokens, as of when)

    def usage(self, mod: str) -> float:
        """Tokens of recent service, decayed to now."""
        used, at = self._used.get(mod, (0.0, 0.0))
        if not used:
            return 0.0
        return used * 0.5 ** ((self.clock() - at) / self.half_life_s)

    def charge(self, mod: str, tokens: float) -> None:
        """Add ``tokens`` processed for ``mod``."""
        self._used[mod] = (self.usage(mod) + tokens, self.clock())

    def charge_step(self, tokens_by_mod: dict) -> None:
        """Charge one step's tokens (prompt and decoded) to their mods."""
        for mod, n in tokens_by_mod.items():
            if n:
                self.charge(mod, n)

    def forget(self, mod: str) -> None:
        self._used.pop(mod, None)


class Waiting:
    """A request waiting for a sequence: new (``prompt`` tokens, or None for a session turn, planned at
    admission), or a swapped-out ``slot`` to resume."""

    __slots__ = ("req", "prompt", "slot")

    def __init__(self, req, prompt=None, slot=None):
        self.req = req
        self.prompt = prompt
        self.slot = slot


class Admission:
    """The waiting requests and the fairness rules (see module docstring).

    ``rank_of(req)`` gives a request's rank (0 = player ... INTERNAL_RANK); the
    scheduler supplies it (it knows session defaults, the focus and its own requests).
    """

    def __init__(self, rank_of, ledger: ServiceLedger | None = None, clock=time.perf_counter):
        self.rank_of = rank_of
        self.ledger = ledger or ServiceLedger(clock=clock)
        self.clock = clock
        self.waiting: collections.deque[Waiting] = collections.deque()
        self.seen: dict[str, float] = {}  # mod -> when it last submitted
        self.served: dict[str, float] = {}  # mod -> when a request of it last started
        self.present: set[str] = set()  # mods declared present (Worker.hello)
        self.last_step: set[str] = set()  # mods that decoded in the last shared step

    def __len__(self) -> int:
        return len(self.waiting)

    def add(self, req, prompt=None) -> None:
        """A new request waits (last in its mod's queue)."""
        self.seen[req.mod_id] = self.clock()
        self.waiting.append(Waiting(req, prompt))

    def requeue(self, slot) -> None:
        """A swapped-out slot waits to resume, ahead of its mod's other requests."""
        self.waiting.appendleft(Waiting(slot.req, slot=slot))

    def remove(self, item: Waiting) -> None:
        self.waiting.remove(item)

    def started(self, item: Waiting) -> None:
        """``item`` got a sequence."""
        self.waiting.remove(item)
        self.served[item.req.mod_id] = self.clock()

    def mod_present(self, mod_id: str, present: bool) -> None:
        if present:
            self.present.add(mod_id)
        else:
            self.present.discard(mod_id)
            self.seen.pop(mod_id, None)
            self.ledger.forget(mod_id)

    def active_mods(self) -> set:
        """Mods declared present or that asked within ``FAIR_WINDOW_S``."""
        return self.present | self.asking_mods()

    def asking_mods(self) -> set:
        """Mods that asked within ``FAIR_WINDOW_S``."""
        now = self.clock()
        return {m for m, t in self.seen.items() if now - t < FAIR_WINDOW_S}

    def heavier(self, mod: str, than: str) -> bool:
        """``mod``'s recent service is over HEAVY times ``than``'s and over HEAVY_FLOOR tokens."""
        used = self.ledger.usage(mod)
        return mod != than and used > max(HEAVY * self.ledger.usage(than), HEAVY_FLOOR)

    def _firsts(self, blocked: set, startable) -> dict:
        """mod -> its best startable waiting item (highest priority, then first come)."""
        firsts: dict[str, Waiting] = {}
        for item in self.waiting:
            mod = item.req.mod_id
            if mod in blocked or not startable(item):
                continue
            best = firsts.get(mod)
            if best is None or self.rank_of(item.req) < self.rank_of(best.req):
                firsts[mod] = item
        return firsts

    def order_key(self, mod: str, item: Waiting):
        return (self.rank_of(item.req), self.ledger.usage(mod), self.served.get(mod, 0.0))

    def pick(self, blocked: set, running: dict, room: int, startable, needs_seq) -> Waiting | None:
        """The waiting item to start next, or None.

        ``running``: mod -> running slots; ``room``: sequences free, growable or held by idle
        sessions; ``startable(item)``: False while it must wait (its session answers);
        ``needs_seq(item)``: it takes a sequence to start.
        """
        firsts = self._firsts(blocked, startable)
        if not firsts:
            return None
        idle_active = {m for m in self.active_mods() if not running.get(m)}
        for mod in sorted(firsts, key=lambda m: self.order_key(m, firsts[m])):
            item = firsts[mod]
            # the last free sequence stays for an active mod that has nothing running
            # (a player request is never held back by it)
            if (room <= 1 and (idle_active - {mod}) and running.get(mod) and needs_seq(item)
                    and self.rank_of(item.req) > 0):
                blocked.add(mod)
                continue
            return item
        return None

    def candidates(self, startable) -> list:
        """Waiting items that could preempt, best first (one per mod)."""
        firsts = self._firsts(set(), startable)
        return [firsts[m] for m in sorted(firsts, key=lambda m: self.order_key(m, firsts[m]))]

    def victim(self, item: Waiting, slots: list, n_lanes: int):
        """A running slot whose sequence ``item`` may take (see module docstring), or None."""
        rank = self.rank_of(item.req)
        mod = item.req.mod_id
        held = collections.Counter(s.mod_id for s in slots if s.seq is not None)
        wanting = set(held) | {w.req.mod_id for w in self.waiting}
        share = max(1, n_lanes // max(1, len(wanting)))
        now = self.clock()
        best, best_key = None, None
        for s in slots:
            if s.seq is None:
                continue
            r = self.rank_of(s.req)
            if r > rank:
                pass  # a lower priority always yields
            elif r == rank and held[mod] < share and held[s.mod_id] > share and s.mod_id != mod:
                if now - s.t_run < MIN_RUN_S:
                    continue
            else:
                continue
            key = (r, held[s.mod_id], self.ledger.usage(s.mod_id), s.order)
            if best_key is None or key > best_key:
                best, best_key = s, key
        return best

    def step_share(self, writers: list, n_lanes: int, readers=()) -> tuple[list, list]:
        """Split the writers of one step into (decode now, pause): each mod decodes at most as many
        as the light mod with the fewest (a mod only reading counts as one, a heavy mod not at all;
        see module docstring), the longest paused first; ``readers`` (slots reading a prompt) count
        their mods in.  A heavy mod decodes every other step while a light one is in the step."""
        by_mod: dict[str, list] = {}
        for w in writers:
            by_mod.setdefault(w.mod_id, []).append(w)
        mods = set(by_mod) | {r.mod_id for r in readers}
        if len(mods) <= 1:
            self.last_step = set(by_mod)
            return list(writers), []
        usage = {m: self.ledger.usage(m) for m in mods}
        lightest = min(mods, key=lambda m: usage[m])
        heavy = {m for m in mods if self.heavier(m, lightest)}
        counted = (mods - heavy) or mods
        share = max(1, min(len(by_mod.get(m, ())) or 1 for m in counted))
        share = min(share, max(1, math.ceil(n_lanes / len(mods))))
        run, pause = [], []
        for mod, group in by_mod.items():
            group.sort(key=lambda s: (self.rank_of(s.req), -s.steps_paused, s.order))
            held = mod in heavy and self.rank_of(group[0].req) > 0
            n = 0 if held and mod in self.last_step else share
            run += group[:n]
            pause += group[n:]
        self.last_step = {s.mod_id for s in run}
        return run, pause

    def next_cancelled(self):
        """Waiting items whose request was cancelled (removed from the queue)."""
        gone = [it for it in self.waiting if it.req.cancel.is_set()]
        for it in gone:
            self.waiting.remove(it)
        return gone

    def clear(self) -> list:
        items = list(self.waiting)
        self.waiting.clear()
        return items
