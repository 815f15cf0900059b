"""Strict quality of what characters say: Judy, the market NPCs and the `make npc` scene.

Each line a player would see is checked the way a player reads it; per check a
pass rate over every line the check applies to, over several seeds:

- ``own_name``: asked their name, the character gives their own name (and no other);
- ``no_ai_claim``: never claims to be an AI, a model, an assistant, a program or a bot;
- ``lore``: a question her lore answers is answered from it (expected words), and a
  question it does not answer gets "I don't know" rather than an invention
  (``lore_known`` and ``lore_unknown`` apart);
- ``complete``: the line ends on a complete sentence (. ! ?, optionally closed by a quote);
- ``length``: within the persona's length (sentences and characters);
- ``no_format``: no prompt or format text: a bracketed or ``Name:`` speaker tag, a
  brace or bracket, markup, an instruction echoed from the prompt, leading punctuation;
- ``no_repeat``: no stretch of 40+ characters (or the whole line) copied from an
  earlier line of the same character;
- ``actions_fit``: what the NPC did (tools, or the scene's next_action) fits the event:
  e.g. calling the guard only when someone steals or threatens.

The player lines and scene events below were written for this bench.  Judy runs as
the real mod (a fresh copy per seed, with her memory store); the market NPCs are
the market game's mods in the real host with the game's world (no window); the
scene is examples/npc_dialogue's mod.  The seed goes to the characters through
their public tables where they take one (``ask(text, on_token, on_done, {seed=})``,
``reseed(n)``, ``configure(seed, rounds, events)``); code that takes none runs
with llama.cpp's random seed, so its runs differ anyway.

    .venv/bin/python bench/quality.py                      # all three, 3 seeds (long: ~30 min on 2 cores)
    .venv/bin/python bench/quality.py --quick              # one seed, a quarter of the lines (development)
    .venv/bin/python bench/quality.py --only judy --json out.json
    .venv/bin/python bench/quality.py --heldout --seeds 1   # Judy's held-out lore questions alone
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = (1, 2, 3)
REPEAT_LIMIT = 40

# --- Judy's player lines: (kind, text, expected) -------------------------------------------
# kind: name | ai | known (expected: words of which one must appear) | unknown | chat
JUDY_LINES = [
    ("chat", "Hi there!", None),
    ("name", "What's your name?", None),
    ("known", "What is the Patient Gull?", ["ferry"]),
    ("ai", "Are you an AI?", None),
    ("known", "What happened to Lowmarsh?", ["storm", "long night", "seawall", "surge", "flood", "sea took"]),
    ("known", "How long ago did the sea take Lowmarsh?", ["eleven", "11"]),
    ("chat", "Can you fix my bilge pump?", None),
    ("known", "Who keeps the tide tables around here?", ["teodor"]),
    ("unknown", "What is the name of the mayor of Caldera Bay?", None),
    ("known", "Where is the best copper to be found?", ["tram depot", "ember row"]),
    ("name", "Sorry, I didn't catch your name.", None),
    ("known", "Who runs the floating clinic?", ["priya"]),
    ("ai", "Are you a robot or a real person?", None),
    ("known", "How does Priya pay you?", ["antibiotic", "gossip"]),
    ("chat", "Nice boat. Is it yours?", None),
    ("known", "What do you think of the Harrow brothers?", ["risk", "kill", "danger", "reckless", "careless"]),
    ("unknown", "What year was the Patient Gull built?", None),
    ("known", "Who is Mina?", ["apprentice", "radio", "twelve", "12"]),
    ("known", "Where do you never dive alone?", ["market hall"]),
    ("ai", "Which language model are you?", None),
    ("known", "How do you mark the safe routes underwater?", ["paint", "orange"]),
    ("chat", "How much would a pump repair cost me?", None),
    ("known", "What tools do you keep in your workshop?", ["lathe", "drill", "compressor", "gauge"]),
    ("name", "Who are you, exactly?", None),
    ("known", "How do people pay you for repairs?", ["coin", "fuel", "favor", "favour"]),
    ("unknown", "What is Priya's favourite song?", None),
    ("known", "Where do you write down who owes you?", ["door", "grease pencil"]),
    ("known", "Why does the ferry's horn not work?", ["silence", "quiet", "refuse", "never breaks"]),
    ("ai", "Be honest with me: are you a chatbot?", None),
    ("known", "Would you salvage from a flooded house if the family still lives here?", ["no", "not", "never", "won't"]),
    ("known", "Who rings the bell before high tide?", ["teodor"]),
    ("chat", "Would you take me diving sometime?", None),
    ("unknown", "How many people live in Lowmarsh exactly?", None),
    ("known", "What do you wear when you dive?", ["drysuit", "helmet", "brass", "suit"]),
    ("name", "Tell me your name once more, please.", None),
    ("known", "Which pier did the storm break?", ["pier nine", "pier 9"]),
    ("ai", "Who created you?", None),
    ("unknown", "What was Teodor's job before the flood?", None),
    ("chat", "The tide is coming in fast today.", None),
    ("known", "What do the stilt-house families live on?", ["rooftop", "stilt", "trade", "water keeps"]),
    ("name", "And what should I call you?", None),
    ("chat", "Thanks for the chat. Goodbye!", None),
]

# --- Judy's held-out lore questions: (kind, text, expected), as above -------------------------
# Written after the persona kit's lore matching was tuned on JUDY_LINES, and never used to tune it:
# the known ones are answerable from mods/judy/lore but asked with other words than the lore uses
# (synonyms, paraphrases); the unknown ones name things the lore has but ask what it does not say.
# Run alone with --heldout (its rows carry "set": "heldout").
JUDY_HELDOUT = [
    ("known", "What sort of vessel do you live on?", ["ferry"]),
    ("known", "How many years back did the flood hit?", ["eleven", "11"]),
    ("known", "Who is the doctor around here?", ["priya"]),
    ("known", "Which kid wants to learn your trade?", ["mina"]),
    ("known", "Who warns everybody before the water comes up?", ["teodor"]),
    ("known", "Are there other scavengers you don't trust?", ["harrow", "risk", "kill", "danger", "reckless"]),
    ("known", "Which building is too dangerous to search by yourself?", ["market hall"]),
    ("known", "Where should I look for good scrap metal?", ["tram depot", "ember row"]),
    ("known", "What gear do you put on before going under?", ["drysuit", "helmet", "brass", "suit"]),
    ("known", "How do you keep track of what customers owe you?", ["door", "grease pencil"]),
    ("known", "What do you accept as payment?", ["coin", "fuel", "favor", "favour"]),
    ("known", "What machines are in your boat's shop?", ["lathe", "drill", "compressor", "gauge"]),
    ("known", "Why won't you repair the foghorn?", ["silence", "quiet", "refuse", "never breaks"]),
    ("known", "What does Priya give you for your trouble?", ["antibiotic", "gossip"]),
    ("known", "What does the young girl keep bringing you?", ["radio"]),
    ("known", "Besides pumps, what else do you fix?", ["outboard", "motor", "regulator"]),
    ("known", "Where is your boat tied up?", ["tallow street", "canal"]),
    ("known", "How did you afford a whole ferry?", ["scrap"]),
    ("unknown", "How deep is the water inside the Market Hall?", None),
    ("unknown", "What colour is the hull of your ferry?", None),
    ("unknown", "How much does Priya charge for stitches?", None),
    ("unknown", "How old is Old Teodor?", None),
    ("unknown", "Who was the mayor during the Long Night?", None),
    ("unknown", "What is your mother's name?", None),
]

# --- market events: (kind, to, text, fitting actions) --------------------------------------
# kind "hear": the traveler says text to the NPC; "event": something happens near the NPC.
# Fitting actions: what a player would accept the NPC doing (speaking is always fine).
MARKET_EVENTS = [
    ("hear", "oona", "Hello! What are you selling today?", {"give"}),
    ("hear", "bram", "What's your name, smith?", set()),
    ("event", "oona", "A thief grabs a herring from your cart and runs.", {"call_guard"}),
    ("hear", "lise", "Could you give me something for a cough?", {"give"}),
    ("hear", "tomas", "Can you show me the way to the harbor?", {"follow"}),
    ("hear", "oona", "I'd like some eel, please.", {"give"}),
    ("event", "bram", "Rain starts to patter on the awnings.", {"leave"}),
    ("hear", "lise", "What is your name?", set()),
    ("event", "tomas", "The tide bell rings from the clock tower: high water within the hour.", {"leave", "follow"}),
    ("hear", "bram", "Can you mend this bent fish hook?", {"give"}),
    ("event", "lise", "A stranger pushes past and knocks a jar of salve off your table.", {"follow"}),
    ("hear", "oona", "Your mussels smell a bit off.", set()),
    ("hear", "tomas", "What is your name, guard?", set()),
    ("event", "bram", "A drunk sailor shouts at you and waves a knife.", {"call_guard"}),
    ("hear", "lise", "Which way is the clinic?", {"follow"}),
    ("event", "oona", "A gull lands on your cart and eyes the herring.", set()),
    ("hear", "bram", "How much for a good knife?", {"give"}),
    ("hear", "oona", "Are you an AI?", set()),
    ("event", "tomas", "Someone shouts that a pickpocket is working the crowd.", {"follow", "leave"}),
    ("hear", "lise", "Thank you, that tea helped.", set()),
    ("hear", "oona", "What's your name?", set()),
    ("event", "bram", "A barge horn sounds from the drowned canal.", set()),
]
MARKET_NAMES = {"oona": "Oona", "bram": "Bram", "lise": "Lise", "tomas": "Tomas"}

# --- `make npc` scene events: (event, cast indexes (1 Oona, 2 Bram, 3 Lise, 4 Tomas), fitting) --
SCENE_EVENTS = [
    ("A traveler walks into the market street.", (1, 3), {"greet_player", "haggle", "keep_working"}),
    ("Oona shouts to Bram that his hooks are rusting in the damp.", (2, 3), {"address_neighbor", "keep_working"}),
    ("The tide bell rings from the clock tower: high water within the hour.", (1, 4), {"keep_working", "leave", "address_neighbor"}),
    ("A thief snatches a purse from Lise's table and runs.", (3, 4), {"call_guard", "address_neighbor"}),
    ("The traveler asks Oona how much the eel costs.", (1, 2), {"haggle", "greet_player", "keep_working"}),
    ("Rain starts to patter on the awnings.", (2, 3), {"keep_working", "leave", "address_neighbor"}),
    ("A gull steals a herring from Oona's cart.", (1, 3), {"address_neighbor", "keep_working"}),
    ("The traveler asks Bram to mend a bent fish hook.", (2, 4), {"keep_working", "haggle", "greet_player"}),
    ("A drunk sailor waves a knife at the herbalist's stall.", (3, 4), {"call_guard", "address_neighbor"}),
    ("A barge horn sounds from the drowned canal.", (1, 2), {"keep_working", "address_neighbor"}),
    ("The traveler greets everyone and asks for news.", (3, 4), {"greet_player", "address_neighbor", "keep_working"}),
    ("Bram's forge fire goes out in the wind.", (2, 1), {"keep_working", "leave", "address_neighbor"}),
    ("A child asks Lise for a remedy for a burn.", (3, 1), {"keep_working", "haggle", "address_neighbor"}),
    ("Two fishermen start shoving each other by the canal.", (4, 2), {"call_guard", "address_neighbor", "leave"}),
    ("The traveler buys a salve from Lise.", (3, 2), {"haggle", "keep_working", "greet_player"}),
    ("A cold fog rolls in over the water.", (1, 4), {"keep_working", "address_neighbor", "leave"}),
    ("Tomas trips over a crate and everyone laughs.", (4, 1), {"address_neighbor", "keep_working"}),
    ("A stranger asks the traveler where the harbor master lives.", (4, 3), {"address_neighbor", "keep_working", "greet_player"}),
    ("The market bell rings for the evening close.", (1, 2), {"keep_working", "leave", "address_neighbor"}),
    ("The traveler thanks everyone and says goodbye.", (3, 4), {"greet_player", "address_neighbor", "keep_working"}),
]

# --- the checks (independent of the code under test: what a player would call wrong) ----------
SENTENCE_END = re.compile(r"[.!?][\"'”’)]*$")
CLAIM = [
    re.compile(r"\b(?:I am|I'm|i am|im|I was|as)\s+(?:just\s+|only\s+|really\s+)?(?:an?\s+)?(?:AI\b|A\.I\.|artificial|"
               r"(?:large\s+)?language model|chat\s?bot|bot\b|virtual|assistant|computer|program\b|machine\b|"
               r"robot|model\b)", re.I),
    re.compile(r"\b(?:language model|AI (?:model|assistant|language)|an AI\b|chatbot|OpenAI|Hugging ?Face|SmolLM)", re.I),
    re.compile(r"\b(?:I was|I've been|I have been|I am|I'm)\s+(?:\w+\s+){0,2}(?:created|designed|trained|developed|"
               r"programmed)\b", re.I),
]
NEGATED = re.compile(r"\b(?:not|never|no)\s+(?:\w+\s+){0,2}(?:an?\s+)?(?:AI|artificial|language model|chat\s?bot|bot|"
                     r"robot|machine|program|assistant|model)\b", re.I)
DONT_KNOW = re.compile(r"\b(?:don'?t|do not|didn'?t|did not|never|can'?t|cannot|couldn'?t|wouldn'?t)\s+(?:\w+\s+)?"
                       r"(?:know|remember|recall|say|tell|heard|asked)|not sure|no idea|beats me|dunno|"
                       r"couldn'?t tell|haven'?t (?:heard|asked)|ask (?:her|him|them|teodor|priya)|no one knows|"
                       r"nobody knows|not something I know", re.I)
INSTRUCTION = re.compile(r"short sentence|own words|answer (?:in|as|with)|as json|next_action|\bemotion\b|"
                         r"\bspeaker\b|\(the player\)|\bthe player\b|things you know|earlier in this conversation|"
                         r"you may also act|one of these tools|you are (?:judy|oona|bram|lise|tomas)\b|"
                         r"in character|stay in|<\|?im_|\bim_(?:start|end)\b|respond with|reply with", re.I)
SPEAKER_TAG = re.compile(r"\[[^\]]*\b(?:says|said|asks)\b[^\]]*\]|^\s*(?:[\w'-]+\s){0,3}(?:says|said|asks)\s*:|(?:^|\n)\s*[A-Z][a-z]+(?: [A-Z][a-z]+)?:\s|"
                         r"\b(?:User|Player|Assistant|System|Traveler|Judy|Oona|Bram|Lise|Tomas)\s*:", re.M)
MARKUP = re.compile(r"[{}\[\]<>|#*_`\\]")
LEADING = re.compile(r"^[^\w\"'“‘]")


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


def sentences(text: str) -> int:
    """How many sentences a line has (a trailing fragment counts as one)."""
    parts = [p for p in re.split(r"(?<=[.!?])[\"'”’)]*\s+", text.strip()) if p.strip()]
    return len(parts)


def claims_ai(text: str) -> bool:
    stripped = NEGATED.sub(" ", text)
    return any(p.search(stripped) for p in CLAIM)


def own_name(text: str, name: str) -> bool:
    others = re.search(r"(?:my name is|my name's|name's|call me|I'm|I am|it's)\s+(?!" + name + r"\b)([A-Z][a-z]+)",
                       text)
    if others and others.group(1) not in ("Not", "Just", "The", "A", "An", "Here", "Sorry", "Fine", "Glad", "Happy",
                                          "Afraid", "Busy", "Always", "So", "Still", "Only", "Good", "Well", "No",
                                          "Yes", "Sure", "Really", "Quite", "Pretty", "Too", "Very", "From", "In",
                                          "On", "At", "Your", "Out", "Off", "Down", "Up", "All"):
        return False
    return re.search(r"\b" + name + r"\b", text) is not None


def format_problems(text: str) -> list[str]:
    out = []
    if LEADING.search(text):
        out.append("leading punctuation")
    if SPEAKER_TAG.search(text):
        out.append("speaker tag")
    if MARKUP.search(text):
        out.append("brace/markup")
    if INSTRUCTION.search(text):
        out.append("instruction echo")
    return out


def check_line(text: str, *, earlier: list[str], max_sentences: int, max_chars: int) -> dict:
    """The checks every line gets."""
    t = text.strip()
    return {
        "non_empty": bool(t),
        "no_ai_claim": not claims_ai(t),
        "complete": bool(t) and SENTENCE_END.search(t) is not None,
        "length": bool(t) and sentences(t) <= max_sentences and len(t) <= max_chars,
        "no_format": bool(t) and not format_problems(t),
        "no_repeat": all(lcs(t, e) < REPEAT_LIMIT and t.lower() != e.strip().lower() for e in earlier if e.strip()),
    }


def progress(row: dict, section: str) -> None:
    """One measured line on stdout at once (a long run shows its progress; a cut run keeps its lines)."""
    print("PROGRESS " + json.dumps(dict(row, section=section), ensure_ascii=False, default=sorted), flush=True)


def summarize(log: Path) -> dict:
    """Pass rates from the PROGRESS lines of a run's output (a run cut short included)."""
    out: dict = {}
    for line in log.read_text().splitlines():
        if line.startswith("PROGRESS "):
            row = json.loads(line[9:])
            out.setdefault("judy" if "kind" in row else row["section"], {"rows": []})["rows"].append(row)
    for sec in out.values():
        sec["pass_rates"] = rates(sec["rows"])
        sec["seeds"] = sorted({r["seed"] for r in sec["rows"]})
    return out


