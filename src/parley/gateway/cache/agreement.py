"""The semantic cache's second check. A bi-encoder scores "how do I start X" and "how do I
stop X", or "2+3" and "2+4", as near neighbours; returning one's answer for the other is the
worst thing a cache can do. Before a semantic hit is served, the two questions must agree
on what such models blur: the numbers they mention, whether they are negated, the names
they mention, and the language an answer is asked for in.

Deliberately conservative: disagreement only refuses a hit (the request goes upstream),
so a false alarm costs one upstream call, while a missed one costs a wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_APOSTROPHE = "\u2019"  # the typographic one, as phones type it
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "without",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "hasnt",
        "havent",
        "hadnt",
        "mustnt",
    ]
)
_LANGUAGES = frozenset(
    [
        "english",
        "french",
        "spanish",
        "german",
        "italian",
        "portuguese",
        "dutch",
        "russian",
        "chinese",
        "mandarin",
        "cantonese",
        "japanese",
        "korean",
        "arabic",
        "hindi",
        "bengali",
        "urdu",
        "turkish",
        "polish",
        "ukrainian",
        "swedish",
        "norwegian",
        "danish",
        "finnish",
        "greek",
        "hebrew",
        "persian",
        "farsi",
        "thai",
        "vietnamese",
        "indonesian",
        "malay",
        "czech",
        "hungarian",
        "romanian",
        "tamil",
        "telugu",
        "marathi",
        "punjabi",
        "swahili",
        "latin",
    ]
)
_OPPOSITES = (
    ("start", "stop"),
    ("enable", "disable"),
    ("increase", "decrease"),
    ("add", "remove"),
    ("install", "uninstall"),
    ("buy", "sell"),
    ("before", "after"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("best", "worst"),
    ("open", "close"),
    ("encrypt", "decrypt"),
    ("import", "export"),
    ("upload", "download"),
    ("lock", "unlock"),
    ("more", "less"),
    ("true", "false"),
    ("pros", "cons"),
    ("advantages", "disadvantages"),
    ("for", "against"),
    ("positive", "negative"),
    ("most", "least"),
    ("good", "bad"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("like", "dislike"),
    ("love", "hate"),
    ("cheap", "expensive"),
    ("cheapest", "costliest"),
    ("win", "lose"),
    ("pro", "anti"),
    ("first", "last"),
    ("above", "below"),
    ("inside", "outside"),
    ("fast", "slow"),
    ("high", "low"),
    ("long", "short"),
)
_OPPOSITE_OF = dict(_OPPOSITES) | {b: a for a, b in _OPPOSITES}
_NOT_NAMES = frozenset(
    [
        "i",
        "what",
        "how",
        "why",
        "when",
        "where",
        "who",
        "which",
        "whom",
        "whose",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "if",
        "in",
        "on",
        "at",
        "to",
        "of",
        "for",
        "with",
        "by",
        "from",
        "as",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "these",
        "those",
    ]
)


@dataclass(frozen=True, slots=True)
class Signature:
    numbers: frozenset[str]
    negated: bool
    names: tuple[str, ...]
    """In order: "what do Croats think of Turks" is not "what do Turks think of Croats"."""
    languages: frozenset[str]
    words: frozenset[str]


def signature(text: str) -> Signature:
    words = _WORD.findall(text)
    lowered = [w.lower().replace(_APOSTROPHE, "'") for w in words]
    bare = [w.replace("'", "") for w in lowered]
    negated = any(b in _NEGATIONS or w.endswith("n't") for w, b in zip(lowered, bare, strict=True))
    names = tuple(
        w.lower()
        for i, w in enumerate(words)
        if i > 0 and w[0].isupper() and w.lower() not in _NOT_NAMES and not _sentence_start(text, w)
    )
    return Signature(
        numbers=frozenset(n.replace(",", "") for n in _NUMBER.findall(text)),
        negated=negated,
        names=names,
        languages=frozenset(b for b in bare if b in _LANGUAGES),
        words=frozenset(bare),
    )


def _sentence_start(text: str, word: str) -> bool:
    """Whether every occurrence of ``word`` begins a sentence (so its capital says nothing)."""
    for match in re.finditer(re.escape(word), text):
        before = text[: match.start()].rstrip()
        if before and before[-1] not in ".?!:\n\"'(":
            return False
    return True


def agree(a: Signature, b: Signature) -> bool:
    if a.numbers != b.numbers or a.negated != b.negated or a.languages != b.languages:
        return False
    if a.names != b.names:
        return False
    # "start" in one and "stop" in the other, and not both in either
    for word in a.words ^ b.words:
        opposite = _OPPOSITE_OF.get(word)
        if opposite is not None and opposite in (a.words ^ b.words):
            return False
    return True
