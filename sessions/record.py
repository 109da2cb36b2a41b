"""The stored record, as text: express's layout, its top-level fields, and the merge of one request's change.

A record is the JSON object express-session stores: ``{"cookie": {...}, "_owner": "...", ...data}``,
cookie first. Merges work on the text, field by field, so a value another writer (a Node app, say)
stored keeps its exact bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .serialization import dump_json, encode_json, load_json, raw_decode

_encode = encode_json

__all__ = [
    "OWNER_KEY",
    "Change",
    "Field",
    "Parsed",
    "change_between",
    "dump_record",
    "fields",
    "merge_record",
    "parse_record",
]

OWNER_KEY = "_owner"
_SCALARS = (str, int, bool, type(None))  # not float: -0.0 == 0.0, yet JSON tells them apart
RESERVED = ("cookie", OWNER_KEY)
_SPACE = re.compile(r"[ \t\n\r]*")
_scan_string: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class Change(NamedTuple):
    """One request's delta against the record it loaded, merged into the current record by the store.

    `base` and `result` are a shortcut: when the current record is still `base` (what the request
    loaded), the merge gives `result`, so a store that merges in this process may store it as is.
    """

    cookie: str
    assign: tuple[tuple[str, str], ...] = ()
    remove: frozenset[str] = frozenset()
    base: bytes | None = None
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class Field:
    """One top-level member of a record: its key, the key's JSON text, the value's text and offset."""

    key: str
    key_text: str
    value_text: str
    start: int


@dataclass(frozen=True, slots=True)
class Parsed:
    """A record taken apart: its cookie (express JSON form), its owner and the session data."""

    cookie: dict[str, Any]
    owner: str | None
    data: dict[str, Any]


def dump_record(cookie_text: str, owner: str | None, data_text: str) -> bytes:
    """The record's bytes: cookie first (as express writes it), then the owner, then the data."""
    head = '{"cookie":' + cookie_text
    if owner is not None:
        head += f',"{OWNER_KEY}":' + dump_json(owner)
    return (head + ("}" if data_text == "{}" else "," + data_text[1:])).encode()


def parse_record(raw: bytes | str) -> Parsed | None:
    """The record's parts, or None when it is not a JSON object with a cookie object."""
    try:
        record = load_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    cookie = record.pop("cookie", None)
    if not isinstance(cookie, dict):
        return None
    owner = record.pop(OWNER_KEY, None)
    return Parsed(cookie, owner if isinstance(owner, str) else None, record)


def fields(text: str) -> list[Field]:
    """The top-level members of a JSON object, in order, with their exact texts; ValueError if not one."""
    at = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[at : at + 1] != "{":
        raise ValueError("a record is a JSON object")
    at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    found: list[Field] = []
    if text[at : at + 1] == "}":
        return found
    while True:
        if text[at : at + 1] != '"':
            raise ValueError(f"expected a key at {at}")
        key, key_end = _scan_string(text, at + 1)
        colon = _SPACE.match(text, key_end).end()  # type: ignore[union-attr]
        if text[colon : colon + 1] != ":":
            raise ValueError(f"expected ':' at {colon}")
        start = _SPACE.match(text, colon + 1).end()  # type: ignore[union-attr]
        _, end = raw_decode(text, start)
        found.append(Field(key, text[at:key_end], text[start:end], start))
        at = _SPACE.match(text, end).end()  # type: ignore[union-attr]
        if text[at : at + 1] == "}":
            return found
        if text[at : at + 1] != ",":
            raise ValueError(f"expected ',' or '}}' at {at}")
        at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]


def merge_record(current: bytes, change: Change) -> bytes:
    """`change` applied on top of `current`: kept members keep their bytes and order; new ones go
    last, but for a new owner, which goes right after the cookie."""
    if change.result is not None and current == change.base:
        return change.result
    assigned = dict(change.assign)
    parts = ['{"cookie":', change.cookie]
    members = fields(current.decode())
    if OWNER_KEY in assigned and all(field.key != OWNER_KEY for field in members):
        # A newly assigned owner goes right after the cookie, where readers look for it first.
        parts += [f',"{OWNER_KEY}":', assigned.pop(OWNER_KEY)]
    for field in members:
        if field.key == "cookie" or field.key in change.remove:
            continue
        value = assigned.pop(field.key, None)
        parts += [",", field.key_text, ":", field.value_text if value is None else value]
    for key, value in assigned.items():
        parts += [",", dump_json(key), ":", value]
    return ("".join(parts) + "}").encode()


def change_between(
    before_data: str,
    before_owner: str | None,
    cookie_text: str,
    owner: str | None,
    data: Mapping[str, Any],
) -> Change:
    """What turns a record whose data was `before_data` (JSON text) into (cookie, owner, data)."""
    before = load_json(before_data)
    assign: list[tuple[str, str]] = []
    remove = {key for key in before if key not in data}
    if owner != before_owner:
        if owner is None:
            remove.add(OWNER_KEY)
        else:
            assign.append((OWNER_KEY, dump_json(owner)))
    for key, value in data.items():
        if key in before:
            was = before[key]
            # The same scalar of the same type is the same JSON (1, 1.0 and True are not).
            if type(was) is type(value) and type(value) in _SCALARS and was == value:
                continue
        try:
            text = _encode(value)
        except (TypeError, ValueError):
            text = dump_json(value, where=f"session[{key!r}]")  # raises, naming the path
        if key not in before or _encode(before[key]) != text:
            assign.append((key, text))
    return Change(cookie_text, tuple(assign), frozenset(remove))
