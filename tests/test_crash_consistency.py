"""Kill -9 of the host while it writes leaves every file readable and consistent.

A real host (tests/crash_child.py: the real model, worker, llm and rag) runs
a mod that saves a session or ingests documents in a loop; it is killed with
SIGKILL at a random moment after its first completed write, again and again.
After every kill the files are checked on disk; after the last one a fresh
host loads them through the mod API.

Each round starts a host (~3-6 s), so `make test` runs RELIC_CRASH_ROUNDS
rounds (default 2); a longer run: RELIC_CRASH_ROUNDS=20.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


from host.engine.session import read_header

CHILD = Path(__file__).with_name("crash_child.py")
ROUNDS = int(os.environ.get("RELIC_CRASH_ROUNDS", "2"))


def run_and_kill(kind: str, mods: Path, rng: random.Random, marker: str) -> int:
    """Start the child, wait for its first completed write, SIGKILL it mid-loop; returns writes seen."""
    p = subprocess.Popen([sys.executable, str(CHILD), kind, str(mods)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, cwd=CHILD.parent.parent)
    seen = 0
    try:
        deadline = time.monotonic() + 120
        for line in p.stdout:
            assert "ERROR" not in line, line
            if marker in line:
                seen += 1
                break
            assert time.monotonic() < deadline, "the child never wrote"
        time.sleep(rng.uniform(0.0, 0.4))    # somewhere inside a later write
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    return seen


def run_check(kind: str, mods: Path) -> str:
    p = subprocess.Popen([sys.executable, str(CHILD), kind, str(mods)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, cwd=CHILD.parent.parent)
    try:
        for line in p.stdout:
            if "CHECKED" in line:
                return line.strip()
        return "no CHECKED line"
    finally:
        p.kill()
        p.wait(timeout=30)


def test_kill_9_during_session_save(tmp_path):
    mods = tmp_path / "mods"
    rng = random.Random(12)
    for _ in range(ROUNDS):
        assert run_and_kill("session", mods, rng, "SAVED") == 1
        path = mods / "writer" / "sessions" / "slot.session"
        header, state = read_header(path)          # raises on a torn or garbage file
        assert [m["role"] for m in header["messages"]] == ["user", "assistant"]
        assert header["system"] == "You keep a ship's log."
        assert len(state) > 0 and len(header["kv_tokens"]) > 0
        # a killed save leaves at most its own temporary file (the next save removes it), never a half session
        leftovers = [p.name for p in path.parent.iterdir() if p.name != "slot.session"]
        assert len(leftovers) <= 1 and all(n.startswith("slot.session.tmp") for n in leftovers), leftovers
    assert run_check("session-check", mods) == "[writer] CHECKED length"


def test_kill_9_during_store_ingest(tmp_path):
    mods = tmp_path / "mods"
    rng = random.Random(13)
    for _ in range(ROUNDS):
        assert run_and_kill("ingest", mods, rng, "ADDED") == 1
        db = mods / "writer" / "kb.rag.sqlite3"
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
            dim = int(dict(conn.execute("SELECT key, value FROM meta")).get("dim", 0) or 0)
            docs = conn.execute("SELECT id, text FROM documents").fetchall()
            assert docs, "no committed document survived"
            for doc, text in docs:
                rows = conn.execute("SELECT seq, char_start, char_end, text, length(embedding) FROM chunks "
                                    "WHERE doc = ? ORDER BY seq", (doc,)).fetchall()
                assert [r[0] for r in rows] == list(range(len(rows))) and rows, doc
                for _, start, end, chunk, nbytes in rows:
                    assert text[start:end] == chunk        # chunks belong to this version of the text
                    assert nbytes > 0 and (not dim or nbytes == 4 * dim)
            orphans = conn.execute("SELECT count(*) FROM chunks WHERE doc NOT IN (SELECT id FROM documents)")
            assert orphans.fetchone()[0] == 0
            n_fts = conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
            assert n_fts == conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        finally:
            conn.close()
    assert run_check("ingest-check", mods) == "[writer] CHECKED 3"
