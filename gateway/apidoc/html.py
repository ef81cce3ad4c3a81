"""A tiny HTML builder that escapes by default.

Text is escaped unless it is already :class:`Html` (built here), so nothing from a request or a
setting can reach the page as markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["Html", "el", "join", "text"]


class Html(str):
    """Markup that is safe as it is: made by :func:`el`, :func:`text` or :func:`join`."""

    __slots__ = ()


def text(value: object) -> Html:
    """``value`` as escaped text (an :class:`Html` stays as it is)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(children: Iterable[object]) -> Html:
    """Children one after the other: each escaped unless it is :class:`Html`; None is nothing;
    a list or tuple is flattened."""
    parts: list[str] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, list | tuple):
            parts.append(join(child))
        else:
            parts.append(text(child))
    return Html("".join(parts))


_VOID = frozenset({"meta", "link", "br", "hr", "img", "input"})


def el(tag: str, *children: object, **attrs: str | bool | None) -> Html:
    """``<tag attrs>children</tag>``; ``class_`` is ``class``, ``data_x`` is ``data-x``; a value of
    True is a bare attribute, None or False leaves it out."""
    rendered = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        rendered.append(f" {name}" if value is True else f' {name}="{html.escape(value, quote=True)}"')
    opening = f"<{tag}{''.join(rendered)}>"
    if tag in _VOID:
        return Html(opening)
    return Html(f"{opening}{join(children)}</{tag}>")
