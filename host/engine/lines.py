"""A character's line as data: what a model emitted, made into words a bubble can show.

Small models leak their prompt's format into what they say: a speaker tag
(``[Lise says]``, ``Judy:``), a brace or bracket from the JSON around the line,
leading punctuation, an instruction copied from the prompt ("One short sentence
in Tomas's own words"), a reply cut in the middle of a word.  The functions here
turn raw model text into the character's words and nothing else:

- :func:`clean` removes speaker tags, markup and echoed instructions;
- :func:`sentences` / :func:`shape` end the line on its last complete sentence and
  keep it within a number of sentences and characters;
- :func:`breaks_character` finds an out-of-character claim ("I am an AI") in a line;
- :func:`visible` is what may be shown while the line is still streaming (complete
  sentences only, cleaned), so a bubble never shows text that is later taken back.

Pure functions of strings (no model, no Lua): the persona kit (host/api/persona.py,
host/runtime/lua/persona.lua) calls them for every line, the tool flow's ``say`` text included.
"""

from __future__ import annotations

import re

__all__ = ["clean", "sentences", "shape", "breaks_character", "visible", "DEFAULT_FORBID", "INSTRUCTION_ECHOES"]

MAX_LINE_CHARS = 2000  # longer input is cut first: these run on the frame thread (a work bound, not policy)

# claims a character in a story never makes about itself (a persona adds its own)
DEFAULT_FORBID = ("AI", "A.I.", "artificial intelligence", "language model", "chatbot", "chat bot", "bot",
                  "assistant", "computer program", "a program", "robot", "machine learning", "OpenAI", "Hugging Face",
                  "SmolLM", "trained by", "trained on", "created by", "designed by", "developed by", "programmed")

# phrases of prompts and instructions that are never a character's words
INSTRUCTION_ECHOES = ("short sentence", "own words", "answer in", "answer as", "answer with", "as json", "in json",
                      "next_action", "stay in character", "in character", "things you know", "earlier in this "
                      "conversation", "you may also act", "one of these tools", "respond with", "reply with",
                      "the player", "system prompt", "as an ai", "im_start", "im_end", "user:", "assistant:")

_TAG = re.compile(
    r"\[[^\]\n]{0,60}\]"                       # [Lise says], [1], [note]
    r"|\{[^}\n]{0,200}\}"                      # {"say": ...} fragments
    r"|<\|?[^>\n]{0,40}\|?>"                   # <|im_end|>, <b>
    r"|\((?:[^()\n]{0,40}\b(?:says|said|asks|whispers|shouts)\b[^()\n]{0,20})\)"   # (Oona says)
)
_MARKUP = re.compile(r"[{}\[\]<>*_#|`\\~^]")
_LEAD = re.compile(r"^[^\w\"“‘']+", re.U)
_SPACES = re.compile(r"\s+")
# "Name:" / "Name says:" at the start of a line: a speaker prefix (one or two capitalized words)
_PREFIX = re.compile(r"^\s*(?:[A-Z][\w'-]{0,20}(?:\s[A-Z][\w'-]{0,20})?(?:\s+(?:says|said|asks|replies))?"
                     r"|(?:[\w'-]{1,20}\s){0,3}(?:says|said|asks|replies))\s*:\s*", re.I)
# a new line that starts another speaker's turn: the model went on writing the dialogue
_NEXT_SPEAKER = re.compile(r"\n\s*(?:\[|\(|[A-Z][\w'-]{0,20}(?:\s[A-Z][\w'-]{0,20})?\s*(?:says|said)?\s*:)")
_SENTENCE = re.compile(r"[^.!?…]*(?:[.!?…]+[\"'”’)]*|$)")
_END = re.compile(r"[.!?…][\"'”’)]*$")
_NEGATION = re.compile(r"\b(?:not|never|no|nor|nothing like)\b|n't\b", re.I)


def _phrase(p: str) -> re.Pattern:
    """A phrase as a case-insensitive pattern on word boundaries (where the phrase has word characters)."""
    left = r"\b" if p[:1].isalnum() else ""
    right = r"(?:e?s)?\b" if p[-1:].isalnum() else ""  # plurals too: "chatbots"
    return re.compile(left + re.escape(p) + right, re.I)


_ECHOES = [_phrase(p) for p in INSTRUCTION_ECHOES]


def sentences(text: str) -> list[str]:
    """The sentences of ``text``; the last one may be unfinished (no closing . ! ? …)."""
    out = []
    for m in _SENTENCE.finditer(text):
        s = m.group(0).strip()
        if s:
            out.append(s)
    return out


def _complete(s: str) -> bool:
    return _END.search(s) is not None


