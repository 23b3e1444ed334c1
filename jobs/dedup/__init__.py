"""Deduplication decisions in plain Python: exact keys, repeated lines, MinHash, keepers."""
