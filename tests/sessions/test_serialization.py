"""JSON only, written as JSON.stringify writes it, with errors that name the exact culprit."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pytest

from sessions.serialization import dump_data, dump_json, load_json


def test_values_are_written_compactly_and_unicode_stays_unicode() -> None:
    assert (
        dump_json({"a": [1, 2.5, None, True], "é": "\u2028"})
        == '{"a":[1,2.5,null,true],"é":"\u2028"}'
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"cart": {"items": [{"price": Decimal("1.5")}]}},
            "session['cart']['items'][0]['price'] is a Decimal",
        ),
        ({"when": date(2026, 1, 1)}, "session['when'] is a date"),
        ({"x": object()}, "session['x'] is an object"),
        ({"n": math.nan}, "session['n'] is nan, which JSON cannot represent"),
        ({"ok": [1, {"deep": math.inf}]}, "session['ok'][1]['deep'] is inf"),
        ({"k": {(1, 2): "tuple key"}}, "session['k'] has a key (1, 2) of type tuple"),
    ],
)
def test_a_value_that_is_not_json_is_a_type_error_naming_its_path(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError) as caught:
        dump_data(data)
    assert message in str(caught.value)


def test_what_json_changes_silently_is_documented_behaviour() -> None:
    """Tuples come back as lists and numeric keys as strings (README: what JSON can hold)."""
    assert load_json(dump_data({"t": (1, 2), "k": {1: "a"}})) == {"t": [1, 2], "k": {"1": "a"}}


def test_reading_is_strict_json() -> None:
    for text in ("NaN", '{"a":Infinity}', "{"):
        with pytest.raises(ValueError):
            load_json(text)
    assert load_json(b'{"a":1}') == {"a": 1}
    with pytest.raises(ValueError):
        load_json(b"\xff")
