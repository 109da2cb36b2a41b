"""JSON only: session data in, session data out, with errors that name the offending key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["dump_data", "dump_json", "dump_record", "load_record"]

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's decoder accepts NaN and Infinity; JSON (and JSON.stringify) does not.
_decode = json.JSONDecoder(parse_constant=_reject_constant).decode
OWNER_KEY = "_owner"


def dump_json(value: Any) -> str:
    """Compact JSON, as JSON.stringify writes it."""
    return _encoder.encode(value)


def dump_data(data: Mapping[str, Any]) -> str:
    """Session data as compact JSON (the form express hashes); TypeError names the bad key."""
    try:
        return _encoder.encode(data)
    except (TypeError, ValueError) as error:
        for key, value in data.items():
            try:
                _encoder.encode(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"session[{key!r}] holds a {type(value).__name__}, which is not JSON serializable; "
                    "store JSON types only (str, int, float, bool, None, list, dict)"
                ) from error
        raise TypeError(f"session data is not JSON serializable: {error}") from error


def dump_record(cookie: Mapping[str, Any], data_json: str, owner: str | None) -> str:
    """The stored record: `{"cookie": ..., **data}`, cookie first, as express writes it."""
    head = '{"cookie":' + _encoder.encode(cookie)
    if owner is not None:
        head += f',"{OWNER_KEY}":' + _encoder.encode(owner)
    return head + ("}" if data_json == "{}" else "," + data_json[1:])


def load_record(raw: bytes | str) -> dict[str, Any] | None:
    """A stored record, or None when it is not a JSON object with a `cookie` object."""
    try:
        record = _decode(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("cookie"), dict):
        return None
    return record
