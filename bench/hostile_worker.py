"""Hostile-mod measurements for the inference worker's classes (shutdown mid-work, held objects, starvation and the tokenize cap).

Importable functions (bench/hostile.py runs them with every other class); each
runs real mods in a real host, with a well-behaved mod beside the attacker,
and returns a plain dict:

- ``quit_while_busy(kind)`` - a real ``relic run`` process; a mod keeps the
  worker busy (``kind="store"``: a 1 MiB ``store:add``; ``"prompt"``: four
  long prompts); ``quit`` is typed 2 s later.  Returns ``rc`` (0 expected,
  negative = killed by that signal) and ``quit_s`` (quit to exit; target
  <= 2 s).
- ``fairness(seconds)`` - a good mod asks for a short generation once a
  second, first alone, then beside a mod that keeps 16 long generations in
  flight.  Returns the good mod's served/asked counts and wait p50/p95 (ask to
  result) alone and beside the hog, and their ratio (target: every request
  served, p95 <= 2x alone).
- ``session_spam_rss(seconds)`` - a mod creates ``llm.session{ system = <1 MiB> }``
  twice per frame at 60 FPS.  Returns host RSS growth in MB and MB/s, the
  sessions the mod got, and whether the good mod kept being served.
- ``tokenize_at_cap()`` - the frame-thread cost of ``llm.count`` on input
  right at its byte cap, and of a call over it (refused before tokenizing).
- ``ingest_beside(seconds)`` - the good mod beside a mod whose 1 MiB
  ``store:add`` runs: requests served while the ingest runs, wait p50/p95.
- ``long_turns(seconds)`` - the good mod alone, then beside eight sessions
  that keep saying ~6 KB turns (all within limits): served/asked (within the
  window and in all), wait p50/p95 alone and beside, their p95 ratio, and the
  long turns the talker finished meanwhile (what fairness costs it).

    .venv/bin/python bench/hostile_worker.py [--only quit,fairness,rss,tokenize,ingest,long_turns] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _write_mod(root: Path, mod_id: str, src: str) -> None:
    d = root / mod_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "init.lua").write_text(textwrap.dedent(src), encoding="utf-8")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


# --- quit while busy ---------------------------------------------------------------------

BUSY = {
    "store": """
        registerForEvent("onInit", function()
          local words = { "harbor", "lantern", "rope", "tide", "ferry", "captain", "market", "barrel", "net." }
          local parts = {}
          for i = 1, 120000 do parts[i] = words[i % #words + 1] .. " " .. i end
          rag.open("big"):add("big", table.concat(parts, " "):sub(1, 1048576))
          print("busy started")
        end)
    """,
    "prompt": """
        registerForEvent("onInit", function()
          local s = string.rep("The lantern by the harbor gate burns all night. ", 150)
          for i = 1, 4 do llm.generate{ prompt = s, max_tokens = 200 } end
          print("busy started")
        end)
    """,
}
GOOD_ONCE = """
    registerForEvent("onInit", function()
      llm.generate{ prompt = "Hello", max_tokens = 2, on_done = function(r) print("good " .. r.finish_reason) end }
    end)
"""


def quit_while_busy(kind: str = "store", settle_s: float = 2.0) -> dict:
    """rc and seconds from `quit` to exit of a `relic run` whose worker is busy (see module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        mods = Path(tmp) / "mods"
        _write_mod(mods, "busy", BUSY[kind])
        _write_mod(mods, "good", GOOD_ONCE)
        proc = subprocess.Popen([sys.executable, "-m", "host.cli", "run", "--mods", str(mods), "--headless"],
                                cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        try:
            for line in proc.stdout:
                out.append(line)
                if "busy started" in line:
                    break
            time.sleep(settle_s)
            t0 = time.perf_counter()
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            rc = proc.wait(timeout=120)
            took = time.perf_counter() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        rest = proc.stdout.read() if proc.stdout else ""
    return {"kind": kind, "rc": rc, "quit_s": round(took, 3),
            "leaked": "exiting without teardown" in rest, "target_s": 2.0}


# --- fairness ------------------------------------------------------------------------------

GOOD_PERIODIC = """
    n, t, stop = 0, 0, false
    registerCommand("stop_asking", "", function() stop = true end)
    registerForEvent("onUpdate", function(dt)
      t = t + dt
      if t >= 1 and not stop then
        t = t - 1
        n = n + 1
        local i = n
        print("ask " .. i)
        llm.generate{ prompt = "The harbor at dawn is", max_tokens = 8,
          on_done = function(r) print("got " .. i .. " " .. tostring(r.error_type)) end }
      end
    end)
"""
HOG = """
    inflight = 0
    local function more()
      while inflight < 16 do
        inflight = inflight + 1
        llm.chat{ messages = { { role = "user", content = "Write a very long story about the sea and the ships." } },
          max_tokens = 256, on_done = function(r) inflight = inflight - 1 end }
      end
    end
    registerForEvent("onInit", more)
    registerForEvent("onUpdate", more)
"""


def _run_good(model, seconds: float, with_hog: bool, others: dict | None = None, done_line: str | None = None,
              rag: bool = False) -> dict:
    """The good mod asking once a second for ``seconds`` (beside the hog, or beside ``others``: mod id ->
    source).  ``done_line``: a console line that ends the window early (an ingest finished); the
    requests served within the window are counted apart (``served_in_window``)."""
    from host.app import build_host

    with tempfile.TemporaryDirectory() as tmp:
        mods = Path(tmp) / "mods"
        _write_mod(mods, "good", GOOD_PERIODIC)
        if with_hog:
            _write_mod(mods, "hog", HOG)
        for mod_id, src in (others or {}).items():
            _write_mod(mods, mod_id, src)
        asked, got, marks, turns = {}, {}, {}, []

        def console(line: str) -> None:
            now = time.perf_counter()
            if line.startswith("[good] ask "):
                asked[int(line.split()[2])] = now
            elif line.startswith("[good] got "):
                parts = line.split()
                got[int(parts[2])] = (now, parts[3])
            elif line.startswith("[talker] turn "):
                turns.append((now, line.split()[2]))
            elif done_line and line.startswith(done_line) and "done" not in marks:
                marks["done"], marks["done_line"] = now, line

        host = build_host(mods, model=model, console=console, rag=rag)
        try:
            period, t0 = 1 / 60, time.perf_counter()
            t_end, nxt = t0 + seconds, t0
            while time.perf_counter() < t_end and "done" not in marks:
                host.update(period)
                nxt += period
                time.sleep(max(0.0, nxt - time.perf_counter()))
            window_end = time.perf_counter()
            host.run_command("stop_asking")
            drain_end = time.perf_counter() + 60  # let the last asks finish
            while len(got) < len(asked) and time.perf_counter() < drain_end:
                host.update(period)
                time.sleep(period)
        finally:
            host.shutdown()
    waits = [got[i][0] - asked[i] for i in asked if i in got and got[i][1] == "nil"]
    out = {"asked": len(asked), "served": len(waits), "errors": sorted({got[i][1] for i in got} - {"nil"}),
           "wait_p50_s": _pct(waits, 50), "wait_p95_s": _pct(waits, 95)}
    if others:
        out["window_s"] = round(window_end - t0, 1)
        out["served_in_window"] = sum(1 for i in got if got[i][0] <= window_end and got[i][1] == "nil")
        out["asked_in_window"] = sum(1 for i in asked if asked[i] <= window_end)
        if turns:
            out["other_turns_in_window"] = sum(1 for t, e in turns if t <= window_end and e == "nil")
        if done_line:
            out["done_after_s"] = round(marks["done"] - t0, 1) if "done" in marks else None
            out["done_line"] = marks.get("done_line")
    return out


def fairness(seconds: float = 20.0, model=None) -> dict:
    """The good mod's service alone and beside a saturating mod (see module docstring)."""
    from host.llama import Model
    from bench.benchsetup import model_path

    own = model is None
    model = model or Model(model_path())
    try:
        alone = _run_good(model, seconds, with_hog=False)
        beside = _run_good(model, seconds, with_hog=True)
    finally:
        if own:
            model.close()
    ratio = (beside["wait_p95_s"] / alone["wait_p95_s"]) if alone["wait_p95_s"] and beside["wait_p95_s"] else None
    return {"alone": alone, "beside_hog": beside, "p95_ratio": ratio, "target_ratio": 2.0}


# --- a 1 MiB store ingest beside the good mod --------------------------------------------------------

INGEST = """
    registerForEvent("onInit", function()
      local words = { "harbor", "lantern", "rope", "tide", "ferry", "captain", "market", "barrel", "net." }
      local parts = {}
      for i = 1, 120000 do parts[i] = words[i % #words + 1] .. " " .. i end
      local add = rag.open("big"):add("big", table.concat(parts, " "):sub(1, 1048576))
      async(function()
        local r = await(add)
        print("ingested " .. tostring(r.error) .. " " .. tostring(r.value and r.value.chunks))
      end)
    end)
"""


def ingest_beside(seconds: float = 60.0, model=None) -> dict:
    """The good mod's service while another mod's 1 MiB ``store:add`` runs (the window ends when the
    ingest does, or after ``seconds``): requests served within it, and the wait p50/p95 of all of them."""
    from host.llama import Model
    from bench.benchsetup import model_path

    own = model is None
    model = model or Model(model_path())
    try:
        return _run_good(model, seconds, False, others={"archivist": INGEST}, done_line="[archivist] ingested",
                         rag=True)
    finally:
        if own:
            model.close()


# --- long session turns beside the good mod -------------------------------------------------------

LONG_TURNS = """
    local turn = string.rep("The harbor lantern burns through the night while the ferry waits. ", 90)  -- ~6 KB
    local function talk(s)
      s:say(turn, { max_tokens = 24, on_done = function(r) print("turn " .. tostring(r.error_type)); talk(s) end })
    end
    registerForEvent("onInit", function()
      for i = 1, 8 do talk(llm.session{ system = "You are a patient listener. Answer in one line." }) end
    end)
"""


def long_turns(seconds: float = 60.0, model=None) -> dict:
    """The good mod's service alone, then beside eight sessions that each keep saying ~6 KB turns (all
    within limits); the same run, so the ratio compares like with like."""
    from host.llama import Model
    from bench.benchsetup import model_path

    own = model is None
    model = model or Model(model_path())
    try:
        alone = _run_good(model, seconds, False)
        beside = _run_good(model, seconds, False, others={"talker": LONG_TURNS})
    finally:
        if own:
            model.close()
    ratio = (beside["wait_p95_s"] / alone["wait_p95_s"]) if alone["wait_p95_s"] and beside["wait_p95_s"] else None
    return {"alone": alone, "beside": beside, "p95_ratio": ratio}


# --- session spam: host RSS ------------------------------------------------------------------

SPAM = """
    big = string.rep("x", 1048576)
    got, err = 0, nil
    registerForEvent("onUpdate", function()
      for i = 1, 2 do
        local ok, s = pcall(llm.session, { system = big })
        if ok then got = got + 1 else err = s end
      end
    end)
    registerCommand("spam_report", "", function() print("spam " .. got .. " " .. tostring(err)) end)
"""


def _spam_run(model, seconds: float, spam: bool) -> dict:
    from host.app import build_host

    report = []
    with tempfile.TemporaryDirectory() as tmp:
        mods = Path(tmp) / "mods"
        if spam:
            _write_mod(mods, "spam", SPAM)
        _write_mod(mods, "good", GOOD_PERIODIC)
        host = build_host(mods, model=model, console=report.append, rag=False)
        try:
            for _ in range(30):
                host.update(1 / 60)
            rss0, t0 = _rss_mb(), time.perf_counter()
            period, nxt = 1 / 60, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                host.update(period)
                nxt += period
                time.sleep(max(0.0, nxt - time.perf_counter()))
            rss1, took = _rss_mb(), time.perf_counter() - t0
            if spam:
                host.run_command("spam_report")
        finally:
            host.shutdown()
    line = next((l for l in report if l.startswith("[spam] spam ")), "")
    return {"rss_growth_mb": round(rss1 - rss0, 1), "seconds": round(took, 1),
            "sessions_created": int(line.split()[2]) if line else None,
            "mod_error": line.split(" ", 3)[3] if line.count(" ") >= 3 else None,
            "good_served": sum(1 for l in report if l.startswith("[good] got ") and l.endswith(" nil"))}


def session_spam_rss(seconds: float = 10.0, model=None) -> dict:
    """Host RSS growth while a mod spams 1 MiB-system sessions, next to the same run without it.

    The good mod's own first generations fault in model pages (RSS of a mapped
    file), so the spam's cost is the difference between the two runs.
    """
    from host.llama import Model
    from bench.benchsetup import model_path

    own = model is None
    model = model or Model(model_path())
    try:
        _spam_run(model, 3.0, False)  # warm: the model's pages are in
        base = _spam_run(model, seconds, False)
        spam = _spam_run(model, seconds, True)
    finally:
        if own:
            model.close()
    extra = spam["rss_growth_mb"] - base["rss_growth_mb"]
    return {"with_spam": spam, "good_alone": base, "spam_rss_mb": round(extra, 1),
            "spam_rss_mb_per_s": round(extra / max(spam["seconds"], 1e-9), 2)}


# --- tokenize cap ------------------------------------------------------------------------------

def tokenize_at_cap(model=None) -> dict:
    """Worst frame-thread time of llm.count at its cap and over it, from a real mod."""
    from host.limits import DEFAULT_LIMITS
    from host.app import build_host
    from host.llama import Model
    from bench.benchsetup import model_path

    cap = DEFAULT_LIMITS.llm.max_tokenize_bytes
    src = f"""
        at = string.rep("lantern ", {cap // 8})
        over = string.rep("lantern ", {4 * cap // 8})
        registerCommand("at_cap", "", function() llm.count(at) end)
        registerCommand("over_cap", "", function() pcall(llm.count, over) end)
    """
    own = model is None
    model = model or Model(model_path())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            mods = Path(tmp) / "mods"
            _write_mod(mods, "tok", src)
            host = build_host(mods, model=model, console=lambda _l: None, rag=False)
            try:
                out = {}
                for cmd in ("at_cap", "over_cap"):
                    times = []
                    for _ in range(10):
                        t0 = time.perf_counter()
                        host.run_command(cmd)
                        times.append((time.perf_counter() - t0) * 1000)
                    out[cmd + "_ms_max"] = round(max(times), 2)
                    out[cmd + "_ms_median"] = round(statistics.median(times), 2)
            finally:
                host.shutdown()
    finally:
        if own:
            model.close()
    out["cap_bytes"] = cap
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="quit,fairness,rss,tokenize,ingest,long_turns")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    only = set(args.only.split(","))
    res = {}
    if "quit" in only:
        res["quit"] = [quit_while_busy("store"), quit_while_busy("prompt")]
    if "fairness" in only:
        res["fairness"] = fairness(args.seconds)
    if "rss" in only:
        res["session_spam"] = session_spam_rss(min(args.seconds, 10.0))
    if "tokenize" in only:
        res["tokenize"] = tokenize_at_cap()
    if "ingest" in only:
        res["ingest_beside"] = ingest_beside(max(args.seconds, 30.0))
    if "long_turns" in only:
        res["long_turns"] = long_turns(args.seconds)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
