"""The host half of the mod-facing `grammar` module (the Lua half is host/runtime/lua/grammar.lua).

Grammar objects stay in Python, in a per-mod registry; a mod holds only a
small Lua table naming one by id, so nothing Python-side is reachable from Lua
and one mod cannot use another's grammars.  Construction validates at once,
on the frame thread, within the host's grammar limits (``host.limits.grammar``) and the calling
mod's time budget (GBNF checks and JSON Schema conversion are pure Python);
llama.cpp's own parser runs on the worker when a request makes its sampler.
"""

from __future__ import annotations

import itertools

from host.api.quotas import gc_proxy
from host.engine.grammar import Grammar
from host.errors import GrammarError


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

    def __init__(self, model, ledger=None):
        from host.api.quotas import QuotaLedger

        self.model = model
        self.ledger = ledger or QuotaLedger()  # live grammars per mod (default limits when not given)
        self._registry: dict[str, dict[int, Grammar]] = {}  # frame thread only
        self._ids = itertools.count(1)  # never reused: a stale id can never name another grammar

    def install(self, mod) -> None:
        self._registry[mod.id] = {}
        factory = mod.load_lib("grammar")
        caps = mod.host.limits.grammar
        limits = {"max_gbnf_bytes": caps.max_gbnf_bytes, "max_choices": caps.max_choices}
        bridge = mod.table({"make": lambda dead, kind, *args: self._make(mod, dead, kind, *args), "limits": limits})
        mod.expose("grammar", factory(bridge, gc_proxy(mod)))

    def uninstall(self, mod) -> None:
        self._registry.pop(mod.id, None)
        self.ledger.forget(mod.id)

    def _free(self, mod, dead) -> None:
        """Forget the grammars whose Lua objects the mod's GC collected."""
        reg = self._registry.setdefault(mod.id, {})
        for gid in (mod.from_lua(dead) or []) if dead is not None else []:
            if isinstance(gid, int) and reg.pop(gid, None) is not None:
                self.ledger.grammars(mod.id, -1)

    def _make(self, mod, dead, kind, *args):
        self._free(mod, dead)
        reg = self._registry.setdefault(mod.id, {})
        problem = self.ledger.check_grammar(mod.id)
        if problem:
            return None, problem  # the Lua side collects garbage once and retries, then raises
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
        gid = next(self._ids)
        reg[gid] = g
        self.ledger.grammars(mod.id, +1)
        return gid

    @staticmethod
    def _checks(mod) -> dict:
        # Frame thread, inside the mod's call: size caps, the mod's deadline,
        # and no llama.cpp parse here (uninterruptible C that grows faster
        # than linearly; the worker runs it when it makes the sampler).
        return {"limits": mod.host.limits.grammar, "deadline": mod.deadline(), "confirm": False}

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
