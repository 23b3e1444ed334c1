"""Readers: local sources through their connectors, and WARC/WET/ARC archives, into documents."""
