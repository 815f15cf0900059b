"""The market game: owns the pygame loop and embeds the Relic host.

Each frame, on this one thread::

    events -> input (arrow keys walk, typing talks to the nearest NPC)
    world.update(dt)              bodies move
    deliveries -> NPC mods        host.emit_to(npc, "onHear", who, text) / (npc, "onStreetEvent", text)
    host.update(dt)               Lua mods run; tokens from the worker land in bubbles
    draw world, HUD, stats        then every hook in ``game.draw_hooks`` (overlays draw here)
    host.draw()                   mods' onDraw (their ImGui calls, one ImGui frame)
    overlay.draw(screen)          the mods' ImGui windows (F1 opens the overlay, as in CET)
    flip; tick to the frame rate

The inference worker never blocks this loop: NPC lines are requests whose
tokens arrive through host.update().  The game uses Relic's public API only
(docs/EMBEDDING.md): each NPC mod gets its own ``market`` table
(``host.expose_per_mod``) and hears the street through two game events.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Callable

import pygame

from render import Renderer
from world import HEIGHT, TALK_RANGE, WIDTH, MarketAPI, World

ARROWS = {pygame.K_LEFT: "left", pygame.K_RIGHT: "right", pygame.K_UP: "up", pygame.K_DOWN: "down"}
MAX_TYPED = 160
FOCUS_RANGE = TALK_RANGE * 1.25  # px: walking further from the player's partner ends the conversation
PLAYER = "The traveler"
# The game's events (declared before the mods load): an NPC mod registers for them and answers
# true when it starts a reply, false while it is still busy with one.
HEAR = "onHear"                  # (who, text): someone speaks to the NPC
STREET_EVENT = "onStreetEvent"   # (text): something happens on the street
EVENTS = (HEAR, STREET_EVENT)

AMBIENT = [
    "The tide bell rings from the clock tower: high water within the hour.",
    "A gull snatches a herring from a cart and the crowd laughs.",
    "Rain starts to patter on the awnings.",
    "A barge horn sounds from the drowned canal.",
]


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) of a non-empty sequence, nearest rank."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100 * (len(v) - 1)))))]


class Game:
    """The market street game around a Relic host (see module docstring)."""

    def __init__(self, host_factory: Callable, *, fps: int = 60, seed: int = 7, ambient_s: float = 14.0):
        """``host_factory(market)`` makes the loaded host and the ImGui overlay (or None) for the
        ``market`` API: it publishes ``market.for_mod`` with ``host.expose_per_mod`` and declares EVENTS."""
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption("Relic - market street")
        self.screen = pygame.display.set_mode((WIDTH, HEIGHT))
        pygame.key.start_text_input()
        self.world = World(seed)
        self.market = MarketAPI(self.world)
        self.host, self.overlay = host_factory(self.market)   # the overlay: the mods' ImGui (F1), or None
        self.renderer = Renderer(self.screen)
        self.draw_hooks: list[Callable[[pygame.Surface], None]] = []  # overlays: called after the world is drawn
        self.fps = fps
        self.clock = pygame.time.Clock()
        self.held: set = set()
        self.typed = ""
        self.running = True
        self.frame = 0
        self.work_ms: deque = deque(maxlen=600)  # update + draw time of recent frames
        self.all_work_ms: list = []
        self.frame_times: deque = deque(maxlen=120)  # wall time of recent frames (for fps)
        self.ambient_s = ambient_s
        self.next_ambient = time.monotonic() + ambient_s
        self.said: list = []  # what the player said: (to whom, text)
        self.focus: str | None = None  # the mod id of the player's partner (see set_focus)
        self.focus_changes: list = []  # every focus set, in order (None: cleared)

    # --- input -------------------------------------------------------------
    def handle(self, event) -> None:
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.KEYDOWN:
            if event.key in ARROWS:
                self.held.add(ARROWS[event.key])
            elif event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
                self.send(self.typed)
                self.typed = ""
            elif event.key == pygame.K_BACKSPACE:
                self.typed = self.typed[:-1]
            elif event.key == pygame.K_ESCAPE:
                if self.typed:
                    self.typed = ""
                else:
                    self.running = False
        elif event.type == pygame.KEYUP and event.key in ARROWS:
            self.held.discard(ARROWS[event.key])
        elif event.type == pygame.TEXTINPUT:
            self.typed = (self.typed + event.text)[:MAX_TYPED]

    def send(self, text: str) -> None:
        """The player says ``text`` to the nearest NPC."""
        text = text.strip()
        target = self.world.nearest_npc()
        if not text:
            return
        if target is None:
            self.world.toast("Nobody is close enough to hear you.")
            return
        self.say_to(target, text)

    def say_to(self, npc, text: str) -> None:
        """The player says ``text`` to ``npc``: it becomes the player's partner and hears the line."""
        self.said.append((npc.name, text))
        self.set_focus(npc)
        npc.thinking_since = time.monotonic()   # its bubble shows a thinking mark until the first token
        self.world.hear(npc.mod_id, "hear", PLAYER, text)

    # --- the player's partner ----------------------------------------------------
    def set_focus(self, npc) -> None:
        """The player talks to ``npc`` (None: to nobody): its generations run at priority "player"
        (they go first; the street's chatter waits) until the focus moves."""
        mod_id = npc.mod_id if npc is not None else None
        if mod_id != self.focus:
            self.focus = mod_id
            self.focus_changes.append(mod_id)
            self.host.llm_focus(mod_id)

    def update_focus(self) -> None:
        """Clear the focus once the player walked away from their partner (or it left the street)."""
        npc = self.world.npcs.get(self.focus) if self.focus else None
        if npc is not None and (npc.mode == "away" or npc.distance(self.world.player) > FOCUS_RANGE):
            self.set_focus(None)

    # --- the frame -----------------------------------------------------------
    def deliver(self) -> None:
        """Hand due lines and events to the NPC mods (the game's onHear / onStreetEvent events)."""
        for _, mod_id, kind, speaker, text, depth in self.world.due():
            npc = self.world.npcs.get(mod_id)
            if npc is None:
                continue
            if kind == "hear":
                accepted = self.host.emit_to(mod_id, HEAR, speaker, text)
            else:
                accepted = self.host.emit_to(mod_id, STREET_EVENT, text)
            if accepted:
                npc.busy, npc.depth = True, depth
                npc.answering_player = speaker == PLAYER
            elif accepted is False and speaker == PLAYER:
                self.world.hear(mod_id, kind, speaker, text, delay=0.25)  # busy: the player's line waits
        now = time.monotonic()
        if now > self.next_ambient:
            self.next_ambient = now + self.ambient_s
            idle = [n for n in self.world.npcs.values() if not n.busy and n.mode == "wander"]
            if idle:
                npc = self.world.rng.choice(idle)
                self.world.hear(npc.mod_id, "event", "", self.world.rng.choice(AMBIENT))

    def step(self, dt: float) -> None:
        """One frame of game logic and drawing (no sleeping)."""
        t0 = time.perf_counter()
        for event in pygame.event.get():
            if self.overlay is not None and self.overlay.handle_event(event):
                continue          # the overlay's toggle key, or input while it is open
            self.handle(event)
        self.world.update(dt, self.held)
        self.update_focus()
        self.deliver()
        self.host.update(dt)
        now = time.monotonic()
        target = self.world.nearest_npc()
        self.renderer.draw_world(self.world, target, now)
        self.renderer.draw_hud(self.world, self.typed, target, now)
        self.renderer.draw_stats(self.stats_lines())
        for hook in self.draw_hooks:
            hook(self.screen)
        self.host.draw()
        if self.overlay is not None:
            self.overlay.draw(self.screen)    # what the mods drew with ImGui in onDraw
        pygame.display.flip()
        ms = (time.perf_counter() - t0) * 1000
        self.work_ms.append(ms)
        self.all_work_ms.append(ms)
        self.frame += 1

    def stats_lines(self) -> list[str]:
        fps = 0.0
        if len(self.frame_times) > 1:
            span = self.frame_times[-1] - self.frame_times[0]
            fps = (len(self.frame_times) - 1) / span if span > 0 else 0.0
        p50 = percentile(self.work_ms, 50) if self.work_ms else 0.0
        p99 = percentile(self.work_ms, 99) if self.work_ms else 0.0
        lines = [f"fps {fps:5.1f}", f"frame p50 {p50:5.2f} ms  p99 {p99:5.2f} ms",
                 f"tok/s {self.world.tok_per_s():5.1f}"]
        model = self.host.model
        return lines + [f"model on {model.placement}"] if model is not None else lines

    def run(self, *, max_frames: int | None = None, script=None) -> None:
        """The loop: until the window closes, Esc, or ``max_frames``; ``script(game)`` runs each frame."""
        dt = 1 / self.fps
        try:
            while self.running and (max_frames is None or self.frame < max_frames):
                self.frame_times.append(time.perf_counter())
                if script is not None:
                    script(self)
                self.step(dt)
                dt = min(self.clock.tick(self.fps) / 1000.0, 0.1)
        finally:
            self.host.shutdown()

    def report(self) -> dict:
        """What happened, as plain data (the headless test reads it)."""
        span = self.frame_times[-1] - self.frame_times[0] if len(self.frame_times) > 1 else 0.0
        w = self.all_work_ms or [0.0]
        return {
            "frames": self.frame,
            "fps_recent": (len(self.frame_times) - 1) / span if span > 0 else 0.0,
            "frame_work_ms": {"p50": percentile(w, 50), "p99": percentile(w, 99), "max": max(w)},
            "npcs": {mod_id: {"name": n.name, "lines": n.lines, "max_bubble_shown": n.max_bubble_shown,
                              "actions": list(n.actions), "x": n.x, "mode": n.mode,
                              "thinking": bool(n.thinking_since)}
                     for mod_id, n in self.world.npcs.items()},
            "log": [{"speaker": s, "text": t} for s, t in self.world.log],
            "player": {"x": self.world.player.x, "y": self.world.player.y},
            "inventory": list(self.world.inventory),
            "said": [{"to": a, "text": b} for a, b in self.said],
            "focus": {"now": self.focus, "changes": list(self.focus_changes),
                      "thinking_drawn": dict(self.renderer.thinking_drawn)},
            "answers": [{"speaker": a, "text": b} for a, b in self.world.answers],
            "first_tokens": [{"speaker": a, "seconds": b} for a, b in self.world.first_tokens],
            "mods": {mid: m.state for mid, m in self.host.mods.items()},
            "overlay": {"open": self.host.overlay_open,
                        "triangles": self.overlay.renderer.triangles if self.overlay else 0},
        }

    def save_report(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.report(), indent=1, ensure_ascii=False))
