"""Validation checks one by one: each bad value is caught, counted, sampled and explained."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from driftline.datasets.credit_default import generate
from driftline.features.schema import FeatureSet, parse_feature_set
from driftline.features.validation import validate


@pytest.fixture(scope="module")
def good() -> pa.Table:
    return generate(60, "2026-01-01", "2026-02-01", seed=3)


def _with(table: pa.Table, column: str, values: list[Any], type_: pa.DataType | None = None) -> pa.Table:
    i = table.column_names.index(column)
    return table.set_column(i, column, pa.array(values, type=type_))


def _col(table: pa.Table, column: str) -> list[Any]:
    return table.column(column).to_pylist()


def _checks(result: Any) -> dict[str, dict[str, Any]]:
    return {f"{c['check']}:{c['column']}": c for c in result.report()["checks"]}


def _tiny_fs(**overrides: Any) -> FeatureSet:
    doc: dict[str, Any] = {
        "name": "tiny",
        "version": 1,
        "entity": ["shop", "item"],
        "timestamp": "ts",
        "features": [{"name": "x", "type": "float", "nullable": False}, {"name": "note", "type": "string"}],
        "labels": [{"name": "grade", "task": "multiclass_classification", "classes": ["a", "b", "c"]}],
    }
    doc.update(overrides)
    return parse_feature_set(doc)


def test_good_data_is_accepted_with_no_failed_checks(good: pa.Table, credit_fs: FeatureSet) -> None:
    r = validate(good, credit_fs)
    assert r.status() == "accepted"
    assert r.report()["checks"] == []
    acc = r.accepted_table()
    assert acc.num_rows == good.num_rows
    assert acc.schema.field("customer_id").nullable is False
    assert acc.column("income").to_pylist() == good.column("income").to_pylist()


def test_missing_columns_reject_every_row_and_say_which(good: pa.Table, credit_fs: FeatureSet) -> None:
    r = validate(good.drop_columns(["age", "region"]), credit_fs)
    assert r.file_error and r.status() == "rejected"
    (check,) = r.report()["checks"]
    assert check["check"] == "missing_columns" and check["failed_rows"] == good.num_rows
    assert check["details"]["columns"] == ["age", "region"]
    assert r.accepted_table().num_rows == 0
    assert r.rejected_table().num_rows == good.num_rows


def test_near_miss_column_name_is_pointed_out(good: pa.Table, credit_fs: FeatureSet) -> None:
    renamed = good.rename_columns(["Age" if c == "age" else c for c in good.column_names])
    check = _checks(validate(renamed, credit_fs))["missing_columns:None"]
    assert "'Age' looks like 'age'" in check["hint"]


def test_file_of_another_feature_set_is_recognised(good: pa.Table, credit_fs: FeatureSet) -> None:
    other = pa.table({"shop": ["s"], "item": ["i"], "ts": ["2026-01-01"], "x": [1.0], "note": ["n"]})
    r = validate(other, credit_fs, others=[credit_fs, _tiny_fs()])
    check = _checks(r)["missing_columns:None"]
    assert "match feature set 'tiny'" in check["hint"] and "incoming/tiny/" in check["hint"]
    r2 = validate(other, credit_fs)
    assert "another feature set" in _checks(r2)["missing_columns:None"]["hint"]


def test_extra_columns_are_a_warning_only(good: pa.Table, credit_fs: FeatureSet) -> None:
    r = validate(good.append_column("shoe_size", pa.array([42] * good.num_rows)), credit_fs)
    assert r.status() == "accepted"
    (check,) = r.report()["checks"]
    assert check["severity"] == "warning" and check["details"]["columns"] == ["shoe_size"]
    assert "shoe_size" not in r.accepted_table().column_names


def test_strings_where_floats_are_expected(good: pa.Table, credit_fs: FeatureSet) -> None:
    values = [str(v) for v in _col(good, "balance")]
    values[4], values[9], values[10] = "abc", "1,5", " 12.5 "
    r = validate(_with(good, "balance", values), credit_fs)
    check = _checks(r)["type:balance"]
    assert check["failed_rows"] == 2
    assert [s["row"] for s in check["sample"]] == [4, 9]
    assert [s["balance"] for s in check["sample"]] == ["abc", "1,5"]
    assert r.accepted_table().num_rows == good.num_rows - 2
    assert 12.5 in r.accepted_table().column("balance").to_pylist()
    assert not r.accepted[4] and r.accepted[10]


def test_int_coercions(good: pa.Table, credit_fs: FeatureSet) -> None:
    ages = [float(a) for a in _col(good, "age")]
    ages[1] = 33.5
    r = validate(_with(good, "age", ages), credit_fs)
    assert _checks(r)["type:age"]["failed_rows"] == 1
    assert r.accepted_table().schema.field("age").type == pa.int64()
    text = [str(a) for a in _col(good, "age")]
    text[2] = "forty"
    r = validate(_with(good, "age", text), credit_fs)
    assert _checks(r)["type:age"]["sample"][0] == {"row": 2, "age": "forty"}
    r = validate(_with(good, "age", [True] * good.num_rows), credit_fs)
    assert _checks(r)["type:age"]["failed_rows"] == good.num_rows


def test_infinity_is_an_error_and_nan_is_null(good: pa.Table, credit_fs: FeatureSet) -> None:
    income = _col(good, "income")
    income[0], income[1] = float("inf"), float("nan")
    balance = _col(good, "balance")
    balance[2] = float("nan")
    t = _with(_with(good, "income", income), "balance", balance)
    r = validate(t, credit_fs)
    checks = _checks(r)
    assert checks["type:income"]["sample"][0]["row"] == 0
    assert checks["not_null:balance"]["sample"][0]["row"] == 2  # NaN in a non-nullable column = missing
    assert r.accepted[1]  # income is nullable: NaN became null
    assert r.typed is not None and r.typed.column("income")[1].as_py() is None


def test_bools(good: pa.Table, credit_fs: FeatureSet) -> None:
    values = ["yes", "No", "TRUE", "f", "1", "0", "maybe"] + ["true"] * (good.num_rows - 7)
    r = validate(_with(good, "autopay_enabled", values), credit_fs)
    assert _checks(r)["type:autopay_enabled"]["failed_rows"] == 1
    assert r.typed is not None
    assert r.typed.column("autopay_enabled").to_pylist()[:7] == [True, False, True, False, True, False, None]
    r = validate(_with(good, "autopay_enabled", [0, 1, 2] * 20), credit_fs)
    assert _checks(r)["type:autopay_enabled"]["failed_rows"] == 20


def test_nulls_against_nullability(good: pa.Table, credit_fs: FeatureSet) -> None:
    t = _with(good, "utilization", [None, *_col(good, "utilization")[1:]])
    t = _with(t, "income", [None] * good.num_rows, pa.float64())  # nullable: fine
    r = validate(t, credit_fs)
    checks = _checks(r)
    assert set(checks) == {"not_null:utilization"}
    assert checks["not_null:utilization"]["failed_rows"] == 1
    assert "nullable" in checks["not_null:utilization"]["hint"]


def test_ranges(good: pa.Table, credit_fs: FeatureSet) -> None:
    ages = _col(good, "age")
    ages[3], ages[5] = 17, 101
    r = validate(_with(good, "age", ages), credit_fs)
    msgs = [c["message"] for c in r.report()["checks"]]
    assert any("below the minimum 18" in m for m in msgs) and any("above the maximum 100" in m for m in msgs)
    assert r.report()["rows_rejected"] == 2


def test_numbers_no_model_input_can_hold_are_rejected_per_row(good: pa.Table, credit_fs: FeatureSet) -> None:
    """income has no max: 1e300 used to be accepted, then every request for that customer got a 422."""
    incomes = _col(good, "income")
    incomes[2], incomes[4], incomes[6] = 1e300, 5e38, 3.4e38  # the last one fits float32
    r = validate(_with(good, "income", incomes, pa.float64()), credit_fs)
    check = _checks(r)["range:income"]
    assert check["failed_rows"] == 2 and "float32" in check["message"]
    assert [s["row"] for s in check["sample"]] == [2, 4]


def test_entity_keys_too_long_for_the_online_store(good: pa.Table, credit_fs: FeatureSet) -> None:
    """One 5,000-character customer_id used to fail the whole upload after curated data was written."""
    from driftline.features.online import MAX_KEY_BYTES, max_entity_bytes

    ids = _col(good, "customer_id")
    limit = max_entity_bytes("credit_default")
    ids[1] = "C" * 5000
    ids[2] = "é" * (limit // 2 + 1)  # short in characters, too long in UTF-8 bytes
    ids[3] = "C" * limit  # exactly fits: pk = "credit_default#" + id is 2,048 bytes
    r = validate(_with(good, "customer_id", ids), credit_fs)
    check = _checks(r)["entity_length:customer_id"]
    assert check["failed_rows"] == 2 and f"{limit:,} bytes" in check["message"]
    assert r.report()["rows_rejected"] == 2
    assert len(f"credit_default#{'C' * limit}".encode()) == MAX_KEY_BYTES
    composite = _tiny_fs()
    table = pa.table(
        {
            "shop": ["s" * 1500, "s"],
            "item": ["i" * 600, "i"],
            "ts": ["2026-01-01", "2026-01-01"],
            "x": [1.0, 2.0],
            "note": ["a", "b"],
            "grade": ["a", "b"],
        }
    )
    assert _checks(validate(table, composite))["entity_length:None"]["failed_rows"] == 1


def test_entity_keys_with_quotes_or_control_characters(good: pa.Table, credit_fs: FeatureSet) -> None:
    """A CSV with a stray quote was accepted with entity ids like 'U2-C0000161"' (issue 16, item 6)."""
    import pyarrow.csv as pacsv

    text = 'customer_id,x\nU2-C0000161",1\nU2-C0000162,2\n"U2-C0000163",3\n'
    raw = pacsv.read_csv(pa.BufferReader(text.encode()))
    ids = _col(good, "customer_id")
    ids[:3] = raw.column("customer_id").to_pylist()
    ids[3] = "C\x00zero"
    r = validate(_with(good, "customer_id", ids), credit_fs)
    check = _checks(r)["entity_format:customer_id"]
    assert check["failed_rows"] == 2 and [s["row"] for s in check["sample"]] == [0, 3]


def test_categories(good: pa.Table, credit_fs: FeatureSet) -> None:
    regions = _col(good, "region")
    regions[0], regions[1], regions[2] = "North", "mars", "mars"
    r = validate(_with(good, "region", regions), credit_fs)
    check = _checks(r)["category:region"]
    assert check["failed_rows"] == 3
    assert check["details"]["unknown_values"] == {"mars": 2, "North": 1}
    assert "case-sensitive" in check["hint"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
        ("2026-01-05T10:20:30Z", datetime(2026, 1, 5, 10, 20, 30, tzinfo=UTC)),
        ("2026-01-05 10:20:30+02:00", datetime(2026, 1, 5, 8, 20, 30, tzinfo=UTC)),
        ("2026-01-05T10:20:30.25-0130", datetime(2026, 1, 5, 11, 50, 30, 250000, tzinfo=UTC)),
        ("2026-01-05T10:20", datetime(2026, 1, 5, 10, 20, tzinfo=UTC)),
        ("2026-02-30", None),
        ("2026-13-01", None),
        ("yesterday", None),
        ("1767225600", None),
    ],
)
def test_timestamp_parsing(good: pa.Table, credit_fs: FeatureSet, text: str, expected: datetime | None) -> None:
    values = [f"2026-01-{(i % 28) + 1:02d}T{i % 24:02d}:00:00" for i in range(good.num_rows)]
    values[7] = text
    r = validate(_with(good, "event_timestamp", values), credit_fs)
    assert r.typed is not None
    assert r.typed.column("event_timestamp")[7].as_py() == expected
    if expected is None:
        assert _checks(r)["type:event_timestamp"]["sample"] == [{"row": 7, "event_timestamp": text}]
    else:
        assert r.accepted[7]


def test_timestamp_column_types(good: pa.Table, credit_fs: FeatureSet) -> None:
    naive = pc.cast(good.column("event_timestamp"), pa.timestamp("ns"))
    r = validate(_with(good, "event_timestamp", naive.to_pylist(), pa.timestamp("ns")), credit_fs)
    assert r.status() == "accepted"
    assert r.accepted_table().column("event_timestamp").equals(good.column("event_timestamp"))
    days = [date(2026, 1, 1 + i % 28) for i in range(good.num_rows)]
    r = validate(_with(good, "event_timestamp", days), credit_fs)
    assert r.typed is not None
    assert r.typed.column("event_timestamp")[0].as_py() == datetime(2026, 1, 1, tzinfo=UTC)
    r = validate(_with(good, "event_timestamp", list(range(good.num_rows))), credit_fs)
    check = _checks(r)["type:event_timestamp"]
    assert check["failed_rows"] == good.num_rows and "epoch numbers are not accepted" in check["hint"]


def test_entity_keys(good: pa.Table, credit_fs: FeatureSet) -> None:
    ids = [float(i) for i in range(good.num_rows)]
    ids[1] = 1.5
    r = validate(_with(good, "customer_id", ids), credit_fs)
    assert _checks(r)["type:customer_id"]["failed_rows"] == 1
    assert r.typed is not None and r.typed.column("customer_id")[2].as_py() == "2"
    ids2 = [f"C{i}" for i in range(good.num_rows)]
    ids2[0], ids2[1] = "", None  # type: ignore[call-overload]
    r = validate(_with(good, "customer_id", ids2), credit_fs)
    assert _checks(r)["not_null:customer_id"]["failed_rows"] == 2


def test_duplicate_keys_reject_every_row_of_the_key(good: pa.Table, credit_fs: FeatureSet) -> None:
    ids, ts = _col(good, "customer_id"), _col(good, "event_timestamp")
    ids[10], ts[10] = ids[3], ts[3]
    t = _with(_with(good, "customer_id", ids), "event_timestamp", ts, pa.timestamp("us", tz="UTC"))
    r = validate(t, credit_fs)
    check = _checks(r)["duplicate_key:customer_id,event_timestamp"]
    assert check["failed_rows"] == 2 and [s["row"] for s in check["sample"]] == [3, 10]
    assert not r.accepted[3] and not r.accepted[10]


def test_duplicate_keys_with_a_composite_entity() -> None:
    fs = _tiny_fs()
    t = pa.table(
        {
            "shop": ["a", "a", "b", "a"],
            "item": ["1", "2", "1", "1"],
            "ts": ["2026-01-01T00:00:00Z"] * 4,
            "x": [1.0, 2.0, 3.0, 4.0],
            "note": [None] * 4,
        }
    )
    r = validate(t, fs)
    assert r.accepted.tolist() == [False, True, True, False]


def test_labels(good: pa.Table, credit_fs: FeatureSet) -> None:
    r = validate(good.drop_columns(["defaulted"]), credit_fs)
    assert r.status() == "accepted"
    assert r.accepted_table().column("defaulted").null_count == good.num_rows
    labels = _col(good, "defaulted")
    labels[0], labels[1] = 2, None
    r = validate(_with(good, "defaulted", labels), credit_fs)
    check = _checks(r)["label_class:defaulted"]
    assert check["failed_rows"] == 1 and check["details"]["unknown_values"] == {"2": 1}
    assert r.accepted[1]  # an unknown label is fine: features without a label yet


def test_string_labels_and_string_features() -> None:
    t = pa.table(
        {
            "shop": ["a", "b", "c"],
            "item": [1, 2, 3],
            "ts": ["2026-01-01"] * 3,
            "x": [1, 2, 3],
            "note": [1.5, None, 3.0],
            "grade": ["a", "z", None],
        }
    )
    r = validate(t, _tiny_fs())
    assert r.accepted.tolist() == [True, False, True]
    assert r.typed is not None and r.typed.column("note").to_pylist() == ["1.5", None, "3"]
    assert r.typed.column("item").to_pylist() == ["1", "2", "3"]


def test_reject_file_policy(good: pa.Table, credit_fs: FeatureSet) -> None:
    ages = _col(good, "age")
    ages[0] = 5
    r = validate(_with(good, "age", ages), credit_fs)
    assert r.status("accept_valid") == "partial"
    assert r.status("reject_file") == "rejected"
    assert r.accepted_table("reject_file").num_rows == 0
    rejected = r.rejected_table("reject_file")
    assert rejected.num_rows == good.num_rows
    errors = rejected.column("_errors").to_pylist()
    assert errors[0] == "range:age" and set(errors[1:]) == {"rejected_by_policy:reject_file"}
    assert "policy_note" in r.report("reject_file")


def test_report_is_json_and_rejected_rows_keep_raw_values(good: pa.Table, credit_fs: FeatureSet) -> None:
    values: list[Any] = [str(v) for v in _col(good, "balance")]
    values[4] = "abc"
    ages = _col(good, "age")
    ages[4] = 200
    r = validate(_with(_with(good, "balance", values), "age", ages), credit_fs)
    report = json.loads(json.dumps(r.report(source="s3://b/k", upload_id="u1")))
    assert report["source"] == "s3://b/k" and report["rows_rejected"] == 1
    rejected = r.rejected_table()
    assert rejected.column("_row").to_pylist() == [4]
    assert rejected.column("_errors").to_pylist() == ["range:age,type:balance"]
    assert rejected.column("balance").to_pylist() == ["abc"]


def test_chunked_input_and_sample_size(good: pa.Table, credit_fs: FeatureSet) -> None:
    t = pa.concat_tables([good.slice(0, 30), good.slice(30)])
    ages = np.array(_col(good, "age"))
    ages[:] = 10
    t = _with(t, "age", ages.tolist())
    r = validate(t, credit_fs, sample_rows=3)
    check = _checks(r)["range:age"]
    assert check["failed_rows"] == good.num_rows and len(check["sample"]) == 3


def test_chunked_dictionary_and_large_string_columns(good: pa.Table, credit_fs: FeatureSet) -> None:
    regions = pa.chunked_array(
        [
            good.column("region").combine_chunks().slice(0, 30).dictionary_encode(),
            good.column("region").combine_chunks().slice(30).dictionary_encode(),
        ]
    )
    ids = pa.chunked_array([good.column("customer_id").combine_chunks().cast(pa.large_string())])
    t = good.set_column(good.column_names.index("region"), "region", regions)
    t = t.set_column(0, "customer_id", ids)
    t = pa.concat_tables([t.slice(0, 20), t.slice(20)])
    r = validate(t, credit_fs)
    assert r.status() == "accepted", r.report()["checks"]
    assert r.accepted_table().column("region").to_pylist() == good.column("region").to_pylist()


def _messy(n: int, seed: int) -> pa.Table:
    """credit_default rows with every kind of failure, shared timestamps and duplicate keys."""
    rng = np.random.default_rng(seed)
    t = generate(n, "2026-01-01", "2026-01-03", seed=seed)
    ids = np.array(_col(t, "customer_id"), dtype=object)
    ids[rng.random(n) < 0.02] = None
    stamps = t.column("event_timestamp").cast(pa.int64()).to_numpy().copy()
    stamps[rng.random(n) < 0.3] = stamps[0]  # many shared timestamps, mostly of different customers
    copy = rng.integers(0, n, n // 50)
    ids[copy[::2]], stamps[copy[::2]] = ids[copy[1::2]], stamps[copy[1::2]]  # duplicate keys
    ages = np.array(_col(t, "age"), dtype=object)
    ages[rng.random(n) < 0.01] = 150
    regions = np.array(_col(t, "region"), dtype=object)
    regions[rng.random(n) < 0.01] = "atlantis"
    t = _with(t, "customer_id", ids.tolist(), pa.string())
    t = _with(t, "event_timestamp", stamps.tolist(), pa.int64())
    t = t.set_column(1, "event_timestamp", t.column(1).cast(pa.timestamp("us", tz="UTC")))
    t = _with(_with(t, "age", ages.tolist()), "region", regions.tolist(), pa.string())
    labels = _col(t, "defaulted")
    labels[5] = 7
    return _with(t, "defaulted", labels)


@pytest.mark.parametrize("time_ordered", [False, True])
def test_duplicate_keys_match_a_per_row_reference(credit_fs: FeatureSet, time_ordered: bool) -> None:
    t = _messy(3_000, seed=5)
    if time_ordered:  # ties are found among neighbours instead of by sorting
        t = t.sort_by("event_timestamp")
    seen: dict[tuple[Any, Any], list[int]] = {}
    for i, key in enumerate(zip(_col(t, "customer_id"), _col(t, "event_timestamp"), strict=True)):
        if None not in key:
            seen.setdefault(key, []).append(i)
    expected = sorted(i for rows in seen.values() if len(rows) > 1 for i in rows)
    r = validate(t, credit_fs)
    assert expected and np.flatnonzero(r.masks["duplicate_key:customer_id,event_timestamp"]).tolist() == expected


def test_threaded_checks_give_the_same_result_as_sequential(
    credit_fs: FeatureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftline.features.validation import parallel

    t = pa.concat_tables([_messy(2_000, seed=9).slice(0, 700), _messy(2_000, seed=9).slice(700)])
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 10**9)
    sequential = validate(t, credit_fs)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    threaded = validate(t, credit_fs)
    assert list(threaded.masks) == list(sequential.masks)
    assert all((threaded.masks[k] == sequential.masks[k]).all() for k in sequential.masks)
    assert threaded.report() == sequential.report()
    assert threaded.accepted_table().equals(sequential.accepted_table())
    assert threaded.rejected_table().equals(sequential.rejected_table())
    assert len(sequential.checks) >= 5


def test_take_rows_chunk_by_chunk_matches_arrow_take() -> None:
    from driftline.features.validation import take_rows

    col = pa.chunked_array([pa.array([0, 1, None]), pa.array([], pa.int64()), pa.array([3, 4]), pa.array([5])])
    for rows in ([], [0], [2, 3, 5], [0, 1, 2, 3, 4, 5], [4]):
        idx = np.array(rows, dtype=np.int64)
        assert take_rows(col, idx).to_pylist() == col.take(pa.array(idx)).to_pylist()


def test_threads_only_for_large_tables_and_at_most_one_per_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline.features.validation import parallel

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert parallel.thread_count(parallel.PARALLEL_MIN_ROWS - 1, 30) == 1
    assert parallel.thread_count(parallel.PARALLEL_MIN_ROWS, 30) == 8
    assert parallel.thread_count(parallel.PARALLEL_MIN_ROWS, 3) == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert parallel.thread_count(10**9, 30) == 1


def test_every_validation_module_names_its_public_api() -> None:
    import importlib
    import pkgutil

    from driftline.features import validation

    for name in validation.__all__:
        assert getattr(validation, name) is not None
    for info in pkgutil.iter_modules(validation.__path__):
        module = importlib.import_module(f"{validation.__name__}.{info.name}")
        exported = getattr(module, "__all__", None)
        assert exported, f"{module.__name__} has no __all__"
        assert all(hasattr(module, name) for name in exported), module.__name__
