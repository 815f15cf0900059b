"""Every limit a mod can run into, declared once, in one frozen tree.

    from host import Config, Limits
    config = Config.load(file="relic.toml")     # [limits] and [limits.GROUP] tables
    config.limits.budget_ms, config.limits.llm.max_pending, config.limits.grammar.max_gbnf_bytes

The top level bounds one mod's Lua runtime on the frame thread (time, memory,
strings, log, registrations, errors, `db`, `io`, values passed between mods);
each group bounds what one host module keeps for a mod (`llm`, `persona`,
`grammar`, `tools`, `ui`, `rag`).  The tree is part of :class:`host.config.Config`, handed
to the ``Host`` and to every module that enforces one of its limits; nothing
reads a limit from anywhere else.  A mod's ``mod.toml`` can lower its own
``memory_mb`` and ``budget_ms`` (raising them takes a grant, host.runtime.grants).

Each limit is declared with :func:`limit`: its default, its unit and one line
for modders.  The limits table in docs/MODDING.md is generated from this tree
(``python -m host.limits``) and a test keeps the two equal.  Bounds that are
part of a format (the shape of mod.toml, llama.cpp's protocol) or that bound
the host's own work in one call (a converter's recursion, one ImGui argument)
are not policy: they stay constants next to the code that reads them, marked
as such, and MODDING lists the ones a mod can meet under the table.

This module imports only host.errors: every layer may read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass

from host.errors import ConfigError

KiB = 1024
MiB = 1024 * 1024


class LimitGroup:
    """The base of the tree's groups: every limit is checked when a group is built."""

    def __post_init__(self):
        for f in fields(self):
            if f.metadata.get("group"):
                continue
            value = getattr(self, f.name)
            whole = isinstance(f.default, int)
            if (isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"limits: {type(self).__name__}.{f.name} must be "
                                  f"{'an integer' if whole else 'a number'} above 0, got {value!r}")


def limit(default, unit: str, meaning: str):
    """A field of a limits group: its default, unit ("ms", "bytes", "count"...) and meaning for modders."""
    return field(default=default, metadata={"unit": unit, "meaning": meaning})


def group(cls, meaning: str):
    """A field holding a nested group of limits (its own defaults), with a heading for the docs."""
    return field(default_factory=cls, metadata={"group": True, "meaning": meaning})


@dataclass(frozen=True)
class LlmLimits(LimitGroup):
    """What the `llm` module keeps for one mod: requests in flight and sessions."""

    max_tokens: int = limit(4096, "tokens", "`max_tokens` of one request, at most")
    max_stop_strings: int = limit(16, "count", "`stop` strings of one request")
    max_pending: int = limit(16, "count", "requests not yet done, per mod (past it: `error_type = \"queue_full\"`)")
    max_pending_bytes: int = limit(4 * MiB, "bytes", "input text of those requests together, per mod "
                                                     "(past it: `error_type = \"quota\"`)")
    max_tokenize_bytes: int = limit(4 * KiB, "bytes", "text of one `llm.tokenize` / `llm.count` call (it runs on "
                                                      "the frame: at most ~5 ms)")
    max_sessions: int = limit(32, "count", "live sessions (`llm.session`, `llm.load_session`)")
    max_session_chars: int = limit(256 * KiB, "characters", "text of one session: system prompt + conversation "
                                                            "(`session:say` past it: `error_type = \"quota\"`)")
    max_total_session_chars: int = limit(2 * MiB, "characters", "text of all of a mod's sessions together")


@dataclass(frozen=True)
class PersonaLimits(LimitGroup):
    """`llm.persona` characters."""

    max_examples: int = limit(8, "count", "`examples` pairs of one persona")
    max_lore_files: int = limit(64, "count", "`lore` entries or files of one persona")
    max_lore_bytes: int = limit(32 * KiB, "bytes", "one lore entry or file (longer: cut)")
    max_forbid: int = limit(32, "count", "`forbid` phrases a persona adds to the built-in ones")


