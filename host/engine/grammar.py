"""Grammars for constrained sampling: GBNF, JSON Schema, choices, tool calls, lazy triggers.

A :class:`Grammar` is immutable and may be built on the frame thread and used
on the worker: ``sampler(lib, vocab)`` makes a fresh llama.cpp grammar sampler
for each request (the request's sampler chain takes ownership).

Every constructor validates before anything reaches llama.cpp:

1. :func:`host.engine.gbnf.check_gbnf` (a Python mirror of llama.cpp's parser)
   names the rule, line and column of a problem; llama.cpp itself prints parse
   errors to stderr, where no caller can read them.
2. llama.cpp's own parser confirms: a grammar sampler is created and freed with
   the given model's vocabulary, or a vocabulary-only load of the installed
   default model (skipped when neither is available, and for grammars naming
   tokens by text, which depend on the model; :meth:`Grammar.sampler` always
   checks again).

Lazy grammars (:meth:`Grammar.lazy`) stay off until a trigger word, pattern or
token appears.  llama.cpp then replays the text from the trigger to the end of
the token that completed it into the grammar, and aborts the process if the
grammar rejects that text.  So the lazy root is ``trigger tail inner``: the
trigger itself, then ``tail`` -- the rest of that last token -- then the
inner grammar.  The tail is computed per vocabulary: every ending that can
follow a trigger word (or a pattern's possible last character) inside one
token.  Short or common triggers give many tails, which lets the model write a
few free characters after the trigger; prefer distinctive triggers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import replace
from pathlib import Path

from host.engine import json_schema as js
from host.engine.gbnf import LLAMA_REPEAT_LIMIT, check_gbnf, gbnf_literal, gbnf_set, join_sequence, repeat_suffix
from host.engine.pattern import Pattern
from host.engine.schema_validate import validate
from host.errors import GrammarError
from host.limits import GrammarLimits
from host.llama import log as llama_log

log = logging.getLogger("relic.grammar")

GENERIC_TAIL = 96  # the lazy tail as Grammar.gbnf shows it; sampler() uses the vocabulary's exact tails


# --- llama.cpp's own parser ------------------------------------------------------

_checker_lock = threading.Lock()
_checker = None  # (lib, vocab-only default model), or False when unavailable
_checker_model = None  # its GGUF path


def use_checker_model(path) -> None:
    """The model whose vocabulary confirms grammars with llama.cpp (set by set-up: host.prepare)."""
    global _checker_model, _checker
    with _checker_lock:
        if _checker_model != path:
            _checker_model, _checker = path, None


def _default_checker():
    """The vocabulary used to confirm grammars with llama.cpp; never builds or downloads."""
    global _checker
    with _checker_lock:
        if _checker is None:
            try:
                # imported here: loading the library and the model is deferred to the first grammar
                from host.llama import Model, load

                if _checker_model is None or not Path(_checker_model).is_file():
                    raise FileNotFoundError("no model was prepared")
                lib = load()
                # owned by this module for the life of the process (a few MB: the vocabulary only)
                _checker = (lib, Model(_checker_model, lib=lib, vocab_only=True))
            except Exception as exc:  # confirmation is a second opinion; sampler() checks again
                log.warning("grammars are checked by Relic's parser only (llama.cpp's parser is unavailable: %s)",
                            exc)
                _checker = False
        return _checker or None


def _llama_init(lib, vocab, text: str, root: str, patterns=(), tokens=()):
    """Create a llama.cpp grammar sampler or raise GrammarError with what llama.cpp logged.

    Returns a new ``struct llama_sampler *``; the caller owns it (a chain's add() takes it over).
    """
    C, ffi = lib.C, lib.ffi
    gbnf_b, root_b = text.encode("utf-8"), root.encode("utf-8")
    with llama_log.capture() as lines:
        if patterns or tokens:
            keep = [ffi.new("char[]", p.encode("utf-8")) for p in patterns]
            arr = ffi.new("const char *[]", keep) if keep else ffi.NULL
            toks = ffi.new("llama_token[]", list(tokens)) if tokens else ffi.NULL
            ptr = C.llama_sampler_init_grammar_lazy_patterns(vocab.ptr, gbnf_b, root_b, arr, len(keep),
                                                              toks, len(tokens))
        else:
            ptr = C.llama_sampler_init_grammar(vocab.ptr, gbnf_b, root_b)
    if ptr == ffi.NULL:
        said = [line for level, line in lines if level >= logging.WARNING] or ["no reason logged"]
        raise GrammarError("llama.cpp rejected the grammar: " + "; ".join(said[-3:]))
    return ptr


# --- limits for untrusted input: host.limits.GrammarLimits (a group of the limits tree) ---

def _too_big(what: str, size: int, limit: int, unit: str = "bytes") -> GrammarError:
    return GrammarError(f"{what} is {size} {unit}; the limit is {limit}")


# --- the Grammar object ----------------------------------------------------------------

_tail_cache: dict[tuple, str] = {}
_tail_lock = threading.Lock()


class Grammar:
    """A validated grammar (immutable).  Build it with a constructor classmethod.

    Attributes: ``gbnf`` (text), ``root`` (start rule), ``kind`` ("gbnf",
    "schema", "choice", "tool_call"), ``schema`` (a copy, or None),
    ``options`` (choice), ``trigger_words``/``trigger_patterns``/
    ``trigger_tokens`` (lazy), ``rules`` (rule names), ``loosened`` (some
    schema maximum is enforced only by the validator, see host.engine.json_schema).
    """

    __slots__ = ("gbnf", "root", "kind", "_schema_json", "options", "trigger_words", "trigger_patterns",
                 "trigger_tokens", "rules", "loosened", "_info", "_lazy_parts", "_llama_patterns", "_py_patterns")

    def __init__(self, gbnf: str, root: str = "root", *, kind: str = "gbnf", schema=None, options=None,
                 loosened: bool = False, model=None, _lazy=None, limits: GrammarLimits | None = None,
                 deadline: float | None = None, confirm: bool = True):
        if limits is not None:
            written = kind == "gbnf" and _lazy is None
            cap = limits.max_gbnf_bytes if written else limits.max_schema_gbnf_bytes
            size = len(gbnf.encode("utf-8", "surrogatepass")) if isinstance(gbnf, str) else 0
            if size > cap:
                raise _too_big("the GBNF text" if written else f"the grammar made from this {kind}", size, cap)
        info = check_gbnf(gbnf, root, deadline=deadline,
                          max_alternatives=limits.max_alternatives if limits else None,
                          max_total_alternatives=limits.max_total_alternatives if limits else None)
        sets = object.__setattr__
        sets(self, "gbnf", gbnf)
        sets(self, "root", root)
        sets(self, "kind", kind)
        sets(self, "_schema_json", None if schema is None else json.dumps(schema))
        sets(self, "options", None if options is None else tuple(options))
        sets(self, "rules", info.rules)
        sets(self, "loosened", loosened)
        sets(self, "_info", info)
        lazy = _lazy or {}
        sets(self, "trigger_words", tuple(lazy.get("words", ())))
        sets(self, "trigger_patterns", tuple(lazy.get("patterns", ())))
        sets(self, "trigger_tokens", tuple(lazy.get("tokens", ())))
        sets(self, "_lazy_parts", lazy.get("parts"))
        sets(self, "_llama_patterns", tuple(lazy.get("llama_patterns", ())))
        sets(self, "_py_patterns", tuple(lazy.get("py_patterns", ())))
        # llama.cpp's own parser runs uninterruptibly in C and grows faster
        # than linearly: callers on the frame thread skip it (confirm=False);
        # sampler() runs it on the worker for every request anyway.
        if confirm:
            self._confirm(model)

    def __setattr__(self, name, value):
        raise AttributeError("Grammar objects are immutable")

    def __repr__(self) -> str:
        return f"<Grammar {self.kind}{' lazy' if self.is_lazy else ''}: {len(self.rules)} rules>"

    @property
    def is_lazy(self) -> bool:
        """True for grammars built by :meth:`lazy` (off until a trigger appears)."""
        return self._lazy_parts is not None

    @property
    def schema(self):
        """A copy of the JSON Schema (None unless built from one)."""
        return None if self._schema_json is None else json.loads(self._schema_json)

    @property
    def returns_value(self) -> bool:
        """True when results carry a decoded ``value`` (schema, tool_call, choice)."""
        return self.kind in ("schema", "tool_call", "choice")

    # constructors
    # Every constructor takes ``limits`` (GrammarLimits, for untrusted input),
    # ``deadline`` (time.monotonic(): the checks stop with BudgetExceeded
    # past it) and ``confirm`` (False: skip llama.cpp's parser here).

    @classmethod
    def from_gbnf(cls, text: str, root: str = "root", *, model=None, **checks) -> "Grammar":
        """A grammar from GBNF source (see llama.cpp grammars/README.md)."""
        return cls(text, root, kind="gbnf", model=model, **checks)

    @classmethod
    def from_schema(cls, schema, *, model=None, **checks) -> "Grammar":
        """A grammar producing JSON that satisfies ``schema`` (see host.engine.json_schema)."""
        schema = _plain(schema, "schema")
        gbnf, loosened = js.to_gbnf(schema, deadline=checks.get("deadline"))
        return cls(gbnf, "root", kind="schema", schema=schema, loosened=loosened, model=model, **checks)

    @classmethod
    def choice(cls, options, *, model=None, **checks) -> "Grammar":
        """Exactly one of ``options`` (non-empty strings), nothing else."""
        if isinstance(options, (str, bytes)) or not isinstance(options, (list, tuple)) or not options:
            raise GrammarError("choice needs a non-empty list of strings")
        limits = checks.get("limits")
        if limits is not None and len(options) > limits.max_choices:
            raise _too_big("the choice list", len(options), limits.max_choices, "options")
        for o in options:
            if not isinstance(o, str) or not o:
                raise GrammarError(f"choice options must be non-empty strings, got {o!r}")
        if limits is not None:
            size = sum(len(o.encode("utf-8", "surrogatepass")) for o in options)
            if size > limits.max_choice_bytes:
                raise _too_big("the choice options together", size, limits.max_choice_bytes)
        opts = list(dict.fromkeys(options))
        gbnf = "root ::= " + " | ".join(gbnf_literal(o) for o in opts) + "\n"
        if limits is not None:  # the options are the limit here, not the written-GBNF size
            limits = replace(limits, max_alternatives=max(limits.max_alternatives, limits.max_choices))
            checks = {**checks, "limits": limits}
        return cls(gbnf, "root", kind="choice", options=opts, model=model, **checks)

    @classmethod
    def tool_call(cls, tools, *, model=None, **checks) -> "Grammar":
        """A call of one of ``tools``: JSON ``{"name": ..., "arguments": {...}}``.

        Each tool is ``{"name": str, "parameters": schema}`` (``arguments`` is
        accepted for ``parameters``; OpenAI's ``{"type": "function", "function":
        {...}}`` form too).  A tool without parameters takes ``{}``.
        """
        if not isinstance(tools, (list, tuple)) or not tools:
            raise GrammarError("tool_call needs a non-empty list of tools")
        branches, names = [], set()
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
                tool = tool["function"]
            if not isinstance(tool, dict):
                raise GrammarError(f"tool {i} must be a table with name and parameters")
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise GrammarError(f"tool {i} needs a non-empty string name")
            if name in names:
                raise GrammarError(f"tool name {name!r} is used twice")
            names.add(name)
            params = tool.get("parameters", tool.get("arguments"))
            if params is None:
                params = {"type": "object", "properties": {}, "additionalProperties": False}
            branches.append({"type": "object", "properties": {"name": {"const": name}, "arguments": params},
                             "required": ["name", "arguments"], "additionalProperties": False})
        schema = _plain(branches[0] if len(branches) == 1 else {"anyOf": branches}, "tools")
        gbnf, loosened = js.to_gbnf(schema, deadline=checks.get("deadline"))
        return cls(gbnf, "root", kind="tool_call", schema=schema, loosened=loosened, model=model, **checks)

    @classmethod
    def lazy(cls, inner: "Grammar", *, words=(), patterns=(), tokens=(), model=None, **checks) -> "Grammar":
        """``inner`` switched on only once a trigger appears in the output.

        ``words``: literal strings; ``patterns``: regular expressions (the
        subset of host.engine.pattern, ASCII only, no anchors, not matching "");
        ``tokens``: token ids or single-token texts such as "<tool_call>".
        The constrained text starts with the trigger itself; before it the
        model writes freely.
        """
        if not isinstance(inner, Grammar):
            raise GrammarError("lazy needs a Grammar to switch on")
        if inner.is_lazy:
            raise GrammarError("the grammar is already lazy")
        words = _str_list(words, "trigger words")
        patterns = _str_list(patterns, "trigger patterns")
        if isinstance(tokens, (str, int)):
            tokens = [tokens]
        tokens = list(tokens)
        for t in tokens:
            if isinstance(t, bool) or not isinstance(t, (int, str)) or (isinstance(t, int) and t < 0) or t == "":
                raise GrammarError(f"trigger tokens must be token ids or token texts, got {t!r}")
        if not (words or patterns or tokens):
            raise GrammarError("lazy needs at least one trigger word, pattern or token")
        limits = checks.get("limits")
        if limits is not None:
            n = len(words) + len(patterns) + len(tokens)
            if n > limits.max_triggers:
                raise _too_big("the trigger list", n, limits.max_triggers, "triggers")
            for w in words + patterns:
                if len(w.encode("utf-8", "surrogatepass")) > limits.max_trigger_bytes:
                    raise _too_big(f"trigger {w[:40]!r}...", len(w.encode("utf-8", "surrogatepass")),
                                   limits.max_trigger_bytes)
        used = set(inner.rules)

        def fresh(base):
            name, n = base, 1
            while name in used:
                n += 1
                name = f"{base}-{n}"
            used.add(name)
            return name

        top, trig, tail = fresh("lazy-root"), fresh("lazy-trigger"), fresh("lazy-tail")
        alts, extra, llama_patterns, py_patterns, last = [], [], [], [], set()
        for w in words:
            alts.append(gbnf_literal(w))
        if words:
            # searched with std::regex_search (no ^...$), the grammar is fed from group 1; a [\s\S]*? prefix
            # as llama.cpp's own trigger words use makes each search quadratic in the output length
            llama_patterns.append("(" + "|".join(_ecma_literal(w) for w in words) + ")")
        for p in patterns:
            pat = Pattern(p)
            ecma = pat.ecmascript()
            try:
                re.compile(ecma)
            except re.error as exc:  # pragma: no cover - the emitter only writes the subset
                raise GrammarError(f"trigger pattern {p!r} could not be converted: {exc}") from None
            if pat.nullable():
                raise GrammarError(f"trigger pattern {p!r} can match the empty string; a trigger must match some "
                                   "text")
            last |= pat.last_bytes()
            alts.append(_raw_gbnf(pat, fresh, extra))
            llama_patterns.append("(" + ecma + ")")
            py_patterns.append(pat.python())
        for t in tokens:
            alts.append(f"<[{t}]>" if isinstance(t, int) else _token_text(t))
        head = (f"{top} ::= {trig} {tail} {inner.root}\n"
                f"{trig} ::= {' | '.join(alts)}\n" + "".join(f"{n} ::= {b}\n" for n, b in extra))
        parts = {"head": head, "tail": tail, "inner": inner.gbnf, "last": frozenset(last)}
        gbnf = head + f"{tail} ::= .{{0,{GENERIC_TAIL}}}\n" + inner.gbnf
        lazy = {"words": words, "patterns": patterns, "tokens": tokens, "parts": parts,
                "llama_patterns": llama_patterns, "py_patterns": py_patterns}
        return cls(gbnf, top, kind=inner.kind, schema=inner.schema, options=inner.options,
                   loosened=inner.loosened, model=model, _lazy=lazy, **checks)

    # llama.cpp
    def _confirm(self, model) -> None:
        if self._info.token_texts and model is None:
            return  # token texts depend on the model; sampler() checks them
        if model is not None:
            lib, vocab = model.lib, model.vocab
        else:
            checker = _default_checker()
            if checker is None:
                return
            lib, vocab = checker[0], checker[1].vocab
        self._check_tokens(vocab)
        ptr = _llama_init(lib, vocab, self.gbnf, self.root, self._llama_patterns,
                          self._trigger_ids(vocab))
        lib.C.llama_sampler_free(ptr)

    def _check_tokens(self, vocab) -> None:
        bad = sorted(t for t in self._info.token_ids if t >= vocab.n_tokens)
        if bad:
            raise GrammarError(f"the grammar names token id {bad[0]}, but the vocabulary has {vocab.n_tokens} "
                               "tokens")

    def _trigger_ids(self, vocab) -> list[int]:
        ids = []
        for t in self.trigger_tokens:
            if isinstance(t, int):
                if t >= vocab.n_tokens:
                    raise GrammarError(f"trigger token id {t} is out of range (vocabulary has {vocab.n_tokens})")
                ids.append(t)
            else:
                toks = vocab.tokenize(t, add_special=False, parse_special=True)
                if len(toks) != 1:
                    raise GrammarError(f"trigger token {t!r} is {len(toks)} tokens in this model, not one; use a "
                                       "trigger word instead")
                ids.append(toks[0])
        return ids

    def gbnf_for(self, vocab) -> str:
        """The exact text handed to llama.cpp for this vocabulary (differs from gbnf only when lazy)."""
        if not self.is_lazy:
            return self.gbnf
        parts = self._lazy_parts
        return parts["head"] + f"{parts['tail']} ::= {self._tail_body(vocab)}\n" + parts["inner"]

    def _tail_body(self, vocab) -> str:
        # the ids and a few pieces tell vocabularies apart (an id alone can be reused after a model is freed)
        key = (id(vocab), vocab.n_tokens, vocab.piece(vocab.n_tokens - 1), vocab.piece(vocab.n_tokens // 2),
               self.trigger_words, self._lazy_parts["last"])
        with _tail_lock:
            body = _tail_cache.get(key)
        if body is None:
            body = _tails(vocab, self.trigger_words, self._lazy_parts["last"])
            with _tail_lock:
                if len(_tail_cache) > 64:
                    _tail_cache.clear()
                _tail_cache[key] = body
        return body

    def sampler(self, lib, vocab):
        """A new llama.cpp grammar sampler (``struct llama_sampler *``); the caller's chain owns it."""
        self._check_tokens(vocab)
        return _llama_init(lib, vocab, self.gbnf_for(vocab), self.root, self._llama_patterns,
                           self._trigger_ids(vocab))

    # results
    def parse_result(self, text: str):
        """``(value, error)`` for generated text: the decoded value, and a message or None.

        Schema and tool-call grammars decode JSON and validate it (on a
        validation failure the decoded value is returned with the message);
        choice grammars return the chosen string; plain GBNF returns (None, None).
        A lazy grammar whose trigger never appeared returns (None, None).
        """
        try:
            return self._parse(text)
        except Exception as exc:  # a result must never break the worker
            return None, f"could not check the output: {type(exc).__name__}: {exc}"

    def _parse(self, text: str):
        if not self.returns_value:
            return None, None
        body = text
        if self.is_lazy:
            at = self._locate(text)
            if at is None:
                return None, None
            body = text[at:]
        if self.kind == "choice":
            for o in sorted(self.options, key=len, reverse=True):
                if body == o or (self.is_lazy and body.endswith(o)):
                    return o, None
            return None, f"output {text!r} is not one of the choices {list(self.options)}"
        value, problem = _decode_json(body, scan=self.is_lazy)
        if problem:
            return None, problem
        errors = validate(value, json.loads(self._schema_json))
        if errors:
            return value, "output does not match the schema: " + "; ".join(errors[:3])
        return value, None

    def _locate(self, text: str):
        hits = [i for i in (text.find(w) for w in self.trigger_words) if i >= 0]
        for p in self._py_patterns:
            m = re.search(p, text)
            if m:
                hits.append(m.start())
        for t in self.trigger_tokens:
            if isinstance(t, str) and t in text:
                hits.append(text.index(t))
        if hits:
            return min(hits)
        # a trigger token may be special and print as nothing: look for the value anywhere
        return 0 if self.trigger_tokens else None