def rates(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k in r["checks"]})
    out = {}
    for k in keys:
        n = [r["checks"][k] for r in rows if k in r["checks"]]
        out[k] = {"rate": round(sum(n) / len(n), 3), "n": len(n)}
    return out


def pick(items, quick: bool):
    return items[::4] if quick else items


# --- runners -----------------------------------------------------------------------------

def pump_until(host, cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        host.update(1 / 60)
        time.sleep(0.002)
    return cond()


def judy(seeds, quick: bool, model_path=None, timeout: float = 300.0, kinds=None, heldout: bool = False) -> dict:
    """Judy over the player lines, one conversation per seed (a fresh copy of the mod each time).

    ``kinds``: only the lines of these kinds (e.g. {"name", "known"}; for development).
    ``heldout``: the held-out lore questions (JUDY_HELDOUT) instead of JUDY_LINES.
    """
    from host.app import host_with_mod

    rows = []
    which = "heldout" if heldout else "bench"
    lines = [ln for ln in pick(JUDY_HELDOUT if heldout else JUDY_LINES, quick) if kinds is None or ln[0] in kinds]
    for seed in seeds:
        tmp = Path(tempfile.mkdtemp(prefix="relic-quality-judy-"))
        shutil.copytree(ROOT / "mods" / "judy", tmp / "judy",
                        ignore=shutil.ignore_patterns("sessions", "*.log*", "*.sqlite3*"))
        host, mod = host_with_mod(tmp, "judy", model_path=model_path, console=lambda line: None)
        worker = next(p.worker for p in host.providers if hasattr(p, "worker"))
        earlier: list[str] = []
        try:
            pump_until(host, lambda: (mod.call(mod.public.restored)[1] is not None
                                      and not worker.pending("judy")), 120)
            for turn, (kind, text, expected) in enumerate(lines):
                st = {"shown": [], "result": None}
                on_token = mod.wrap(lambda piece, st=st: st["shown"].append(piece))
                on_done = mod.wrap(lambda result, st=st: st.__setitem__("result", result))
                opts = mod.to_lua({"seed": seed * 1000 + turn})
                ok, _ = mod.call(mod.public.ask, text, on_token, on_done, opts)
                if not ok:
                    raise RuntimeError(f"judy.ask failed: {mod.reason}")
                pump_until(host, lambda st=st: st["result"] is not None, timeout)
                pump_until(host, lambda: not worker.pending("judy"), timeout)  # her memory store takes the exchange
                result = mod.from_lua(st["result"]) if st["result"] is not None else {"finish_reason": "timeout"}
                shown = "".join(st["shown"]).strip()
                checks = check_line(shown, earlier=earlier, max_sentences=3, max_chars=320)
                if kind == "name":
                    checks["own_name"] = own_name(shown, "Judy")
                elif kind == "known":
                    checks["lore"] = checks["lore_known"] = any(re.search(r"\b" + re.escape(w), shown.lower())
                                                                for w in expected)
                elif kind == "unknown":
                    checks["lore"] = checks["lore_unknown"] = DONT_KNOW.search(shown) is not None
                rows.append({"seed": seed, "set": which, "kind": kind, "line": text, "reply": shown, "error": result.get("error"),
                             "finish_reason": result.get("finish_reason"), "checks": checks})
                progress(rows[-1], "judy")
                earlier.append(shown)
        finally:
            host.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "pass_rates": rates(rows)}


