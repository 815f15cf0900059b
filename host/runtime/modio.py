"""The host half of a mod's `io` library: files inside the mod's own folder only.

CET lets a mod open files in its folder (`io.open("config.json")`); so does
Relic.  Every path is checked here before anything is opened:

- relative to the mod folder only: absolute paths, drive letters, `..` and
  NUL bytes are refused (backslashes are read as `/`, as CET mods written on
  Windows use them);
- the real path (symlinks resolved) must stay inside the folder, and the
  final component is opened with O_NOFOLLOW, so a symlink cannot lead out;
- the reserved names are checked on the real path too (a `selfdir -> .`
  symlink placed in the folder does not make `selfdir/db.sqlite3` a new
  name): the mod's database (`db.sqlite3*`) is not reachable through io, and
  its log files, its manifest (`mod.toml`) and its saved sessions
  (`sessions/`, whose state llama.cpp reads) cannot be written;
- a file with more than one hard link is refused (a link placed in the folder
  beforehand would read and write a file elsewhere), checked before the file
  is truncated and again on the open descriptor.

Quotas: open files per mod, bytes per file, bytes and files in the whole
folder, and bytes per read (the sandbox's string cap).  Every write is
charged by the file's real size (fstat) before and after it, whichever handle
writes and however many handles share the file, so appends from several
handles, a truncating "w" handle beside a writing one, or a seek past the end
are all counted as the bytes the file really holds.  The folder's bytes and
files are counted once, by a walk of the whole folder before the first write
or new file, then kept up to date by every write, truncation and new file;
the database and the log are not counted (they have their own caps).
Files are opened in binary mode;
the Lua side (host/runtime/lua/relic_io.lua) gives them Lua's file API.  Handles are
integer ids; `close_all()` runs when the mod is released.  Frame thread only.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from host.errors import QuotaExceeded, SandboxViolation

MODE_RE = re.compile(r"([rwa])(\+?)b?\Z")
NUMBER_RE = re.compile(rb"\s*[-+]?(0[xX][0-9a-fA-F]+|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|nan)")


class _File:
    __slots__ = ("f", "path", "writable", "append")

    def __init__(self, f, path: Path, writable: bool, append: bool):
        self.f = f
        self.path = path
        self.writable = writable
        self.append = append


class ModIO:
    """Files of one mod (see module docstring)."""

    def __init__(self, mod_id: str, folder: Path, *, max_open: int, max_file_bytes: int,
                 max_folder_bytes: int, max_read_bytes: int, max_files: int = 2048):
        self.mod_id = mod_id
        self.folder = folder.resolve()
        self.max_open = max_open
        self.max_file_bytes = max_file_bytes
        self.max_folder_bytes = max_folder_bytes
        self.max_read_bytes = max_read_bytes
        self.max_files = max_files
        self._files: dict[int, _File] = {}
        self._lines: list[int] = []         # io.lines handles, oldest first (closed at EOF)
        self._next = 1
        self._used: int | None = None      # bytes in the folder, counted on first write
        self._count = 0                     # files in the folder (valid once _used is set)

    # -- paths ------------------------------------------------------------------------

    def _reserved(self, rel: str, write: bool) -> bool:
        low = rel.lower()
        if low.startswith("db.sqlite3"):
            return True
        if not write:
            return False
        if low.startswith("sessions/"):        # llm's saved sessions: llama.cpp reads their state
            return True
        if "/" in low:
            return False
        return low.startswith(f"{self.mod_id.lower()}.log") or low == "mod.toml"

    def _counted(self, rel: str) -> bool:
        """Whether a file (path relative to the folder) counts against the folder quota."""
        low = rel.lower()
        return not (low.startswith("db.sqlite3") or low.startswith(f"{self.mod_id.lower()}.log"))

    def path(self, rel, write: bool = False) -> Path:
        """The checked absolute path of `rel` inside the mod folder (raises SandboxViolation)."""
        if not isinstance(rel, str) or not rel:
            raise SandboxViolation("path must be a non-empty string")
        if "\0" in rel:
            raise SandboxViolation(f"{rel!r}: invalid characters in path")
        p = rel.replace("\\", "/")
        if p.startswith("/") or re.match(r"[A-Za-z]:", p):
            raise SandboxViolation(f"'{rel}': absolute paths are refused; use a path "
                                   f"relative to mods/{self.mod_id}/")
        parts = [x for x in p.split("/") if x not in ("", ".")]
        if ".." in parts:
            raise SandboxViolation(f"'{rel}': '..' is refused; mods can only use files in "
                                   f"mods/{self.mod_id}/")
        if not parts:
            raise SandboxViolation(f"'{rel}' is the mod folder itself, not a file")
        clean = "/".join(parts)
        full = self.folder.joinpath(*parts)
        real = full.resolve()
        if not real.is_relative_to(self.folder):
            raise SandboxViolation(f"'{rel}' leads outside mods/{self.mod_id}/ (symlink); refused")
        # the name as written and the file it really is (symlinks resolved)
        if self._reserved(clean, write) or self._reserved(real.relative_to(self.folder).as_posix(), write):
            raise SandboxViolation(f"'{rel}': the mod's database, log, mod.toml and sessions/ are not reachable "
                                   "through io for writing (use db, spdlog and session:save)"
                                   if write else f"'{rel}': the mod's database is not reachable "
                                   "through io (use db)")
        return full

    def relative(self, rel) -> str:
        """`rel` checked and normalized (for error messages and dir())."""
        return self.path(rel).relative_to(self.folder).as_posix()

    # -- quota --------------------------------------------------------------------------

    def _folder_usage(self) -> int:
        """Bytes of the counted files in the folder (walked once, whole, then kept up to date)."""
        if self._used is None:
            total = count = 0
            for root, dirs, files in os.walk(self.folder):
                for name in files:
                    path = os.path.join(root, name)
                    if not self._counted(os.path.relpath(path, self.folder).replace(os.sep, "/")):
                        continue
                    count += 1
                    try:
                        total += os.lstat(path).st_size
                    except OSError:
                        continue
            self._used, self._count = total, count
        return self._used

    def usage(self) -> dict:
        """What the folder holds as io counts it: {bytes, files}."""
        return {"bytes": self._folder_usage(), "files": self._count}

    def _charge(self, fh: _File, fd: int, length: int) -> int:
        """Check a write of `length` bytes against the quotas; returns the file's real size now."""
        real = os.fstat(fd).st_size
        end = real + length if fh.append else max(real, fh.f.tell() + length)
        if end > self.max_file_bytes:
            raise QuotaExceeded(f"io: '{self._rel(fh)}' would grow past {self.max_file_bytes} bytes "
                                "(the per-file limit)")
        if end > real and self._folder_usage() + (end - real) > self.max_folder_bytes:
            raise QuotaExceeded(f"io: mods/{self.mod_id}/ would grow past {self.max_folder_bytes} "
                                "bytes (the per-mod folder limit)")
        return real

    def _settle(self, fd: int, before: int) -> None:
        """Count the file's real change in size since `before` (after a write or truncation)."""
        used = self._folder_usage()
        try:
            after = os.fstat(fd).st_size
        except OSError:
            return
        self._used = max(0, used + after - before)

    def _rel(self, fh: _File) -> str:
        try:
            return fh.path.relative_to(self.folder).as_posix()
        except ValueError:
            return fh.path.name

    # -- files --------------------------------------------------------------------------

    def open(self, rel, mode="r", lines=False):
        """io.open(path, mode) -> handle id, or (None, message, errno) as Lua's io.open.

        `lines`: a handle for io.lines; when the open-file quota is reached the
        oldest such handle (an iterator abandoned before its end) is closed.
        """
        if mode is None:
            mode = "r"
        if not isinstance(mode, str) or not MODE_RE.match(mode):
            raise SandboxViolation(f"bad argument #2 to 'open' (invalid mode {mode!r})")
        kind, plus = mode[0], bool(mode[1:2] == "+")
        write = kind != "r" or plus
        try:
            full = self.path(rel, write=write)
        except SandboxViolation as e:      # Lua's io.open reports failures, it does not raise
            return None, str(e), errno.EACCES
        while len(self._files) >= self.max_open and self._lines:
            old = self._lines.pop(0)
            if old in self._files:
                self.close(old)
        if len(self._files) >= self.max_open:
            raise QuotaExceeded(f"io.open: more than {self.max_open} files open; close() the ones "
                                "you no longer need")
        # O_NONBLOCK: opening a FIFO shipped in a mod folder must not block the
        # frame (it is refused below as not a regular file); no effect on files.
        # "w" truncates only after the checks below (never through a link).
        flags = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        if kind == "r":
            flags |= os.O_RDWR if plus else os.O_RDONLY
        elif kind == "w":
            flags |= (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT
        else:
            flags |= (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT | os.O_APPEND
        try:
            before = os.lstat(full)
        except OSError:
            before = None
        if before is not None and stat.S_ISREG(before.st_mode) and before.st_nlink > 1:
            return None, f"{rel}: a file with several hard links is refused", errno.EMLINK
        created = before is None and kind != "r"
        if created:
            self._folder_usage()
            if self._count >= self.max_files and self._counted(self.relative(rel)):
                return None, (f"{rel}: mods/{self.mod_id}/ already holds {self.max_files} files "
                              "(the per-mod file limit)"), errno.EDQUOT
        try:
            fd = os.open(full, flags, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None, f"{rel}: symbolic links are refused", e.errno
            return None, f"{rel}: {e.strerror}", e.errno
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return None, f"{rel}: not a regular file", errno.EISDIR
            if st.st_nlink > 1:
                os.close(fd)
                return None, f"{rel}: a file with several hard links is refused", errno.EMLINK
            if created and self._used is not None and self._counted(self.relative(rel)):
                self._count += 1
            if kind == "w" and st.st_size:
                self._folder_usage()
                os.ftruncate(fd, 0)
                self._settle(fd, st.st_size)
            pymode = {"r": "rb", "w": "wb", "a": "ab"}[kind] + ("+" if plus else "")
            if plus and kind == "r":
                pymode = "r+b"
            f = os.fdopen(fd, pymode)
        except OSError as e:
            os.close(fd)
            return None, f"{rel}: {e.strerror}", e.errno
        hid = self._next
        self._next += 1
        self._files[hid] = _File(f, full, write, kind == "a")
        if lines:
            self._lines.append(hid)
        return hid

    def _fh(self, hid) -> _File:
        fh = self._files.get(hid)
        if fh is None:
            raise SandboxViolation("attempt to use a closed file")
        return fh

    def read(self, hid, *formats):
        """file:read(...) -> one value per format ('n', 'a', 'l', 'L' or a byte count)."""
        fh = self._fh(hid)
        if not formats:
            formats = ("l",)
        out = []
        for fmt in formats:
            try:
                v = self._read_one(fh, fmt)
            except OSError as e:
                return None, f"{self._rel(fh)}: {e.strerror or e}", e.errno or errno.EBADF
            out.append(v)
            if v is None:
                break
        return tuple(out)

    def _read_one(self, fh: _File, fmt):
        f = fh.f
        if isinstance(fmt, (int, float)) and not isinstance(fmt, bool):
            n = int(fmt)
            if n > self.max_read_bytes:
                raise QuotaExceeded(f"io: read of {n} bytes exceeds the limit of {self.max_read_bytes}")
            if n <= 0:            # Lua: "" unless at end of file
                pos = f.tell()
                if not f.read(1):
                    return None
                f.seek(pos)
                return b""
            data = f.read(n)
            return data or None
        if not isinstance(fmt, str):
            raise SandboxViolation("bad argument to 'read' (invalid format)")
        key = fmt.lstrip("*")[:1]
        if key == "a":
            data = f.read(self.max_read_bytes + 1)
            if len(data) > self.max_read_bytes:
                raise QuotaExceeded(f"io: reading '{self._rel(fh)}' whole exceeds the limit of "
                                    f"{self.max_read_bytes} bytes")
            return data
        if key in ("l", "L"):
            line = f.readline(self.max_read_bytes + 1)
            if len(line) > self.max_read_bytes:
                raise QuotaExceeded(f"io: a line longer than {self.max_read_bytes} bytes")
            if not line:
                return None
            if key == "l" and line.endswith(b"\n"):
                line = line[:-1]
            return line
        if key == "n":
            start = f.tell()
            chunk = f.read(200)
            m = NUMBER_RE.match(chunk)
            if not m:
                f.seek(start)
                return None
            f.seek(start + m.end())
            text = m.group(0).strip().decode("ascii")
            try:
                return int(text, 16) if text.lower().lstrip("+-").startswith("0x") else float(text)
            except ValueError:
                return None
        raise SandboxViolation(f"bad argument to 'read' (invalid format '{fmt}')")

    def write(self, hid, *values) -> None:
        """file:write(...): strings and numbers (numbers as Lua prints them)."""
        fh = self._fh(hid)
        if not fh.writable:
            return None, "Bad file descriptor", errno.EBADF
        parts = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (str, bytes, int, float)):
                raise SandboxViolation(f"bad argument to 'write' (string expected, got "
                                       f"{'boolean' if isinstance(v, bool) else 'table' if v is not None else 'nil'})")
            if isinstance(v, str):
                v = v.encode("utf-8", "surrogateescape")
            elif isinstance(v, (int, float)):
                v = (("%.14g" % v) if isinstance(v, float) else str(v)).encode("ascii")
            parts.append(v)
        data = b"".join(parts)
        f = fh.f
        fd = f.fileno()
        before = self._charge(fh, fd, len(data))
        try:
            f.write(data)
            f.flush()        # the next write (of any handle) sees the real size
        finally:
            self._settle(fd, before)
        return True

    def write_binary(self, hid, *values):
        """file:write(...) of strings holding any bytes: the Lua side (relic_io.lua) sends each
        byte >= 0x80 as the character of the same number, turned back into that byte here."""
        return self.write(hid, *(v.encode("latin-1") if isinstance(v, str) else v for v in values))

    def seek(self, hid, whence="cur", offset=0):
        """file:seek(whence, offset) -> new position."""
        fh = self._fh(hid)
        if whence is None:
            whence = "cur"
        if offset is None:
            offset = 0
        w = {"set": os.SEEK_SET, "cur": os.SEEK_CUR, "end": os.SEEK_END}.get(whence)
        if w is None or not isinstance(offset, (int, float)):
            raise SandboxViolation(f"bad argument to 'seek' (invalid option '{whence}')")
        try:
            return fh.f.seek(int(offset), w)
        except (OSError, ValueError) as e:
            return None, str(e), errno.EINVAL

    def flush(self, hid):
        """file:flush()."""
        self._fh(hid).f.flush()
        return True

    def close(self, hid):
        """file:close()."""
        fh = self._files.pop(hid, None)
        if fh is None:
            raise SandboxViolation("attempt to use a closed file")
        fh.f.close()
        return True

    def is_open(self, hid) -> bool:
        """Whether a handle is open (io.type)."""
        return hid in self._files

    def close_all(self) -> None:
        """Close every file of the mod (mod released)."""
        files, self._files = self._files, {}
        for fh in files.values():
            try:
                fh.f.close()
            except OSError:
                pass

    def open_count(self) -> int:
        """Files open now."""
        return len(self._files)

    # -- folders ------------------------------------------------------------------------

    def listdir(self, rel=None):
        """dir(path) as in CET: { {name=, type="file"|"directory"}, ... } or nil."""
        try:
            full = self.folder if rel in (None, "", ".") else self.path(rel)
        except SandboxViolation:          # CET: an invalid path gives nil
            return None
        if not full.is_dir():
            return None
        out = []
        for i, entry in enumerate(sorted(os.scandir(full), key=lambda e: e.name)):
            if i >= 10_000:
                break
            try:
                isdir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            out.append({"name": entry.name, "type": "directory" if isdir else "file"})
        return out
