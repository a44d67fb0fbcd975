"""Unguessable identifiers: generation ids and API keys."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
GENERATION_PREFIX = "gen-"
KEY_PREFIX = "sk-gl-v1-"


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_generation_id() -> str:
    """``gen-`` and 24 base62 characters: 142 random bits, like OpenRouter's shape."""
    return GENERATION_PREFIX + _base62(secrets.randbits(142), 24)


def new_api_key() -> str:
    """A fresh secret key: the prefix and 256 random bits in hex."""
    return KEY_PREFIX + secrets.token_hex(32)


def hash_key(secret: str) -> str:
    """The stored form of a key. Keys are 256-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()
