"""A documented subset of ECMAScript regular expressions, parsed once and written out
as GBNF (by host.engine.json_schema and host.engine.grammar), as a Python regex (for
the validator) and as an ECMAScript regex (for llama.cpp's std::regex triggers).

The subset: literals, ``.``, classes ``[a-z]``/``[^...]``, escapes ``\\d \\w \\s
\\D \\W \\S \\t \\n \\r \\f \\v \\xHH \\uHHHH`` and escaped punctuation,
groups ``(...)``/``(?:...)``, alternation ``|``, quantifiers ``* + ? {n} {n,}
{n,m}`` (a trailing lazy ``?`` is accepted: it does not change which strings
match), ``^`` at the start and ``$`` at the end of the pattern or of a top-level
alternative.  ``\\d``/``\\w``/``\\s`` are ASCII-only.  Not supported (GrammarError):
backreferences, lookaround, named groups, ``\\b``, Unicode property escapes, flags.
"""

from __future__ import annotations

import re

from host.engine.gbnf import complement, minus_ranges, norm_ranges, repeat_suffix
from host.errors import GrammarError

TRIGGER_REPEAT_CAP = 64

# --- the regular expression subset ---------------------------------------------

_DIGIT = [(0x30, 0x39)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE = [(0x09, 0x0D), (0x20, 0x20)]
_CLASS_ESCAPES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_CHAR_ESCAPES = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "v": 0x0B}
_DOT = complement([(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)])


class Pattern:
    """A parsed pattern: ``branches`` is a list of (anchored_start, anchored_end, node).

    Nodes: ("set", ranges) | ("seq", [nodes]) | ("alt", [nodes]) | ("rep", node, lo, hi).
    """

    def __init__(self, source: str):
        self.source = source
        self.branches = _PatternParser(source).parse()

    def nullable(self) -> bool:
        """Can the pattern match the empty string (ignoring anchors)?"""
        return any(_nullable(node) for _, _, node in self.branches)

    def last_bytes(self) -> set[int]:
        """The characters (ASCII code points) a non-empty match can end with."""
        out: set[int] = set()
        for _, _, node in self.branches:
            for lo, hi in _last(node):
                out.update(range(lo, min(hi, 0x7F) + 1))
        return out

    def python(self) -> str:
        """An equivalent Python regex (use with re.search; \\A/\\Z anchors)."""
        alts = []
        for start, end, node in self.branches:
            alts.append(("\\A" if start else "") + _py(node) + ("\\Z" if end else ""))
        return "|".join(alts)

    def ecmascript(self) -> str:
        """An ECMAScript regex for a std::regex trigger (no anchors allowed).

        Open-ended repetitions are capped at :data:`TRIGGER_REPEAT_CAP` extra
        characters: llama.cpp searches the whole output after every token,
        and an unbounded ``[ -~]*`` makes each search quadratic.  The grammar
        side keeps the uncapped form (it must accept whatever matched).
        """
        if any(s or e for s, e, _ in self.branches):
            raise GrammarError(f"trigger pattern {self.source!r}: anchors ^ and $ are not supported in triggers")
        return "|".join(_ecma(node) for _, _, node in self.branches)


