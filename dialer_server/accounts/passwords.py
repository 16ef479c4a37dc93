"""Passwords hashed with Argon2id (argon2-cffi), and random bearer tokens.

Hashing and checking take tens of milliseconds of CPU on purpose: call
``hash_password``/``verify_password`` off the event loop (``asyncio.to_thread``).
Tokens are 32 random bytes: only their SHA-256 is stored (``token_digest``),
which is enough for a secret that cannot be guessed.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults (RFC 9106's low-memory profile: t=3, 64 MiB, p=4).
_HASHER = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 200
TOKEN_PREFIX = "dlr_"
# A hash for unknown users: checking it costs what checking a real one does, so
# the time of a failed log-in says nothing about whether the user exists.
_DUMMY_HASH = _HASHER.hash("no-such-user-" + secrets.token_hex(8))


def check_password_rules(password: str) -> str | None:
    """Why ``password`` cannot be used, or None."""
    if len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"must be at most {MAX_PASSWORD} characters"
    if password.strip() != password:
        return "must not begin or end with spaces"
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(encoded: str | None, password: str) -> bool:
    """Whether ``password`` matches ``encoded`` (None: checks a dummy, returns False)."""
    try:
        return _HASHER.verify(encoded or _DUMMY_HASH, password) and encoded is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
