"""Each published rule at its threshold: one value below, one at, one above (hand-checkable texts)."""

from __future__ import annotations

import pytest

from core.config import C4Rules, CodeRules, FineWebRules, GopherQualityRules, GopherRepetitionRules
from jobs.filters.c4 import c4_filter
from jobs.filters.code import AUTOGEN_MARKERS, code_reason, code_stats
from jobs.filters.fineweb import fineweb_reason
from jobs.filters.gopher import gopher_quality_reason, gopher_repetition_reason

G = GopherQualityRules()


def words(n: int, filler: str = "abc") -> str:
    """n words: two stop words, then `filler` (3 letters: mean length exactly 3.00). A word is a
    whitespace token, symbols included (Gopher A.1.1's 80% alphabetic rule implies words without letters)."""
    return " ".join(["the", "and"] + [filler] * (n - 2))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (words(49), "gopher_min_words:49"),
        (words(50), None),
        (words(51), None),
        (words(100_000), None),
        (words(100_001), "gopher_max_words:100001"),
        (words(49) + " ab", "gopher_mean_word_length:2.98"),  # 149 / 50
        (words(50), None),  # 3.00
        (words(49) + " abcd", None),  # 3.02
        (words(48, "abcd") + " |", "gopher_min_words:49"),  # a symbol is a word: 48 + 1
        (words(49, "abcd") + " |", None),
        (words(46, "abcd") + " #" * 4, None),  # '#' tokens are words: 4 / 50 = 0.08
        (words(45, "abcd") + " #" * 5, None),  # 0.10: "greater than 0.1" drops
        (words(44, "abcd") + " #" * 6, "gopher_hash_ratio:0.120"),
        (words(45) + " ..." * 4 + " end", None),  # ellipsis counted apart from '#': 4 / 50 = 0.08
        (words(44) + " ..." * 5 + " end", None),  # 0.10
        (words(43) + " ..." * 6 + " end", "gopher_ellipsis_ratio:0.120"),
        (words(39, "abcd") + " #" * 5 + " ..." * 5 + " end", None),  # each at 0.10: not summed
        (words(40) + " 1234" * 10, None),  # 40 / 50 = 0.80 alphabetic
        (words(39) + " 1234" * 11, "gopher_alpha_words:0.780"),
        (words(41) + " 1234" * 9, None),
        (words(40) + " ----" * 10, None),  # symbol-only words are in the denominator: 40 / 50
        (words(39) + " ----" * 11, "gopher_alpha_words:0.780"),
        (" ".join(["the"] + ["abc"] * 49), "gopher_stop_words:1"),
        (" ".join(["The,", "AND"] + ["abc"] * 48), None),  # lowercased, punctuation stripped
    ],
)
def test_gopher_quality_boundaries(text: str, reason: str | None) -> None:
    assert gopher_quality_reason(text, G) == reason


def lines(total: int, marked: int, mark: str, where: str = "start") -> str:
    out = []
    for i in range(total):
        body = f"the and abc line{i}"
        out.append((f"{mark} {body}" if where == "start" else f"{body} {mark}") if i < marked else body)
    return "\n".join(out)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (lines(20, 17, "-"), None),
        (lines(20, 18, "•"), None),  # 0.90: "more than 90%" drops
        (lines(20, 19, "*"), "gopher_bullet_lines:0.950"),
        (lines(20, 5, "…", "end"), None),
        (lines(20, 6, "…", "end"), None),  # 0.30
        (lines(20, 7, "…", "end"), "gopher_ellipsis_lines:0.350"),
    ],
)
def test_gopher_line_rules(text: str, reason: str | None) -> None:
    assert gopher_quality_reason(text, G.model_copy(update={"min_words": 0})) == reason


def uniq(n: int, start: int = 0) -> list[str]:
    return [f"u{i:03d}" for i in range(start, start + n)]


def pad(text: str, total: int) -> str:
    """`text` plus one unique token so that len() == total."""
    return f"{text} {'y' * (total - len(text) - 1)}"


ONLY = GopherRepetitionRules(
    max_dup_lines=1, max_dup_paragraphs=1, max_dup_line_chars=1, max_dup_paragraph_chars=1,
    max_top_ngram_chars={}, max_dup_ngram_chars={},
)  # fmt: skip