class _PatternParser:
    def __init__(self, src: str):
        if not isinstance(src, str):
            raise GrammarError(f"pattern must be a string, got {type(src).__name__}")
        self.s = src
        self.i = 0

    def fail(self, msg, at=None):
        at = self.i if at is None else at
        raise GrammarError(f"pattern {self.s!r}: {msg} at position {at}")

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def parse(self):
        branches = []
        while True:
            start = False
            if self.peek() == "^":
                start = True
                self.i += 1
            node, end = self.seq(top=True)
            branches.append((start, end, node))
            if self.peek() == "|":
                self.i += 1
                continue
            if self.i < len(self.s):
                self.fail(f"unexpected {self.peek()!r}")
            return branches

    def alt(self):
        items = [self.seq()[0]]
        while self.peek() == "|":
            self.i += 1
            items.append(self.seq()[0])
        return items[0] if len(items) == 1 else ("alt", items)

    def seq(self, top=False):
        items = []
        while self.i < len(self.s):
            c = self.peek()
            if c == "|" or c == ")":
                break
            if c == "$":
                if top and (self.i + 1 == len(self.s) or self.s[self.i + 1] == "|"):
                    self.i += 1
                    return ("seq", items), True
                self.fail("'$' is supported only at the end of the pattern")
            if c == "^":
                self.fail("'^' is supported only at the start of the pattern")
            atom_at = self.i
            atom = self.atom()
            while self.peek() in ("*", "+", "?", "{"):
                lo, hi = self.quantifier()
                if atom_at is None:
                    self.fail("a quantifier cannot follow another quantifier")
                atom = ("rep", atom, lo, hi)
                atom_at = None
            items.append(atom)
        return ("seq", items), False

    def quantifier(self):
        c = self.peek()
        self.i += 1
        if c == "*":
            lo, hi = 0, None
        elif c == "+":
            lo, hi = 1, None
        elif c == "?":
            lo, hi = 0, 1
        else:
            m = re.compile(r"(\d+)(,(\d*))?\}").match(self.s, self.i)
            if not m:
                self.fail("'{' must start a quantifier {n}, {n,} or {n,m} (escape a literal brace as \\{)",
                          self.i - 1)
            self.i = m.end()
            lo = int(m.group(1))
            hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            if hi is not None and hi < lo:
                self.fail(f"quantifier {{{lo},{hi}}} has its maximum below its minimum", m.start() - 1)
        if self.peek() == "?":  # lazy: the same set of matching strings
            self.i += 1
        return lo, hi

    def atom(self):
        c = self.peek()
        if c == "(":
            start = self.i
            self.i += 1
            if self.s.startswith("?:", self.i):
                self.i += 2
            elif self.peek() == "?":
                self.fail("lookaround and named groups are not supported", start)
            node = self.alt()
            if self.peek() != ")":
                self.fail("unclosed '('", start)
            self.i += 1
            return node
        if c in "*+?":
            self.fail(f"nothing to repeat before {c!r}")
        if c == "{":
            self.fail("a literal '{' must be escaped as \\{")
        if c == "[":
            return ("set", self.klass())
        if c == ".":
            self.i += 1
            return ("set", _DOT)
        if c == "\\":
            kind, value = self.escape(in_class=False)
            return ("set", value if kind == "set" else [(value, value)])
        self.i += 1
        return ("set", [(ord(c), ord(c))])

    def escape(self, in_class):
        start = self.i
        self.i += 1
        if self.i >= len(self.s):
            self.fail("pattern ends with a lone backslash", start)
        c = self.s[self.i]
        self.i += 1
        if c in _CLASS_ESCAPES:
            return "set", list(_CLASS_ESCAPES[c])
        if c.lower() in _CLASS_ESCAPES:
            return "set", complement(_CLASS_ESCAPES[c.lower()])
        if c in _CHAR_ESCAPES:
            return "char", _CHAR_ESCAPES[c]
        if c == "b" and in_class:
            return "char", 0x08
        if c in "xu":
            n = 2 if c == "x" else 4
            digits = self.s[self.i:self.i + n]
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                self.fail(f"\\{c} needs {n} hex digits", start)
            self.i += n
            cp = int(digits, 16)
            if 0xD800 <= cp <= 0xDFFF:
                self.fail("surrogate code points are not supported", start)
            return "char", cp
        if c.isalnum() or c == "_":
            what = {"b": "word boundaries (\\b)", "B": "word boundaries (\\B)", "p": "Unicode property escapes",
                    "P": "Unicode property escapes", "k": "named backreferences", "c": "control escapes (\\c)",
                    "0": "NUL escapes (\\0)"}.get(c, "backreferences" if c.isdigit() else f"the escape \\{c}")
            self.fail(f"{what}: not supported", start)
        return "char", ord(c)

    def klass(self):
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        ranges = []
        first = True
        while True:
            if self.i >= len(self.s):
                self.fail("unclosed '['", start)
            c = self.peek()
            if c == "]":
                if first and not negated:
                    self.fail("empty class [] matches nothing", start)
                self.i += 1
                break
            first = False
            lo = self.class_atom()
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                dash = self.i
                self.i += 1
                hi = self.class_atom()
                if isinstance(lo, list) or isinstance(hi, list):
                    self.fail("a class escape such as \\d cannot bound a range", dash)
                if hi < lo:
                    self.fail(f"range {chr(lo)!r}-{chr(hi)!r} is out of order", dash)
                ranges.append((lo, hi))
            elif isinstance(lo, list):
                ranges.extend(lo)
            else:
                ranges.append((lo, lo))
        ranges = norm_ranges(ranges)
        return complement(ranges) if negated else minus_ranges(ranges, [(0xD800, 0xDFFF)])

    def class_atom(self):
        c = self.peek()
        if c == "\\":
            kind, value = self.escape(in_class=True)
            return value if kind == "set" else value
        self.i += 1
        return ord(c)


