"""CET's overlay for a pygame game: mods' ImGui drawn into the game's surface.

    host = Host("mods", ui=imgui_layer(screen.get_size()))   # the mods' ImGui draws into Dear ImGui
    overlay = ImGuiOverlay(host)                            # renders it, takes input while open
    host.load()
    ...each frame:
    for event in pygame.event.get():
        if overlay.handle_event(event):                 # the toggle key, and input while open
            continue
        game.handle(event)
    host.update(dt); draw the game
    host.draw()                                         # mods' onDraw, inside one ImGui frame
    overlay.draw(screen)                                # the ImGui frame onto the game's picture
    pygame.display.flip()

The toggle key (default F1) opens and closes the overlay: `onOverlayOpen` /
`onOverlayClose` fire in every mod, and while it is open mouse and keyboard
go to ImGui instead of the game (as in CET).  Mods draw in `onDraw` whether or
not it is open (a mod shows its windows only while open by checking its own
flag, as CET mods do).

Dear ImGui produces triangles; `SurfaceRenderer` draws them with pygame
itself, no OpenGL: flat-coloured triangles as polygons (blended through a
small alpha layer when translucent), and the font atlas's glyph quads as
tinted blits.  Anti-aliased fringes are turned off in the style, so nothing
else is needed.  Frame thread only.
"""

from __future__ import annotations

import ctypes
import io

import numpy as np
import pygame

from host.errors import GameAPIError
from host.ui.imgui_api import ImGuiLayer
from host.ui.imgui_backend import ImGuiBackend

VERT = np.dtype([("x", "<f4"), ("y", "<f4"), ("u", "<f4"), ("v", "<f4"), ("col", "<u4")])
MAX_TINTS = 8192                       # the renderer's cache of tinted copies (not a mod limit)
COORD_MARGIN = 4096                    # vertices are clamped to this far outside the surface
MAX_TINT_BYTES = 32 * 1024 * 1024      # tinted / scaled copies kept between frames

_KEYS = {
    pygame.K_TAB: "tab", pygame.K_LEFT: "left_arrow", pygame.K_RIGHT: "right_arrow",
    pygame.K_UP: "up_arrow", pygame.K_DOWN: "down_arrow", pygame.K_PAGEUP: "page_up",
    pygame.K_PAGEDOWN: "page_down", pygame.K_HOME: "home", pygame.K_END: "end",
    pygame.K_INSERT: "insert", pygame.K_DELETE: "delete", pygame.K_BACKSPACE: "backspace",
    pygame.K_SPACE: "space", pygame.K_RETURN: "enter", pygame.K_ESCAPE: "escape",
    pygame.K_KP_ENTER: "keypad_enter", pygame.K_LCTRL: "left_ctrl", pygame.K_RCTRL: "right_ctrl",
    pygame.K_LSHIFT: "left_shift", pygame.K_RSHIFT: "right_shift", pygame.K_a: "a",
    pygame.K_c: "c", pygame.K_v: "v", pygame.K_x: "x", pygame.K_y: "y", pygame.K_z: "z",
}


def _rgba(col: int) -> tuple[int, int, int, int]:
    return col & 0xFF, (col >> 8) & 0xFF, (col >> 16) & 0xFF, (col >> 24) & 0xFF


