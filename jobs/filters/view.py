"""One document's text split once: lines, paragraphs and whitespace tokens, computed lazily and
shared by every rule set (Gopher, C4, FineWeb) so a document is tokenised once, not once per rule."""

from __future__ import annotations

import re
import string
from functools import cached_property

# ASCII punctuation plus the common Unicode marks (stripped from a token before it is compared to a word).
PUNCTUATION = string.punctuation + "…–—‐‑‒―“”‘’«»‹›„‚·•‣◦●▪¡¿§¶†‡′″"
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")  # a blank line (linear: no nested quantifiers)


class TextView:
    """Lazily computed splits of one text. `lines`: stripped, non-blank; `tokens`: whitespace-separated
    (Gopher's "words")."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def lines(self) -> list[str]:
        return [s for s in (ln.strip() for ln in self.text.splitlines()) if s]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p for p in (p.strip() for p in _PARAGRAPH.split(self.text.strip())) if p]

    @cached_property
    def tokens(self) -> list[str]:
        return self.text.split()


def as_view(text: str | TextView) -> TextView:
    return text if isinstance(text, TextView) else TextView(text)
