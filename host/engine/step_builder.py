"""One step's batch: decode tokens first, then prompt chunks within a time budget.

A step holds the next token of every sequence that decodes in it (chosen by
host.engine.admission: priorities and each mod's share), then prompt chunks of
the sequences still reading, best first, as many tokens as fit the step's time
budget.  While a "player" request runs (the NPC the player talks to), lower
priorities read no prompt and decode at most ``PLAYER_COMPANY`` token per step
between them (round robin): its steps stay near what they would cost alone,
and the street still moves on.  While it reads its prompt the others pause;
beside "normal" sequences, a long prompt is read in steps of about
``PLAYER_READ_S`` of measured prompt cost, with one step for their next
tokens between two of them: those talking never stall for the whole prompt
(their longest gap is about ``PLAYER_READ_S``), and the player's partner pays
one short decode step per chunk.  "background" sequences stay paused until
the prompt is read.

Between mods, service is counted in tokens (host.engine.admission): a mod
*heavy* beside another (far more recent service) reads no prompt in a step
while the light mod has a sequence running (waiting for its first token or
decoding), so the light mod's short request goes at nearly its own pace
beside long turns; and while a light mod has asked lately (within
``FAIR_WINDOW_S``) a heavy mod's prompt chunks in one step stay within
``FAIR_STEP_S`` of measured prompt cost, so the light mod's next request waits
at most about that long for the step in progress to end.  A heavy mod's
reading goes on whenever the light one has nothing running, and being heavy
wears off as its service decays: it is slowed, never stopped.  A "player"
request is never held back this way.

The budget comes from measured step costs (:class:`StepCosts`): a
step that decodes tokens may take about ``GAP_FACTOR`` times a decode-only
step, so those already talking see their gap between two tokens grow at most
that much while a newcomer's prompt is read; a step that decodes nothing reads
a whole batch (``n_batch`` tokens).  Before any cost is measured, a mixed step
reads ``FIRST_CHUNK`` tokens.

Why about 2, and what it costs the newcomer.  On a CPU a prompt token costs
about what a generated token does (the default model on one thread: ~17 ms
each under load, a decode-only step of three ~67 ms), so a step that may take
F decode-only steps gives the newcomer at most (F-1)/F of the machine: its
first token comes about F/(F-1) times as late as alone.  Those already
talking see their longest gap grow about F times.  Both "gap <= 2x" and
"newcomer <= 1.3x" would need F <= 2 and F >= 4.3 at once; bench/join_latency.py
--gap-factors 2,3,4.5 shows it side by side (gap 1.9x / 2.5x / 4.0x, first
token 2.7x / 1.6x / 1.2x).  The talkers' smoothness is kept; the NPC the
player waits for is "player" and reads with the others paused.  A unified KV
cache (one llama.cpp graph for a mixed batch instead of two) saved 3-14 % of
a mixed step in the same measurement: not worth giving up a KV stream per
sequence (the text of a request independent of the others).

The batch is ordered by sequence id: llama.cpp splits a batch over
per-sequence KV streams into runs of consecutive sequence ids, so an ordered
batch takes the fewest graph runs.
"""

from __future__ import annotations

from host.engine.admission import RANK

GAP_FACTOR = 2.0  # a mixed step takes about this many decode-only steps
MIN_CHUNK = 4  # prompt tokens per mixed step, at least: a newcomer always moves on
PLAYER_COMPANY = 1  # lower-priority tokens decoded in a step beside a "player" request
PLAYER_READ_S = 0.75  # a "player" prompt's chunk per step, in seconds of prompt cost, while "normal" ones wait
NORMAL = RANK["normal"]
FIRST_CHUNK = 16  # before any cost is measured
FAIR_STEP_S = 0.1  # a heavy mod's prompt chunks in one step, in seconds of prompt cost, while a light mod asks


def _ema(old, new, a: float = 0.2):
    return new if old is None else (1 - a) * old + a * new


class StepCosts:
    """Running estimates of what a step costs: decode-only steps by their token count, and one
    prompt token (from prompt-only chunks, and from what a chunk added to a mixed step)."""

    def __init__(self):
        self.decode_s: dict[int, float] = {}  # decode tokens -> seconds of a decode-only step
        self.prompt_tok_s: float | None = None

    def decode_step(self, n: int) -> float | None:
        """Estimated seconds of a step decoding ``n`` tokens (nearest measured count, scaled)."""
        if not self.decode_s:
            return None
        if n in self.decode_s:
            return self.decode_s[n]
        k = min(self.decode_s, key=lambda m: abs(m - n))
        return self.decode_s[k] * max(n, 1) / max(k, 1) if n > k else self.decode_s[k]

    def observe(self, seconds: float, n_decode: int, n_prompt: int) -> None:
        """Update the estimates from one decode call."""
        if n_prompt == 0:
            if n_decode:
                self.decode_s[n_decode] = _ema(self.decode_s.get(n_decode), seconds)
        elif n_decode == 0:
            if n_prompt >= MIN_CHUNK:  # a tiny chunk's fixed cost would overstate the cost per token
                self.prompt_tok_s = _ema(self.prompt_tok_s, seconds / n_prompt)
        else:
            base = self.decode_step(n_decode)
            if base is not None:  # mixed: what the chunk added to a decode step
                self.prompt_tok_s = _ema(self.prompt_tok_s, max(seconds - base, 1e-6) / n_prompt)

    def chunk_tokens(self, n_decode: int, gap_factor: float = GAP_FACTOR) -> int:
        """Prompt tokens that fit a step also decoding ``n_decode`` tokens (see module docstring)."""
        base = self.decode_step(n_decode)
        if base is None or self.prompt_tok_s is None:
            return FIRST_CHUNK
        return max(MIN_CHUNK, int((gap_factor - 1.0) * base / self.prompt_tok_s))

    def tokens_within(self, seconds: float) -> int:
        """Prompt tokens that take about ``seconds`` to read (at least MIN_CHUNK; FIRST_CHUNK unmeasured)."""
        if self.prompt_tok_s is None:
            return FIRST_CHUNK
        return max(MIN_CHUNK, int(seconds / self.prompt_tok_s))


class StepPlan:
    """What one step decodes: ``decode`` slots (one token each) and ``chunks`` [(slot, start, n)]."""

    __slots__ = ("decode", "chunks", "paused")

    def __init__(self, decode, chunks, paused):
        self.decode = decode
        self.chunks = chunks
        self.paused = paused

    @property
    def n_prompt(self) -> int:
        return sum(n for _, _, n in self.chunks)

    def tokens_by_mod(self) -> dict:
        out: dict[str, int] = {}
        for s in self.decode:
            out[s.mod_id] = out.get(s.mod_id, 0) + 1
        for s, _, n in self.chunks:
            out[s.mod_id] = out.get(s.mod_id, 0) + n
        return out