class SurfaceRenderer:
    """Draws Dear ImGui draw data into a pygame Surface (see the module docstring)."""

    def __init__(self, imgui, user_textures=None):
        self.imgui = imgui
        self.textures: dict[int, pygame.Surface] = {}
        self.user_textures = user_textures      # the layer's TextureStore (ImGui.LoadTexture)
        self._decoded: dict[int, pygame.Surface | None] = {}
        self._tints: dict[tuple, pygame.Surface] = {}
        self._tint_bytes = 0
        self.triangles = 0          # drawn in the last frame (tests, stats)

    def _texture(self, tid: int) -> pygame.Surface | None:
        surf = self.textures.get(tid)
        if surf is not None or self.user_textures is None:
            return surf
        tex = self.user_textures.by_tex_id(tid)
        if tex is None:                          # released (or never loaded)
            self._decoded.pop(tid, None)
            return None
        if tid not in self._decoded:
            # Decoded here, on the game's time, never inside a mod's call; the
            # header was checked at LoadTexture, so the size is bounded.
            try:
                img = pygame.image.load(io.BytesIO(tex.data), f"texture.{tex.kind}")
                if img.get_size() != (tex.width, tex.height):
                    raise ValueError("size differs from the header")
                self._decoded[tid] = pygame.image.frombytes(pygame.image.tobytes(img, "RGBA"),
                                                            img.get_size(), "RGBA")
            except (pygame.error, ValueError):
                self._decoded[tid] = None        # a broken image draws nothing
            self._tints.clear()
            self._tint_bytes = 0
        return self._decoded[tid]

    def _update_textures(self) -> None:
        im = self.imgui
        for tex in im.get_platform_io().textures:
            status = tex.status
            if status in (im.ImTextureStatus.want_create, im.ImTextureStatus.want_updates):
                pixels = np.ascontiguousarray(tex.get_pixels_array(), dtype=np.uint8)
                surf = pygame.image.frombuffer(pixels.tobytes(), (tex.width, tex.height), "RGBA")
                tid = tex.unique_id + 1
                self.textures[tid] = surf
                tex.set_tex_id(tid)
                tex.status = im.ImTextureStatus.ok
                self._tints.clear()
                self._tint_bytes = 0
            elif status == im.ImTextureStatus.want_destroy:
                self.textures.pop(tex.get_tex_id(), None)
                tex.set_tex_id(0)
                tex.status = im.ImTextureStatus.destroyed
                self._tints.clear()
                self._tint_bytes = 0

    def _tinted(self, tid: int, rect: tuple, col: int, size: tuple) -> pygame.Surface | None:
        key = (tid, rect, col, size)
        surf = self._tints.get(key)
        if surf is None:
            atlas = self._texture(tid)
            if atlas is None or rect[2] <= 0 or rect[3] <= 0:
                return None
            try:
                surf = atlas.subsurface(rect).copy()
            except ValueError:
                return None
            surf.fill(_rgba(col), special_flags=pygame.BLEND_RGBA_MULT)
            if size != (rect[2], rect[3]) and size[0] > 0 and size[1] > 0:
                surf = pygame.transform.smoothscale(surf, size)
            nbytes = surf.get_width() * surf.get_height() * 4
            if len(self._tints) >= MAX_TINTS or self._tint_bytes + nbytes > MAX_TINT_BYTES:
                self._tints.clear()
                self._tint_bytes = 0
            self._tints[key] = surf
            self._tint_bytes += nbytes
        return surf

    def render(self, draw_data, surface: pygame.Surface) -> None:
        """Draw one frame's draw data onto `surface`."""
        self._update_textures()
        self.triangles = 0
        if draw_data is None:
            return
        old_clip = surface.get_clip()
        lim = float(COORD_MARGIN + max(surface.get_size()))
        try:
            for cl in draw_data.cmd_lists:
                nv, ni = cl.vtx_buffer.size(), cl.idx_buffer.size()
                if nv == 0 or ni == 0:
                    continue
                vtx = np.frombuffer((ctypes.c_char * (nv * VERT.itemsize)).from_address(
                    cl.vtx_buffer.data_address()), dtype=VERT).copy()
                # a mod's draw list may hold any coordinate (3e38, inf - inf): bound
                # them to a margin around the surface, where pygame can draw them
                for axis in ("x", "y"):
                    vtx[axis] = np.clip(np.nan_to_num(vtx[axis], nan=0.0, posinf=lim, neginf=-lim), -lim, lim)
                itype = np.uint16 if self.imgui.INDEX_SIZE == 2 else np.uint32
                idx = np.frombuffer((ctypes.c_char * (ni * self.imgui.INDEX_SIZE)).from_address(
                    cl.idx_buffer.data_address()), dtype=itype).astype(np.int64)
                for cmd in cl.cmd_buffer:
                    if cmd.elem_count < 3:
                        continue
                    c = cmd.clip_rect
                    clip = pygame.Rect(int(c.x), int(c.y), int(c.z - c.x), int(c.w - c.y))
                    clip = clip.clip(surface.get_rect())
                    if clip.width <= 0 or clip.height <= 0:
                        continue
                    surface.set_clip(clip)
                    ids = idx[cmd.idx_offset:cmd.idx_offset + cmd.elem_count] + cmd.vtx_offset
                    self._draw_command(surface, vtx, ids, cmd.tex_ref.get_tex_id())
        finally:
            surface.set_clip(old_clip)

    def _draw_command(self, surface, vtx, ids, tid) -> None:
        # Classify every triangle with numpy, then walk them once in order
        # (order is layering: a button's frame, then its label).
        m = len(ids) // 3
        tri = ids[:m * 3].reshape(m, 3)
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        x, y, u, v, col = vtx["x"], vtx["y"], vtx["u"], vtx["v"], vtx["col"]
        textured = (u[a] != u[c]) | (v[a] != v[c])
        quad = np.zeros(m, dtype=bool)
        if m > 1:
            d = np.empty(m, dtype=np.int64)
            d[:-1] = tri[1:, 2]
            d[-1] = a[-1]
            nxt_a = np.append(tri[1:, 0], -1)
            nxt_b = np.append(tri[1:, 1], -1)
            quad = (textured & (nxt_a == a) & (nxt_b == c)
                    & (y[a] == y[b]) & (x[b] == x[c]) & (y[c] == y[d]) & (x[d] == x[a]))
        atlas = self._texture(tid)
        aw, ah = (atlas.get_width(), atlas.get_height()) if atlas is not None else (1, 1)
        # glyph blits: position, size, atlas rect (ints), colour
        gx, gy = np.rint(x[a]).astype(int).tolist(), np.rint(y[a]).astype(int).tolist()
        gw, gh = np.rint(x[c] - x[a]).astype(int).tolist(), np.rint(y[c] - y[a]).astype(int).tolist()
        rx, ry = np.rint(u[a] * aw).astype(int).tolist(), np.rint(v[a] * ah).astype(int).tolist()
        rw = np.rint((u[c] - u[a]) * aw).astype(int).tolist()
        rh = np.rint((v[c] - v[a]) * ah).astype(int).tolist()
        tcol = col[a].tolist()
        ax, ay = x[a].tolist(), y[a].tolist()
        bx, by = x[b].tolist(), y[b].tolist()
        cx, cy = x[c].tolist(), y[c].tolist()
        is_quad = quad.tolist()
        batch: list = []
        batch_col = None
        k = 0
        while k < m:
            if is_quad[k]:
                if batch:
                    self._flush(surface, batch, batch_col)
                    batch, batch_col = [], None
                self._blit_quad(surface, tid, (gx[k], gy[k], gw[k], gh[k]), (rx[k], ry[k], rw[k], rh[k]), tcol[k])
                self.triangles += 2
                k += 2
                continue
            tc = tcol[k]
            k += 1
            if tc >> 24 == 0:                 # fully transparent
                continue
            if tc != batch_col:
                if batch:
                    self._flush(surface, batch, batch_col)
                batch, batch_col = [], tc
            j = k - 1
            batch.append(((ax[j], ay[j]), (bx[j], by[j]), (cx[j], cy[j])))
            self.triangles += 1
        if batch:
            self._flush(surface, batch, batch_col)

    def _blit_quad(self, surface, tid: int, dest: tuple, src: tuple, col: int) -> None:
        gx, gy, gw, gh = dest
        clip = surface.get_clip()
        if gw > clip.width or gh > clip.height:
            # an image larger than the view: scale only the part that shows
            vis = pygame.Rect(dest).clip(clip)
            if vis.width <= 0 or vis.height <= 0 or gw <= 0 or gh <= 0:
                return
            rx, ry, rw, rh = src
            sx = rx + (vis.x - gx) * rw / gw
            sy = ry + (vis.y - gy) * rh / gh
            src = (int(sx), int(sy), max(1, int(round(vis.width * rw / gw))), max(1, int(round(vis.height * rh / gh))))
            gx, gy, gw, gh = vis.x, vis.y, vis.width, vis.height
        glyph = self._tinted(tid, src, col, (gw, gh))
        if glyph is not None:
            surface.blit(glyph, (gx, gy))

    @staticmethod
    def _flush(surface, batch, col) -> None:
        if not batch:
            return
        r, g, b, a = _rgba(col)
        if a == 255:
            for tri in batch:
                pygame.draw.polygon(surface, (r, g, b), tri)
            return
        xs = [p[0] for tri in batch for p in tri]
        ys = [p[1] for tri in batch for p in tri]
        clip = surface.get_clip()             # the layer covers only what can show
        left, top = max(int(min(xs)), clip.left), max(int(min(ys)), clip.top)
        w = min(int(max(xs)) + 2, clip.right) - left
        h = min(int(max(ys)) + 2, clip.bottom) - top
        if w <= 0 or h <= 0:
            return
        layer = pygame.Surface((w, h), pygame.SRCALPHA)
        for tri in batch:
            pygame.draw.polygon(layer, (r, g, b, 255), [(px - left, py - top) for px, py in tri])
        layer.set_alpha(a)
        surface.blit(layer, (left, top))


