"""Compare two committed runs stage by stage: row counts, document ids, and texts that differ.

    python -m scripts.compare_runs BEFORE_ROOT AFTER_ROOT [--run-id demo]

Used to show that a refactor changes no output: for every stage with Parquet parts, the rows of
each part (data, rejected, fetch_log, ...) and the set of ids must be equal; documents whose text
(or reject reason) differs are listed. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def _parts(stage_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(stage_dir.iterdir()) if p.is_dir() and list(p.glob("*.parquet"))}


def _table(part: Path) -> dict[str, dict[str, Any]]:
    names = pq.read_schema(next(part.glob("*.parquet"))).names
    cols = [c for c in ("id", "text", "reject_reason", "url") if c in names]
    rows = pq.read_table(part, columns=cols).to_pylist()
    key = "id" if "id" in cols else cols[0]
    return {str(r[key]): r for r in rows}


def compare_stage(before: Path, after: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, part in _parts(before).items():
        other = after / name
        a, b = _table(part), _table(other) if other.is_dir() else {}
        changed = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
        out[name] = {
            "rows": [len(a), len(b)],
            "only_before": sorted(a.keys() - b.keys())[:20],
            "only_after": sorted(b.keys() - a.keys())[:20],
            "changed": changed[:20],
            "changed_count": len(changed),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path, help="storage root of the first run")
    p.add_argument("after", type=Path, help="storage root of the second run")
    p.add_argument("--run-id", default="demo")
    args = p.parse_args(argv)
    a_run, b_run = args.before / "runs" / args.run_id, args.after / "runs" / args.run_id
    differs = False
    for stage in sorted(d.name for d in a_run.iterdir() if (d / "_MANIFEST.json").exists()):
        result = compare_stage(a_run / stage, b_run / stage)
        for part, r in result.items():
            same = r["rows"][0] == r["rows"][1] and not (r["only_before"] or r["only_after"])
            differs |= not same
            print(f"{stage:<11} {part:<10} rows {r['rows'][0]:>6} -> {r['rows'][1]:>6}  "
                  f"ids {'same' if same else 'DIFFER'}  changed rows {r['changed_count']}")  # fmt: skip
            if not same or r["changed_count"]:
                print("   " + json.dumps({k: v for k, v in r.items() if v and k != "rows"}))
    return 1 if differs else 0


if __name__ == "__main__":
    raise SystemExit(main())
