"""The copyright policy's vocabulary and defaults, in core so the config model can validate them;
the logic that applies them is jobs/copyright/policy.py.

Defaults per source type, one action per licence class. Rationale (README, "Copyright screening"):
- code: permissive and public-domain only, as The Stack (Kocetkov et al. 2022, section 3.2: files of
  repositories without a detected permissive licence are excluded), so unknown is dropped too.
- web: no licence is the norm; text is used under the text-and-data-mining exception with
  machine-readable opt-outs honoured (EU Directive 2019/790, article 4(3)), so unknown is kept and
  an "all rights reserved" notice (classed proprietary) is flagged, not dropped; a page that
  declares NC/ND terms (rel="license") is dropped.
- paper: PubMed Central's open-access "commercial use allowed" subset: CC-BY, CC0 and copyleft
  kept, NC/ND dropped; unknown flagged.
- book: public domain (Project Gutenberg) and open licences kept, NC/ND and proprietary dropped.
- social: posts published under the platform's terms: unknown kept, NC/ND dropped.
- synthetic: our own output (CC0): any other licence found inside it is flagged.
"""

from __future__ import annotations

from typing import Literal

LicenseClass = Literal[
    "public_domain", "permissive", "weak_copyleft", "strong_copyleft", "nc_nd", "proprietary", "unknown"
]
Action = Literal["keep", "drop", "flag"]
# Least to most restrictive; unknown last: the near-dedup keeper's last choice (nothing is known of it).
CLASS_ORDER: tuple[LicenseClass, ...] = (
    "public_domain", "permissive", "weak_copyleft", "strong_copyleft", "nc_nd", "proprietary", "unknown",
)  # fmt: skip

_K, _D, _F = "keep", "drop", "flag"
_ROWS = {
    "code": (_K, _K, _D, _D, _D, _D, _D),
    "web": (_K, _K, _K, _K, _D, _F, _K),
    "paper": (_K, _K, _K, _K, _D, _D, _F),
    "book": (_K, _K, _K, _K, _D, _D, _F),
    "social": (_K, _K, _K, _K, _D, _F, _K),
    "synthetic": (_K, _K, _F, _F, _F, _F, _K),
}
DEFAULT_ACTIONS: dict[str, dict[str, str]] = {
    source: dict(zip(CLASS_ORDER, row, strict=True)) for source, row in _ROWS.items()
}
