"""GBNF text: writing literals and classes, and checking grammars before llama.cpp sees them.

:func:`check_gbnf` mirrors llama.cpp's parser (src/llama-grammar.cpp) to report
the rule, line and column of a problem: syntax errors, undefined or duplicate
rules, a missing root, left recursion, rules that can never finish,
characters no token can produce, and repetition bounds llama.cpp would refuse
or silently change.  llama.cpp prints its own parse errors to stderr rather
than through the log, and a few mistakes (an impossible character, a dead
end) would abort the process during sampling instead of failing cleanly, so
the checks happen here.  It is stricter than llama.cpp in a few places
(duplicate rules, empty or reversed ranges, bounds above 2000, ``x*`` with an
``x`` that may be empty, rules that can never finish).
"""

from __future__ import annotations

import re
import time

from host.errors import BudgetExceeded, GrammarError

LLAMA_REPEAT_LIMIT = 2000  # llama.cpp's MAX_REPETITION_THRESHOLD (src/llama-grammar.cpp)
MAX_NESTING = 64  # parentheses inside one another (the checks recurse over groups: a stack bound, not policy)
MAX_STACKED_REPEATS = 4  # x*** is pointless; each operator nests the element once more (a format bound)


def deadline_error(what: str) -> BudgetExceeded:
    """The error for grammar work that ran out of the caller's time (see check_gbnf's deadline)."""
    return BudgetExceeded(f"{what} is too large to check within the time left to this call (the mod's time "
                          "budget); make it smaller, or build it once in init.lua or onInit, which have a "
                          "larger budget")


class Deadline:
    """Cheap periodic checks of a time.monotonic() deadline (None: no deadline)."""

    __slots__ = ("at", "what", "n")

    def __init__(self, at: float | None, what: str):
        self.at, self.what, self.n = at, what, 0

    def tick(self) -> None:
        """Count one unit of work; every 128 units, raise BudgetExceeded past the deadline."""
        self.n += 1
        if self.n & 127 == 0 and self.at is not None and time.monotonic() > self.at:
            raise deadline_error(self.what)

# --- GBNF text --------------------------------------------------------------

UNIVERSE = ((0, 0xD7FF), (0xE000, 0x10FFFF))  # code points a token can produce (no surrogates)
_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def gbnf_char(cp: int, in_class: bool = False) -> str:
    """One code point as GBNF source inside a literal or a character class."""
    if cp in _SHORT:
        return _SHORT[cp]
    c = chr(cp)
    if c == "\\" or (c == '"' and not in_class) or (in_class and c in "[]-"):
        return "\\" + c
    if in_class and c == "^":
        return "\\x5E"
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02X}"
    if cp > 0x7F and not c.isprintable():
        return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"
    return c


def gbnf_literal(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly."""
    return '"' + "".join(gbnf_char(ord(c)) for c in text) + '"'


def gbnf_class(ranges, negated: bool = False) -> str:
    """A GBNF character class from inclusive code point ranges."""
    parts = []
    for lo, hi in ranges:
        if lo == hi:
            parts.append(gbnf_char(lo, True))
        elif hi == lo + 1:
            parts.append(gbnf_char(lo, True) + gbnf_char(hi, True))
        else:
            parts.append(gbnf_char(lo, True) + "-" + gbnf_char(hi, True))
    return "[" + ("^" if negated else "") + "".join(parts) + "]"


def gbnf_set(ranges) -> str:
    """A class, or a literal when the set holds one character."""
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return gbnf_literal(chr(ranges[0][0]))
    return gbnf_class(ranges)


_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


def join_sequence(parts) -> str:
    """Symbols separated by spaces, adjacent plain literals merged ("a" "b" -> "ab")."""
    out: list[str] = []
    for p in parts:
        if not p:
            continue
        if out and _LITERAL.fullmatch(p) and _LITERAL.fullmatch(out[-1]):
            out[-1] = out[-1][:-1] + p[1:]
        else:
            out.append(p)
    return " ".join(out)


def repeat_suffix(lo: int, hi: int | None) -> str:
    if (lo, hi) == (0, None):
        return "*"
    if (lo, hi) == (1, None):
        return "+"
    if (lo, hi) == (0, 1):
        return "?"
    if hi is None:
        return f"{{{lo},}}"
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"


def rule_name(hint: str) -> str:
    """A valid GBNF rule name from any text."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", hint).strip("-")
    return name or "r"


