"""Keyed pseudonyms for social handles and authors: HMAC-SHA256 (RFC 2104) under a deployment key,
so the same person maps to the same pseudonym across posts and runs, while nobody without the key
can test a guessed handle against it (a plain hash of a handle is reversible by dictionary).

The key comes from the environment variable named by `PiiConfig.key_env` (hex, base64 or raw text,
at least 32 bytes: RFC 2104 §3 advises a key no shorter than the hash output). Without it, a random
key is created once in `$LMFORGE_HOME/.lmforge/pii.key` (mode 0600) and reused. On a cluster set the
variable from the secret store on every executor, or each machine would hash with its own key file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from core.config import PiiConfig, lmforge_home

MIN_KEY_BYTES = 32
KEY_FILE = Path(".lmforge") / "pii.key"


def pseudonym(value: str, key: bytes) -> str:
    """`u_` + 16 hex characters of HMAC-SHA256 over the handle, `@` dropped and case folded
    (Twitter handles are case-insensitive), so `@Alice` and `alice` are one person."""
    norm = value.strip().lstrip("@").casefold()
    return "u_" + hmac.new(key, norm.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def load_key(cfg: PiiConfig) -> bytes:
    """The key from `$<cfg.key_env>`, else the per-home key file (created on first use)."""
    raw = os.environ.get(cfg.key_env)
    if raw:
        key = decode_key(raw)
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"pii key in ${cfg.key_env} is {len(key)} bytes; at least {MIN_KEY_BYTES} are required "
                "(e.g. 64 hex characters from `openssl rand -hex 32`)"
            )
        return key
    return _file_key(lmforge_home() / KEY_FILE)


def decode_key(raw: str) -> bytes:
    """Hex when it is all hex digits, else strict base64 when it decodes, else the UTF-8 bytes."""
    text = raw.strip()
    if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.urlsafe_b64decode(text.encode("ascii")) if _urlsafe(text) else text.encode("utf-8")
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return text.encode("utf-8")


def _urlsafe(text: str) -> bool:
    return len(text) % 4 == 0 and all(c.isalnum() or c in "-_=" for c in text) and text.isascii()


def _file_key(path: Path) -> bytes:
    """Read the key file, or create it: written to a private temporary file, then linked into place
    (link fails if another process won the race, whose key is then read)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
            with contextlib.suppress(FileExistsError):  # another process won: read its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = decode_key(path.read_text(encoding="ascii"))
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"pii key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} are required")
    return key
