"""The `lmforge` command line: one entry point for stages, runs, reports and per-document tools."""