# --- code point sets ---------------------------------------------------------

def norm_ranges(ranges):
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def minus_ranges(ranges, cut):
    out = []
    for lo, hi in norm_ranges(ranges):
        pieces = [(lo, hi)]
        for clo, chi in norm_ranges(cut):
            nxt = []
            for plo, phi in pieces:
                if chi < plo or clo > phi:
                    nxt.append((plo, phi))
                    continue
                if plo < clo:
                    nxt.append((plo, clo - 1))
                if chi < phi:
                    nxt.append((chi + 1, phi))
            pieces = nxt
        out.extend(pieces)
    return norm_ranges(out)


def complement(ranges):
    return minus_ranges(UNIVERSE, ranges)


def contains(ranges, cp):
    return any(lo <= cp <= hi for lo, hi in ranges)


# --- the GBNF checker ----------------------------------------------------------

class GbnfInfo:
    """What :func:`check_gbnf` learned: rule names, token references."""

    __slots__ = ("rules", "token_ids", "token_texts")

    def __init__(self, rules, token_ids, token_texts):
        self.rules = tuple(rules)
        self.token_ids = frozenset(token_ids)
        self.token_texts = frozenset(token_texts)


def _is_word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "-")


_ESCAPES = {"t": 9, "r": 13, "n": 10, "\\": 92, '"': 34, "[": 91, "]": 93, "-": 45}


