"""Parsing of durations ("30m", "1h30m", 90) and quantities of memory ("512Mi", "2G", bytes)."""

from __future__ import annotations

import math
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTPE]i?|[kmgtpe]|B)?$")
_MEMORY_UNITS = {
    None: 1,
    "B": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number of seconds, or a string like "30s", "1h30m", "250ms"."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30m'")
    if isinstance(value, int | float):
        seconds = _finite(value)
    else:
        text = value.strip().lower()
        if not text:
            raise ValueError("empty duration")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = _finite(text)
        else:
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text):
                raise ValueError(
                    f"malformed duration {value!r}: use a number of seconds or units "
                    "ms, s, m, h, d, w (e.g. '30m', '1h30m')"
                )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return _finite(seconds)


def parse_memory(value: str | int | float) -> int:
    """Bytes in `value`: a number of bytes or a quantity like "512Mi", "2G", "1.5Gi"."""
    if isinstance(value, bool):
        raise ValueError("memory is a number of bytes or a quantity like '512Mi'")
    if isinstance(value, int | float):
        amount = _finite(value)
    else:
        m = _MEMORY.match(value.strip())
        if not m:
            raise ValueError(
                f"malformed memory quantity {value!r}: use bytes or a suffix "
                "k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), e.g. '512Mi'"
            )
        amount = float(m.group(1)) * _MEMORY_UNITS[m.group(2)]
    if amount < 0:
        raise ValueError("memory cannot be negative")
    return int(_finite(amount))


def _finite(value: str | float) -> float:
    """`value` as a finite float: NaN, infinity and numbers past float's range are refused."""
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise ValueError("the number must be finite and within range")
    return number


def format_memory(n: int) -> str:
    """As people write it: the largest unit, whole or to one decimal (23.5Gi, 256Mi, 1.5Gi)."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value.is_integer() else f"{value:.1f}{unit}"
    return str(n)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
