"""Keeping the provider's API key out of logs, exceptions, reprs and excerpts."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

__all__ = ["EXCERPT_LIMIT", "ApiKey", "excerpt"]

EXCERPT_LIMIT = 200
_MASK = "***"
_WHITESPACE = re.compile(r"\s+")


class ApiKey:
    """The provider's API key, wrapped so that no repr, str or traceback-with-locals shows it.

    ``reveal()`` is the one way to the value, used only when the form body is built.
    """

    __slots__ = ("_pattern", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        # An upstream (or an exception) may echo the key raw or URL-encoded, in any case.
        spellings = {value, quote_plus(value), quote(value, safe="")} - {""}
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True)), re.I)
            if spellings
            else None
        )

    def reveal(self) -> str:
        """The key itself: for the request body only."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every spelling of the key replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(_MASK, text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__


def excerpt(text: str | bytes, key: ApiKey, limit: int = EXCERPT_LIMIT) -> str:
    """A short (``<= limit`` chars), single-line, key-free excerpt of ``text``.

    The key is scrubbed from the whole text before whitespace is collapsed and the text cut:
    scrubbing a cut window could leave a prefix of a key that straddles the cut. Bodies are
    already bounded by the client's size cap, and this runs on error paths only.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    cleaned = _WHITESPACE.sub(" ", key.scrub(text)).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned
