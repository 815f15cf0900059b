"""The market street: actors, movement, and the `market` API the game gives its NPC mods.

Everything here runs on the frame thread (the game's loop).  The NPCs' minds
are Lua mods (``examples/market/mods/<id>/``); their bodies live here.  A mod
reaches its body only through its own ``market`` table (:class:`MarketAPI`,
published with ``host.expose_per_mod``), and the game reaches the mod through
the events it declares (``onHear(who, text)``, ``onStreetEvent(text)``, sent to
one mod with ``host.emit_to``).

Every function in ``market`` checks and caps its input: a mod can set its own
bubble, act on the world through a fixed set of verbs, and nothing else.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field

WIDTH, HEIGHT = 960, 540
STREET_TOP, STREET_BOTTOM = 330, 500  # where feet may walk
MAX_BUBBLE_CHARS = 240
MAX_ITEM_CHARS = 32
MAX_INVENTORY = 12
EARSHOT = 300.0  # px: NPCs this close hear each other's lines
TALK_RANGE = 220.0  # px: the player talks to the nearest NPC within this range


@dataclass
class Actor:
    """A body on the street: the player or an NPC."""

    name: str
    color: tuple
    x: float
    y: float
    speed: float = 70.0
    mod_id: str | None = None
    role: str = ""
    home_x: float = 0.0
    target: tuple | None = None
    mode: str = "wander"  # wander | follow | leave | away | guard
    mode_until: float = 0.0
    bubble: str = ""
    bubble_until: float = 0.0
    streaming: bool = False
    facing: int = 1
    idle_until: float = 0.0
    met_player: bool = False
    busy: bool = False  # a line is being generated for this NPC
    answering_player: bool = False  # the line being generated answers the player
    thinking_since: float = 0.0  # when the player's line to it was sent, until its answer's first token (0: not)
    depth: int = 0  # how deep in a chain of reactions the current line is (0: to the player or an event)
    lines: int = 0
    actions: list = field(default_factory=list)
    max_bubble_shown: int = 0  # longest bubble text drawn (the headless test reads it)

    def distance(self, other: "Actor") -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


CAST = [  # mod id, name, role, color, home x (their stall)
    ("oona", "Oona", "fishmonger", (70, 140, 200), 150),
    ("bram", "Bram", "blacksmith", (150, 90, 60), 390),
    ("lise", "Lise", "herbalist", (90, 160, 90), 630),
    ("tomas", "Tomas", "street guard", (180, 60, 70), 850),
]


class World:
    """The street's state and its rules of motion (no drawing, no Lua)."""

    def __init__(self, seed: int = 7, clock=time.monotonic):
        self.rng = random.Random(seed)
        self.clock = clock
        self.player = Actor("Traveler", (230, 200, 80), 480.0, 440.0, speed=180.0)
        self.npcs: dict[str, Actor] = {}
        for mod_id, name, role, color, home in CAST:
            y = self.rng.uniform(STREET_TOP + 20, STREET_BOTTOM - 20)
            self.npcs[mod_id] = Actor(name, color, float(home), y, mod_id=mod_id, role=role, home_x=float(home))
        self.inventory: list[str] = []
        self.log: deque = deque(maxlen=200)  # finished lines: (speaker, text)
        self.toasts: deque = deque(maxlen=6)  # (text, until)
        self.tokens: deque = deque()  # arrival times of streamed pieces (for tok/s)
        self.heard: deque = deque()  # (due time, mod id, kind, speaker, text, depth): deliveries to NPC minds
        self.answers: list = []  # (npc name, text): lines that answered the player
        self.first_tokens: list = []  # (npc name, seconds): the player's line -> the first token of the answer

    # --- motion -----------------------------------------------------------
    def update(self, dt: float, held: set) -> None:
        """Move the player from held arrow keys and every NPC by its mode."""
        now = self.clock()
        p = self.player
        dx = (("right" in held) - ("left" in held)) * p.speed * dt
        dy = (("down" in held) - ("up" in held)) * p.speed * dt
        if dx:
            p.facing = 1 if dx > 0 else -1
        p.x = min(max(p.x + dx, 20), WIDTH - 20)
        p.y = min(max(p.y + dy, STREET_TOP), STREET_BOTTOM)
        for npc in self.npcs.values():
            self._move_npc(npc, dt, now)
            if not npc.met_player and npc.mode != "away" and npc.distance(p) < 120:
                npc.met_player = True
                self.hear(npc.mod_id, "event", "", "A traveler walks up to your stall.", delay=0.2)
        while self.tokens and self.tokens[0] < now - 2.0:
            self.tokens.popleft()

    def _move_npc(self, npc: Actor, dt: float, now: float) -> None:
        if npc.mode in ("follow", "leave", "guard") and now > npc.mode_until:
            if npc.mode == "leave":
                npc.mode, npc.mode_until = "away", now + 12.0
            else:
                npc.mode = "wander"
        if npc.mode == "away":
            if now > npc.mode_until:  # back from the errand
                npc.mode, npc.x = "wander", -30.0 if npc.home_x < WIDTH / 2 else WIDTH + 30.0
                npc.target = (npc.home_x, npc.y)
            return
        if npc.mode == "follow":
            npc.target = (self.player.x - 50 * self.player.facing, self.player.y)
        elif npc.mode == "leave":
            npc.target = (-60.0 if npc.home_x < WIDTH / 2 else WIDTH + 60.0, npc.y)
        elif npc.mode == "wander" and (npc.target is None and now > npc.idle_until):
            npc.target = (npc.home_x + self.rng.uniform(-90, 90), self.rng.uniform(STREET_TOP + 10, STREET_BOTTOM))
        if npc.target is None:
            return
        tx, ty = npc.target
        d = math.hypot(tx - npc.x, ty - npc.y)
        speed = npc.speed * (1.8 if npc.mode in ("guard", "follow") else 1.0)
        if d < 4 or (npc.mode == "follow" and d < 20):
            if npc.mode == "wander":
                npc.target, npc.idle_until = None, now + self.rng.uniform(1.5, 5.0)
            return
        step = min(d, speed * dt)
        npc.x += (tx - npc.x) / d * step
        npc.y += (ty - npc.y) / d * step
        if abs(tx - npc.x) > 1:
            npc.facing = 1 if tx > npc.x else -1

    # --- who hears what -----------------------------------------------------
    def nearest_npc(self, max_dist: float = TALK_RANGE) -> Actor | None:
        """The NPC closest to the player within ``max_dist`` (and on the street), or None."""
        best = None
        for npc in self.npcs.values():
            if npc.mode == "away":
                continue
            d = npc.distance(self.player)
            if d <= max_dist and (best is None or d < best.distance(self.player)):
                best = npc
        return best

    def hear(self, mod_id: str, kind: str, speaker: str, text: str, delay: float = 0.0, depth: int = 0) -> None:
        """Queue a delivery to an NPC mind: kind "hear" (someone spoke) or "event"."""
        self.heard.append((self.clock() + delay, mod_id, kind, speaker, text, depth))

    def due(self) -> list:
        """Deliveries whose time has come (removed from the queue)."""
        now, out, keep = self.clock(), [], deque()
        for item in self.heard:
            (out if item[0] <= now else keep).append(item)
        self.heard = keep
        return out

    def line_finished(self, npc: Actor, text: str) -> None:
        """An NPC finished a line: log it, and let one idle neighbour in earshot react."""
        text = text.strip()
        npc.streaming, npc.busy = False, False
        if not text:
            if npc.answering_player:
                npc.thinking_since = 0.0  # an empty answer: nothing to wait for
            npc.answering_player = False
        npc.bubble_until = self.clock() + 6.0
        if not text:
            return
        npc.lines += 1
        self.log.append((npc.name, text))
        if npc.answering_player:
            npc.answering_player, npc.thinking_since = False, 0.0
            self.answers.append((npc.name, text))
        if npc.depth >= 2:  # a reaction to a reaction ends the chain
            return
        near = [o for o in self.npcs.values() if o is not npc and o.mode not in ("away", "leave") and not o.busy
                and o.distance(npc) <= EARSHOT]
        if near and self.rng.random() < 0.7:
            other = self.rng.choice(near)
            self.hear(other.mod_id, "hear", npc.name, text, delay=1.0 + npc.depth, depth=npc.depth + 1)

    def toast(self, text: str, seconds: float = 4.0) -> None:
        self.toasts.append((text, self.clock() + seconds))

    def tok_per_s(self) -> float:
        return len(self.tokens) / 2.0


def _text(value, cap: int, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value[:cap]


class MarketAPI:
    """The game's ``market`` table for each NPC mod: ``host.expose_per_mod("market", api.for_mod)``.

    The functions are bound to the mod's own body (a mod cannot move another
    NPC).  A mod that is not part of the cast gets no ``market``.
    """

    def __init__(self, world: World):
        self.world = world

    def for_mod(self, mod_id: str) -> dict | None:
        """The ``market`` table of mod ``mod_id`` (None: it has no body on the street)."""
        npc = self.world.npcs.get(mod_id)
        w = self.world
        if npc is None:
            return None

        def me():
            return {"name": npc.name, "role": npc.role, "x": npc.x, "y": npc.y, "mode": npc.mode,
                    "player_distance": npc.distance(w.player), "inventory": len(w.inventory)}

        def bubble(text=""):
            npc.bubble = _text(text, MAX_BUBBLE_CHARS, "market.bubble text")
            npc.streaming, npc.bubble_until = True, w.clock() + 30.0

        def speak(piece):
            piece = _text(piece, MAX_BUBBLE_CHARS, "market.speak text")
            if npc.answering_player and npc.thinking_since:
                w.first_tokens.append((npc.name, time.monotonic() - npc.thinking_since))
                npc.thinking_since = 0.0  # the first token of the answer: the thinking mark goes
            if not npc.bubble:
                piece = piece.lstrip()
            npc.bubble = (npc.bubble + piece)[:MAX_BUBBLE_CHARS]
            w.tokens.append(w.clock())

        def finish(text=""):
            w.line_finished(npc, _text(text or "", MAX_BUBBLE_CHARS, "market.finish text") or npc.bubble)

        def give(item):
            item = _text(item, MAX_ITEM_CHARS, "market.give item").strip() or "something"
            if len(w.inventory) >= MAX_INVENTORY:
                return {"ok": False, "why": "hands full"}
            w.inventory.append(item)
            npc.actions.append("give")
            w.toast(f"{npc.name} gives you {item}")
            return {"ok": True, "item": item}

        def follow(seconds=10):
            seconds = min(max(float(seconds) if isinstance(seconds, (int, float)) else 10.0, 1.0), 30.0)
            npc.mode, npc.mode_until = "follow", w.clock() + seconds
            npc.actions.append("follow")
            w.toast(f"{npc.name} follows you")
            return {"ok": True, "seconds": int(seconds)}

        def call_guard(reason=""):
            reason = _text(reason or "", 80, "market.call_guard reason")
            npc.actions.append("call_guard")
            guard = w.npcs.get("tomas")
            w.toast(f"{npc.name} calls the guard!")
            if guard is None or guard is npc:
                return {"ok": False, "why": "no other guard"}
            guard.mode, guard.mode_until = "guard", w.clock() + 8.0
            guard.target = (npc.x + 40, npc.y)
            w.hear(guard.mod_id, "event", "", f"{npc.name} calls you over: {reason or 'trouble at the stall'}.",
                   delay=0.5)
            return {"ok": True}

        def leave():
            npc.mode, npc.mode_until = "leave", w.clock() + 6.0
            npc.actions.append("leave")
            w.toast(f"{npc.name} leaves the street for a while")
            return {"ok": True}

        def player_near():
            return npc.distance(w.player) < TALK_RANGE

        return {"me": me, "bubble": bubble, "speak": speak, "finish": finish, "give": give, "follow": follow,
                "call_guard": call_guard, "leave": leave, "player_near": player_near}