@dataclass(frozen=True)
class GrammarLimits(LimitGroup):
    """Grammars a mod builds (`grammar.*`, `tools=`, `json_schema=`): checked at construction.

    Checking is linear in the text, but llama.cpp's grammar set-up (on the
    worker, for every request) grows faster than linearly with the number of
    alternatives, so those are capped as well as the size.
    """

    max_gbnf_bytes: int = limit(16 * KiB, "bytes", "`grammar.gbnf` text a mod writes")
    max_schema_gbnf_bytes: int = limit(32 * KiB, "bytes", "grammar generated from a schema or a tool list")
    max_alternatives: int = limit(1024, "count", "alternatives in one rule or group")
    max_total_alternatives: int = limit(4096, "count", "alternatives in the whole grammar")
    max_choices: int = limit(512, "count", "`grammar.choice` options")
    max_choice_bytes: int = limit(16 * KiB, "bytes", "`grammar.choice` options together (UTF-8)")
    max_triggers: int = limit(64, "count", "`grammar.lazy` trigger words, patterns and tokens")
    max_trigger_bytes: int = limit(256, "bytes", "one `grammar.lazy` trigger word or pattern")
    max_grammars: int = limit(256, "count", "live grammar objects per mod")


@dataclass(frozen=True)
class ToolLimits(LimitGroup):
    """Turns with `tools=` (`session:say`, `llm.chat`)."""

    max_tools: int = limit(16, "count", "tools in one `tools=` table")
    max_description_chars: int = limit(300, "characters", "one tool's `description`")
    max_say_chars: int = limit(400, "characters", "what the model says in one step of a tool turn")
    max_say_pattern_chars: int = limit(600, "characters", "a tool turn's `say_pattern` (the regular expression "
                                                          "the spoken text must match)")
    max_result_chars: int = limit(1000, "characters", "a tool's result as JSON, as the conversation and "
                                                      "`result.tool_calls` keep it (longer: cut)")
    max_calls: int = limit(8, "count", "`max_tool_calls` of one turn, at most")
    default_calls: int = limit(3, "count", "`max_tool_calls` when a turn does not set it")
    max_toolsets: int = limit(32, "count", "distinct `tools=` tables kept built per mod (more: the oldest "
                                           "is rebuilt when used again)")


@dataclass(frozen=True)
class RagLimits(LimitGroup):
    """The `rag` module's stores, per mod."""

    max_stores: int = limit(8, "count", "distinct store names (`rag.open`) per mod")
    max_doc_bytes: int = limit(1 * MiB, "bytes", "one document's text (a larger one takes minutes to embed, "
                                                 "and the mod's later requests wait behind it: split it)")
    max_doc_id_chars: int = limit(256, "characters", "one document id")
    max_meta_bytes: int = limit(16 * KiB, "bytes", "one document's metadata as JSON")
    max_query_chars: int = limit(16 * KiB, "characters", "one search query")
    max_k: int = limit(100, "count", "`k` of one search, at most")
    max_filter_keys: int = limit(16, "count", "metadata filter keys of one search")


@dataclass(frozen=True)
class UiLimits(LimitGroup):
    """The mods' `ImGui`: textures (`ImGui.LoadTexture`) and toasts (`ImGui.ShowToast`), per mod."""

    max_textures: int = limit(64, "count", "textures loaded at once")
    texture_file_bytes: int = limit(16 * MiB, "bytes", "one image file")
    texture_side: int = limit(4096, "pixels", "width or height of one texture")
    texture_pixels: int = limit(4096 * 4096, "pixels", "one texture")
    textures_bytes: int = limit(64 * MiB, "bytes", "image files of all of a mod's textures")
    textures_pixels: int = limit(16 * MiB, "pixels", "all of a mod's textures (decoded: 4 bytes a pixel)")
    max_toasts: int = limit(8, "count", "toasts shown at once (more: the oldest goes first)")
    toast_chars: int = limit(1024, "characters", "a toast's title or content (longer: cut)")
    toast_ms: int = limit(60_000, "ms", "how long a toast stays, at most")