def _py_set(ranges) -> str:
    def esc(cp):
        return f"\\U{cp:08x}"
    return "[" + "".join(esc(lo) if lo == hi else esc(lo) + "-" + esc(hi) for lo, hi in ranges) + "]"


def _py(node) -> str:
    kind = node[0]
    if kind == "set":
        return _py_set(node[1])
    if kind == "seq":
        return "".join(_py(n) for n in node[1])
    if kind == "alt":
        return "(?:" + "|".join(_py(n) for n in node[1]) + ")"
    _, inner, lo, hi = node
    return "(?:" + _py(inner) + ")" + repeat_suffix(lo, hi)


def _ecma_char(cp: int) -> str:
    c = chr(cp)
    return c if c.isalnum() and cp < 0x80 else f"\\x{cp:02x}"


def _ecma(node) -> str:
    kind = node[0]
    if kind == "set":
        ranges = node[1]
        if any(hi > 0x7F or lo == 0 for lo, hi in ranges):
            raise GrammarError("trigger patterns may use only ASCII characters (no '.', negated classes or "
                               "\\D \\W \\S): std::regex matches bytes, and the grammar must see the same text")
        return "[" + "".join(_ecma_char(lo) if lo == hi else _ecma_char(lo) + "-" + _ecma_char(hi)
                             for lo, hi in ranges) + "]"
    if kind == "seq":
        return "".join(_ecma(n) for n in node[1])
    if kind == "alt":
        return "(?:" + "|".join(_ecma(n) for n in node[1]) + ")"
    _, inner, lo, hi = node
    if hi is None or hi - lo > TRIGGER_REPEAT_CAP:
        hi = lo + TRIGGER_REPEAT_CAP
    return "(?:" + _ecma(inner) + ")" + repeat_suffix(lo, hi)


def _nullable(node) -> bool:
    kind = node[0]
    if kind == "set":
        return False
    if kind == "seq":
        return all(_nullable(n) for n in node[1])
    if kind == "alt":
        return any(_nullable(n) for n in node[1])
    return node[2] == 0 or _nullable(node[1])


def _last(node) -> list:
    """Code point ranges a non-empty match of ``node`` can end with."""
    kind = node[0]
    if kind == "set":
        return list(node[1])
    if kind == "alt":
        return [r for n in node[1] for r in _last(n)]
    if kind == "rep":
        return [] if node[3] == 0 else _last(node[1])
    out = []
    for n in reversed(node[1]):
        out.extend(_last(n))
        if not _nullable(n):
            break
    return out

