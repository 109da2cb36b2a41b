"""JSON only: values in, values out, and errors that name the exact value that is not JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dump_data", "dump_json", "encode_json", "load_json", "raw_decode"]

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
#: Compact JSON without the error explanation (TypeError/ValueError as json raises them).
encode_json = _encoder.encode
_JSON_SCALARS = (str, int, float, bool, type(None))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's decoder accepts NaN and Infinity; JSON (and JSON.parse) does not.
_decoder = json.JSONDecoder(parse_constant=_reject_constant)
raw_decode = _decoder.raw_decode


def load_json(text: str | bytes) -> Any:
    """Strict JSON (no NaN or Infinity); ValueError when it is not (UnicodeDecodeError included)."""
    return _decoder.decode(text.decode() if isinstance(text, bytes) else text)


def dump_json(value: Any, *, where: str = "value") -> str:
    """Compact JSON as JSON.stringify writes it; TypeError names the path of a value that is not JSON."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            _explain(value, where) or f"{where} is not JSON serializable: {error}"
        ) from error


def dump_data(data: Mapping[str, Any]) -> str:
    """Session data as compact JSON (the form express hashes to see whether anything changed)."""
    return dump_json(data, where="session")


def _explain(value: Any, path: str) -> str | None:
    """Why `value` (found at `path`) cannot be JSON, naming the innermost culprit; None if it can."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value!r}, which JSON cannot represent"
    if isinstance(value, _JSON_SCALARS):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, _JSON_SCALARS):
                return (
                    f"{path} has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
                )
            found = _explain(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _explain(item, f"{path}[{index}]")
            if found:
                return found
        return None
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return (
        f"{path} is {article} {kind}, which is not JSON serializable; "
        "store JSON types only (str, int, float, bool, None, list, dict)"
    )