@dataclass(frozen=True)
class Limits(LimitGroup):
    """Every limit, with the defaults every mod gets unless the player or the game changes them."""

    # --- time (watchdog) ---
    budget_ms: int = limit(50, "ms", "CPU time of the frame thread per frame, all of a mod's callbacks together "
                                     "(past it: stopped and quarantined)")
    init_budget_ms: int = limit(1000, "ms", "`init.lua` and `onInit`, each (one-off set-up work)")
    wall_ceiling_factor: float = limit(20.0, "× budget", "wall-clock time a call that blocks may take, "
                                                         "as a multiple of its budget")
    wall_ceiling_min_ms: int = limit(2000, "ms", "that wall-clock ceiling, at least")
    # estimated matcher steps a pattern call may take in C (scaled by the mod's budget / 50 ms);
    # costlier calls run in the interruptible Lua matcher.  The estimate is an upper bound: 8e6
    # estimated steps took at most ~22 ms of C matching on the development machine (the worst
    # case, a*b over 2800 a's), ordinary patterns far less.
    pattern_cost_per_50ms: float = limit(1.2e7, "steps", "estimated C matcher steps of one `string` pattern "
                                                         "call per 50 ms of budget; costlier calls run in Lua")
    # --- memory and sizes ---
    memory_mb: int = limit(64, "MiB", "Lua memory of one mod (past it: memory error, quarantined)")
    max_string_bytes: int = limit(16 * MiB, "bytes", "one string a mod builds (`..`, `string.rep`, `table.concat`, "
                                                      "`string.format`, `string.gsub`); one `io` read")
    max_source_bytes: int = limit(4 * MiB, "bytes", "one source file (`init.lua`, `require`, `load`)")
    # --- log ---
    max_log_line: int = limit(4096, "bytes", "one log line (longer: cut)")
    log_lines_per_frame: int = limit(200, "count", "log lines a mod writes per frame (more: dropped)")
    log_file_bytes: int = limit(1 * MiB, "bytes", "the mod's log file before it rotates")
    log_backups: int = limit(2, "count", "rotated log files kept")
    # --- registrations and runtime objects ---
    max_hotkeys: int = limit(64, "count", "`registerHotkey` per mod")
    max_inputs: int = limit(64, "count", "`registerInput` per mod")
    max_commands: int = limit(32, "count", "console commands per mod")
    max_timers: int = limit(4096, "count", "live `Cron` timers per mod")
    max_tasks: int = limit(1024, "count", "live `async` tasks per mod")
    # --- errors ---
    max_errors: int = limit(20, "count", "errors within `error_window_s` that quarantine a mod")
    error_window_s: float = limit(5.0, "s", "the window those errors are counted in")
    # --- `db`: all of a mod's databases together (its file, temp storage, in-memory databases) ---
    db_max_bytes: int = limit(256 * MiB, "bytes", "all of a mod's databases together (file, temp tables, "
                                                  "indexes, sort spills, in-memory databases)")
    db_max_value_bytes: int = limit(16 * MiB, "bytes", "one `db` value")
    db_max_sql_bytes: int = limit(1_000_000, "bytes", "one SQL statement's text")
    db_max_statements: int = limit(256, "count", "prepared statements open at once")
    db_max_iterators: int = limit(64, "count", "unfinished `db:rows`/`nrows`/`urows` iterators (past it: the "
                                               "oldest are dropped)")
    db_max_databases: int = limit(8, "count", "databases open at once: the mod's file plus in-memory ones")
    db_max_backups: int = limit(8, "count", "`sqlite3.backup_init` backups at once")
    db_max_functions: int = limit(64, "count", "functions, aggregates and collations per database")
    # --- `io`: files in the mod's own folder (the database and log not counted) ---
    io_max_open_files: int = limit(32, "count", "files open at once")
    io_max_file_bytes: int = limit(16 * MiB, "bytes", "one file written through `io`")
    io_max_folder_bytes: int = limit(64 * MiB, "bytes", "all files in the mod's folder")
    io_max_files: int = limit(2048, "count", "files in the mod's folder")
    # --- values passed between mods (GetMod) and between Lua and the host ---
    transfer_depth: int = limit(32, "levels", "nesting of a value passed to or from the host or another mod")
    transfer_items: int = limit(100_000, "count", "values in one such value")
    max_call_depth: int = limit(4, "levels", "cross-mod calls nested in each other")
    max_hooks: int = limit(256, "count", "`Observe`/`Override` hooks per mod")

    # --- the host modules ---
    llm: LlmLimits = group(LlmLimits, "`llm` requests and sessions")
    persona: PersonaLimits = group(PersonaLimits, "`llm.persona` characters")
    grammar: GrammarLimits = group(GrammarLimits, "grammars (`grammar.*`, `tools=`, `json_schema=`); "
                                                  "past one: an error at construction")
    tools: ToolLimits = group(ToolLimits, "turns with `tools=`; past one: an error at the call")
    ui: UiLimits = group(UiLimits, "`ImGui` textures (past one: `LoadTexture` returns `nil, message`) "
                                          "and toasts")
    rag: RagLimits = group(RagLimits, "`rag` stores; past one: the handle's result carries the error "
                                      "(`rag.open` past `max_stores`: an error)")

    def wall_ceiling(self, budget_s: float) -> float:
        """Wall-clock limit, in seconds, of a call with a CPU budget of budget_s."""
        return max(budget_s * self.wall_ceiling_factor, self.wall_ceiling_min_ms / 1000.0)

    def pattern_cost_cap(self, budget_ms: int) -> float:
        """Pattern-cost cap for a mod with the given budget."""
        return max(1e6, self.pattern_cost_per_50ms * budget_ms / 50.0)


