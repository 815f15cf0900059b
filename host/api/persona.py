"""The host half of `llm.persona` (the Lua half is host/runtime/lua/persona.lua).

Installs the persona kit into a mod's `llm` table: the Lua kit builds the
session, retrieval, grammar and guards; the line functions it calls for every
streamed piece are host.engine.lines (pure string functions, capped in size).
"""

from __future__ import annotations

from host.engine import lines
from host.errors import OptionError


def _forbid(mod, value) -> tuple:
    got = mod.from_lua(value) if value is not None else None
    if isinstance(got, dict):  # a Lua array arrives as {1: .., 2: ..}
        got = [got[k] for k in sorted(got)]
    if not isinstance(got, (list, tuple)):
        return lines.DEFAULT_FORBID
    cap = len(lines.DEFAULT_FORBID) + mod.host.limits.persona.max_forbid  # the kit's list: built-in + the mod's
    return tuple(p for p in got[:cap] if isinstance(p, str))


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def clean_line(text, name=None, sentences=2, chars=300) -> str:
    """`llm.clean_line(text, name, sentences, chars)`: a model's line as the character's words, ending on a sentence."""
    if not isinstance(text, str):
        raise OptionError("llm.clean_line expects a string")
    n = int(sentences) if isinstance(sentences, (int, float)) and 1 <= sentences <= 10 else 2
    c = int(chars) if isinstance(chars, (int, float)) and 20 <= chars <= 2000 else 300
    return lines.shape(lines.clean(text, name if isinstance(name, str) else None), max_sentences=n, max_chars=c)


def _lines_list(mod, value) -> list:
    got = mod.from_lua(value) if value is not None else None
    if isinstance(got, dict):  # a Lua array arrives as {1: .., 2: ..}
        got = [got[k] for k in sorted(got, key=str)]
    return [t for t in got[-lines.MAX_EARLIER:] if isinstance(t, str)] if isinstance(got, (list, tuple)) else []


def repeats(mod, text, earlier) -> bool:
    """`llm.repeats(text, earlier)`: does ``text`` repeat one of the ``earlier`` lines (the whole line, or
    six words in a row)?  At most the last 64 earlier lines are looked at."""
    if not isinstance(text, str):
        raise OptionError("llm.repeats expects a string and a list of earlier lines")
    return lines.repeats(text, _lines_list(mod, earlier))


def install_persona(mod, llm) -> None:
    """Put ``persona`` (the kit's constructor) into the mod's ``llm`` table before it is exposed."""
    limits = mod.host.limits.persona
    bridge = mod.table({
        "max_examples": limits.max_examples, "max_lore_files": limits.max_lore_files,
        "max_lore_bytes": limits.max_lore_bytes, "max_forbid": limits.max_forbid,
        "clean": lambda text, name=None: lines.clean(_text(text), name if isinstance(name, str) else None),
        "visible": lambda text, name=None, n=3, chars=300: lines.visible(
            _text(text), name if isinstance(name, str) else None, max_sentences=int(n), max_chars=int(chars)),
        "shape": lambda text, n=3, chars=300, finished=True: lines.shape(
            _text(text), max_sentences=int(n), max_chars=int(chars), finished=bool(finished)),
        "breaks": lambda text, forbid=None: lines.breaks_character(_text(text), _forbid(mod, forbid)),
        "default_forbid": mod.table(list(lines.DEFAULT_FORBID)),
        "repeats": lambda text, earlier=None: lines.repeats(_text(text), _lines_list(mod, earlier)),
    })
    llm["clean_line"] = mod.table({"f": clean_line})["f"]
    llm["repeats"] = mod.table({"f": lambda text, earlier=None: repeats(mod, text, earlier)})["f"]
    factory = mod.load_lib("persona")
    llm["persona"] = factory(llm, bridge, mod.box.env)
