"""Small helpers shared by the set-up steps: progress, hashing, locks, pip.

Nothing here touches the process's own stdout/stderr file descriptors; child
processes either inherit a real terminal or have their output piped and
forwarded line by line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Iterator

from host.errors import SetupError

try:  # POSIX; on other systems concurrent set-ups are simply not serialized
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_CHUNK = 1 << 20


def say(message: str) -> None:
    """Print one progress line for the person running setup (to stderr)."""
    print(f"[relic setup] {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, what: str | None = None) -> None:
    """Raise SetupError unless ``path`` hashes to ``expected`` (hex sha256)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise SetupError(
            f"checksum mismatch for {what or path}: expected sha256 {expected}, "
            f"got {actual} ({path}). The download is corrupt or not the pinned file; "
            "delete it and run setup again."
        )


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` for the ``with`` block.

    Two set-ups racing for the same cached item (two terminals, make -j)
    then build it once: the second waits, finds it cached and returns.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_tree(path: Path) -> None:
    """Remove a folder or file if it is there; never follow a link out of it."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False  # replaced by pytest's capture or an IDE console


def pip_download(args: list[str], dest: Path) -> list[Path]:
    """Run ``python -m pip download ARGS -d DEST`` with this interpreter.

    Returns the files pip saved.  pip's own download progress is shown when
    stderr is a terminal; otherwise its output is forwarded line by line.
    ``--no-cache-dir`` keeps a second copy of large files out of pip's cache.
    """
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", *args, "-d", str(dest),
        "--no-cache-dir", "--disable-pip-version-check",
    ]
    if _stderr_is_terminal():
        # pip draws its progress bar only on a terminal; let it have ours.
        rc = subprocess.run(cmd, stdout=sys.stderr.fileno(), stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise SetupError(f"`pip download {' '.join(args)}` failed (exit {rc}); "
                             "is the package registry reachable? (pip's output is above)")
    else:
        run_forwarding(cmd)
    return sorted(p for p in dest.iterdir() if p.is_file())


def run_forwarding(cmd: list[str], keep: int = 40) -> str:
    """Run ``cmd``, forward its output to stderr, return its last lines.

    Raises SetupError with the last ``keep`` lines when it fails.
    """
    last: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                last.append(line.rstrip("\n"))
                sys.stderr.write("    " + line)
            proc.wait()
        except BaseException:
            proc.kill()  # an interrupted set-up must not leave the child running
            raise
    tail = "\n".join(last)
    if proc.returncode != 0:
        name = " ".join(Path(cmd[0]).name if i == 0 else a for i, a in enumerate(cmd))
        raise SetupError(f"`{name}` failed (exit {proc.returncode}):\n{tail}")
    return tail


DEBIAN_MIRROR = "http://deb.debian.org/debian"


def apt_private_options(work: Path, suite: str) -> list[str]:
    """apt-get options for private package lists of one Debian ``suite`` under ``work``.

    `apt-get update`/`download` with these read and write only ``work`` (nothing of the
    system's apt state changes), so set-up can fetch a pinned .deb as an ordinary user would.
    """
    (work / "lists" / "partial").mkdir(parents=True)
    (work / "cache" / "archives" / "partial").mkdir(parents=True)
    sources = work / "sources.list"
    sources.write_text(f"deb {DEBIAN_MIRROR} {suite} main\n")
    return ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}",
            "-o", "APT::Sandbox::User=root"]