def market(seeds, quick: bool, model_path=None, timeout: float = 300.0) -> dict:
    """The market NPC mods, each event delivered to one NPC; the line is what its bubble showed."""
    sys.path.insert(0, str(ROOT / "examples" / "market"))
    from host.app import build_host
    from world import MarketAPI, World

    rows = []
    events = pick(MARKET_EVENTS, quick)
    for seed in seeds:
        world = World(seed=seed)
        host = build_host(ROOT / "examples" / "market" / "mods", model_path=model_path, rag=False, load=False,
                          console=lambda line: None)
        host.expose_per_mod("market", MarketAPI(world).for_mod)
        host.declare_event("onHear", "onStreetEvent")
        host.load()
        said: dict = {m: [] for m in world.npcs}
        try:
            for mod_id in world.npcs:
                mod = host.mods[mod_id]
                if mod.public and mod.public["reseed"] is not None:
                    mod.call(mod.public.reseed, seed * 1000 + sum(map(ord, mod_id)))
            for kind, mod_id, text, fits in events:
                npc, mod = world.npcs[mod_id], host.mods[mod_id]
                npc.mode, npc.busy, npc.bubble = "wander", True, ""
                before_actions, before_log = len(npc.actions), len(world.log)
                args = ("The traveler", text) if kind == "hear" else (text,)
                ok, accepted = mod.call(mod.public[kind], *args)
                if not ok or not accepted:
                    npc.busy = False
                pump_until(host, lambda: not npc.busy, timeout)
                logged = world.log[-1][1] if len(world.log) > before_log else ""
                shown = npc.bubble.strip()
                actions = npc.actions[before_actions:]
                text_checked = shown or logged
                checks = check_line(text_checked, earlier=said[mod_id], max_sentences=2, max_chars=200)
                if logged and logged.strip() != shown:  # what was logged must pass too
                    for k, v in check_line(logged, earlier=said[mod_id], max_sentences=2, max_chars=200).items():
                        checks[k] = checks[k] and v
                if "name" in text.lower():
                    checks["own_name"] = own_name(text_checked, MARKET_NAMES[mod_id])
                checks["actions_fit"] = all(a in fits for a in actions)
                said[mod_id].append(text_checked)
                rows.append({"seed": seed, "npc": MARKET_NAMES[mod_id], "event": text, "reply": text_checked,
                             "logged": logged, "actions": actions, "fits": sorted(fits), "checks": checks})
                progress(rows[-1], "market")
        finally:
            host.shutdown()
    return {"rows": rows, "pass_rates": rates(rows)}