def clean(text: str, name: str | None = None, *, others=()) -> str:
    """The character's words in ``text``: no speaker tags, markup, echoed instructions or leading punctuation.

    ``name`` is the speaker (a ``Name:`` prefix and ``You are Name`` are removed);
    ``others`` are other names whose ``Name:`` in the middle of the text starts a
    turn that is not this character's (the text is cut there).
    """
    if not isinstance(text, str):
        return ""
    text = text[:MAX_LINE_CHARS].replace("\r", "")
    text = text.split("\n\n", 1)[0] if text.strip().count("\n\n") and text.strip().split("\n\n", 1)[0].strip() else text
    m = _NEXT_SPEAKER.search(text, 1)
    while m is not None and m.start() > 0 and not text[:m.start()].strip():
        m = _NEXT_SPEAKER.search(text, m.end())
    if m is not None and text[:m.start()].strip():
        text = text[:m.start()]
    for _ in range(3):  # "[Judy says] Judy: ..." has more than one prefix
        before = text
        text = _LEAD.sub("", _TAG.sub(" ", text).lstrip())
        text = _PREFIX.sub("", text, count=1)
        if text == before:
            break
    text = _TAG.sub(" ", text)
    for who in (name, *others):
        if who:
            # another speaker's (or this one's) "Name:" in the middle: cut there / drop it
            pat = re.compile(r"(?:^|\s)" + re.escape(who) + r"\s*(?:says|said)?\s*:\s*", re.I)
            hit = pat.search(text)
            if hit is not None and who != name:
                text = text[:hit.start()]
            elif hit is not None:
                text = text[:hit.start()] + " " + text[hit.end():]
    text = _MARKUP.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    kept = []
    for s in sentences(text):
        if any(p.search(s) for p in _ECHOES):
            continue
        if name and re.search(r"\byou are\s+" + re.escape(name) + r"\b", s, re.I):
            continue
        kept.append(s)
    text = " ".join(kept)
    text = _LEAD.sub("", text).strip()
    if text.count('"') % 2:  # an unbalanced quote: the model's framing, not speech
        text = text.replace('"', "").strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"' and text.count('"') == 2:
        text = text[1:-1].strip()  # the whole line in quotes
    text = _LEAD.sub("", text)
    return text[:1].upper() + text[1:] if text[:1].islower() else text


def shape(text: str, *, max_sentences: int = 3, max_chars: int = 300, finished: bool = True) -> str:
    """End ``text`` on a complete sentence, keeping at most ``max_sentences`` and ``max_chars``.

    An unfinished last sentence is dropped when an earlier one is complete;
    when it is the only one, it is kept and closed with a period (its last word
    dropped if the text stopped in it: ``finished=False`` says generation was cut).
    Returns "" for text with no words.
    """
    parts = [s for s in sentences(text) if re.search(r"\w", s)]
    if not parts:
        return ""
    if not _complete(parts[-1]):
        if len(parts) > 1:
            parts = parts[:-1]
        else:
            last = parts[-1]
            if not finished and " " in last:
                last = last.rsplit(" ", 1)[0]  # the last word may be cut
            last = last.rstrip(" ,;:-–—'\"(")
            if not re.search(r"\w", last):
                return ""
            parts = [last + "."]
    parts = parts[:max(1, max_sentences)]
    while len(parts) > 1 and len(" ".join(parts)) > max_chars:
        parts.pop()
    line = " ".join(parts)
    if len(line) > max_chars:  # one sentence longer than the cap: cut at a word, close it
        cut = line[:max_chars - 1].rsplit(" ", 1)[0].rstrip(" ,;:-–—'\"(")
        line = cut + "."
    return line


def breaks_character(text: str, forbid=DEFAULT_FORBID) -> str | None:
    """The forbidden phrase a sentence of ``text`` affirms (e.g. "AI" in "I am an AI"), else None.

    A sentence that negates within the three words before the phrase ("I'm no robot", "not an AI")
    does not count; a negation further away ("No sir, chatbots are people") does not excuse it.
    """
    pats = [(p, _phrase(p)) for p in forbid if isinstance(p, str) and p.strip()]
    for s in sentences(text):
        for p, pat in pats:
            m = pat.search(s)
            # a denial negates right before the claim ("I'm not an AI", "no robot"), within a few words
            if m is not None and not _NEGATION.search(" ".join(s[:m.start()].split()[-3:])):
                return p
    return None


def visible(raw: str, name: str | None = None, *, max_sentences: int = 3, max_chars: int = 300, others=()) -> str:
    """What of a streaming line may be shown now: its complete sentences, cleaned and capped.

    Growing ``raw`` gives a growing result (each is a prefix of the next) as
    long as the cleaned sentences do not change, which is what a bubble needs.
    """
    text = clean(raw, name, others=others)
    parts = [s for s in sentences(text) if _complete(s)]
    if not parts:
        return ""
    parts = parts[:max(1, max_sentences)]
    out = []
    for s in parts:
        if len(" ".join(out + [s])) > max_chars:
            break
        out.append(s)
    return " ".join(out)


REPEAT_WORDS = 6  # a run of this many words said before is a verbatim repeat
MAX_EARLIER = 64  # earlier lines a repeat check looks at (the most recent ones)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text[:MAX_LINE_CHARS].lower())


def repeats(text: str, earlier, *, words: int = REPEAT_WORDS) -> bool:
    """Does ``text`` say again what one of the ``earlier`` lines said: the same line, or a run of
    ``words`` words in a row (case and punctuation aside)?  Linear in the words (the frame thread calls it)."""
    mine = _words(text) if isinstance(text, str) else []
    if not mine:
        return False
    seen: set = set()
    whole: set = set()
    for line in list(earlier)[-MAX_EARLIER:]:
        if not isinstance(line, str):
            continue
        w = _words(line)
        whole.add(tuple(w))
        seen.update(tuple(w[i:i + words]) for i in range(len(w) - words + 1))
    if tuple(mine) in whole:
        return True
    return any(tuple(mine[i:i + words]) in seen for i in range(len(mine) - words + 1))
