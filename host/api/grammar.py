"""The host half of the mod-facing `grammar` module (the Lua half is lua/grammar.lua).

Grammar objects stay in Python, in a per-mod registry; a mod holds only a
small Lua table naming one by id, so nothing Python-side is reachable from Lua
and one mod cannot use another's grammars.  Construction validates at once,
on the frame thread, within size caps (MOD_GRAMMAR_LIMITS) and the calling
mod's time budget (GBNF checks and JSON Schema conversion are pure Python);
llama.cpp's own parser runs on the worker when a request makes its sampler.
"""

from __future__ import annotations

from host.engine.grammar import Grammar, GrammarLimits
from host.errors import GrammarError, QuotaExceeded

MAX_GRAMMARS_PER_MOD = 256
MOD_GRAMMAR_LIMITS = GrammarLimits()


def _as_list(value, what: str) -> list:
    """Lua arrays arrive as lists; an empty Lua table arrives as {}."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and not value:
        return []
    raise GrammarError(f"{what} must be an array")


_LIST_KEYWORDS = ("required", "enum", "anyOf", "oneOf", "allOf", "prefixItems")


def normalize_schema(node):
    """Lua tables to JSON Schema: empty tables under list keywords are empty lists.

    A Lua table has no key order, so properties come out in the order of
    ``required``, then the others by name: the same output every run.
    """
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _LIST_KEYWORDS:
                out[k] = [normalize_schema(x) for x in _as_list(v, k)]
            else:
                out[k] = normalize_schema(v)
        props = out.get("properties")
        if isinstance(props, dict):
            req = [r for r in out.get("required", []) if isinstance(r, str) and r in props]
            order = req + sorted((k for k in props if k not in req), key=str)
            out["properties"] = {k: props[k] for k in order}
        return out
    if isinstance(node, list):
        return [normalize_schema(x) for x in node]
    return node


class GrammarProvider:
    """Installs `grammar` into every mod and resolves `grammar=`/`schema=` options."""

    def __init__(self, model):
        self.model = model
        self._registry: dict[str, dict[int, Grammar]] = {}  # frame thread only

    def install(self, mod) -> None:
        self._registry[mod.id] = {}
        factory = mod.load_lib("grammar")
        limits = {"max_gbnf_bytes": MOD_GRAMMAR_LIMITS.max_gbnf_bytes, "max_choices": MOD_GRAMMAR_LIMITS.max_choices}
        bridge = mod.table({"make": lambda kind, *args: self._make(mod, kind, *args), "limits": limits})
        mod.expose("grammar", factory(bridge))

    def uninstall(self, mod) -> None:
        self._registry.pop(mod.id, None)

    def _make(self, mod, kind, *args) -> int:
        reg = self._registry.setdefault(mod.id, {})
        if len(reg) >= MAX_GRAMMARS_PER_MOD:
            raise QuotaExceeded(f"mod '{mod.id}' already made {MAX_GRAMMARS_PER_MOD} grammars; reuse them")
        args = [mod.from_lua(a) for a in args]
        checks = self._checks(mod)
        if kind == "gbnf":
            g = Grammar.from_gbnf(args[0], args[1] if len(args) > 1 else "root", **checks)
        elif kind == "schema":
            g = Grammar.from_schema(normalize_schema(args[0]), **checks)
        elif kind == "choice":
            g = Grammar.choice(_as_list(args[0], "choice options"), **checks)
        elif kind == "tool_call":
            tools = [normalize_schema(t) for t in _as_list(args[0], "tools")]
            g = Grammar.tool_call(tools, **checks)
        elif kind == "lazy":
            inner = self._lookup(mod, args[0])
            trig = args[1] if isinstance(args[1], dict) else {}
            unknown = sorted(str(k) for k in trig if k not in ("words", "patterns"))
            if unknown:
                raise GrammarError(f"unknown trigger option(s) {unknown}; use words= or patterns=")
            g = Grammar.lazy(inner, words=_as_list(trig.get("words", []), "words"),
                             patterns=_as_list(trig.get("patterns", []), "patterns"), **checks)
        else:
            raise GrammarError(f"unknown grammar kind {kind!r}")
        gid = len(reg) + 1
        reg[gid] = g
        return gid

    @staticmethod
    def _checks(mod) -> dict:
        # Frame thread, inside the mod's call: size caps, the mod's deadline,
        # and no llama.cpp parse here (uninterruptible C that grows faster
        # than linearly; the worker runs it when it makes the sampler).
        return {"limits": MOD_GRAMMAR_LIMITS, "deadline": mod.deadline(), "confirm": False}

    def _lookup(self, mod, gid) -> Grammar:
        g = self._registry.get(mod.id, {}).get(gid) if isinstance(gid, int) else None
        if g is None:
            raise GrammarError("grammar= must be an object made by grammar.gbnf/schema/choice/tool_call/lazy")
        return g

    def resolve(self, mod, grammar_opt, schema_opt):
        """The Grammar for an llm call's grammar= / schema= options (None if neither)."""
        if grammar_opt is not None and schema_opt is not None:
            raise GrammarError("give grammar= or schema=, not both")
        if schema_opt is not None:
            if not isinstance(schema_opt, dict):
                raise GrammarError("schema= must be a table (a JSON Schema)")
            return Grammar.from_schema(normalize_schema(schema_opt), **self._checks(mod))
        if grammar_opt is not None:
            gid = grammar_opt.get("__relic_grammar") if isinstance(grammar_opt, dict) else None
            return self._lookup(mod, gid)
        return None