@pytest.mark.parametrize(
    ("dups", "reason"), [(2, None), (3, None), (4, "gopher_dup_lines:0.400")]
)  # fmt: skip
def test_gopher_duplicate_line_fraction(dups: int, reason: str | None) -> None:
    text = "\n".join(uniq(10 - dups - 1) + ["same line"] * (dups + 1))
    assert gopher_repetition_reason(text, ONLY.model_copy(update={"max_dup_lines": 0.3})) == reason


@pytest.mark.parametrize(("total", "reason"), [(101, None), (100, None), (99, "gopher_dup_line_chars:0.202")])
def test_gopher_duplicate_line_chars(total: int, reason: str | None) -> None:
    text = pad("aaaaaaaaa\n" + "bbbbbbbbbb\n" * 3, total)  # 2 repeats x 10 chars = 20
    assert gopher_repetition_reason(text, ONLY.model_copy(update={"max_dup_line_chars": 0.2})) == reason


@pytest.mark.parametrize(
    ("total", "reason"), [(101, None), (100, None), (99, "gopher_dup_paragraph_chars:0.202")]
)
def test_gopher_duplicate_paragraph_chars(total: int, reason: str | None) -> None:
    text = pad("first\n\n" + "tenletters\n\n" * 3, total)
    rules = ONLY.model_copy(update={"max_dup_paragraph_chars": 0.2})
    assert gopher_repetition_reason(text, rules) == reason


@pytest.mark.parametrize(("total", "reason"), [(101, None), (100, None), (99, "gopher_top_2gram:0.202")])
def test_gopher_top_2gram(total: int, reason: str | None) -> None:
    text = pad(" ".join(["ab cd", "x1", "ab cd", "x2", "ab cd", "x3", "ab cd"]), total)  # 4 x 5 = 20
    rules = ONLY.model_copy(update={"max_top_ngram_chars": {2: 0.2}})
    assert gopher_repetition_reason(text, rules) == reason


@pytest.mark.parametrize(("total", "reason"), [(101, None), (100, None), (99, "gopher_dup_5gram:0.152")])
def test_gopher_duplicate_5grams(total: int, reason: str | None) -> None:
    gram = "aaa bbb ccc ddd eee"
    text = pad(f"{gram} x {gram}", total)  # the second occurrence: 5 x 3 = 15 characters
    rules = ONLY.model_copy(update={"max_dup_ngram_chars": {5: 0.15}})
    assert gopher_repetition_reason(text, rules) == reason


@pytest.mark.parametrize(
    ("dups", "reason"), [(2, None), (3, None), (4, "gopher_dup_paragraphs:0.400")]
)  # fmt: skip
def test_gopher_duplicate_paragraph_fraction(dups: int, reason: str | None) -> None:
    text = "\n\n".join(uniq(10 - dups - 1) + ["same paragraph"] * (dups + 1))  # 10 paragraphs
    assert gopher_repetition_reason(text, ONLY.model_copy(update={"max_dup_paragraphs": 0.3})) == reason


def test_gopher_duplicate_lines_keep_their_indentation() -> None:
    text = "\n".join(["x = {", "    }", "  }", "}", "end"])  # three different lines, as written
    assert gopher_repetition_reason(text, ONLY.model_copy(update={"max_dup_lines": 0.0})) is None
    assert gopher_repetition_reason(text + "\n}", ONLY.model_copy(update={"max_dup_lines": 0.0})) == (
        "gopher_dup_lines:0.167"
    )


@pytest.mark.parametrize(("total", "reason"), [(26, None), (25, None), (24, "gopher_top_2gram:0.208")])
def test_gopher_top_ngram_counts_a_single_occurrence(total: int, reason: str | None) -> None:
    """A.1.1: "the most frequently-occurring n-gram" even when every n-gram occurs once (ties: the
    first); "ab cd" is 5 characters."""
    rules = ONLY.model_copy(update={"max_top_ngram_chars": {2: 0.2}})
    assert gopher_repetition_reason(pad("ab cd ef", total), rules) == reason


