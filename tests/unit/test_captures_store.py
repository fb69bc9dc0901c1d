"""The shared captures/feedback reader and the feedback writer, against an in-memory S3 client.

The rules monitoring and canary evaluation share (hour listing, bad-line skipping, de-duplication,
budgets, label binding) are pinned here once, without moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.capture_format import request_record
from driftline.captures_store import (
    DELIVERY_LAG,
    CapturesStore,
    ReadStats,
    delivery_key,
    label_for,
)
from driftline.monitoring.captures import read_window
from driftline.monitoring.window import Window
from driftline.retraining.captures import read_captures

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
BOB = "arn:aws:iam::111122223333:role/bob"
MALLORY = "arn:aws:iam::111122223333:role/mallory"
LABELER = "arn:aws:iam::111122223333:role/labeling-team"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


class _Paginator:
    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
        keys = sorted(k for (b, k) in self.s3.objects if b == Bucket and k.startswith(Prefix))
        for i in range(0, len(keys), 2):  # two per page: pagination is followed
            yield {"Contents": [{"Key": k} for k in keys[i : i + 2]]}
        if not keys:
            yield {}


class FakeS3:
    """The four calls the store makes, and the objects it opened."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.opened: list[str] = []

    def get_paginator(self, name: str) -> _Paginator:
        assert name == "list_objects_v2"
        return _Paginator(self)

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.opened.append(Key)
        return {"Body": _Body(self.objects[(Bucket, Key)])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:
        assert ContentType == "application/x-ndjson"
        self.objects[(Bucket, Key)] = Body
        return {}


def _capture(
    rid: str, ts: datetime, *, version: int = 1, role: str | None = "champion", caller: str | None = None
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "request_id": rid,
        "ts": ts.isoformat(),
        "version": version,
        "features": {"x": 1},
        "prediction": {"label": 1, "probability": 0.9},
    }
    if role is not None:
        rec["role"] = role
    if caller is not None:
        rec["caller"] = caller
    return rec


def _put(s3: FakeS3, key: str, lines: list[Any]) -> None:
    s3.objects[("b", key)] = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()


@pytest.fixture
def s3() -> FakeS3:
    return FakeS3()


def test_captures_in_the_window_once_each_with_what_was_skipped(s3: FakeS3) -> None:
    _put(
        s3,
        "captures/model=m/2026/11/26/10/a",
        [
            _capture("r1", T0),
            _capture("r1", T0),  # redelivered
            _capture("r1", T0, role="shadow", version=2),  # the shadow's answer to the same request
            "not json",
            "[1, 2]",
            "",
            _capture("r2", T0 - timedelta(minutes=1)),  # before the window
            _capture("r3", T0 + timedelta(minutes=5), version=7),
        ],
    )
    _put(s3, "captures/model=m/2026/11/26/11/b", [_capture("r4", T0 + timedelta(hours=1))])  # exactly end
    _put(s3, "captures/model=other/2026/11/26/10/c", [_capture("x", T0)])
    stats = ReadStats()
    got = list(
        CapturesStore("b", s3).captures(
            "m", T0, T0 + timedelta(hours=1), stats=stats, max_records=100, keep=lambda r: r["version"] in (1, 2)
        )
    )
    assert [(r["request_id"], r["role"]) for r in got] == [("r1", "champion"), ("r1", "shadow"), ("r4", "champion")]
    assert (stats.n_lines, stats.n_bad_lines, stats.n_other, stats.n_duplicates) == (8, 2, 1, 1)
    assert stats.first_bad == "captures/model=m/2026/11/26/10/a line 4" and not stats.truncated
    half_open = list(
        CapturesStore("b", s3).captures(
            "m", T0, T0 + timedelta(hours=1), stats=ReadStats(), max_records=100, include_end=False
        )
    )
    assert "r4" not in {r["request_id"] for r in half_open}


def test_late_hours_are_listed_only_when_asked(s3: FakeS3) -> None:
    _put(s3, "captures/model=m/2026/11/26/11/late", [_capture("late", T0 + timedelta(minutes=59))])
    end = T0 + timedelta(minutes=59, seconds=30)
    assert not list(CapturesStore("b", s3).captures("m", T0, end, stats=ReadStats(), max_records=9))
    assert [
        r["request_id"]
        for r in CapturesStore("b", s3).captures(
            "m", T0, end, stats=ReadStats(), max_records=9, list_until=end + DELIVERY_LAG
        )
    ] == ["late"]


def test_a_capture_without_a_role_is_the_champions(s3: FakeS3) -> None:
    assert delivery_key(_capture("r", T0, role=None)) == delivery_key(_capture("r", T0)) == ("r", "champion")
    assert delivery_key(_capture("r", T0, role="shadow")) == ("r", "shadow")


def test_the_record_budget_stops_the_read(s3: FakeS3) -> None:
    _put(s3, "captures/model=m/2026/11/26/10/a", [_capture(f"r{i}", T0) for i in range(5)])
    stats = ReadStats()
    got = list(CapturesStore("b", s3).captures("m", T0, T0, stats=stats, max_records=3))
    assert len(got) == 3 and stats.truncated


def test_the_label_object_budget_opens_no_more_objects(s3: FakeS3, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(7):
        _put(s3, f"feedback/model=m/2026/11/26/10/{i}.jsonl", [{"request_id": f"r{i}", "label": 1, "ts": "t"}])
    stats = ReadStats()
    labels = CapturesStore("b", s3).labels("m", T0, T0, max_objects=5, stats=stats)
    assert len(labels) == 5 and len(s3.opened) == 5 and stats.truncated
    assert "stopped after 5 objects" in caplog.text
    caplog.clear()
    assert len(CapturesStore("b", s3).labels("m", T0, T0, max_objects=7)) == 7
    assert "stopped" not in caplog.text  # exactly the budget: nothing was left unread


def test_labels_bind_to_the_caller_or_a_labeler_and_the_first_wins(s3: FakeS3) -> None:
    _put(
        s3,
        "feedback/model=m/2026/11/26/10/a.jsonl",
        [
            {"request_id": "bob-1", "label": 0, "ts": "2026-11-26T10:02:00+00:00", "by": MALLORY},  # forged
            {"request_id": "bob-1", "label": 1, "ts": "2026-11-26T10:03:00+00:00", "by": BOB},
            {"request_id": "bob-1", "label": 0, "ts": "2026-11-26T10:04:00+00:00", "by": BOB},  # later: ignored
            {"request_id": "bob-2", "label": 1, "ts": "2026-11-26T10:05:00+00:00", "by": LABELER},
            {"request_id": "anon", "label": 1, "ts": "2026-11-26T10:05:00+00:00"},
            "garbage",
            {"label": 1},
        ],
    )
    labels = CapturesStore("b", s3).labels("m", T0, T0, labelers=[LABELER])
    assert label_for(labels, _capture("bob-1", T0, caller=BOB)) == (True, 1)
    assert label_for(labels, _capture("bob-2", T0, caller=BOB)) == (True, 1)
    assert label_for(labels, _capture("anon", T0)) == (True, 1)
    assert label_for(labels, _capture("anon", T0, caller=BOB)) == (False, None)  # unauthenticated label
    assert label_for(labels, _capture("missing", T0, caller=BOB)) == (False, None)


def test_the_writer_writes_what_the_reader_binds(s3: FakeS3) -> None:
    store = CapturesStore("b", s3)
    uri = store.put_feedback("m", [{"request_id": "r1", "label": 1}], by=BOB, now=T0 + timedelta(minutes=3))
    assert uri.startswith("s3://b/feedback/model=m/2026/11/26/10/") and uri.endswith(".jsonl")
    line = json.loads(next(iter(s3.objects.values())))
    assert line == {"request_id": "r1", "label": 1, "ts": "2026-11-26T10:03:00.000000+00:00", "by": BOB}
    store.put_feedback("m", [{"request_id": "r1", "label": 0}], by=None, now=T0 + timedelta(minutes=4))
    labels = store.labels("m", T0, T0)
    assert label_for(labels, _capture("r1", T0, caller=BOB)) == (True, 1)


def test_the_client_is_built_only_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftline import aws

    built: list[str] = []

    def client(name: str) -> FakeS3:
        built.append(name)
        return FakeS3()

    monkeypatch.setattr(aws, "client", client)
    store = CapturesStore("b")
    assert built == []
    assert not list(store.captures("m", T0, T0, stats=ReadStats(), max_records=1))
    assert built == ["s3"]


# ---- format v2 (one record per request and role) next to v1 ------------------------------------------
def _v2(rid: str, ts: datetime, n: int, *, version: int = 1, role: str = "champion", **extra: Any) -> dict[str, Any]:
    rec = request_record(
        request_id=rid,
        model="m",
        version=version,
        role=role,
        ts=ts.isoformat(),
        latency_ms=0.5,
        rows=[{"x": i} for i in range(n)],
        outputs=[{"label": 1, "probability": 0.9} for _ in range(n)],
        index=extra.pop("index", None),
    )
    rec.update(extra)
    return rec


def test_a_window_mixing_v1_and_v2_reads_as_one_row_view(s3: FakeS3) -> None:
    _put(s3, "captures/model=m/2026/11/26/10/old", [_capture("a:0", T0), _capture("a:1", T0)])  # v1 objects stay
    _put(
        s3,
        "captures/model=m/2026/11/26/10/new",
        [
            _v2("b", T0 + timedelta(minutes=1), 3),
            _v2("c", T0 + timedelta(minutes=2), 2, version=2, role="challenger", index=[1, 3]),
            _v2("c", T0 + timedelta(minutes=2), 2, role="champion", index=[0, 2]),
        ],
    )
    stats = ReadStats()
    got = list(
        CapturesStore("b", s3).captures(
            "m", T0, T0 + timedelta(hours=1), stats=stats, max_records=100, keep=lambda r: r["version"] == 1
        )
    )
    assert [r["request_id"] for r in got] == ["b:0", "b:1", "b:2", "c:0", "c:2", "a:0", "a:1"]
    assert all(set(r) >= {"features", "prediction", "ts", "role", "version"} for r in got)
    assert got[0]["features"] == {"x": 0} and got[0]["prediction"] == {"label": 1, "probability": 0.9}
    assert (stats.n_lines, stats.n_bad_lines, stats.n_other, stats.n_duplicates) == (5, 0, 2, 0)


def test_v2_redeliveries_are_dropped_per_record_and_parts_are_kept(s3: FakeS3) -> None:
    whole = _v2("big", T0, 4)
    parts = [
        {**_v2("big", T0, 2, index=[0, 1]), "part": 0, "parts": 2},
        {**_v2("big", T0, 2, index=[2, 3]), "part": 1, "parts": 2},
    ]
    _put(s3, "captures/model=m/2026/11/26/10/a", [whole, *parts])
    _put(s3, "captures/model=m/2026/11/26/10/b", [whole, parts[1]])  # at-least-once: both again
    stats = ReadStats()
    got = list(CapturesStore("b", s3).captures("m", T0, T0, stats=stats, max_records=100))
    # the unsplit record is (big, champion, 0), the same identity as part 0: a writer never writes both
    assert [r["request_id"] for r in got] == ["big:0", "big:1", "big:2", "big:3", "big:2", "big:3"]
    assert stats.n_duplicates == 2 + 4 + 2


def test_the_row_budget_counts_rows_not_records(s3: FakeS3) -> None:
    _put(s3, "captures/model=m/2026/11/26/10/a", [_v2("r", T0, 5), _v2("s", T0, 5)])
    stats = ReadStats()
    got = list(CapturesStore("b", s3).captures("m", T0, T0, stats=stats, max_records=7))
    assert len(got) == 7 and stats.truncated
    assert [r["request_id"] for r in got][-2:] == ["s:0", "s:1"]


def test_malformed_and_truncated_v2_records_are_counted_and_skipped(s3: FakeS3) -> None:
    good = _v2("ok", T0, 2)
    cut = json.dumps(_v2("cut", T0, 2))[:-9]  # a truncated object
    bad = {**_v2("bad", T0, 2), "outputs": [{"label": 1}]}  # rows and outputs disagree
    _put(s3, "captures/model=m/2026/11/26/10/a", [bad, cut, good])
    stats = ReadStats()
    got = list(CapturesStore("b", s3).captures("m", T0, T0, stats=stats, max_records=100))
    assert [r["request_id"] for r in got] == ["ok:0", "ok:1"]
    assert stats.n_bad_lines == 2 and stats.first_bad == "captures/model=m/2026/11/26/10/a line 1"


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_fields = st.fixed_dictionaries(
    {"v": st.sampled_from([2, 2, 1, "2", None])},
    optional={
        k: _values for k in ("request_id", "rows", "outputs", "index", "part", "parts", "role", "version", "caller")
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=40),
            _fields.map(lambda d: json.dumps({**d, "ts": T0.isoformat()}).encode()),
            st.just(json.dumps(_v2("x", T0, 2)).encode()),
        ),
        max_size=6,
    )
)
def test_the_reader_never_raises_on_arbitrary_objects(s3: FakeS3, lines: list[bytes]) -> None:
    s3.objects.clear()
    s3.objects[("b", "captures/model=m/2026/11/26/10/fuzz")] = b"\n".join(lines)
    stats = ReadStats()
    got = list(CapturesStore("b", s3).captures("m", T0, T0, stats=stats, max_records=1000))
    assert all(isinstance(r, dict) for r in got)
    assert stats.n_bad_lines <= stats.n_lines


