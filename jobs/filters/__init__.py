"""Filters: per-document keep-or-drop rules with reasons (quality heuristics)."""
