"""Licence detection accuracy on this machine's real licence texts (jobs/copyright/license_corpus.py):
exact SPDX match per identifier and per kind (corpus x format), and the share of texts without a
licence left unclaimed. Issue 14 asks >= 0.95 exact and >= 0.97 unclaimed. Run from the repository
root: `python scripts/license_eval.py [--misses]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.copyright import license_corpus
from jobs.copyright.licenses import detect, load_index


def _row(name: str, hits: list[int]) -> str:
    return f"{name:<44} {hits[0]:>6} / {hits[1]:<6} {hits[0] / hits[1]:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list every miss and every false claim")
    args = parser.parse_args()
    started = time.perf_counter()
    load_index()
    loaded = time.perf_counter() - started
    cases = license_corpus.positives()
    tally = license_corpus.evaluate(cases)
    negatives = license_corpus.negatives()
    claimed = [(t[:70], found.expression) for t in negatives if (found := detect(t)) is not None]
    print(f"index load {loaded:.2f} s; {len(cases)} texts x {len(license_corpus.FORMATS)} formats")
    print(f"{len(cases)} examples, {tally.ids} distinct SPDX identifiers\n\nper identifier")
    for key in sorted((k for k in tally.hits if k.startswith("id:")), key=lambda k: -tally.hits[k][1]):
        print(_row(key[3:], tally.hits[key]))
    print("\nper kind (corpus:format)")
    for key in sorted(k for k in tally.hits if not k.startswith("id:")):
        print(_row(key, tally.hits[key]))
    print(f"\nexact match overall {tally.rate():.4f}")
    print(
        f"no licence claimed on {1 - len(claimed) / len(negatives):.4f} of {len(negatives)} texts without one"
    )
    if args.misses:
        print("\n".join(["", *tally.misses, "", *(f"claimed {e} on {t!r}" for t, e in claimed)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
