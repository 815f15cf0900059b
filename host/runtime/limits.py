"""Every budget, cap and quota of the mod runtime, in one place.

A `Limits` instance is handed to `Host`; a mod's `mod.toml` can raise its own
`memory_mb` and `budget_ms` within the bounds checked in `manifest.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps applied to every mod unless its manifest says otherwise."""

    # Watchdog: budget of one mod per frame, all its host->mod entries of the
    # frame together (callbacks, Cron ticks, async steps, provider callbacks),
    # in CPU time of the frame thread, so a busy machine does not count
    # against a mod.
    budget_ms: int = 50
    # init.lua and onInit do one-off setup work, so they get more.
    init_budget_ms: int = 1000
    # The backstop for a call that blocks without using CPU: it is also
    # stopped once its wall time passes max(budget * factor, min).
    wall_ceiling_factor: float = 20.0
    wall_ceiling_min_ms: int = 2000
    memory_mb: int = 64

    # Size caps for C functions the watchdog cannot interrupt.
    max_string_bytes: int = 16 * MiB
    max_source_bytes: int = 4 * MiB
    # Estimated matcher steps a pattern call may take in C (scaled by the
    # mod's budget / 50 ms); costlier calls run in the interruptible Lua
    # matcher.  The estimate is an upper bound: 8e6 estimated steps took at
    # most ~22 ms of C matching on the development machine (the worst case,
    # a*b over 2800 a's), ordinary patterns far less.
    pattern_cost_per_50ms: float = 1.2e7

    # Logging.
    max_log_line: int = 4096
    log_lines_per_frame: int = 200
    log_file_bytes: int = 1 * MiB
    log_backups: int = 2

    # Registrations and runtime objects per mod.
    max_hotkeys: int = 64
    max_inputs: int = 64
    max_commands: int = 32
    max_timers: int = 4096
    max_tasks: int = 1024

    # Repeated errors: this many within the window quarantine the mod.
    max_errors: int = 20
    error_window_s: float = 5.0

    # Per-mod SQLite databases: all of a mod's databases together (its file,
    # their temporary storage, in-memory databases); rows are bounded by it.
    db_max_bytes: int = 256 * MiB
    db_max_value_bytes: int = 16 * MiB

    # Files through `io` (CET parity): open at once, size of one file, bytes
    # and files in the whole mod folder, the database and log not counted
    # (reads are capped by max_string_bytes).
    io_max_open_files: int = 32
    io_max_file_bytes: int = 16 * MiB
    io_max_folder_bytes: int = 64 * MiB
    io_max_files: int = 2048

    # Values passed between mods (GetMod) and between Lua and the host.
    transfer_depth: int = 32
    transfer_items: int = 100_000

    def wall_ceiling(self, budget_s: float) -> float:
        """Wall-clock limit, in seconds, of a call with a CPU budget of budget_s."""
        return max(budget_s * self.wall_ceiling_factor, self.wall_ceiling_min_ms / 1000.0)

    def pattern_cost_cap(self, budget_ms: int) -> float:
        """Pattern-cost cap for a mod with the given budget."""
        return max(1e6, self.pattern_cost_per_50ms * budget_ms / 50.0)


DEFAULT_LIMITS = Limits()
