"""Reading the customers' API page back: its example answers, and whether a real answer has their shape."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any


class _Blocks(HTMLParser):
    """The text of every ``<pre id=...>`` block, by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: dict[str, str] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self._open = dict(attrs).get("id")
            if self._open:
                self.blocks[self._open] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.blocks[self._open] += data


def pre_blocks(html: str) -> dict[str, str]:
    parser = _Blocks()
    parser.feed(html)
    return parser.blocks


def documented_answers(html: str) -> dict[str, Any]:
    """Each action's example answer on the page (``answer-<slug>``), decoded."""
    return {
        name.removeprefix("answer-"): json.loads(text)
        for name, text in pre_blocks(html).items()
        if name.startswith("answer-")
    }


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return type(value).__name__


def shape_problems(actual: Any, documented: Any, where: str = "answer") -> list[str]:
    """How ``actual`` differs in shape from ``documented`` (same keys, same JSON types; each item of a
    list like one of the documented items); empty when it has the documented shape."""
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {_kind(actual)} where the page shows an object"]
        if set(actual) != set(documented):
            return [f"{where}: keys {sorted(actual)} where the page shows {sorted(documented)}"]
        return [p for key in documented for p in shape_problems(actual[key], documented[key], f"{where}.{key}")]
    if isinstance(documented, list):
        if not isinstance(actual, list):
            return [f"{where}: {_kind(actual)} where the page shows a list"]
        problems = []
        for index, item in enumerate(actual):
            if all(shape_problems(item, example) for example in documented):
                problems.append(f"{where}[{index}]: {item!r} is like none of the page's items {documented!r}")
        return problems
    if _kind(actual) != _kind(documented):
        return [f"{where}: {_kind(actual)} {actual!r} where the page shows {_kind(documented)} {documented!r}"]
    return []
