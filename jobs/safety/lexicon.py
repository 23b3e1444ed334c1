"""A lexicon toxicity score: hits of a profanity word list per word of the document.

Source: the word lists that glin-profanity 4.1.0 (PyPI `glin-profanity`, MIT, GLINCKER) ships as JSON
under `glin_profanity/data/dictionaries/`, 24 languages. We read those files ourselves (bounded) through
`importlib.resources` and match them with our own tokeniser, so the score does not depend on the
package's matching heuristics, only on its maintained lists.

Matching. Text and entries are NFKC-normalised and case-folded. Words are runs of letters, digits and
the leetspeak symbols `@ $ ! *` (a trailing or leading `!`/`*` is punctuation and is stripped). A
word matches an entry as written (`a$$`, `sh!t`), or after the leetspeak map (`@`/`4`->a, `$`/`5`->s,
`!`/`1`->i, `3`->e, `0`->o, `7`->t) on both sides when the word has a letter (so `455` stays a
number). Multi-word entries (`ball gag`, `beti chod`) match as consecutive words, longest first,
and consume them. In English, a word no entry matches is tried without a plural `-s` (`hoes`).
Entries in scripts written without spaces (Chinese, Japanese, Thai) are matched as substrings (so
are symbol entries such as an emoji), counting `CHARS_PER_WORD` such characters as one word. Words
on the package's global whitelist never hit. The English list also holds `xxx`, so a few code
comments with `XXX` markers score low but above 0.

Score: with density d = hits / words, `score = d / (d + HALF_DENSITY)`: 0 without hits, 0.5 at one
hit per 20 words (one swear word in a tweet scores about 0.5-0.6, one in a 1,000-word page about
0.02), approaching 1 as every word hits.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources

PACKAGE = "glin_profanity"
# ISO 639-1 code -> the package's file stem (glin_profanity/data/dictionary.py LANGUAGE_FILES)
FILES = {
    "ar": "arabic", "cs": "czech", "da": "danish", "de": "german", "en": "english", "eo": "esperanto",
    "es": "spanish", "fa": "persian", "fi": "finnish", "fr": "french", "hi": "hindi", "hu": "hungarian",
    "it": "italian", "ja": "japanese", "ko": "korean", "nl": "dutch", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ru": "russian", "sv": "swedish", "th": "thai", "tr": "turkish", "zh": "chinese",
}  # fmt: skip
ALIASES = {"nb": "no", "nn": "no"}  # Norwegian Bokmål and Nynorsk share the list
ALL = "all"  # every list together
LANGUAGES = tuple(sorted(FILES))
FALLBACK = "en"
HALF_DENSITY = 0.05  # hits per word at which the score is 0.5
CHARS_PER_WORD = 2  # unsegmented scripts: characters counted as one word
MAX_FILE_BYTES = 1 << 20  # one word list (the largest, Turkish, is 16 KB)
MAX_ENTRIES = 50_000
MAX_ENTRY_CHARS = 64
MAX_PHRASE_WORDS = 8
MAX_TERMS = 20  # matched terms reported per document

_WORD = re.compile(r"[\w@$!*]+")
_UNSEGMENTED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LEET = str.maketrans(
    {"@": "a", "4": "a", "$": "s", "5": "s", "!": "i", "1": "i", "3": "e", "0": "o", "7": "t"}
)


@dataclass(frozen=True)
class LexiconScore:
    score: float  # in [0, 1]
    hits: int
    words: int
    terms: list[str] = field(default_factory=list)  # matched entries, at most MAX_TERMS, first seen first
    language: str = FALLBACK  # the list used: an ISO 639-1 code or "all"


@dataclass(frozen=True)
class Lexicon:
    phrases: dict[tuple[str, ...], str]  # normalised words -> the entry as listed
    first: dict[str, int]  # first word -> the longest phrase starting with it
    substrings: tuple[str, ...]  # entries in unsegmented scripts and symbol entries, longest first
    whitelist: frozenset[str]


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _words(text: str) -> list[str]:
    out = []
    for raw in _WORD.findall(text):
        word = raw.strip("!*")
        if word:
            out.append(word)
    return out


def _singular(word: str) -> str:
    """English plural `-s` off (`hoes` -> `hoe`), for a word no entry matches as written."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _deleet(word: str) -> str:
    return word.translate(_LEET) if any(c.isalpha() for c in word) else word


