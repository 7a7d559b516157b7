"""Identifiers: time-sortable, 26-character, Crockford base32 (ULID layout), and tokens."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = [0, 0]


def new_id() -> str:
    """A new id: 48 bits of milliseconds, then 80 bits that increase within one millisecond."""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms = _last[0]
            rand = _last[1] + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last[0], _last[1] = ms, rand
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_ids(n: int) -> list[str]:
    """`n` new ids at once, in increasing order (as `n` calls of `new_id`, faster)."""
    if n <= 0:
        return []
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms = _last[0]
            first = _last[1] + 1
        else:
            first = int.from_bytes(os.urandom(10), "big") >> 1
        room = first + n <= 1 << 80
        if room:
            _last[0], _last[1] = ms, first + n - 1
    if not room:  # no room left in this millisecond's range: one at a time
        return [new_id() for _ in range(n)]
    head = "".join(_ALPHABET[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
    return [
        head + base64.b32encode(r.to_bytes(10, "big")).decode().translate(_CROCKFORD)
        for r in range(first, first + n)
    ]


_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)


def new_token(prefix: str = "jf") -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
