"""Customer API keys: random (192 bits), with a recognizable prefix; only a hash is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "smm_"
MAX_KEY_LENGTH = 200


def hash_key(key: str) -> bytes:
    """The stored form of a key. SHA-256 suffices: keys are random, not passwords."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def new_api_key() -> tuple[str, bytes, str]:
    """A fresh key, its hash, and a hint (prefix and first characters) to recognise it by."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    return key, hash_key(key), key[:10]


def hashes_match(stored: bytes, key: str) -> bool:
    """Constant-time comparison of a stored hash with a presented key."""
    return hmac.compare_digest(stored, hash_key(key))
