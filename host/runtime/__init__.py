"""The mod runtime: sandboxed per-mod LuaJIT runtimes, the CET mod API, the frame loop.

Public surface:

- `Host` (host.py): load a mods folder, `update(dt)` / `draw()` from a frame
  loop, console commands, reload, providers.
- `Mod` (mod.py): one mod; providers use `expose`, `wrap`, `call`, `load_lib`.
- `Limits` (limits.py): every budget, cap and quota.
- `run`, `add_run_arguments`, `FrameStats` (console.py): `relic run`.
"""

from host.runtime.console import FrameStats, add_run_arguments, run
from host.runtime.host import Host, SkippedMod
from host.limits import DEFAULT_LIMITS, Limits
from host.runtime.mod import EVENTS, Mod

__all__ = ["Host", "Mod", "SkippedMod", "Limits", "DEFAULT_LIMITS", "EVENTS",
           "FrameStats", "add_run_arguments", "run"]
