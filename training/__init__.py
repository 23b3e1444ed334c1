"""Pretraining: a readable GPT, a deterministic shard reader, and the Ray Train entry point."""
