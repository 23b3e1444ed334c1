"""The run summary's text lines for the safety, decontaminate and diversity stages (`lmforge report`,
the end of `make demo`); the data report's sections are jobs/report_safety.py."""

from __future__ import annotations

from typing import Any


def safety_lines(s: dict[str, Any]) -> list[str]:
    """PII per type, toxicity per source, benchmark hits, diversity and its gates."""
    lines: list[str] = []
    if sa := s.get("safety"):
        pii = ", ".join(f"{k}={v}" for k, v in (sa.get("pii_by_type") or {}).items() if v) or "none"
        lines += ["", f"Safety: PII redacted {pii}; {sa.get('pseudonymised', 0)} social posts pseudonymised"]
        for source, t in sorted((sa.get("toxicity_by_source") or {}).items()):
            mean = t.get("mean_score")
            lines.append(
                f"  toxicity {source:<10} mean {'-' if mean is None else f'{mean:.3f}'}, "
                f"flagged {t.get('flagged', 0)}, dropped {t.get('dropped', 0)} of {t.get('documents', 0)}"
            )
    if (d := s.get("decontamination")) and d.get("benchmarks"):
        hits = ", ".join(f"{k}={v}" for k, v in (d.get("hits_by_benchmark") or {}).items()) or "none"
        lines.append(
            f"Decontamination ({d.get('ngram')}-grams, {len(d['benchmarks'])} benchmarks, "
            f"{d.get('action')}): {d.get('documents_hit', 0)} documents hit ({hits})"
        )
    if dv := s.get("diversity"):
        failed = [f"{g['check']}:{g['subject']}" for g in dv.get("gates") or [] if not g.get("ok")]
        share = dv.get("max_domain_share")
        gates = "failed: " + ", ".join(failed) if failed else "ok"
        shown = "-" if share is None else f"{share:.1%}"
        lines.append(f"Diversity: largest domain {dv.get('max_domain')} ({shown}); gates {gates}")
    return lines