def imgui_layer(size: tuple[int, int]) -> ImGuiLayer:
    """The mods' ImGui over Dear ImGui, for a game window of ``size``: give it to the Host as ``ui=``."""
    return ImGuiLayer(ImGuiBackend(*size), size=size)


class ImGuiOverlay:
    """The overlay of a pygame game (see the module docstring): renders ``host.ui``, toggles it."""

    def __init__(self, host, toggle_key: int = pygame.K_F1):
        if host.ui.backend is None:
            raise GameAPIError("ImGuiOverlay: the host draws no ImGui; create it with ui=imgui_layer(size)")
        self.host = host
        self.layer = host.ui
        self.backend = host.ui.backend
        self.renderer = SurfaceRenderer(self.backend.imgui, self.layer.textures)
        self.toggle_key = toggle_key

    @property
    def is_open(self) -> bool:
        """Whether the overlay is open (input goes to ImGui)."""
        return self.host.overlay_open

    def toggle(self) -> None:
        """Open or close the overlay (fires onOverlayOpen / onOverlayClose)."""
        if self.host.overlay_open:
            self.host.close_overlay()
        else:
            self.host.open_overlay()

    def handle_event(self, event) -> bool:
        """Feed one pygame event; True when the overlay used it (the game should not)."""
        if event.type == pygame.KEYDOWN and event.key == self.toggle_key:
            self.toggle()
            return True
        if event.type == pygame.KEYUP and event.key == self.toggle_key:
            return True
        b = self.backend
        if event.type == pygame.MOUSEMOTION:
            b.mouse_pos(*event.pos)
            return self.is_open
        if not self.is_open:
            return False
        if event.type in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            if event.button in (1, 2, 3):
                b.mouse_pos(*event.pos)
                b.mouse_button({1: 0, 3: 1, 2: 2}[event.button], event.type == pygame.MOUSEBUTTONDOWN)
            return True
        if event.type == pygame.MOUSEWHEEL:
            b.mouse_wheel(event.x, event.y)
            return True
        if event.type in (pygame.KEYDOWN, pygame.KEYUP):
            name = _KEYS.get(event.key)
            if name:
                b.key(name, event.type == pygame.KEYDOWN)
            return True
        if event.type == pygame.TEXTINPUT:
            b.text(event.text)
            return True
        return False

    def draw(self, surface: pygame.Surface) -> None:
        """Draw the last ImGui frame (made by host.draw()) onto `surface`."""
        self.renderer.render(self.layer.draw_data, surface)
