"""Unguessable identifiers: generation ids and API keys."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
GENERATION_PREFIX = "gen-"
KEY_PREFIX = "sk-gl-v1-"
_ID_LENGTH = 24
# A random byte below 248 (four times 62) is a uniform base62 character; one above is dropped.
_TO_BASE62 = bytes(_ALPHABET[byte % 62] for byte in range(248)) + bytes(8)
_DROPPED = bytes(range(248, 256))
_DRAWN = 32  # bytes drawn at a time: fewer than 24 survive the drop about once in 2.4 million draws


def _base62(length: int) -> str:
    """``length`` uniformly random base62 characters, translated from random bytes at C speed."""
    chars = b""
    while len(chars) < length:
        chars += secrets.token_bytes(_DRAWN).translate(_TO_BASE62, _DROPPED)
    return chars[:length].decode("ascii")


def new_generation_id() -> str:
    """``gen-`` and 24 base62 characters: 142 random bits, like OpenRouter's shape."""
    return GENERATION_PREFIX + _base62(_ID_LENGTH)


def new_api_key() -> str:
    """A fresh secret key: the prefix and 256 random bits in hex."""
    return KEY_PREFIX + secrets.token_hex(32)


def hash_key(secret: str) -> str:
    """The stored form of a key. Keys are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()
