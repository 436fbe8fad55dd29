"""How a value given by someone else appears in a message: a short prefix and its length.

Inputs are hostile (a ticket's 10,000-character ``purpose``, a nested structure from a
parameter file): a message, on the terminal, in a log or in a ticket comment, shows at
most :data:`LIMIT` characters of a value, then its length.  :func:`shown` never walks a
whole structure (``reprlib`` stops at a few items and levels), so showing a value costs
the same whatever its size.
"""
from __future__ import annotations

import reprlib
from collections.abc import Sized
from typing import Any

__all__ = ["LIMIT", "shown", "prefix"]

#: characters of a value a message shows at most (the length is added after)
LIMIT = 40

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxother = LIMIT
_REPR.maxlong = LIMIT


def prefix(text: str, limit: int = LIMIT) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ones and the
    length (``'abc...' (10000 characters)`` without the quotes)."""
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 8, 8)]}... ({len(text)} characters)"


def shown(value: Any, limit: int = LIMIT) -> str:
    """A value as a message shows it: its ``repr`` when short, else a prefix of it and
    its length (characters for text, items for collections, bits for integers)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[: max(limit - 8, 8)]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"(an integer of {value.bit_length()} bits)"  # repr() of a huge int is slow or refused
    text = _REPR.repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if "..." in text and isinstance(value, Sized):
        try:
            return f"{text} ({len(value)} items)"
        except Exception:  # noqa: BLE001 - a len() that fails: show without it
            pass
    return text
