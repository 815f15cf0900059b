"""Measured quality of what characters say: a scripted Judy conversation and a market NPC scene.

Simple checks per reply, reported as pass rates:

- ``no_echo``: no stretch of 40+ characters copied from the system prompt;
- ``no_tag``: no internal tag such as ``(lore:diving)``, ``[1]``, ``chat:...`` or raw JSON;
- ``no_repeat``: the longest common substring with every earlier reply of the same
  character is under 40 characters;
- ``in_character`` (Judy): asked her name, she names herself as Judy;
- ``non_empty``: the reply says something;
- NPC scene: ``actions_varied`` -- no single action (a tool, or "speak") over 50 % of the turns.

Judy runs as the real mod (a temporary copy, with her memory store); the NPCs are the
market game's mods (examples/market/mods) in the real host with the game's world,
without a window.

    .venv/bin/python bench/quality.py                       # both, default model
    .venv/bin/python bench/quality.py --only npc --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "market"))

LIMIT = 40
TAG = re.compile(r"\((?:lore|chat|note)[:)]|\[\d+\]|\bchat:\d|\{\s*\"|\"(?:say|tool|arguments)\"\s*:")

JUDY_QUESTIONS = [
    "Hello there! Who are you?",
    "What is your name?",
    "What do you do for work?",
    "Where do you live?",
    "What is the Patient Gull?",
    "Is diving in the drowned streets dangerous?",
    "Can you fix a bilge pump?",
    "What did you find on your last dive?",
    "Who are your neighbours?",
    "Tell me your name once more, please.",
]
NAME_QUESTIONS = {1, 9}  # indexes of the questions that ask for her name

NPC_EVENTS = [
    ("hear", "The traveler", "Hello! What are you selling today?"),
    ("event", "", "A thief grabs something from a stall and runs."),
    ("hear", "The traveler", "Could you give me something to eat?"),
    ("event", "", "The tide bell rings: high water within the hour."),
    ("hear", "The traveler", "Can someone show me the way to the harbor?"),
]


def lcs(a: str, b: str) -> int:
    """Length of the longest common substring (case-insensitive)."""
    a, b = a.lower(), b.lower()
    if not a or not b:
        return 0
    best, prev = 0, [0] * (len(b) + 1)
    for ch in a:
        cur = [0] * (len(b) + 1)
        for j, bj in enumerate(b, 1):
            if ch == bj:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


def check_reply(reply: str, system: str, earlier: list[str]) -> dict:
    return {
        "non_empty": bool(reply.strip()),
        "no_echo": lcs(reply, system) < LIMIT,
        "no_tag": TAG.search(reply) is None,
        "no_repeat": all(lcs(reply, e) < LIMIT for e in earlier),
    }


def rates(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k in r["checks"]})
    return {k: sum(1 for r in rows if r["checks"].get(k)) / max(1, sum(1 for r in rows if k in r["checks"]))
            for k in keys}


def judy(model_path=None) -> dict:
    from judy_chat import run

    from host.runtime.sandbox import default_lua_dir  # noqa: F401 - the host is importable

    persona = (ROOT / "mods" / "judy" / "persona.lua").read_text()
    system = " ".join(re.findall(r'"([^"]+)",', persona.split("system", 1)[1].split("}", 1)[0]))
    records = run(len(JUDY_QUESTIONS), 2048, model_path, questions=JUDY_QUESTIONS)
    rows, earlier = [], []
    for i, rec in enumerate(records):
        reply = rec["reply"]
        checks = check_reply(reply, system, earlier)
        if i in NAME_QUESTIONS:
            checks["in_character"] = "judy" in reply.lower()
        rows.append({"question": rec["question"], "reply": reply, "checks": checks})
        earlier.append(reply)
    return {"rows": rows, "pass_rates": rates(rows)}


def npc_scene(model_path=None, timeout: float = 300.0) -> dict:
    from host.app import build_host
    from world import MarketAPI, World

    world = World(seed=7)
    host = build_host(ROOT / "examples" / "market" / "mods", model_path=model_path, rag=False, load=False,
                      console=lambda line: None)
    host.expose_per_mod("market", MarketAPI(world).for_mod)
    host.declare_event("onHear", "onStreetEvent")
    host.load()
    systems = {}
    for mod_id in world.npcs:
        src = (ROOT / "examples" / "market" / "mods" / mod_id / "init.lua").read_text()
        systems[mod_id] = " ".join(re.findall(r'"([^"]*)"', src.split("system =", 1)[1].split("sampler", 1)[0]))
    rows, said = [], {m: [] for m in world.npcs}
    try:
        for kind, speaker, text in NPC_EVENTS:
            for mod_id, npc in world.npcs.items():
                mod = host.mods[mod_id]
                before_actions, before_lines = len(npc.actions), len(world.log)
                npc.mode, npc.busy = "wander", True  # every NPC is on the street for the scene
                fn = mod.public[kind]
                ok, accepted = mod.call(fn, *((speaker, text) if kind == "hear" else (text,)))
                end = time.monotonic() + timeout
                while npc.busy and time.monotonic() < end:
                    host.update(1 / 60)
                    time.sleep(0.002)
                reply = world.log[-1][1] if len(world.log) > before_lines else ""
                actions = npc.actions[before_actions:]
                checks = check_reply(reply, systems[mod_id], said[mod_id])
                said[mod_id].append(reply)
                rows.append({"npc": npc.name, "event": text, "reply": reply, "actions": actions,
                             "checks": checks})
    finally:
        host.shutdown()
    counts = Counter(a for r in rows for a in (r["actions"] or ["speak"]))
    total = sum(counts.values())
    top = max(counts.values()) / total if total else 1.0
    return {"rows": rows, "pass_rates": rates(rows), "actions": dict(counts), "top_action_share": top,
            "actions_varied": top <= 0.5}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["judy", "npc"])
    ap.add_argument("--model")
    ap.add_argument("--json", help="write the replies, checks and pass rates here")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    out = {}
    if args.only in (None, "judy"):
        out["judy"] = judy(args.model)
        for r in out["judy"]["rows"]:
            bad = [k for k, v in r["checks"].items() if not v]
            print(f"Q: {r['question']}\n   Judy: {r['reply']}\n   {'FAIL ' + ', '.join(bad) if bad else 'ok'}")
        print("judy pass rates:", json.dumps(out["judy"]["pass_rates"]))
    if args.only in (None, "npc"):
        out["npc"] = npc_scene(args.model)
        for r in out["npc"]["rows"]:
            bad = [k for k, v in r["checks"].items() if not v]
            print(f"[{r['event'][:40]}] {r['npc']}: {r['reply']} {r['actions'] or ''} "
                  f"{'FAIL ' + ', '.join(bad) if bad else 'ok'}")
        print("npc pass rates:", json.dumps(out["npc"]["pass_rates"]), "actions:", out["npc"]["actions"],
              f"top action share {out['npc']['top_action_share']:.0%}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