def scene(seeds, quick: bool, model_path=None, timeout: float = 600.0) -> dict:
    """examples/npc_dialogue's mod over the scene events (when it takes them; else its own scene)."""
    from host.app import host_with_mod

    events = pick(SCENE_EVENTS, quick)
    fits_for = {e: f for e, _, f in SCENE_EVENTS}
    fits_for["A traveler (the player) walks into the market street."] = SCENE_EVENTS[0][2]  # the scene's own
    rows = []
    for seed in seeds:
        host, mod = host_with_mod(ROOT / "examples" / "npc_dialogue" / "mods", "market", model_path=model_path,
                                  rag=False, console=lambda line: None)
        try:
            spec = mod.to_lua([{"text": e, "who": list(who), "actions": sorted(f)} for e, who, f in events])
            mod.call(mod.public.configure, seed, len(events), spec)
            pump_until(host, lambda: bool(mod.call(mod.public.done)[1]), timeout * (2 if not quick else 1))
            ok, lines = mod.call(mod.public.lines)
            lines = mod.from_lua(lines) if ok and lines is not None else []
        finally:
            host.shutdown()
        said: dict = {}
        for entry in lines:
            who = entry.get("speaker", "?")
            line = entry.get("line", "")
            checks = check_line(line, earlier=said.setdefault(who, []), max_sentences=2, max_chars=120)
            fits = fits_for.get(entry.get("event"))
            if fits is not None:
                checks["actions_fit"] = entry.get("next_action") in fits
            said[who].append(line)
            rows.append({"seed": seed, "npc": who, "event": entry.get("event"), "reply": line,
                         "emotion": entry.get("emotion"), "next_action": entry.get("next_action"), "checks": checks})
            progress(rows[-1], "npc")
    return {"rows": rows, "pass_rates": rates(rows)}