def _decode_json(body: str, scan: bool):
    """Decode the JSON value that ends the text (``scan``: it may start anywhere)."""
    try:
        return json.loads(body), None
    except ValueError as exc:
        first = exc
    if scan:
        for i, c in enumerate(body):
            if c in '{["-0123456789tfn':
                try:
                    return json.loads(body[i:]), None
                except ValueError:
                    continue
    return None, (f"output is not valid JSON ({first}); it may have been cut off by max_tokens or a stop "
                  "string")


def _plain(value, what: str, depth: int = 0):
    """A JSON-compatible deep copy (dicts with str keys, lists), or GrammarError."""
    if depth > 200:
        raise GrammarError(f"{what} is nested too deeply")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise GrammarError(f"{what}: object keys must be strings, got {k!r} (a Lua array must be "
                                   "converted to a list)")
            out[k] = _plain(v, what, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, what, depth + 1) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise GrammarError(f"{what}: {type(value).__name__} is not a JSON value")


def _str_list(values, what: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    values = list(values)
    for v in values:
        if not isinstance(v, str) or not v or "\x00" in v:
            raise GrammarError(f"{what} must be non-empty strings, got {v!r}")
    return values


def _ecma_literal(word: str) -> str:
    # ASCII letters and digits stay; other ASCII becomes \xHH; non-ASCII stays as its UTF-8 bytes
    return "".join(c if (c.isascii() and c.isalnum()) or not c.isascii() else f"\\x{ord(c):02x}" for c in word)


def _token_text(text: str) -> str:
    if not (text.startswith("<") and text.endswith(">")) or ">" in text[1:-1]:
        raise GrammarError(f"a trigger token given as text must look like <name>, got {text!r}; use a trigger "
                           "word for ordinary text")
    return text


def _raw_gbnf(pat: "Pattern", fresh, extra: list) -> str:
    """GBNF matching (a superset of) the text a trigger pattern matches."""

    def emit(node):
        kind = node[0]
        if kind == "set":
            return gbnf_set(node[1])
        if kind == "seq":
            return join_sequence(map(emit, node[1]))
        if kind == "alt":
            return "( " + " | ".join(emit(n) or '""' for n in node[1]) + " )"
        _, inner, lo, hi = node
        body = emit(inner) or '""'
        if not re.fullmatch(r'\[(?:[^\]\\]|\\.)*\]|"(?:[^"\\]|\\.)*"', body):
            name = fresh("lazy-part")
            extra.append((name, body))
            body = name
        if lo > LLAMA_REPEAT_LIMIT:
            raise GrammarError(f"trigger pattern {pat.source!r}: repetition minimum {lo} is above "
                               f"{LLAMA_REPEAT_LIMIT}")
        if hi is not None and (hi > LLAMA_REPEAT_LIMIT or hi - lo > js.REPEAT_SPAN_CAP):
            hi = None  # a superset is enough: the grammar only has to accept what the regex matched
        return body + repeat_suffix(lo, hi)

    alts = [emit(node) or '""' for _, _, node in pat.branches]
    return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"


MAX_TAIL_GBNF = 64 * 1024  # above this the tail is written as "any text up to the longest piece"


def _tails(vocab, words, last: frozenset) -> str:
    """GBNF for the text that can follow a trigger inside the token that completed it.

    For a word: every piece that ends the word (starts with a suffix of it, or
    contains it) contributes what follows.  For a pattern: whatever follows a
    byte that can end a match (``last``).
    """
    pieces = [vocab.piece(t) for t in range(vocab.n_tokens)]
    tails = set()
    for w in words:
        wb = w.encode("utf-8")
        lead = set(wb)
        for p in pieces:
            if p and p[0] in lead:
                for k in range(1, min(len(wb), len(p)) + 1):
                    if wb.endswith(p[:k]):
                        tails.add(p[k:])
            i = p.find(wb)
            if i > 0:
                tails.add(p[i + len(wb):])
    if last:
        for p in pieces:
            for k, byte in enumerate(p):
                if byte in last:
                    tails.add(p[k + 1:])
    body = _trie_gbnf(tails)
    if len(body) > MAX_TAIL_GBNF:
        longest = max(len(p) for p in pieces)
        return f".{{0,{min(max(1, longest - 1), LLAMA_REPEAT_LIMIT)}}}"
    return body


def _trie_gbnf(tails) -> str:
    """Alternatives for a set of byte strings, shared prefixes factored out (few grammar stacks)."""
    root: dict = {}
    for t in tails:
        try:
            text, partial = t.decode("utf-8"), False
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":
                continue  # llama.cpp's grammar reads a piece with invalid UTF-8 as no text at all
            text, partial = t[:exc.start].decode("utf-8"), True  # ends inside a character: any one follows
        node = root
        for c in text:
            node = node.setdefault(c, {})
        node["" if not partial else None] = True  # "" marks an end; None an end inside a character

    def emit(node) -> list[str]:
        alts = ['""'] if "" in node else []
        if None in node:
            alts.append(".")
        for c in sorted(k for k in node if k):
            label, cur = c, node[c]
            while len(cur) == 1 and next(iter(cur)) not in ("", None):  # one way on: merge into the label
                k = next(iter(cur))
                label, cur = label + k, cur[k]
            sub = emit(cur)
            alts.append(gbnf_literal(label) if sub == ['""'] else f"{gbnf_literal(label)} ( {' | '.join(sub)} )")
        return alts

    alts = emit(root)
    if '""' not in alts:
        alts.insert(0, '""')
    return " | ".join(alts)