@pytest.mark.parametrize(
    ("n", "gram", "reason"),
    [(3, "ab cd efg", "gopher_top_3gram:0.182"), (4, "a b c de", "gopher_top_4gram:0.162")],
)
@pytest.mark.parametrize("total", [101, 100, 99])
def test_gopher_top_3gram_and_4gram(n: int, gram: str, reason: str, total: int) -> None:
    """Twice a gram of 9 (3 words) or 8 (4 words) characters: 18 and 16 of 100, table A1's 0.18, 0.16."""
    text = pad(f"{gram} x1 {gram}", total)
    rules = ONLY.model_copy(
        update={"max_top_ngram_chars": {n: GopherRepetitionRules().max_top_ngram_chars[n]}}
    )
    assert gopher_repetition_reason(text, rules) == (reason if total == 99 else None)


@pytest.mark.parametrize("n", [6, 7, 8, 9, 10])
@pytest.mark.parametrize("total", [101, 100, 99])
def test_gopher_duplicate_6_to_10grams(n: int, total: int) -> None:
    """A repeated n-gram of n-1 one-letter words and one longer word, 100 x table A1's fraction
    characters (6: 14 ... 10: 10): at the threshold with 100 characters in all."""
    limit = GopherRepetitionRules().max_dup_ngram_chars[n]
    chars = round(limit * 100)
    gram = " ".join([*"abcdefghi"[: n - 1], "z" * (chars - n + 1)])
    text = pad(f"{gram} x {gram}", total)
    rules = ONLY.model_copy(update={"max_dup_ngram_chars": {n: limit}})
    expected = f"gopher_dup_{n}gram:{chars / 99:.3f}" if total == 99 else None
    assert gopher_repetition_reason(text, rules) == expected


@pytest.mark.parametrize(("total", "reason"), [(121, None), (120, None), (119, "gopher_dup_5gram:0.151")])
def test_gopher_duplicate_run_longer_than_n_counts_every_word(total: int, reason: str | None) -> None:
    """A repeated run of 6 words holds two duplicate 5-grams: all 6 words (18 characters) are
    "contained within" them (datatrove counts 15)."""
    run = "aaa bbb ccc ddd eee fff"
    rules = ONLY.model_copy(update={"max_dup_ngram_chars": {5: 0.15}})
    assert gopher_repetition_reason(pad(f"{run} x {run}", total), rules) == reason


def test_gopher_repetition_defaults_keep_prose_and_drop_spam() -> None:
    prose = " ".join(f"w{i}" for i in range(300))
    assert gopher_repetition_reason(prose, GopherRepetitionRules()) is None
    assert gopher_repetition_reason("buy now\n" * 10, GopherRepetitionRules()) == "gopher_dup_lines:0.900"


SENT = "This line has enough words to count."
CITED = "This cited fact is marked."


@pytest.mark.parametrize(
    ("text", "kept", "reason"),
    [
        ("\n".join([SENT] * 2), SENT + "\n" + SENT, "c4_min_sentences:2"),
        ("\n".join([SENT] * 3), "\n".join([SENT] * 3), None),
        ("\n".join([SENT] * 4), "\n".join([SENT] * 4), None),
        (SENT + " Two here. Three here!", SENT + " Two here. Three here!", None),  # sentences in a line
        ("\n".join([SENT] * 3 + ["Menu", "four words only here."]), "\n".join([SENT] * 3), None),
        ("\n".join([SENT] * 3 + ["No terminal punctuation on this line"]), "\n".join([SENT] * 3), None),
        ("\n".join([SENT] * 3 + ["Trailing off with an ellipsis here..."]), "\n".join([SENT] * 3), None),
        ("\n".join([SENT] * 3 + ["Please enable JavaScript to see this page."]), "\n".join([SENT] * 3), None),
        ("\n".join([SENT] * 3 + ["Read our privacy policy before you go."]), "\n".join([SENT] * 3), None),
        ("\n".join([SENT] * 3 + [CITED + "[1]"]), "\n".join([SENT] * 3 + [CITED]), None),
        ("\n".join([SENT] * 3 + ["Lorem ipsum dolor sit amet."]), None, "c4_lorem_ipsum"),
        ("\n".join([SENT] * 3 + ["x = {}"]), None, "c4_curly_bracket"),
        ("menu\nhome\nabout", "", "c4_no_lines"),
    ],
)  # fmt: skip
def test_c4_lines_and_pages(text: str, kept: str | None, reason: str | None) -> None:
    cleaned, got = c4_filter(text, C4Rules())
    assert got == reason
    if kept is not None:
        assert cleaned == kept