DEFAULT_LIMITS = Limits()
TOP_LEVEL = "one mod's Lua runtime on the frame thread"


def limit_fields(tree=DEFAULT_LIMITS, prefix: str = ""):
    """Every limit of ``tree`` as ``(dotted name, value, field)``, groups after the top level."""
    groups = []
    for f in fields(tree):
        value = getattr(tree, f.name)
        if f.metadata.get("group"):
            groups.append((f, value))
        else:
            yield prefix + f.name, value, f
    for f, value in groups:
        yield from limit_fields(value, f"{prefix}{f.name}.")


def _shown(value, unit: str) -> str:
    if unit == "bytes" and isinstance(value, int):
        for size, name in ((MiB, "MiB"), (KiB, "KiB")):
            if value >= size and value % size == 0:
                return f"{value // size} {name}"
        return f"{value:,} bytes"
    if unit in ("characters", "pixels") and isinstance(value, int) and value >= 16 * KiB:
        for size, name in ((MiB, "Mi"), (KiB, "Ki")):
            if value % size == 0:
                return f"{value // size} {name} {unit}"
    if isinstance(value, float):
        text = f"{value:,.0f}" if value.is_integer() and value >= 1e4 else f"{value:g}"
    else:
        text = f"{value:,}"
    return text if unit == "count" else f"{text} {unit}"


def limits_table(tree=DEFAULT_LIMITS) -> str:
    """The limits table of docs/MODDING.md (markdown), generated from the tree."""
    rows = ["| limit (`[limits]` key) | default | what it bounds |", "|---|---|---|"]
    headings = {f.name: f.metadata["meaning"] for f in fields(tree) if f.metadata.get("group")}
    rows.append(f"| **`[limits]`** | | {TOP_LEVEL} |")
    current = ""
    for name, value, f in limit_fields(tree):
        section = name.rpartition(".")[0]
        if section != current:
            current = section
            rows.append(f"| **`[limits.{section}]`** | | {headings[section]} |")
        rows.append(f"| `{name}` | {_shown(value, f.metadata['unit'])} | {f.metadata['meaning']} |")
    return "\n".join(rows)


def is_group(value) -> bool:
    """Whether a value of the tree is a nested group (not a single limit)."""
    return is_dataclass(value)


if __name__ == "__main__":  # pragma: no cover - prints the table for docs/MODDING.md
    print(limits_table())
