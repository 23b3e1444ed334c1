"""Pronoun classes and group terms (jobs/safety/demographics.py): known sentences, word-boundary traps."""

from __future__ import annotations

import pytest

from jobs.safety.demographics import GROUP_TERMS, PRONOUNS, TERM_TABLE, demographics, group_mentions, words


def _groups(text: str) -> dict[tuple[str, str], int]:
    return group_mentions(words(text))


def test_pronoun_counts_on_a_known_sentence() -> None:
    d = demographics(
        "He said his sister gave him HER keys; she kept hers, and they left with their dog himself."
    )
    assert d.pronouns == {"male": 4, "female": 3, "neutral": 2}
    assert d.words == 18
    assert d.groups == {("gender", "sister"): 1}


def test_contractions_keep_the_pronoun() -> None:
    assert demographics("He's here and she'll come; they're late.").pronouns == {
        "male": 1,
        "female": 1,
        "neutral": 1,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Merry Christmas to all", {}),
        ("A Christian and two Christians", {("religion", "christian"): 2}),
        ("caucasian", {("race_ethnicity", "caucasian"): 1}),
        ("Asian", {("race_ethnicity", "asian"): 1}),
        ("We manage the manager's mandate", {}),
        ("the man and the men", {("gender", "man"): 2}),
        ("a person, a reason, a season", {}),
        ("female", {("gender", "female"): 1}),
        ("Women and WOMEN and a woman", {("gender", "woman"): 3}),
        (
            "African Americans and an American",
            {("race_ethnicity", "african american"): 1, ("nationality", "american"): 1},
        ),
        ("window blinds and a blind man", {("disability", "blind"): 1, ("gender", "man"): 1}),
        ("hard of hearing", {("disability", "hard of hearing"): 1}),
        ("hard of", {}),
        ("Die Frau und der Mann", {}),  # English only
    ],
)
def test_group_terms_match_whole_words(text: str, expected: dict[tuple[str, str], int]) -> None:
    assert _groups(text) == expected


def test_word_list_is_small_and_documented() -> None:
    assert set(GROUP_TERMS) == {
        "gender", "religion", "race_ethnicity", "nationality", "age", "disability", "sexual_orientation",
    }  # fmt: skip
    for axis, terms in GROUP_TERMS.items():
        assert 10 <= len(terms) <= 30, axis
        assert len(set(terms)) == len(terms), axis
    assert (
        sum(len(t) for t in GROUP_TERMS.values())
        < len(TERM_TABLE)
        <= 2 * sum(len(t) for t in GROUP_TERMS.values())
    )
    assert not {w for forms in PRONOUNS.values() for w in forms} & {k[0] for k in TERM_TABLE if len(k) == 1}


def test_empty_and_punctuation_only() -> None:
    assert demographics("").words == 0
    assert demographics("!!! ... ???").groups == {}