def test_c4_curly_bracket_in_a_removed_line_follows_the_paper_or_tfds() -> None:
    text = "\n".join([SENT] * 3 + ["code {"])
    assert c4_filter(text, C4Rules())[1] == "c4_curly_bracket"  # paper: any page with a curly bracket
    assert c4_filter(text, C4Rules(page_rules_on_kept_lines=True))[1] is None  # TFDS and datatrove


def test_c4_word_longer_than_1000_characters_removes_its_line() -> None:
    text = "\n".join([SENT] * 3 + ["A " + "x" * 1001 + " word ends here."])
    assert c4_filter(text, C4Rules()) == ("\n".join([SENT] * 3), None)
    assert (
        c4_filter("\n".join([SENT] * 3 + ["A " + "x" * 1000 + " word ends here."]), C4Rules())[0].count("\n")
        == 3
    )


LONG = "This is a long line that ends with a period."  # 44 characters


@pytest.mark.parametrize(
    ("punct", "reason"), [(12, "fineweb_line_punct:0.12"), (13, None), (11, "fineweb_line_punct:0.11")]
)
def test_fineweb_line_punctuation(punct: int, reason: str | None) -> None:
    lines_ = [LONG] * punct + [f"a long line without punctuation number {i}" for i in range(100 - punct)]
    rules = FineWebRules(max_dup_line_chars=1.0)
    assert fineweb_reason("\n".join(lines_), rules) == reason


@pytest.mark.parametrize(
    ("short", "reason"), [(66, None), (67, "fineweb_short_lines:0.67"), (68, "fineweb_short_lines:0.68")]
)
def test_fineweb_short_lines(short: int, reason: str | None) -> None:
    lines_ = [f"Short {i:02d}." for i in range(short)] + [f"{LONG} {i:02d}." for i in range(100 - short)]
    assert fineweb_reason("\n".join(lines_), FineWebRules()) == reason


def test_fineweb_short_means_shorter_than_30() -> None:
    at30 = [f"{i:03d}" + "x" * 26 + "." for i in range(100)]  # 30 characters: not short
    assert fineweb_reason("\n".join(at30), FineWebRules()) is None
    assert fineweb_reason("\n".join(s[1:] for s in at30), FineWebRules()) == "fineweb_short_lines:1.00"


@pytest.mark.parametrize(
    ("total", "reason"),
    [(1001, None), (1000, "fineweb_dup_line_chars:0.10"), (999, "fineweb_dup_line_chars:0.10")],
)
def test_fineweb_duplicated_line_chars(total: int, reason: str | None) -> None:
    dup = "Repeated line of exactly fifty characters, see it."
    assert len(dup) == 50
    unique_chars = total - 3 * 50
    uniq_lines = [f"Unique sentence number {i:03d} is long enough to be kept here." for i in range(10)]
    body = "\n".join(uniq_lines)
    filler = "y" * (unique_chars - len(body.replace("\n", "")) - 1) + "."
    text = "\n".join([dup, dup, dup, body, filler])  # 2 repeats x 50 = 100 characters of duplicates
    assert sum(len(s) for s in text.splitlines()) == total
    assert fineweb_reason(text, FineWebRules(max_short_lines=1.0)) == reason


CODE = CodeRules()


