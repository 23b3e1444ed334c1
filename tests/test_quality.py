"""Quality rules on tiny real inputs: expected decisions and reason strings."""

from __future__ import annotations

import pytest

from core.config import QualityConfig
from core.schema import make_document
from jobs.filters.quality import assess

PROSE = ("The quick brown fox jumps over the lazy dog while the farmer watches from the porch. " * 6).strip()


@pytest.mark.parametrize(
    ("source", "text", "reason"),
    [
        ("web", PROSE, None),
        ("web", "too short to keep", "gopher_min_words:4"),
        ("web", "", "quality_empty_text"),
        ("web", " ".join(["word"] * 100_001), "gopher_max_words:100001"),
        ("web", " ".join(["a"] * 60), "gopher_mean_word_length:1.00"),
        ("web", PROSE + " " + "# " * 40, "gopher_symbol_word_ratio:0.294"),
        ("web", PROSE + " " + "1234 5678 " * 30, "gopher_alpha_word_fraction:0.615"),
        ("code", "def f(x):\n    return x + 1\n", None),
        ("code", "x = '" + "a" * 1200 + "'\n", "codex_max_line_length:1206"),
        ("code", ("y = " + "b" * 150 + "\n") * 3, "codex_mean_line_length:154.0"),
        ("code", "{}[]()<>;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;\n", "starcoder_alnum_fraction:0.000"),
    ],
)
def test_rules_decide_with_reason(source: str, text: str, reason: str | None) -> None:
    row, got = assess(make_document(source, "origin", text), QualityConfig())
    assert got == reason
    assert row["annotations"] or not text  # scores are persisted before the threshold


def test_scores_persisted_so_thresholds_can_change() -> None:
    row, reason = assess(make_document("web", "o", PROSE), QualityConfig())
    assert reason is None
    assert row["annotations"]["quality.words"] == "96"
    _, stricter = assess(make_document("web", "o", PROSE), QualityConfig(min_words=200))
    assert stricter == "gopher_min_words:96"
