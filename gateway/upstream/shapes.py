"""The shapes upstream answers come in, before any action-specific reading: JSON decoding,
top-level errors, one-element wrapping, and multi answers keyed by id or listed with an id field.

Multi answers come keyed by id (``{"1": {...}}``), as a list of objects carrying the id
(``[{"order": 1, ...}]``), wrapped in a one-element list, or - for a one-id call - as the bare
item. Only the ids asked for are returned; an id the upstream left out is absent from the result
(absent is "no news", which is not the same as an ``ItemError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from gateway.upstream.coerce import to_int
from gateway.upstream.types import ItemError

__all__ = [
    "Clean",
    "UnreadableAnswer",
    "decode_json",
    "error_of",
    "identity",
    "is_id_key",
    "items_by_id",
    "message_of",
    "per_item",
    "single_object",
    "top_level_error",
]

Clean = Callable[[str], str]
T = TypeVar("T")
_MESSAGE_LIMIT = 200


class UnreadableAnswer(ValueError):
    """The answer is JSON but not in any shape the adapter knows."""


def identity(text: str) -> str:
    """The default ``clean``: leaves a message as it is."""
    return text


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def decode_json(body: bytes) -> object:
    """Decode a JSON body, with floats as ``Decimal`` (money never passes through ``float``).
    Raises ``ValueError`` (``json.JSONDecodeError``) on anything that is not JSON."""
    return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)


def message_of(value: object) -> str:
    """A short text for an error value (a string, ``{"message": ...}``, or anything else)."""
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, dict) and "message" in value:
        text = str(value["message"])
    else:
        text = json.dumps(value, default=str)
    return text[:_MESSAGE_LIMIT] or "(empty error)"


def error_of(obj: dict[str, object]) -> object | None:
    """The ``error`` value of an object, ``None`` when absent or empty (some panels send
    ``"error": null`` or ``""`` next to a successful answer)."""
    error = obj.get("error")
    return error if error not in (None, "", False, 0) else None


def top_level_error(answer: object) -> str | None:
    """The message of a top-level ``{"error": ...}`` (also wrapped in a one-element list), or
    ``None``. An object that also carries an ``order``/``refill`` id is a per-item error instead."""
    obj = answer[0] if isinstance(answer, list) and len(answer) == 1 else answer
    if not isinstance(obj, dict) or any(obj.get(k) not in (None, "", 0) for k in ("order", "refill")):
        return None
    error = error_of(obj)
    return None if error is None else message_of(error)


def single_object(answer: object) -> dict[str, object]:
    """The object of a single-object answer, unwrapping a one-element list."""
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if not isinstance(answer, dict):
        raise UnreadableAnswer(f"expected an object, got {type(answer).__name__}")
    return answer


def is_id_key(key: str) -> bool:
    """Whether an object key is an id (multi answers keyed by order/refill id)."""
    return key.strip().isdigit()


class _Unattributed(dict[int, object]):
    """Items attributed to the only id asked because the answer carried no id at all: if such an
    item is unreadable, the whole answer is."""


def items_by_id(answer: object, id_field: str, ids: Sequence[int]) -> dict[int, object]:
    """The per-id values of a multi answer, whatever its shape, restricted to ``ids``."""
    found: dict[int, object] = {}
    if isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict | list):
        inner = answer[0]
        # [{"1": {...}, "2": {...}}] is a wrapped keyed object; [{"order": 1, ...}] is a list.
        if isinstance(inner, list) or (inner and all(is_id_key(k) for k in inner)):
            answer = inner
    if isinstance(answer, dict):
        if all(is_id_key(k) for k in answer):  # also {}: nothing known about any id
            found = {int(k): v for k, v in answer.items()}
        elif id_field in answer:
            found = {to_int(answer[id_field]): answer}
        elif len(ids) == 1:
            return _Unattributed({ids[0]: answer})
        else:
            raise UnreadableAnswer("an object that is neither keyed by id nor one item")
    elif isinstance(answer, list):
        for element in answer:
            if isinstance(element, dict) and id_field in element:
                try:
                    found[to_int(element[id_field])] = element
                except ValueError:
                    raise UnreadableAnswer(f"unreadable {id_field} id in a list item") from None
            elif len(answer) == 1 and len(ids) == 1:
                return _Unattributed({ids[0]: element})
            else:
                raise UnreadableAnswer(f"a list item without an {id_field} id")
    else:
        raise UnreadableAnswer(f"expected a list or an object, got {type(answer).__name__}")
    wanted = set(ids)
    return {k: v for k, v in found.items() if k in wanted}


def per_item(
    answer: object, id_field: str, ids: Sequence[int], read: Callable[[object], T | ItemError], clean: Clean
) -> dict[int, T | ItemError]:
    """``read`` applied to each id's value of a multi answer; an unreadable item becomes an
    ``ItemError`` for that id alone, and every error message goes through ``clean``."""
    result: dict[int, T | ItemError] = {}
    items = items_by_id(answer, id_field, ids)
    for item_id, value in items.items():
        try:
            result[item_id] = read(value)
        except (UnreadableAnswer, ValueError) as exc:
            if isinstance(items, _Unattributed):
                raise
            # One odd item must not make the other 99 unreadable.
            result[item_id] = ItemError(f"unreadable answer for this id: {exc}")
    return {k: ItemError(clean(v.message)) if isinstance(v, ItemError) else v for k, v in result.items()}