def sized(n: int) -> str:
    """n characters: lines of 49 letters and a newline (passes the line-length and alphanumeric rules)."""
    return (("a" * 49 + "\n") * (n // 50 + 1))[:n]


@pytest.mark.parametrize(
    ("chars", "reason"),
    [
        (49, "starcoder_data_file:json:49"),
        (50, None),  # StarCoder 3: JSON and YAML kept at 50-5000 characters
        (51, None),
        (4999, None),
        (5000, None),
        (5001, "starcoder_data_file:json:5001"),
    ],
)
def test_starcoder_data_file_size(chars: int, reason: str | None) -> None:
    assert code_reason(sized(chars), "json", CODE) == reason


@pytest.mark.parametrize(("letters", "reason"), [(24, "starcoder_data_alpha:0.240"), (25, None), (26, None)])
def test_starcoder_data_alpha_fraction(letters: int, reason: str | None) -> None:
    text = "a" * letters + "1" * (100 - letters)  # 100 characters, `letters` of them alphabetic
    assert code_reason(text, "yaml", CODE) == reason


@pytest.mark.parametrize(
    ("at", "reason"), [(85, "starcoder_xml_header"), (86, "starcoder_xml_header"), (87, None)]
)
def test_starcoder_xml_header_in_the_first_100_characters(at: int, reason: str | None) -> None:
    """'<?xml version=' is 14 characters: starting at 86 it ends at the 100th character."""
    text = "a" * at + '<?xml version="1.0"?>\nx = 1\n'
    assert code_reason(text, "python", CODE) == reason


def test_starcoder_xml_header_spares_only_xslt() -> None:
    text = '<?xml version="1.0"?>\n<root>value of the document</root>\n'
    assert code_reason(text, "xslt", CODE) is None  # StarCoder 3: "all languages except XSLT"
    assert code_reason(text, "xml", CODE) == "starcoder_xml_header"


TAG = "<" + "b" * 48 + ">"  # 50 characters of markup


@pytest.mark.parametrize(("last", "reason"), [(33, "starcoder_html_text:0.199"), (34, None), (35, None)])
def test_starcoder_html_visible_text_fraction(last: int, reason: str | None) -> None:
    """16 tags (800 characters) and 3 lines of 49 letters, one of `last`, 19 newlines: at 34 the
    visible text is 200 of 1,000 characters."""
    text = "\n".join([TAG] * 16 + ["a" * 49] * 3 + ["a" * last])
    assert code_stats(text, "html")["html_text_chars"] == 166 + last
    assert code_reason(text, "html", CODE) == reason


@pytest.mark.parametrize(
    ("chars", "reason"), [(99, "starcoder_html_text_chars:99"), (100, None), (101, None)]
)
def test_starcoder_html_visible_text_minimum(chars: int, reason: str | None) -> None:
    assert code_reason(sized(chars), "html", CODE) == reason  # all of it visible


def test_starcoder_html_script_style_and_comments_are_not_visible() -> None:
    hidden = "<style>\n" + ("x" * 49 + "\n") * 6 + "</style>\n<!-- a comment -->"
    assert code_stats(hidden + "a" * 99, "html")["html_text_chars"] == 100  # the newline and 99 letters
    assert code_reason(hidden + "a" * 99, "html", CODE) is None
    assert code_reason(hidden + "a" * 98, "html", CODE) == "starcoder_html_text_chars:99"
    assert code_stats("<script>var a = 1;", "html")["html_text_chars"] == 0  # unclosed: to the end


@pytest.mark.parametrize(("last", "reason"), [(39, "code_markup_fraction:0.501"), (40, None), (41, None)])
def test_markup_fraction_in_a_non_markup_file(last: int, reason: str | None) -> None:
    """10 tags (500 characters), 9 lines of 49 letters, one of `last`, 19 newlines: 500 / 1,000 at 40."""
    text = "\n".join([TAG] * 10 + ["a" * 49] * 9 + ["a" * last])
    assert code_reason(text, "javascript", CODE) == reason
    assert code_reason(text, "vue", CODE) is None  # a markup language: its tags are its content


@pytest.mark.parametrize("marker", AUTOGEN_MARKERS)
@pytest.mark.parametrize(("line", "fires"), [(4, True), (5, True), (6, False)])
def test_autogenerated_marker_in_the_first_5_lines(marker: str, line: int, fires: bool) -> None:
    text = "\n".join(["x = 1"] * (line - 1) + [f"# {marker.upper()}"] + ["y = 2"])
    expected = f"starcoder_autogenerated:{marker.replace(' ', '_')}" if fires else None
    assert code_reason(text, "python", CODE) == expected