# ---- test traffic (X-Driftline-Test) ------------------------------------------------------------------
def test_test_traffic_is_left_out_and_counted_unless_asked_for(s3: FakeS3) -> None:
    marked = request_record(
        request_id="t",
        model="m",
        version=1,
        role="champion",
        ts=(T0 + timedelta(minutes=3)).isoformat(),
        latency_ms=0.5,
        rows=[{"x": 7}] * 3,
        outputs=[{"label": 1}] * 3,
        test=True,
    )
    _put(
        s3,
        "captures/model=m/2026/11/26/10/a",
        [
            _v2("real", T0 + timedelta(minutes=1), 2),
            marked,
            marked,  # redelivered: counted once
            {**_v2("odd", T0 + timedelta(minutes=2), 1), "test": "yes"},  # only a JSON true marks a record
            {**_capture("v1", T0), "test": True},  # a v1 line carrying the field is left out too
        ],
    )
    stats = ReadStats()
    got = list(CapturesStore("b", s3).captures("m", T0, T0 + timedelta(hours=1), stats=stats, max_records=100))
    assert [r["request_id"] for r in got] == ["real:0", "real:1", "odd:0"]
    assert stats.n_test == 4 and stats.n_duplicates == 3 and stats.n_other == 0
    everything = list(
        CapturesStore("b", s3).captures(
            "m", T0, T0 + timedelta(hours=1), stats=ReadStats(), max_records=100, include_test=True
        )
    )
    assert [r["request_id"] for r in everything if r.get("test") is True] == ["t:0", "t:1", "t:2", "v1"]