def _read_list(stem: str, key: str = "words") -> list[str]:
    """One JSON file of the package, size-capped; non-string and overlong entries are skipped."""
    path = resources.files(PACKAGE).joinpath("data", "dictionaries", f"{stem}.json")
    with path.open("rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{PACKAGE} word list {stem}.json is above {MAX_FILE_BYTES} bytes")
    parsed = json.loads(data.decode("utf-8"))
    entries = parsed.get(key, []) if isinstance(parsed, dict) else parsed
    if not isinstance(entries, list):
        raise ValueError(f"{PACKAGE} word list {stem}.json: {key!r} is not a list")
    return [e for e in entries[:MAX_ENTRIES] if isinstance(e, str) and 0 < len(e.strip()) <= MAX_ENTRY_CHARS]


@functools.lru_cache(maxsize=len(FILES) + 1)
def lexicon(code: str) -> Lexicon:
    """The compiled list for a code of `LANGUAGES` or `ALL` (read once per process)."""
    stems = sorted(FILES.values()) if code == ALL else [FILES[code]]
    literal: dict[tuple[str, ...], str] = {}
    substrings: set[str] = set()
    for stem in stems:
        for entry in _read_list(stem):
            norm = _normalise(entry.strip())
            words = tuple(_words(norm))[:MAX_PHRASE_WORDS]
            if norm == "testbad01":  # the package's own test fixture, not a word
                continue
            if _UNSEGMENTED.search(norm) or not words:  # no spaces, or symbols only (an emoji)
                substrings.add(norm.replace(" ", ""))
            elif any(c.isalpha() for w in words for c in w):  # bare numbers are no evidence
                literal.setdefault(words, norm)
    phrases = dict(literal)  # as written first: `shit` reports `shit`, not `sh!t`
    for words, norm in literal.items():
        phrases.setdefault(tuple(_deleet(w) for w in words), norm)
    first: dict[str, int] = {}
    for words in phrases:
        first[words[0]] = max(first.get(words[0], 0), len(words))
    whitelist = frozenset(_normalise(w) for w in _read_list("globalWhitelist", key="whitelist"))
    return Lexicon(phrases, first, tuple(sorted(substrings, key=lambda e: (-len(e), e))), whitelist)


def resolve_language(language: str | None) -> str:
    """`en`, `en-US`, `EN_gb` -> `en`; `all` stays; anything not listed falls back to English."""
    if not isinstance(language, str):
        return FALLBACK
    code = language.strip().lower()
    if code == ALL:
        return ALL
    code = re.split(r"[-_]", code, maxsplit=1)[0]
    code = ALIASES.get(code, code)
    return code if code in FILES else FALLBACK


def lexicon_score(text: str, language: str | None = None) -> LexiconScore:
    """Hits of the document language's list (English when unknown) per word, as a score in [0, 1]."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    code = resolve_language(language)
    lex = lexicon(code)
    norm = _normalise(text)
    words = _words(norm)
    hits, terms = _word_hits(words, lex, code == FALLBACK)
    if lex.substrings:
        compact = norm.replace(" ", "")
        for entry in lex.substrings:  # longest first; a match is cut out so it counts once
            if n := compact.count(entry):
                hits += n
                terms.append(entry)
                compact = compact.replace(entry, "\x00")
    unsegmented = len(_UNSEGMENTED.findall(norm))
    segmented = sum(1 for w in words if not _UNSEGMENTED.search(w))
    n_words = segmented + (unsegmented + CHARS_PER_WORD - 1) // CHARS_PER_WORD
    n_words = max(n_words, hits, 1 if hits else 0)
    density = hits / n_words if n_words else 0.0
    score = density / (density + HALF_DENSITY) if hits else 0.0
    return LexiconScore(score, hits, n_words, list(dict.fromkeys(terms))[:MAX_TERMS], code)


def _word_hits(words: list[str], lex: Lexicon, plural: bool) -> tuple[int, list[str]]:
    hits, terms, i = 0, [], 0
    deleeted = [_deleet(w) for w in words]
    while i < len(words):
        matched = 0
        for seq in (words, deleeted):
            longest = max(lex.first.get(seq[i], 0), 1 if plural else 0)
            for n in range(min(longest, len(words) - i), 0, -1):
                entry = lex.phrases.get(tuple(seq[i : i + n]))
                if entry is None and n == 1 and plural:
                    entry = lex.phrases.get((_singular(seq[i]),))
                if entry is not None and not (n == 1 and words[i] in lex.whitelist):
                    matched = n
                    terms.append(entry)
                    break
            if matched:
                break
        hits += 1 if matched else 0
        i += matched or 1
    return hits, terms
