"""Textures for `ImGui.LoadTexture(path)` / `ImGui.Image(texture)`: image files from the mod's folder.

A path goes through the mod's io checks (relative, inside the folder, no
symlink out, not the database or log), the file is opened without following
a symlink and must be a regular file within the host's limits (the ``ui``
group of host.limits: ``texture_file_bytes``).  The size comes from the
image's own header (PNG, JPEG or BMP), checked against ``texture_side`` and
``texture_pixels`` before anything is decoded, so a small file that claims a
huge picture (a decompression bomb) is refused.  Pixels are decoded later, by
the renderer that draws them (host/ui/imgui_overlay.py), never in a mod's call.
Per mod: ``max_textures`` live textures, ``textures_bytes`` of files and
``textures_pixels`` pixels.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

from host.errors import ModError, QuotaExceeded, SandboxViolation

TEXTURE_ID_BASE = 1 << 30        # above the ids the renderer gives Dear ImGui's own textures


@dataclass
class Texture:
    """One loaded texture: who owns it, its size, its file's bytes and the id Dear ImGui draws it by."""
    handle: int
    owner: tuple             # (mod id, mod generation)
    width: int
    height: int
    data: bytes
    kind: str                # "png", "jpg", "bmp": the decoder's name hint
    tex_id: int


def image_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, kind) from a PNG, JPEG or BMP header (raises ModError)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return w, h, "png"
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                raise ModError("not a valid JPEG file (bad marker)")
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2:i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h, "jpg"
            i += 2 + length
        raise ModError("not a valid JPEG file (no frame header)")
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h), "bmp"
    raise ModError("not a PNG, JPEG or BMP image")


def read_image_file(mod, path: str) -> tuple[bytes, int, int, str]:
    """(data, width, height, kind) of an image in the mod's folder (raises SandboxViolation, ModError)."""
    limits = mod.host.limits.ui
    max_bytes = limits.texture_file_bytes
    full = mod.io.path(path)
    try:
        fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise SandboxViolation(f"'{path}': {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SandboxViolation(f"'{path}': not a regular file")
        if st.st_size > max_bytes:
            raise QuotaExceeded(f"'{path}': image files are limited to {max_bytes} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise QuotaExceeded(f"'{path}': image files are limited to {max_bytes} bytes")
    w, h, kind = image_size(data)
    side = limits.texture_side
    if not (1 <= w <= side and 1 <= h <= side) or w * h > limits.texture_pixels:
        raise ModError(f"{w}x{h} pixels: textures are limited to {side}x{side} and {limits.texture_pixels} pixels")
    return data, w, h, kind


class TextureStore:
    """Every mod's textures, by handle (frame thread only)."""

    def __init__(self):
        self._by_handle: dict[int, Texture] = {}
        self._by_tex_id: dict[int, Texture] = {}
        self._next = 1

    def load(self, mod, path: str) -> Texture:
        """Load an image file of `mod` (raises SandboxViolation, QuotaExceeded, ModError)."""
        owner = (mod.id, mod.generation)
        self.drop_stale(mod.id, mod.generation)
        mine = [t for t in self._by_handle.values() if t.owner == owner]
        limits = mod.host.limits.ui
        if len(mine) >= limits.max_textures:
            raise QuotaExceeded(f"more than {limits.max_textures} textures loaded; Release() the ones you no "
                                "longer need")
        data, w, h, kind = read_image_file(mod, path)
        if sum(len(t.data) for t in mine) + len(data) > limits.textures_bytes:
            raise QuotaExceeded(f"textures are limited to {limits.textures_bytes} bytes of files per mod")
        if sum(t.width * t.height for t in mine) + w * h > limits.textures_pixels:
            raise QuotaExceeded(f"textures are limited to {limits.textures_pixels} pixels per mod; "
                                "Release() the ones you no longer need")
        handle = self._next
        self._next += 1
        tex = Texture(handle, owner, w, h, data, kind, TEXTURE_ID_BASE + handle)
        self._by_handle[handle] = tex
        self._by_tex_id[tex.tex_id] = tex
        return tex

    def get(self, mod, handle: int) -> Texture | None:
        """The texture `handle` if it belongs to `mod`."""
        tex = self._by_handle.get(handle)
        return tex if tex is not None and tex.owner == (mod.id, mod.generation) else None

    def by_tex_id(self, tex_id: int) -> Texture | None:
        """The texture Dear ImGui draws as `tex_id` (for a renderer)."""
        return self._by_tex_id.get(tex_id)

    def release(self, mod, handle: int) -> None:
        """texture:Release() (a handle not of this mod, or released already: nothing happens)."""
        tex = self.get(mod, handle)
        if tex is not None:
            del self._by_handle[handle]
            del self._by_tex_id[tex.tex_id]

    def drop_stale(self, mod_id: str, generation: int) -> None:
        """Forget the textures of earlier loads of mod `mod_id` (it was reloaded)."""
        for h, t in list(self._by_handle.items()):
            if t.owner[0] == mod_id and t.owner[1] != generation:
                del self._by_handle[h]
                del self._by_tex_id[t.tex_id]

    def __len__(self) -> int:
        return len(self._by_handle)
