"""The copyright stage's decision for one document: opt-outs and blocklists, then the licence and its
policy class, then verbatim overlap with protected works. Every document leaves with its decision,
the rule that made it and the evidence, in `copyright.*` annotations (the audit trail); a dropped
one also with a reason `copyright_<rule>[:detail]`.

The licence of a document, most specific first: a code file's own licence (its SPDX tag, header or
text: a file's own licence wins over its repository's); the licence its source's metadata declares
(JATS `<license>`, EPUB rights, a source map, a repository's licence file applied to the files
without their own); an HTML `rel="license"` link read at extraction; else a licence found in the
text. None found is `unknown`; with `all_rights_reserved` set, a text whose copyright notice says
"All rights reserved" and that names no licence is `proprietary`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import CopyrightConfig, CrawlConfig
from jobs.copyright.licenses import Detection, detect, normalise_expression
from jobs.copyright.notices import notices
from jobs.copyright.optout import Blocklist, OptoutRegistry, RobotsCache, decide
from jobs.copyright.overlap import OverlapIndex, build_index, find_overlap, registry_works
from jobs.copyright.policy import classify, spdx_from_name

Row = dict[str, Any]
MAX_NOTICES = 5  # holders kept in the annotation
MAX_SPANS = 20  # overlap spans kept in the annotation (the fraction counts them all)
MAX_EVIDENCE_CHARS = 2000
MAX_ROBOTS_ORIGINS = 100_000  # archived robots.txt files one worker keeps parsed
# Transient annotations: the Spark adapter joins each document's archived robots.txt in; read here,
# never written out.
ROBOTS_STATUS, ROBOTS_TXT = "copyright.robots_status", "copyright.robots_txt"
_TEXT_RULES = ("spdx-tag", "full-text", "notice")


@dataclass(frozen=True)
class Screen:
    """Everything one decision needs, built once per stage (and once per Spark task)."""

    cfg: CopyrightConfig
    user_agent: str
    index: OverlapIndex | None = None
    robots: RobotsCache | None = None
    registry: OptoutRegistry | None = None
    blocklist: Blocklist | None = None

    def __call__(self, row: Row) -> tuple[Row, str | None]:
        ann = dict(row.get("annotations") or {})
        row = {**row, "annotations": ann}
        self._archived_robots(row, ann)
        reason, evidence = decide(
            row, user_agent=self.user_agent, robots=self.robots, registry=self.registry,
            blocklist=self.blocklist, honor_optouts=self.cfg.honor_optouts,
            licensed_tdm_policies=frozenset(self.cfg.licensed_tdm_policies),
        )  # fmt: skip
        if evidence:
            ann["copyright.optout_evidence"] = evidence[:MAX_EVIDENCE_CHARS]
        self._license(row, ann)
        if reason:
            _decided(ann, "drop", reason)
            return row, f"copyright_{reason}"
        action = self.cfg.actions.get(row["source_type"], {}).get(ann["copyright.class"], "keep")
        rule = f"license:{ann['copyright.class']}"
        if action == "drop":
            _decided(ann, "drop", rule)
            return row, f"copyright_{rule}"
        if self.index is not None:
            row, dropped = self._overlap(row, ann)
            if dropped:
                return row, dropped
        if action == "flag":
            ann["copyright.flag"] = rule
        if "copyright.decision" not in ann:
            _decided(ann, action, rule)
        return row, None

    def _archived_robots(self, row: Row, ann: dict[str, str]) -> None:
        """Move the joined robots.txt of the row's origin into the cache (RFC 9309 via RobotsCache)."""
        body, status = ann.pop(ROBOTS_TXT, None), ann.pop(ROBOTS_STATUS, None)
        if self.robots is None or body is None or not (status or "").isdigit():
            return
        if len(self.robots.archived) > MAX_ROBOTS_ORIGINS:
            self.robots.archived.clear()
        self.robots.add_archived(row.get("origin") or "", int(status or 0), body)

    def _license(self, row: Row, ann: dict[str, str]) -> None:
        """Fill `license`/`license_source` with the document's licence and annotate class and evidence."""
        text = row.get("text") or ""
        found = detect(text) if self.cfg.detect_licenses and text else None
        own = row["source_type"] == "code" and found is not None
        if own or not row.get("license"):
            if not own and ann.get("extract.license"):
                row["license"], row["license_source"] = ann["extract.license"], "html:rel-license"
                ann["copyright.license_rule"] = "rel-license"
                ann["copyright.evidence"] = ann.get("extract.license_url", "")[:MAX_EVIDENCE_CHARS]
            elif found is not None:
                row["license"], row["license_source"] = found.expression, f"text:{found.evidence[0].rule}"
                _detection(ann, found)
        if "copyright.license_rule" not in ann:
            ann["copyright.license_rule"] = "metadata" if row.get("license") else "none"
            _declared_name(row, ann)
        found_notices = list(notices(text[:65536]))
        _notice_annotations(ann, found_notices)
        cls = classify(row.get("license"))
        if (
            not row.get("license")
            and self.cfg.all_rights_reserved
            and any(n.all_rights_reserved for n in found_notices)
        ):
            cls, ann["copyright.license_rule"] = "proprietary", "all-rights-reserved"
        ann["copyright.license"] = row.get("license") or ""
        ann["copyright.class"] = cls

    def _overlap(self, row: Row, ann: dict[str, str]) -> tuple[Row, str | None]:
        assert self.index is not None
        found = find_overlap(row.get("text") or "", self.index, min_hits=self.cfg.overlap_min_hits)
        if not found.spans:
            return row, None
        spans = [[s.start, s.end, s.work] for s in found.spans]
        ann["copyright.overlap_fraction"] = f"{found.fraction:.4f}"
        ann["copyright.overlap_spans"] = json.dumps(spans[:MAX_SPANS])
        ann["copyright.overlap_works"] = json.dumps(sorted({s.work for s in found.spans}))
        action = self.cfg.overlap_action
        if action == "drop":
            _decided(ann, "drop", "overlap")
            return row, f"copyright_overlap:{found.fraction:.3f}"
        if action == "redact":
            text = row["text"]
            kept, at = [], 0
            for s in found.spans:
                kept.append(text[at : s.start])
                at = s.end
            kept.append(text[at:])
            row["text"] = "".join(kept)
            ann["copyright.redacted_chars"] = str(len(text) - len(row["text"]))
            if not row["text"].strip():
                _decided(ann, "drop", "overlap")
                return row, "copyright_overlap:1.000"
            _decided(ann, "redact", "overlap")
        else:
            ann["copyright.flag"] = "overlap"
            _decided(ann, "flag", "overlap")
        return row, None


