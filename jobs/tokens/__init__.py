"""Tokens: the BPE tokenizer and the uint16 token shards pretraining reads."""
