"""The typed fast path for ``records`` bodies accepts only what the general path accepts, encoded alike."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from driftline.features.encoding import encode_columns, model_features
from driftline.serving.body import parse_json_text
from driftline.serving.capture import encode_lines, encode_record
from driftline.serving.errors import ServingError
from driftline.serving.reference_model import example_rows
from driftline.serving.request import parse_predict
from driftline.serving.typed_records import TypedRecords, row_dict
from driftline.serving.validation import InputValidator

MAX_ROWS = 30


@pytest.fixture(scope="module")
def schema(credit_fs: Any) -> dict[str, Any]:
    return credit_fs.input_schema()


@pytest.fixture(scope="module")
def typed(schema: dict[str, Any]) -> TypedRecords:
    t = TypedRecords.build(InputValidator(schema))
    assert t is not None
    return t


def general(validator: InputValidator, text: str, max_rows: int = MAX_ROWS) -> Any:
    """What the general path answers: ('ok', X bytes, rows) or ('error', status, code)."""
    try:
        parsed = parse_predict(parse_json_text(text), validator, max_rows)
        if parsed.records is None:
            return ("entities",)
        out = validator.validate(parsed.records)
    except ServingError as e:
        return ("error", e.status, e.code)
    return ("ok", out.X.shape, out.X.tobytes(), out.rows)


def body(rows: list[Any], **extra: Any) -> str:
    return json.dumps({"records": rows, **extra})


def test_clean_rows_take_the_fast_path_and_encode_like_training(schema: dict[str, Any], typed: TypedRecords) -> None:
    for n in (1, 2, 100):
        rows = example_rows(schema, n, seed=n, null_share=0.3)
        got = typed.decode(body(rows), 1000)
        assert got is not None
        cols = {f["name"]: [r[f["name"]] for r in rows] for f in model_features(schema)}
        ref = encode_columns(schema, cols)
        assert got.X.dtype == np.float32 and got.X.flags.c_contiguous
        assert got.X.tobytes() == ref.tobytes()
        assert [row_dict(r) for r in got.rows] == rows


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.replace('"records"', '"entities"'),
        lambda b: b[:-1] + ', "features": {}}',
        lambda b: b[:-1] + ', "extra": 1}',
        lambda b: b.replace("}]", ', "not_a_field": 1}]'),
        lambda b: b.replace(": null", ": NaN", 1),
        lambda b: b[:-3],
        lambda b: '{"records": []}',
        lambda b: "[]",
    ],
)
def test_anything_else_goes_to_the_general_path(schema: dict[str, Any], typed: TypedRecords, change: Any) -> None:
    rows = example_rows(schema, 3, seed=1, null_share=0.5)
    text = change(body(rows))
    assert typed.decode(text, 1000) is None


def test_values_the_general_path_takes_but_this_one_does_not(schema: dict[str, Any], typed: TypedRecords) -> None:
    """Accepting less is only slower: the general path then decides (here: it accepts)."""
    ints = [f["name"] for f in model_features(schema) if f["type"] == "int"]
    cats = [f for f in model_features(schema) if f["type"] == "categorical"]
    row = example_rows(schema, 1, seed=2, null_share=0.0)[0]
    row[ints[0]] = float(row[ints[0]])  # 35.0 in an int field
    assert typed.decode(body([row]), 1000) is None
    assert general(InputValidator(schema), body([row]))[0] == "ok"
    row = example_rows(schema, 1, seed=2, null_share=0.0)[0]
    row[cats[0]["name"]] = "never-seen"
    mapped = dict(schema, unknown_category="map_unknown")
    t = TypedRecords.build(InputValidator(mapped))
    assert t is not None and t.decode(body([row]), 1000) is None
    assert general(InputValidator(mapped), body([row]))[0] == "ok"


def test_too_many_rows_are_left_to_the_general_path(schema: dict[str, Any], typed: TypedRecords) -> None:
    rows = example_rows(schema, 5, seed=1)
    assert typed.decode(body(rows), 4) is None
    assert general(InputValidator(schema), body(rows), max_rows=4) == ("error", 413, "too_many_rows")


ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    3.0,
    2**53 + 1,
    2**63,
    2**70,
    1.5,
    -0.0,
    1e39,
    -1e39,
    "x",
    "online",
    "",
    [],
    {},
    "12",
    150,
    -5,
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 40),
    null_share=st.floats(0, 0.5),
    edits=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 24), st.sampled_from(ODD_VALUES)), max_size=3),
    policy=st.sampled_from(["reject", "map_unknown"]),
    drop=st.booleans(),
)
def test_fast_path_never_accepts_more_or_encodes_differently(
    schema: dict[str, Any],
    seed: int,
    n: int,
    null_share: float,
    edits: list[tuple[int, int, Any]],
    policy: str,
    drop: bool,
) -> None:
    s = dict(schema, unknown_category=policy)
    v = InputValidator(s)
    t = TypedRecords.build(v)
    assert t is not None
    rows = example_rows(s, n, seed=seed, null_share=null_share)
    names = [f["name"] for f in s["features"]]
    for i, k, value in edits:
        rows[i % n][names[k % len(names)] if k < len(names) else "not_a_field"] = value
    if drop and edits:
        del rows[edits[0][0] % n][names[edits[0][1] % len(names)]]
    text = body(rows)
    fast = t.decode(text, MAX_ROWS)
    slow = general(v, text)
    if fast is not None:
        assert slow[0] == "ok", slow
        assert (fast.X.shape, fast.X.tobytes()) == slow[1:3]
        assert [row_dict(r) for r in fast.rows] == slow[3]
    elif not edits and n <= MAX_ROWS:
        pytest.fail("a clean batch should take the fast path")


def test_every_single_bad_value_is_declined(schema: dict[str, Any], typed: TypedRecords) -> None:
    """Each odd value in each field, one at a time: declined, or accepted exactly as the general path does."""
    v = InputValidator(schema)
    base = example_rows(schema, 1, seed=9, null_share=0.0)[0]
    for f in schema["features"]:
        for value in ODD_VALUES:
            row = dict(base, **{f["name"]: value})
            fast, slow = typed.decode(body([row]), 10), general(v, body([row]))
            if fast is None:
                continue
            assert slow[0] == "ok", (f["name"], value, slow)
            assert (fast.X.tobytes(), [row_dict(r) for r in fast.rows]) == (slow[2], slow[3]), (f["name"], value)


def test_odd_field_names_are_decoded_by_their_json_key() -> None:
    schema = {
        "features": [
            {"name": "class", "type": "float", "nullable": False},
            {"name": "my feature", "type": "categorical", "categories": ["a", "b"]},
        ]
    }
    t = TypedRecords.build(InputValidator(schema))
    assert t is not None
    got = t.decode('{"records": [{"my feature": "b", "class": 2}]}', 10)
    assert got is not None
    assert got.X.tolist() == [[2.0, 1.0]]
    assert row_dict(got.rows[0]) == {"class": 2, "my feature": "b"}


WITH_TEXT = {
    "entity": ["id"],
    "features": [
        {"name": "x", "type": "float", "nullable": False},
        {"name": "note", "type": "string", "nullable": True},
        {"name": "seen", "type": "timestamp", "nullable": False},
        {"name": "c", "type": "categorical", "categories": ["a", "b"]},
    ],
}
TEXT_VALUES: list[Any] = [
    None,
    "hi",
    "",
    "2026-01-01T00:00:00Z",
    "2026-13-01",
    "yesterday",
    3,
    1.5,
    True,
    [],
    "a",
    "b",
    "2026-01-01",
    "2026-01-01 10:00:00+02:00",
]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "x": st.sampled_from([0.5, -1, 0.5, -1, 2**70, None, "1", True]),
                "c": st.sampled_from(["a", "b", None, "a", "b", "z", 1]),
            },
            optional={"note": st.sampled_from(TEXT_VALUES), "seen": st.sampled_from(TEXT_VALUES)},
        ),
        min_size=1,
        max_size=6,
    )
)
def test_string_and_timestamp_fields_are_judged_like_the_validator(rows: list[dict[str, Any]]) -> None:
    v = InputValidator(WITH_TEXT)
    t = TypedRecords.build(v)
    assert t is not None
    text = body(rows)
    fast, slow = t.decode(text, MAX_ROWS), general(v, text)
    event("fast path" if fast is not None else "general path")
    if fast is not None:
        assert slow[0] == "ok", (rows, slow)
        assert (fast.X.shape, fast.X.tobytes()) == slow[1:3]
        assert [row_dict(r) for r in fast.rows] == slow[3]


def test_optional_text_fields_stay_absent_and_bad_timestamps_are_declined() -> None:
    t = TypedRecords.build(InputValidator(WITH_TEXT))
    assert t is not None
    got = t.decode('{"records": [{"x": 1, "seen": "2026-01-01T00:00:00Z", "c": "b"}]}', 10)
    assert got is not None and row_dict(got.rows[0]) == {"x": 1, "seen": "2026-01-01T00:00:00Z", "c": "b"}
    assert got.X.tolist() == [[1.0, 1.0]]
    assert t.decode('{"records": [{"x": 1, "seen": "last week", "c": "b"}]}', 10) is None
    assert t.decode('{"records": [{"x": 1, "seen": null, "c": "b"}]}', 10) is None  # not nullable


def test_schemas_it_does_not_model_use_the_general_path() -> None:
    int_cats = {"features": [{"name": "grade", "type": "categorical", "categories": [1, 2, 3]}]}
    assert TypedRecords.build(InputValidator(int_cats)) is None


def test_a_schema_msgspec_refuses_never_stops_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> Any:
        raise TypeError("unsupported")

    monkeypatch.setattr(msgspec, "defstruct", refuse)
    assert TypedRecords.build(InputValidator({"features": [{"name": "x", "type": "float"}]})) is None


def test_wide_integer_bounds_are_clipped_and_larger_values_declined() -> None:
    schema = {"features": [{"name": "n", "type": "int", "nullable": False}]}  # bounded only by float32
    t = TypedRecords.build(InputValidator(schema))
    assert t is not None
    assert t.decode('{"records": [{"n": 12}]}', 10) is not None
    assert t.decode(f'{{"records": [{{"n": {2**70}}}]}}', 10) is None  # the general path accepts it


def test_capture_writes_decoded_rows_as_the_object_sent(schema: dict[str, Any], typed: TypedRecords) -> None:
    rows = example_rows(schema, 2, seed=5, null_share=0.4)
    got = typed.decode(body(rows), 10)
    assert got is not None
    line = encode_record({"request_id": "r:0", "features": got.rows[0], "prediction": {"label": 1}})
    assert orjson.loads(line)["features"] == rows[0]


def test_capture_lines_keep_their_format_and_survive_odd_values() -> None:
    from datetime import UTC, datetime

    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    line = encode_record({"ts": ts, "latency_ms": float("nan"), "features": {"x": 2**70, "s": "\ud800"}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = json.loads(line)
    assert back["ts"] == "2026-01-02T03:04:05.678901+00:00"
    assert back["features"]["x"] == 2**70 and back["features"]["s"] == "\ud800"
    line = encode_record({"ts": ts, "latency_ms": float("nan"), "features": {"x": 1.5}})
    assert orjson.loads(line)["latency_ms"] is None  # standard JSON: NaN is written as null


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), odd=st.sampled_from(["plain", "newlines", "surrogate"]))
def test_batch_encoding_writes_exactly_the_lines_of_record_encoding(
    schema: dict[str, Any], typed: TypedRecords, seed: int, odd: str
) -> None:
    from datetime import UTC, datetime

    rows = example_rows(schema, 5, seed=seed, null_share=0.3)
    got = typed.decode(body(rows), 10)
    assert got is not None
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    text = {"plain": "ok", "newlines": "a\nb\r\nc\u2028d", "surrogate": "\ud800"}[odd]

    def batch() -> list[dict[str, Any]]:
        return [
            {
                "request_id": f"r:{i}",
                "ts": ts,
                "latency_ms": float("nan") if i == 1 else 0.5,
                "features": row,
                "prediction": {"label": i, "note": text if i == 2 else "x"},
            }
            for i, row in enumerate(got.rows)
        ]

    lines = encode_lines(batch())
    assert lines == [encode_record(r) for r in batch()]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)


@pytest.mark.parametrize(
    "features",
    [
        [{"name": "c", "type": "categorical", "categories": ["a", "b"]}],
        [{"name": "x", "type": "float"}],
        [
            {"name": "x", "type": "float"},
            {"name": "c", "type": "categorical", "categories": ["a", "b"]},
            {"name": "ok", "type": "bool"},
        ],
    ],
)
def test_narrow_schemas_encode_like_the_general_path(features: list[dict[str, Any]]) -> None:
    schema = {"features": features}
    v = InputValidator(schema)
    t = TypedRecords.build(v)
    assert t is not None
    values = {"c": ["a", "b", None], "x": [1.5, None, -2], "ok": [True, False, True]}
    rows = [{str(f["name"]): values[str(f["name"])][i] for f in features} for i in range(3)]  # type: ignore[index]
    for batch in (rows, rows[:1]):
        got = t.decode(body(batch), 10)
        assert got is not None
        assert got.X.tobytes() == v.validate(batch).X.tobytes()