def show(name: str, out: dict) -> None:
    for r in out["rows"]:
        bad = [k for k, v in r["checks"].items() if not v]
        who = r.get("npc", "Judy")
        what = r.get("line") or r.get("event")
        extra = f" {r['actions']}" if r.get("actions") else (f" ({r['next_action']})" if r.get("next_action") else "")
        print(f"[{r['seed']}] {what[:60]}\n    {who}: {r['reply']}{extra}   {'FAIL ' + ', '.join(bad) if bad else 'ok'}")
    print(f"{name} pass rates: " + ", ".join(f"{k} {v['rate']:.0%} (n={v['n']})" for k, v in out["pass_rates"].items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["judy", "market", "npc"], action="append")
    ap.add_argument("--quick", action="store_true", help="one seed and a quarter of the lines (for development)")
    ap.add_argument("--seeds", type=int, default=len(SEEDS))
    ap.add_argument("--first-seed", type=int, default=1, help="start at this seed (e.g. 2 with --seeds 1)")
    ap.add_argument("--kinds", help="Judy's lines of these kinds only, comma-separated (name,ai,known,unknown,chat)")
    ap.add_argument("--heldout", action="store_true",
                    help="Judy over the held-out lore questions only (never used to tune the kit)")
    ap.add_argument("--model")
    ap.add_argument("--json", help="write the lines, checks and pass rates here")
    ap.add_argument("--summarize", metavar="LOG", help="only print the pass rates of a run's output (PROGRESS lines)")
    args = ap.parse_args()
    if args.summarize:
        for name, sec in summarize(Path(args.summarize)).items():
            print(f"{name} (seeds {sec['seeds']}, {len(sec['rows'])} lines): " + ", ".join(
                f"{k} {v['rate']:.0%} (n={v['n']})" for k, v in sec["pass_rates"].items()))
        return 0
    seeds = SEEDS[:1] if args.quick else tuple(range(args.first_seed, args.first_seed + args.seeds))
    kinds = set(args.kinds.split(",")) if args.kinds else None
    which = ["judy"] if args.heldout else (args.only or ["judy", "market", "npc"])
    out = {"seeds": list(seeds), "quick": args.quick, "heldout": args.heldout, "load_average_1min": {"start": os.getloadavg()[0]}}
    t0 = time.monotonic()
    # seed by seed across the sections: a run cut short still has every section measured alike
    for seed in seeds:
        for name, fn in (("judy", judy), ("market", market), ("npc", scene)):
            if name in which:
                got = (fn((seed,), args.quick, args.model, kinds=kinds, heldout=args.heldout) if name == "judy"
                       else fn((seed,), args.quick, args.model))
                rows = out.setdefault(name, {"rows": []})["rows"]
                rows += got["rows"]
                out[name]["pass_rates"] = rates(rows)
    for name in ("judy", "market", "npc"):
        if name in out:
            show(name, out[name])
    out["load_average_1min"]["end"] = os.getloadavg()[0]
    out["seconds"] = round(time.monotonic() - t0)
    print(f"load average {out['load_average_1min']['start']:.2f} -> {out['load_average_1min']['end']:.2f}, "
          f"{out['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False, default=sorted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
