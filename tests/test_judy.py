"""The judy mod and `make judy`'s driver, headless, with the real model."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_judy(mods: Path, text: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "judy" / "main.py"), "--mods", str(mods)],
                         input=text, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_judy_answers_and_remembers_across_a_restart(tmp_path):
    mods = tmp_path / "mods"
    shutil.copytree(ROOT / "mods" / "judy", mods / "judy")
    first = run_judy(mods, "Hello Judy, what are you fixing today?\n")
    assert "1 mod(s) loaded" in first and "bilge pump" in first  # her greeting
    replies = re.findall(r"Judy: (.+)", first)
    assert replies and replies[0].strip(), first
    status = re.findall(r"\[(\d+) fps, frame p99 ([\d.]+) ms", first)
    assert status, "the status line shows the frame loop"
    assert (mods / "judy" / "sessions" / "judy.session").is_file(), "saved on shutdown"

    assert re.search(r"\[first token [\d.]+ s, \d+ tok/s\]", first), "the status line shows TTFT and tok/s"
    assert "(restored" not in first

    second = run_judy(mods, "And what did I ask you before?\n")
    assert "(restored 1 turns)" in second
    reused = re.findall(r"(\d+) of (\d+) prompt tokens reused", second)
    assert reused and int(reused[0][0]) > 50, second  # the restored session's cache was used
    log = (mods / "judy" / "judy.log").read_text()
    assert "restored the saved conversation" in log


def test_quit_exits_cleanly(tmp_path):
    mods = tmp_path / "mods"
    shutil.copytree(ROOT / "mods" / "judy", mods / "judy")
    out = run_judy(mods, "quit\nthis line is never read\n")
    assert "bye." in out and "Judy:" not in out


def test_an_empty_line_cancels_her_reply_without_quitting(tmp_path):
    """A reply can be cancelled (Esc or an empty line) and the chat goes on."""
    mods = tmp_path / "mods"
    shutil.copytree(ROOT / "mods" / "judy", mods / "judy")
    out = run_judy(mods, "Tell me the whole story of Lowmarsh, every year of it.\n\nWhat is your name?\n")
    assert "(cancelled)" in out, out
    assert len(re.findall(r"Judy: ", out)) == 2 and "bye." in out, out


def test_piped_quit_lets_the_reply_in_progress_finish(tmp_path):
    """`printf 'question\\nquit\\n' | make judy` quit in the middle of her reply."""
    mods = tmp_path / "mods"
    shutil.copytree(ROOT / "mods" / "judy", mods / "judy")
    out = run_judy(mods, "What is your name?\nquit\n")
    reply = re.search(r"Judy: (.+)", out)
    assert reply and re.search(r"[.!?]", reply.group(1)), out
    assert re.search(r"\[first token [\d.]+ s, \d+ tok/s\]", out) and "bye." in out, out