class StepBuilder:
    """Plans a step and fills the batch (see module docstring).

    ``admission`` gives ranks and each mod's share; ``lanes`` is the most
    sequences a step can decode (the pool's sequence limit).
    """

    def __init__(self, admission, costs: StepCosts | None = None, *, lanes: int, gap_factor: float = GAP_FACTOR,
                 fair_step_s: float = FAIR_STEP_S):
        self.admission = admission
        self.costs = costs or StepCosts()
        self.lanes = lanes
        self.gap_factor = gap_factor
        self.fair_step_s = fair_step_s
        self.player_read_s = PLAYER_READ_S
        self._player_chunked = False  # the last step read a "player" prompt while lower ones paused

    def _heavy_readers(self, readers: list, live: list, internal) -> tuple[set, set]:
        """(held, bounded): readers of heavy mods that read nothing this step (a light mod of no lower
        priority runs something), and those whose chunks stay within ``fair_step_s`` (a light mod
        asked lately); see module docstring."""
        adm = self.admission
        rank_of = adm.rank_of
        held, bounded = set(), set()
        running: dict[str, int] = {}  # mod -> the best rank it runs something at (the scheduler's own work aside)
        for s in live:
            if s.req.id not in internal:
                running[s.mod_id] = min(rank_of(s.req), running.get(s.mod_id, rank_of(s.req)))
        asking = None
        for r in readers:
            rank = rank_of(r.req)
            if rank == 0:
                continue  # the player's partner is never held back
            if any(adm.heavier(r.mod_id, m) for m, best in running.items() if best <= rank):
                held.add(r)
                continue
            if asking is None:
                asking = adm.asking_mods() - {r.mod_id}
            if any(adm.heavier(r.mod_id, m) for m in asking):
                bounded.add(r)
        return held, bounded

    def plan(self, slots: list, capacity: int, internal: set = frozenset()) -> StepPlan:
        """Choose this step's decode tokens and prompt chunks.

        ``internal``: ids of the scheduler's own requests; they read their prompt only when no
        other request runs.
        """
        rank_of = self.admission.rank_of
        live = [s for s in slots if s.seq is not None]
        readers = [s for s in live if s.reading]
        writers = [s for s in live if s.writing]
        others = any(s.req.id not in internal for s in live)
        if others:
            readers = [s for s in readers if s.req.id not in internal]
        player = any(rank_of(s.req) == 0 for s in live)
        if player:  # while the player's partner runs, only it reads a prompt
            readers = [r for r in readers if rank_of(r.req) == 0]
        top = min((rank_of(s.req) for s in readers), default=None)
        # "normal" sequences wait while a player prompt is read ("background" ones pause throughout)
        waiting_below = top == 0 and any(rank_of(w.req) == NORMAL for w in writers)
        company = waiting_below and self._player_chunked  # between two chunks of a player prompt: their step
        self._player_chunked = False
        if company:
            readers, top = [], NORMAL
        allowed = [w for w in writers if top is None or rank_of(w.req) <= top]  # lower ones pause
        decode, paused = self.admission.step_share(allowed, self.lanes, readers)
        paused += [w for w in writers if w not in allowed]
        if player and not company:  # ... and decodes with at most PLAYER_COMPANY lower tokens, the longest paused first
            lower = sorted((s for s in decode if rank_of(s.req) > 0), key=lambda s: (-s.steps_paused, s.order))
            paused += lower[PLAYER_COMPANY:]
            decode = [s for s in decode if s not in lower[PLAYER_COMPANY:]]
        decode = decode[:capacity]
        held, bounded = self._heavy_readers(readers, live, internal)
        if held and not decode and held == set(readers):
            held = set()  # nothing else would run this step: the heavy mod reads on
        readers = [r for r in readers if r not in held]
        room = capacity - len(decode)
        budget = room if not decode else min(room, self.costs.chunk_tokens(len(decode), self.gap_factor))
        heavy_budget = self.costs.tokens_within(self.fair_step_s)
        if waiting_below and readers and self.costs.prompt_tok_s is not None:
            budget = min(budget, self.costs.tokens_within(self.player_read_s))
            self._player_chunked = True
        chunks = []
        usage = self.admission.ledger.usage
        for r in sorted(readers, key=lambda s: (rank_of(s.req), usage(s.mod_id), s.order)):
            if budget <= 0:
                break
            n = min(budget, len(r.prompt) - r.n_prompt_done)
            if r in bounded:
                n = min(n, heavy_budget)
                heavy_budget -= n
                if n <= 0:
                    continue
            chunks.append((r, r.n_prompt_done, n))
            budget -= n
        for s in paused:
            s.steps_paused += 1
            s.steps_paused_total += 1
        for s in decode:
            s.steps_paused = 0
        return StepPlan(decode, chunks, paused)

    @staticmethod
    def fill(batch, plan: StepPlan) -> None:
        """Put the plan into ``batch`` (cleared first); sets each slot's ``out_index`` (-1: no logits).

        A chunk that ends its slot's prompt asks for logits there, unless the slot already
        holds a sampled token (it was re-reading a dropped cache).
        """
        batch.clear()
        parts = [(s.seq, s, None, 0) for s in plan.decode] + [(s.seq, s, start, n) for s, start, n in plan.chunks]
        parts.sort(key=lambda p: p[0])
        for _, slot, start, n in parts:
            slot.out_index = -1
            if start is None:
                slot.out_index = batch.n_tokens
                batch.add(slot.next_token, slot.pos, (slot.seq,), True)
                continue
            for k in range(n):
                batch.add(slot.prompt[start + k], start + k, (slot.seq,), False)
            slot.n_prompt_done = start + n
            if slot.n_prompt_done == len(slot.prompt):
                slot.pos = len(slot.prompt)
                if slot.next_token is None:
                    batch.struct.logits[batch.n_tokens - 1] = True
                    slot.out_index = batch.n_tokens - 1
