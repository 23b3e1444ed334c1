"""Demographic-term statistics: gendered pronoun classes and a small documented list of group terms.

English only: the lists below are English words and the tokenizer lowercases `\\w+` runs, so a
text in another language simply matches (almost) nothing; the report says so rather than guessing.

Pronoun classes (as in Bordia & Bowman 2019, "Identifying and Reducing Gender Bias in Word-Level
Language Models", who contrast he/him/his with she/her/hers): male, female and neutral. "they"
and its forms are counted as neutral although most uses are plural, not singular-neutral; the
neutral rate is therefore an upper bound on singular they.

Group terms, compiled in our own words (a few descriptors per axis, not a copy of any list), each
axis after the published lists it follows:

- gender: gendered word pairs of Bordia & Bowman 2019 (woman/man, mother/father, ...), plus the
  gender and sex descriptors of HolisticBias (Smith et al. 2022, "I'm sorry to hear that", the
  `gender_and_sex` axis);
- religion: HolisticBias `religion` axis and BOLD (Dhamala et al. 2021) religious ideologies;
- race_ethnicity: HolisticBias `race_ethnicity` axis and BOLD race groups;
- nationality: HolisticBias `nationality` axis (a sample of frequent ones);
- age: HolisticBias `age` axis (nouns only: "young" and "old" are left out, they mostly describe
  things, not people);
- disability: HolisticBias `ability` axis;
- sexual_orientation: HolisticBias `sexual_orientation` axis ("straight" left out: mostly not about
  people).

Slurs are deliberately not listed: they belong to the toxicity scorer, and a bias report that counts
them would mostly measure toxicity twice. "black", "white" and "indian" are ambiguous (colours, the
country vs. Indigenous peoples); read their counts with that in mind.

Matching is on whole tokens, case-insensitive, with plural forms ("Christmas" is not "Christian",
"manage" is not "man", "caucasian" is not "asian"); multi-word terms ("african american") are
matched greedily longest-first, so their words are not counted again on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_TERM_WORDS = 3

PRONOUNS: dict[str, tuple[str, ...]] = {
    "male": ("he", "him", "his", "himself"),
    "female": ("she", "her", "hers", "herself"),
    "neutral": ("they", "them", "their", "theirs", "themselves", "themself"),
}

GROUP_TERMS: dict[str, tuple[str, ...]] = {
    "gender": (
        "woman", "man", "girl", "boy", "female", "male", "mother", "father", "daughter", "son",
        "wife", "husband", "sister", "brother", "lady", "gentleman", "aunt", "uncle", "bride", "groom",
        "transgender", "nonbinary", "non binary", "genderqueer",
    ),
    "religion": (
        "christian", "muslim", "jewish", "jew", "hindu", "buddhist", "sikh", "catholic", "protestant",
        "atheist", "agnostic", "mormon", "evangelical", "islam", "christianity", "judaism", "hinduism",
        "buddhism",
    ),
    "race_ethnicity": (
        "black", "white", "asian", "african american", "hispanic", "latino", "latina", "latinx",
        "caucasian", "native american", "indigenous", "arab", "pacific islander", "biracial",
        "multiracial", "alaska native",
    ),
    "nationality": (
        "american", "mexican", "chinese", "indian", "british", "french", "german", "russian",
        "japanese", "korean", "african", "european", "canadian", "irish", "italian", "nigerian",
        "filipino", "vietnamese", "cuban", "pakistani", "iranian", "brazilian",
    ),
    "age": (
        "child", "kid", "teenager", "teen", "adolescent", "youth", "adult", "elderly", "senior",
        "retiree", "pensioner", "millennial", "boomer", "middle aged", "grandparent",
    ),
    "disability": (
        "disabled", "disability", "blind", "deaf", "autistic", "autism", "wheelchair user",
        "paraplegic", "amputee", "dyslexic", "hard of hearing", "mentally ill", "down syndrome",
        "neurodivergent", "chronically ill", "handicapped",
    ),
    "sexual_orientation": (
        "gay", "lesbian", "bisexual", "homosexual", "heterosexual", "queer", "asexual", "pansexual",
        "lgbt", "lgbtq", "same sex",
    ),
}  # fmt: skip

# Plurals that are not the word plus "s" (the default, applied to the last word of a term); None: no
# plural form ("blinds" are mostly window blinds).
_IRREGULAR: dict[str, str | None] = {
    "woman": "women", "man": "men", "gentleman": "gentlemen", "lady": "ladies", "wife": "wives",
    "child": "children", "blind": None, "deaf": None, "chinese": None, "japanese": None,
    "vietnamese": None, "british": None, "french": None, "irish": None, "jewish": None,
}  # fmt: skip
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lowercased `\\w+` tokens: apostrophes split ("he's" -> he, s) so pronouns survive."""
    return _WORD.findall(text.lower())


def _forms(term: str) -> list[str]:
    head, _, last = term.rpartition(" ")
    plural = _IRREGULAR.get(last, last + "s")
    return [term] if plural is None else [term, f"{head} {plural}".strip()]


def _compile() -> dict[tuple[str, ...], tuple[str, str]]:
    table: dict[tuple[str, ...], tuple[str, str]] = {}
    for axis, terms in GROUP_TERMS.items():
        for term in terms:
            for form in _forms(term):
                key = tuple(form.split())
                if key in table:
                    raise ValueError(f"group term form {form!r} listed twice")
                table[key] = (axis, term)
    return table


TERM_TABLE = _compile()
_PRONOUN_CLASS = {word: cls for cls, forms in PRONOUNS.items() for word in forms}
_MULTI_FIRST = {key[0] for key in TERM_TABLE if len(key) > 1}


def pronoun_counts(tokens: Iterable[str]) -> dict[str, int]:
    """Occurrences of each pronoun class (male, female, neutral) among lowercased tokens."""
    counts = dict.fromkeys(PRONOUNS, 0)
    for token in tokens:
        cls = _PRONOUN_CLASS.get(token)
        if cls is not None:
            counts[cls] += 1
    return counts


def group_mentions(tokens: Sequence[str]) -> dict[tuple[str, str], int]:
    """Occurrences of each (axis, term), longest match first so "african american" is one mention."""
    found: dict[tuple[str, str], int] = {}
    i, n = 0, len(tokens)
    while i < n:
        width = MAX_TERM_WORDS if tokens[i] in _MULTI_FIRST else 1
        for w in range(min(width, n - i), 0, -1):
            hit = TERM_TABLE.get(tuple(tokens[i : i + w]))
            if hit is not None:
                found[hit] = found.get(hit, 0) + 1
                i += w
                break
        else:
            i += 1
    return found


@dataclass
class Demographics:
    """One text's pronoun classes and group-term mentions, with the word count for rates."""

    words: int = 0
    pronouns: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[str, str], int] = field(default_factory=dict)


def demographics(text: str) -> Demographics:
    tokens = words(text)
    return Demographics(len(tokens), pronoun_counts(tokens), group_mentions(tokens))
