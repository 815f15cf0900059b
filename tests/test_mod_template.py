"""The mod template loads, answers its command through the real model, and shuts down cleanly."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from host.app import build_host
from host.worker import WorkerConfig
from modhost_util import Console, read_log

ROOT = Path(__file__).resolve().parents[1]


def test_template_mod_loads_and_works(tmp_path, model):
    mods = tmp_path / "mods"
    shutil.copytree(ROOT / "examples" / "mod_template", mods / "my_mod")
    console = Console()
    host = build_host(mods, model=model, rag=False, worker_config=WorkerConfig(n_ctx=512), console=console)
    try:
        mod = host.mods["my_mod"]
        assert mod.state == "loaded", mod.reason
        host.run_command("hello the tides")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            host.update(1 / 60)
            ok, greeted = mod.call(mod.public.greeted)
            if ok and greeted:
                break
            time.sleep(0.005)
        assert greeted
    finally:
        host.shutdown()
    log = read_log(host, "my_mod")
    assert "loaded, greeting the player" in log and "ran for" in log
    assert "[error]" not in log
