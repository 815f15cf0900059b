"""Drawing the market street with pygame-ce: the street, actors, speech bubbles, input line, stats.

Pure drawing: reads the :class:`world.World`, never changes it (except each
NPC's ``max_bubble_shown``, the record of what text actually reached the
screen, which the headless test reads).
"""

from __future__ import annotations

import pygame

from layout import layout_bubbles
from world import HEIGHT, STREET_BOTTOM, STREET_TOP, WIDTH

SKY = (120, 170, 205)
WALL = [(170, 150, 130), (150, 130, 120), (185, 165, 140), (140, 125, 110)]
STONE = (118, 112, 104)
WATER = (50, 90, 120)
INK = (25, 25, 30)
PAPER = (250, 250, 245)
BUBBLE_AREA = (4, 4, WIDTH - 8, HEIGHT - 34 - 8)  # the screen above the input line
THINKING_S = 60.0  # a thinking mark older than this is not drawn (the mod never answered)
AWNINGS = {"oona": (60, 120, 190), "bram": (120, 70, 50), "lise": (70, 140, 80), "tomas": (160, 50, 60)}


class Renderer:
    """Draws one frame of the world onto a surface."""

    def __init__(self, surface: pygame.Surface):
        self.surface = surface
        self.font = pygame.font.Font(None, 20)
        self.small = pygame.font.Font(None, 17)
        self.big = pygame.font.Font(None, 26)
        self.backdrop = self._backdrop()
        self._texts: dict = {}  # (font, text, color) -> surface: most text is the same frame after frame
        self.bubble_rects: dict = {}  # mod id -> (x, y, w, h) of its bubble on the last frame drawn
        self.thinking_drawn: dict = {}  # mod id -> frames drawn with its thinking mark (the headless test reads it)

    def text(self, font, text: str, color) -> pygame.Surface:
        key = (id(font), text, color)
        surf = self._texts.get(key)
        if surf is None:
            if len(self._texts) > 512:
                self._texts.clear()
            surf = self._texts[key] = font.render(text, True, color)
        return surf

    def _backdrop(self) -> pygame.Surface:
        s = pygame.Surface((WIDTH, HEIGHT))
        s.fill(SKY)
        pygame.draw.circle(s, (250, 235, 180), (820, 70), 34)  # a pale sun
        for i, x in enumerate(range(0, WIDTH, 120)):  # house fronts
            h = 170 + (i * 37) % 60
            pygame.draw.rect(s, WALL[i % len(WALL)], (x, STREET_TOP - h, 120, h))
            pygame.draw.polygon(s, (110, 70, 60), [(x - 4, STREET_TOP - h), (x + 60, STREET_TOP - h - 40),
                                                   (x + 124, STREET_TOP - h)])
            for wx in (x + 18, x + 72):
                for wy in range(STREET_TOP - h + 20, STREET_TOP - 60, 55):
                    pygame.draw.rect(s, (60, 70, 90), (wx, wy, 30, 34))
            pygame.draw.rect(s, (80, 55, 40), (x + 48, STREET_TOP - 62, 26, 62))  # a door
        pygame.draw.rect(s, STONE, (0, STREET_TOP - 10, WIDTH, STREET_BOTTOM - STREET_TOP + 40))
        for y in range(STREET_TOP, STREET_BOTTOM + 30, 16):  # cobbles
            off = (y // 16) % 2 * 14
            for x in range(-off, WIDTH, 28):
                pygame.draw.rect(s, (128, 121, 112), (x + 2, y + 2, 24, 12), border_radius=3)
        pygame.draw.rect(s, WATER, (0, STREET_BOTTOM + 30, WIDTH, HEIGHT - STREET_BOTTOM - 30))
        for x in range(0, WIDTH, 40):
            pygame.draw.arc(s, (90, 130, 160), (x, STREET_BOTTOM + 34, 40, 12), 0, 3.14, 2)
        return s

    # --- the frame -------------------------------------------------------
    def draw_world(self, world, talk_target, now: float) -> None:
        s = self.surface
        s.blit(self.backdrop, (0, 0))
        for mod_id, npc in world.npcs.items():  # stalls at the NPCs' homes
            x = int(npc.home_x)
            color = AWNINGS.get(mod_id, (120, 120, 120))
            pygame.draw.rect(s, (95, 70, 50), (x - 60, STREET_TOP - 40, 120, 40))
            for k in range(6):
                pygame.draw.rect(s, color if k % 2 == 0 else (235, 230, 220), (x - 66 + k * 22, STREET_TOP - 70, 22, 26))
            label = self.text(self.small, f"{npc.name}'s {npc.role}", (245, 240, 230))
            s.blit(label, (x - label.get_width() // 2, STREET_TOP - 34))
        actors = sorted([world.player] + [n for n in world.npcs.values() if n.mode != "away"], key=lambda a: a.y)
        for a in actors:
            self._actor(a, a is talk_target)
        self.draw_bubbles(world, now)

    def _actor(self, a, highlighted: bool) -> None:
        s = self.surface
        x, y = int(a.x), int(a.y)
        pygame.draw.ellipse(s, (80, 76, 70), (x - 16, y - 4, 32, 10))  # shadow
        pygame.draw.rect(s, a.color, (x - 11, y - 40, 22, 36), border_radius=6)
        pygame.draw.circle(s, (235, 200, 170), (x, y - 50), 11)
        pygame.draw.circle(s, INK, (x + 4 * a.facing, y - 52), 2)
        if highlighted:
            pygame.draw.circle(s, (255, 255, 255), (x, y - 50), 15, 2)
        name = self.text(self.small, a.name, INK)
        s.blit(name, (x - name.get_width() // 2, y + 6))

    def _wrap(self, text: str, width: int) -> list[str]:
        key = (text, width)
        hit = self._texts.get(key)
        if hit is None:
            hit = self._texts[key] = self._wrap_now(text, width)
        return hit

    def _wrap_now(self, text: str, width: int) -> list[str]:
        lines, cur = [], ""
        for word in text.split():
            trial = f"{cur} {word}".strip()
            if self.font.size(trial)[0] <= width or not cur:
                cur = trial
            else:
                lines.append(cur)
                cur = word
        if cur:
            lines.append(cur)
        return lines[-5:]  # the newest part of a long line stays visible

    def thinking(self, npc, now: float) -> bool:
        """Whether ``npc`` is working on an answer to the player whose first token has not come yet."""
        return bool(npc.thinking_since) and now - npc.thinking_since < THINKING_S

    def bubble_lines(self, npc, now: float) -> list[str]:
        """The lines of ``npc``'s bubble now (empty: no bubble); a thinking mark ends them."""
        shown = npc.bubble and (npc.streaming or now < npc.bubble_until)
        lines = list(self._wrap(npc.bubble, 220)) if shown else []
        if self.thinking(npc, now):
            lines = lines[-4:] + ["." * (1 + int(now * 3) % 3)]   # an animated "...", until the first token
        return lines

    def draw_bubbles(self, world, now: float) -> None:
        """Every visible bubble, laid out so that none covers another (see ``layout.layout_bubbles``)."""
        npcs, wanted, texts = [], [], []
        for npc in world.npcs.values():
            lines = self.bubble_lines(npc, now) if npc.mode != "away" else []
            if not lines:
                continue
            if npc.bubble:
                npc.max_bubble_shown = max(npc.max_bubble_shown, len(npc.bubble))
            h = 8 + 18 * len(lines)
            w = max(40, 16 + max(self.font.size(line)[0] for line in lines))
            npcs.append(npc)
            texts.append(lines)
            wanted.append((int(npc.x - w / 2), int(npc.y - 70 - h), w, h))
        placed = layout_bubbles(wanted, BUBBLE_AREA)
        self.bubble_rects = {n.mod_id: r for n, r in zip(npcs, placed) if r is not None}
        for npc, rect in zip(npcs, placed):  # tails first: a bubble may cover another's tail, never its text
            if rect is not None:
                self._tail(npc, rect)
        for npc, rect, lines in zip(npcs, placed, texts):
            if rect is not None:
                self._bubble(npc, rect, lines)
                if self.thinking(npc, now):
                    self.thinking_drawn[npc.mod_id] = self.thinking_drawn.get(npc.mod_id, 0) + 1

    def _tail(self, npc, rect) -> None:
        x, y, w, h = rect
        head = (int(npc.x), int(npc.y - 64))
        bx = min(max(head[0], x + 10), x + w - 10)
        by = y + h - 2 if head[1] >= y + h else y + 2
        pygame.draw.polygon(self.surface, PAPER, [(bx - 6, by), (bx + 6, by), head])
        pygame.draw.line(self.surface, npc.color, (bx, by), head, 1)

    def _bubble(self, npc, rect, lines) -> None:
        s = self.surface
        x, y, w, h = rect
        pygame.draw.rect(s, PAPER, rect, border_radius=8)
        pygame.draw.rect(s, npc.color, rect, 2, border_radius=8)
        for i, line in enumerate(lines):
            s.blit(self.text(self.font, line, INK), (x + 8, y + 5 + 18 * i))
        if npc.streaming:
            pygame.draw.circle(s, npc.color, (x + w - 8, y + h - 8), 3)

    def draw_hud(self, world, typed: str, talk_target, now: float) -> None:
        s = self.surface
        panel = pygame.Surface((WIDTH, 34), pygame.SRCALPHA)
        panel.fill((20, 20, 25, 200))
        s.blit(panel, (0, HEIGHT - 34))
        who = talk_target.name if talk_target else "nobody (walk up to someone)"
        prompt = f"> {typed}_" if typed else f"type to talk to {who}; arrows walk; Esc quits"
        s.blit(self.text(self.font, prompt, (240, 240, 230)), (10, HEIGHT - 26))
        if world.inventory:
            inv = self.text(self.small, "carrying: " + ", ".join(world.inventory[-4:]), (240, 220, 150))
            s.blit(inv, (WIDTH - inv.get_width() - 10, HEIGHT - 25))
        y = 10
        for text, until in list(world.toasts):
            if now < until:
                t = self.text(self.big, text, (255, 250, 220))
                box = pygame.Surface((t.get_width() + 16, t.get_height() + 8), pygame.SRCALPHA)
                box.fill((30, 30, 40, 190))
                s.blit(box, (WIDTH // 2 - box.get_width() // 2, y))
                s.blit(t, (WIDTH // 2 - t.get_width() // 2, y + 4))
                y += box.get_height() + 4

    def draw_stats(self, lines: list[str]) -> None:
        """The performance overlay (top left): one line per figure."""
        s = self.surface
        w = 8 + max(self.small.size(line)[0] for line in lines)
        box = pygame.Surface((w + 8, 6 + 16 * len(lines)), pygame.SRCALPHA)
        box.fill((0, 0, 0, 160))
        s.blit(box, (6, 6))
        for i, line in enumerate(lines):
            s.blit(self.small.render(line, True, (180, 255, 180)), (12, 10 + 16 * i))