def _declared_name(row: Row, ann: dict[str, str]) -> None:
    """A licence metadata gives by name ("Apache License 2.0") becomes its SPDX expression; the
    declared text is kept in `copyright.license_declared`."""
    declared = row.get("license")
    if not declared or normalise_expression(declared)[1]:
        return
    if found := spdx_from_name(declared):
        row["license"], ann["copyright.license_declared"] = found, declared[:MAX_EVIDENCE_CHARS]
        ann["copyright.license_rule"] = "metadata-name"


def _decided(ann: dict[str, str], decision: str, rule: str) -> None:
    ann["copyright.decision"], ann["copyright.rule"] = decision, rule


def _detection(ann: dict[str, str], found: Detection) -> None:
    ann["copyright.license_rule"] = found.evidence[0].rule
    ann["copyright.license_confidence"] = f"{found.confidence:.4f}"
    evidence = [[e.rule, e.reference, e.start, e.end] for e in found.evidence]
    ann["copyright.evidence"] = json.dumps(evidence)[:MAX_EVIDENCE_CHARS]


def _notice_annotations(ann: dict[str, str], found: list[Any]) -> None:
    holders = list(dict.fromkeys(n.holder for n in found if n.holder))[:MAX_NOTICES]
    years = [y for n in found for y in n.years]
    if holders:
        ann["copyright.holders"] = json.dumps(holders)[:MAX_EVIDENCE_CHARS]
    if years:
        low, high = min(years), max(years)
        ann["copyright.years"] = str(low) if low == high else f"{low}-{high}"
    if any(n.all_rights_reserved for n in found):
        ann["copyright.all_rights_reserved"] = "true"


def load_screen(
    cfg: CopyrightConfig, *, user_agent: str | None = None, index: OverlapIndex | None = None,
    robots: RobotsCache | None = None,
) -> Screen:  # fmt: skip
    """A Screen from the config's files: the opt-out registry, the blocklists and, unless an index
    built elsewhere (the Spark adapter's) is given, the protected works."""
    registry = OptoutRegistry.load(Path(cfg.optout_registry_path)) if cfg.optout_registry_path else None
    robots = robots if robots is not None else RobotsCache.build(registry=registry)
    blocklist = Blocklist(cfg.block_domains, cfg.block_url_patterns)
    if cfg.blocklist_path:
        blocklist = blocklist.with_domains_file(Path(cfg.blocklist_path))
    if index is None and cfg.protected_works_path:
        works = registry_works(cfg.protected_works_path)
        index = build_index(works, cfg.overlap_ngram)
    agent = cfg.user_agent or user_agent or CrawlConfig().user_agent
    return Screen(cfg, agent, index, robots, registry, blocklist)


def screen_with(cfg: CopyrightConfig) -> Callable[[Row], tuple[Row, str | None]]:
    """The row rule `lmforge copyright` applies to a user's JSON lines (core/registry.py row_logic)."""
    return load_screen(cfg)