def test_labels_for_test_requests_find_no_capture_to_bind_to(s3: FakeS3) -> None:
    """A label join starts from the captures read, so a test request's label has nothing to join."""
    marked = {**_v2("t", T0 + timedelta(minutes=1), 1), "test": True}
    _put(s3, "captures/model=m/2026/11/26/10/a", [marked, _v2("real", T0 + timedelta(minutes=1), 1)])
    store = CapturesStore("b", s3)
    store.put_feedback("m", [{"request_id": "t:0", "label": 1}, {"request_id": "real:0", "label": 0}], now=T0)
    labels = store.labels("m", T0, T0 + timedelta(hours=1))
    rows = list(store.captures("m", T0, T0 + timedelta(hours=1), stats=ReadStats(), max_records=100))
    assert [(r["request_id"], label_for(labels, r)) for r in rows] == [("real:0", (True, 0))]


def test_the_drift_window_and_the_canary_read_no_test_traffic(s3: FakeS3) -> None:
    marked = {**_v2("t", T0 + timedelta(minutes=1), 5), "test": True}
    _put(s3, "captures/model=m/2026/11/26/10/a", [marked, _v2("real", T0 + timedelta(minutes=2), 2)])
    data = read_window("b", "m", Window(T0, T0 + timedelta(hours=1)), 1, ["x"], client=s3)
    assert data.request_ids == ["real:0", "real:1"] and data.n_test == 5
    canary = read_captures("b", "m", T0, T0 + timedelta(hours=1), {1, 2}, client=s3)
    assert [r["request_id"] for r in canary] == ["real:0", "real:1"]