class _GbnfChecker:
    """Parses like llama_grammar_parser (src/llama-grammar.cpp), then checks the result."""

    def __init__(self, text: str, root: str, deadline: float | None = None):
        self.clock = Deadline(deadline, "the grammar")
        self.s = text
        self.n = len(text)
        self.root = root
        self.rules: dict[str, tuple] = {}  # name -> (alternatives, position)
        self.refs: list[tuple[str, int, str]] = []  # (name, position, in rule)
        self.named: set[str] = set()  # llama.cpp's symbol_ids: names seen so far ...
        self.generated = 0  # ... plus the ids it generates for groups and repetitions
        self.current = ""
        self.token_ids: set[int] = set()
        self.token_texts: set[str] = set()
        self.depth = 0  # open parentheses at the parse position
        self._refs_cache: dict[str, list[str]] | None = None
        self.max_alts: int | None = None
        self.max_total_alts: int | None = None
        self.total_alts = 0

    # errors
    def where(self, pos: int) -> tuple[int, int]:
        line = self.s.count("\n", 0, pos) + 1
        return line, pos - (self.s.rfind("\n", 0, pos) + 1) + 1

    def fail(self, msg: str, pos: int, rule: str | None = None):
        line, col = self.where(min(pos, self.n))
        rule = self.current if rule is None else rule
        exc = GrammarError(f"GBNF error at line {line}, column {col}"
                           f"{f' (rule {rule!r})' if rule else ''}: {msg}")
        exc.rule, exc.line, exc.column = rule or None, line, col
        raise exc

    # lexing
    def space(self, pos: int, newline_ok: bool) -> int:
        s, n = self.s, self.n
        while pos < n:
            c = s[pos]
            if c in " \t" or (newline_ok and c in "\r\n"):
                pos += 1
            elif c == "#":
                while pos < n and s[pos] not in "\r\n":
                    pos += 1
            else:
                break
        return pos

    def name_end(self, pos: int) -> int:
        end = pos
        while end < self.n and _is_word(self.s[end]):
            end += 1
        return end

    def char(self, pos: int) -> tuple[int, int]:
        s = self.s
        if s[pos] != "\\":
            cp = ord(s[pos])
            if 0xD800 <= cp <= 0xDFFF:
                self.fail("the text contains a lone surrogate (not valid Unicode)", pos)
            return cp, pos + 1
        if pos + 1 >= self.n:
            self.fail("the grammar ends inside an escape", pos)
        e = s[pos + 1]
        if e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = s[pos + 2:pos + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                self.fail(f"\\{e} needs exactly {width} hex digits", pos)
            cp = int(digits, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                self.fail(f"\\{e}{digits} is not a Unicode scalar value, so no token can produce it", pos)
            return cp, pos + 2 + width
        if e in _ESCAPES:
            return _ESCAPES[e], pos + 2
        self.fail(f"unknown escape '\\{e}'; valid escapes are \\xHH \\uHHHH \\UHHHHHHHH \\t \\r \\n \\\\ \\\" "
                  "\\[ \\] \\-", pos)

    # parsing
    def parse(self) -> None:
        if "\x00" in self.s:
            self.fail("the grammar text contains a NUL character", self.s.index("\x00"), "")
        pos = self.space(0, True)
        if pos >= self.n:
            self.fail("the grammar is empty (it needs at least 'root ::= ...')", pos, "")
        while pos < self.n:
            pos = self.rule(pos)

    def rule(self, pos: int) -> int:
        end = self.name_end(pos)
        if end == pos:
            self.fail(f"expecting a rule name, found {self.s[pos]!r}", pos, "")
        name = self.s[pos:end]
        self.named.add(name)
        p = self.space(end, False)
        if not self.s.startswith("::=", p):
            self.fail(f"expecting '::=' after the rule name {name!r}", p, name)
        self.current = name
        alts, p = self.alternates(self.space(p + 3, True), False)
        if p < self.n:
            c = self.s[p]
            if c == "\r":
                p += 2 if self.s[p + 1:p + 2] == "\n" else 1
            elif c == "\n":
                p += 1
            elif c == ")":
                self.fail("unbalanced ')': there is no '(' to close", p)
            else:
                self.fail(f"unexpected {c!r} (expecting a symbol, '|', or the end of the line)", p)
        if name in self.rules:
            line, _ = self.where(self.rules[name][1])
            self.fail(f"rule {name!r} is defined twice (first on line {line})", pos, name)
        self.rules[name] = (alts, pos)
        self.current = ""
        return self.space(p, True)

    def alternates(self, pos: int, nested: bool):
        start = pos
        seq, pos = self.sequence(pos, nested)
        alts = [seq]
        while pos < self.n and self.s[pos] == "|":
            seq, pos = self.sequence(self.space(pos + 1, True), nested)
            alts.append(seq)
            if self.max_alts is not None and len(alts) > self.max_alts:
                self.fail(f"more than {self.max_alts} alternatives in one {'group' if nested else 'rule'}; "
                          "split them into rules of their own", start)
        self.total_alts += len(alts)
        if self.max_total_alts is not None and self.total_alts > self.max_total_alts:
            self.fail(f"more than {self.max_total_alts} alternatives in the whole grammar", start)
        return alts, pos

    def sequence(self, pos: int, nested: bool):
        s, n = self.s, self.n
        items: list[tuple] = []
        last = False  # is there an item a repetition operator can apply to?
        n_prev = 1  # llama.cpp's count of rules the last item stands for
        tick = self.clock.tick
        while pos < n:
            tick()
            c = s[pos]
            start = pos
            if c == '"':
                pos += 1
                chars = []
                while True:
                    if pos >= n:
                        self.fail("unterminated string literal (missing closing '\"')", start)
                    if s[pos] == '"':
                        break
                    at = pos
                    cp, pos = self.char(pos)
                    if cp == 0:
                        self.fail("U+0000 cannot be generated (no token produces it)", at)
                    chars.append(cp)
                pos = self.space(pos + 1, nested)
                n_prev = 1
                last = bool(chars)
                if chars:
                    items.append(("lit", start, chars))
            elif c == "[":
                pos += 1
                neg = pos < n and s[pos] == "^"
                if neg:
                    pos += 1
                ranges = []
                while True:
                    if pos >= n:
                        self.fail("unterminated character class (missing ']')", start)
                    if s[pos] == "]":
                        break
                    lo, pos = self.char(pos)
                    if pos < n and s[pos] == "-" and pos + 1 < n and s[pos + 1] != "]":
                        dash = pos
                        hi, pos = self.char(pos + 1)
                        if hi < lo:
                            self.fail(f"range {chr(lo)!r}-{chr(hi)!r} is out of order (it matches nothing)", dash)
                        ranges.append((lo, hi))
                    else:
                        ranges.append((lo, lo))
                pos = self.space(pos + 1, nested)
                if not ranges:
                    self.fail("empty character class matches nothing", start)
                usable = complement(ranges) if neg else minus_ranges(ranges, [(0xD800, 0xDFFF)])
                if not minus_ranges(usable, [(0, 0)]):
                    self.fail("this character class matches no character a token can produce", start)
                items.append(("cls", start, neg, norm_ranges(ranges)))
                n_prev, last = 1, True
            elif c == "<" or c == "!":
                if c == "!":
                    pos += 1
                    if pos >= n or s[pos] != "<":
                        self.fail("expecting '<' after '!' (a negated token is written !<...>)", start)
                pos += 1
                if pos < n and s[pos] == "[":
                    m = re.compile(r"\[(\d+)\]>").match(s, pos)
                    if not m:
                        self.fail("a token id is written <[123]>", start)
                    tid = int(m.group(1))
                    if tid > 0xFFFFFFFF:
                        self.fail(f"token id {tid} is too big", start)
                    self.token_ids.add(tid)
                    pos = m.end()
                else:
                    end = s.find(">", pos)
                    if end == -1:
                        self.fail("expecting '>' to close the token", start)
                    self.token_texts.add(s[pos - 1:end + 1])
                    pos = end + 1
                items.append(("tok", start))
                pos = self.space(pos, nested)
                n_prev, last = 1, True
            elif _is_word(c):
                end = self.name_end(pos)
                name = s[pos:end]
                self.named.add(name)
                self.refs.append((name, pos, self.current))
                items.append(("ref", start, name))
                pos = self.space(end, nested)
                n_prev, last = 1, True
            elif c == "(":
                if self.depth >= MAX_NESTING:
                    self.fail(f"parentheses nested more than {MAX_NESTING} deep; move inner groups into rules "
                              "of their own", start)
                before = len(self.named) + self.generated
                self.generated += 1
                self.depth += 1
                alts, pos = self.alternates(self.space(pos + 1, True), True)
                self.depth -= 1
                if pos >= n or s[pos] != ")":
                    self.fail("unclosed '(' (no matching ')')", start)
                n_prev = max(1, len(self.named) + self.generated - before)
                items.append(("grp", start, alts))
                pos = self.space(pos + 1, nested)
                last = True
            elif c == ".":
                items.append(("any", start))
                pos = self.space(pos + 1, nested)
                n_prev, last = 1, True
            elif c in "*+?":
                lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
                pos = self.space(pos + 1, nested)
                n_prev, last = self.repeat(items, last, n_prev, lo, hi, start)
            elif c == "{":
                pos = self.space(pos + 1, nested)
                m = re.compile(r"\d+").match(s, pos)
                if not m:
                    self.fail("expecting a number after '{'", pos)
                lo = hi = int(m.group())
                pos = self.space(m.end(), nested)
                if pos < n and s[pos] == ",":
                    pos = self.space(pos + 1, nested)
                    m = re.compile(r"\d+").match(s, pos)
                    hi = None
                    if m:
                        hi = int(m.group())
                        pos = self.space(m.end(), nested)
                    if pos >= n or s[pos] != "}":
                        self.fail("expecting '}' to close the repetition", pos)
                elif pos >= n or s[pos] != "}":
                    self.fail("expecting ',' or '}' in the repetition", pos)
                pos = self.space(pos + 1, nested)
                if lo > LLAMA_REPEAT_LIMIT or (hi is not None and hi > LLAMA_REPEAT_LIMIT):
                    self.fail(f"repetition bound above {LLAMA_REPEAT_LIMIT} (llama.cpp refuses it or silently makes "
                              "it unbounded)", start)
                if hi is not None and hi < lo:
                    self.fail(f"repetition {{{lo},{hi}}} has its maximum below its minimum", start)
                n_prev, last = self.repeat(items, last, n_prev, lo, hi, start)
            else:
                break
        return items, pos

    def repeat(self, items, last, n_prev, lo, hi, at):
        if not last:
            self.fail("a repetition operator needs something before it to repeat", at)
        stacked, e = 0, items[-1]
        while e[0] == "rep":
            stacked, e = stacked + 1, e[2]
        if stacked >= MAX_STACKED_REPEATS:
            self.fail(f"more than {MAX_STACKED_REPEATS} repetition operators in a row on one element", at)
        total = hi if hi else (lo if lo > 0 else 1)
        if n_prev * total > LLAMA_REPEAT_LIMIT:
            self.fail(f"this repetition would make llama.cpp generate {n_prev * total} rules (limit "
                      f"{LLAMA_REPEAT_LIMIT}); move the repeated group into a rule of its own", at)
        self.generated += 1 if hi is None else hi - lo
        items[-1] = ("rep", at, items[-1], lo, hi)
        if lo == 0 and hi == 0:
            items.pop()
            return n_prev * total, False
        return n_prev * total, True

    # checks on the parsed rules
    def check(self) -> GbnfInfo:
        self.parse()
        for name, pos, in_rule in self.refs:
            if name not in self.rules:
                self.fail(f"rule {name!r} is used but never defined", pos, in_rule)
        if self.root not in self.rules:
            self.fail(f"the grammar has no {self.root!r} rule (the start rule); define {self.root} ::= ...",
                      0, "")
        nullable = self._fixpoint(self._nullable)
        self._left_recursion(nullable)
        productive = self._fixpoint(self._productive)
        stuck = [name for name in self._reachable(self.root) if not productive[name]]
        if stuck:
            # name a rule on the cycle (it reaches itself), not just the first rule that depends on one
            name = next((r for r in stuck[:20] if r in self._reachable(r, skip_self=True)), stuck[0])
            self.fail(f"rule {name!r} can never finish: each of its alternatives needs {name!r} again (or another "
                      "rule that never finishes)", self.rules[name][1], name)
        return GbnfInfo(self.rules, self.token_ids, self.token_texts)

    def _rule_refs(self) -> dict[str, list[str]]:
        """Rule name -> the distinct rules its alternatives reference, in order."""
        if self._refs_cache is None:
            out: dict[str, list[str]] = {}
            for name, (alts, _) in self.rules.items():
                seen: dict[str, None] = {}
                todo = [e for alt in alts for e in alt]
                while todo:
                    e = todo.pop()
                    if e[0] == "ref":
                        seen[e[2]] = None
                    elif e[0] == "grp":
                        todo.extend(x for alt in e[2] for x in alt)
                    elif e[0] == "rep":
                        todo.append(e[2])
                out[name] = list(seen)
            self._refs_cache = out
        return self._refs_cache

    def _post_order(self) -> list[str]:
        """Rules with the ones they reference first (iterative DFS), so a fixpoint settles in few passes."""
        refs, state, order = self._rule_refs(), {}, []
        for start in self.rules:
            if start in state:
                continue
            state[start] = 1
            stack = [(start, iter(refs[start]))]
            while stack:
                name, it = stack[-1]
                for nxt in it:
                    if nxt not in state and nxt in refs:
                        state[nxt] = 1
                        stack.append((nxt, iter(refs[nxt])))
                        break
                else:
                    stack.pop()
                    order.append(name)
        return order

    def _fixpoint(self, elem_fn):
        # Dependencies first: one pass settles a grammar without cycles (a
        # chain of thousands of rules used to take one pass per rule).
        value = dict.fromkeys(self.rules, False)
        order = self._post_order()
        changed = True
        while changed:
            changed = False
            for name in order:
                self.clock.tick()
                if not value[name] and any(all(elem_fn(e, value) for e in alt) for alt in self.rules[name][0]):
                    value[name] = changed = True
        return value

    def _nullable(self, e, value) -> bool:
        kind = e[0]
        if kind == "ref":
            return value[e[2]]
        if kind == "grp":
            return any(all(self._nullable(x, value) for x in alt) for alt in e[2])
        if kind == "rep":
            return e[3] == 0 or self._nullable(e[2], value)
        return False

    def _productive(self, e, value) -> bool:
        kind = e[0]
        if kind == "ref":
            return value[e[2]]
        if kind == "grp":
            return any(all(self._productive(x, value) for x in alt) for alt in e[2])
        if kind == "rep":
            return e[3] == 0 or self._productive(e[2], value)
        return True

    def _left_recursion(self, nullable) -> None:
        edges: dict[str, list[tuple[str, int]]] = {}

        def firsts(e, out, rule):
            kind = e[0]
            if kind == "ref":
                out.append((e[2], e[1]))
            elif kind == "grp":
                for alt in e[2]:
                    walk(alt, out, rule)
            elif kind == "rep" and e[4] != 0:
                firsts(e[2], out, rule)

        def empty_loops(e, rule):
            # llama.cpp rewrites x* as  x' ::= x x' | ; with a nullable x that rule is left-recursive
            if e[0] == "rep":
                if e[4] is None and self._nullable(e[2], nullable):
                    self.fail("repeating something that can match the empty string without limit (x* with an "
                              "x that may be empty) is ambiguous, and llama.cpp may reject it as left recursion; "
                              "make the repeated part non-empty", e[1], rule)
                empty_loops(e[2], rule)
            elif e[0] == "grp":
                for alt in e[2]:
                    for x in alt:
                        empty_loops(x, rule)

        def walk(alt, out, rule):
            for e in alt:
                firsts(e, out, rule)
                if not self._nullable(e, nullable):
                    break

        for name, (alts, _) in self.rules.items():
            self.clock.tick()
            for alt in alts:
                for e in alt:
                    empty_loops(e, name)
        for name, (alts, _) in self.rules.items():
            self.clock.tick()
            out: list[tuple[str, int]] = []
            for alt in alts:
                walk(alt, out, name)
            edges[name] = out
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done

        # iterative DFS: a chain of thousands of rules must not hit Python's recursion limit
        for start in self.rules:
            if start in state:
                continue
            state[start] = 1
            path, stack = [start], [iter(edges[start])]
            while stack:
                for nxt, pos in stack[-1]:
                    if state.get(nxt) == 1:
                        cycle = path[path.index(nxt):] + [nxt]
                        if len(cycle) > 8:
                            cycle = cycle[:4] + [f"... {len(cycle) - 7} more ..."] + cycle[-3:]
                        self.fail(f"left recursion: {' -> '.join(cycle)} without consuming any text (llama.cpp "
                                  "refuses left-recursive grammars; put a terminal first)", pos, path[-1])
                    if nxt not in state:
                        state[nxt] = 1
                        path.append(nxt)
                        stack.append(iter(edges[nxt]))
                        break
                else:
                    state[path.pop()] = 2
                    stack.pop()

    def _reachable(self, start: str, skip_self: bool = False) -> list[str]:
        refs = self._rule_refs()
        seen = set() if skip_self else {start}
        todo = [start]
        while todo:
            for r in refs[todo.pop()]:
                if r not in seen:
                    seen.add(r)
                    todo.append(r)
        return [r for r in self.rules if r in seen]


def check_gbnf(text: str, root: str = "root", *, deadline: float | None = None,
               max_alternatives: int | None = None, max_total_alternatives: int | None = None) -> GbnfInfo:
    """Validate GBNF text; raise GrammarError naming the rule, line and column of the problem.

    ``deadline`` (a time.monotonic() value) bounds the work: past it the
    check stops with BudgetExceeded saying the grammar is too large for the
    time left (mods pass the end of their callback's budget).
    ``max_alternatives`` caps the alternatives of one rule or group and
    ``max_total_alternatives`` those of the whole grammar: llama.cpp's
    grammar set-up grows faster than linearly with them.
    """
    if not isinstance(text, str):
        raise GrammarError(f"a GBNF grammar must be a string, got {type(text).__name__}")
    if not isinstance(root, str) or not root or not all(_is_word(c) for c in root):
        raise GrammarError(f"the root rule name must be letters, digits and '-', got {root!r}")
    try:
        checker = _GbnfChecker(text, root, deadline)
        checker.max_alts, checker.max_total_alts = max_alternatives, max_total_alternatives
        return checker.check()
    except RecursionError:  # a backstop: every recursion here is bounded by MAX_NESTING
        raise GrammarError("the grammar is nested too deeply to check; move nested groups into rules of "
                           "their own") from None


def gbnf_regex(text: str, root: str = "root") -> str:
    """A Python regex (for ``re.fullmatch``) accepting the same strings as a non-recursive grammar.

    For tests and debugging: it checks text offline without a model.  Raises
    GrammarError for recursive grammars and token references.
    """
    checker = _GbnfChecker(text, root)
    checker.check()
    rules = checker.rules

    def alts(options, stack) -> str:
        return "|".join("".join(one(e, stack) for e in alt) for alt in options)

    def one(e, stack) -> str:
        kind = e[0]
        if kind == "lit":
            return "".join(re.escape(chr(c)) for c in e[2])
        if kind == "cls":
            body = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in e[3])
            return "[" + ("^" if e[2] else "") + body + "]"
        if kind == "any":
            return "[\\s\\S]"
        if kind == "tok":
            raise GrammarError("a grammar with token references cannot be matched as text")
        if kind == "ref":
            if e[2] in stack:
                raise GrammarError(f"rule {e[2]!r} is recursive; only non-recursive grammars become a regex")
            return "(?:" + alts(rules[e[2]][0], stack + (e[2],)) + ")"
        if kind == "grp":
            return "(?:" + alts(e[2], stack) + ")"
        return "(?:" + one(e[2], stack) + ")" + repeat_suffix(e[3], e[4])

    return "(?:" + alts(rules[root][0], (root,)) + ")"

