"""Online store logic with a fake DynamoDB client: batching, duplicates, unprocessed keys, conditions."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from driftline.features.online import (
    CONDITION,
    OnlineRow,
    OnlineStore,
    OnlineStoreUnavailableError,
    entity_key,
    item_key,
)


class _ConditionalCheckFailedError(Exception):
    pass


class _Exceptions:
    ConditionalCheckFailedException = _ConditionalCheckFailedError


class FakeDynamo:
    """Enough of the DynamoDB client: a dict of items, conditional puts and batch gets."""

    exceptions = _Exceptions

    def __init__(self, unprocessed_rounds: int = 0) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.unprocessed_rounds = unprocessed_rounds
        self.batch_sizes: list[int] = []

    def put_item(
        self,
        *,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str,
        ExpressionAttributeValues: dict[str, Any],
    ) -> None:
        assert ConditionExpression == CONDITION
        pk = Item["pk"]["S"]
        old = self.items.get(pk)
        if old is not None and not int(old["event_ts"]["N"]) < int(ExpressionAttributeValues[":ts"]["N"]):
            raise _ConditionalCheckFailedError()
        self.items[pk] = Item

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, req),) = RequestItems.items()
        keys = req["Keys"]
        assert len(keys) <= 100 and len({k["pk"]["S"] for k in keys}) == len(keys)
        self.batch_sizes.append(len(keys))
        if self.unprocessed_rounds > 0:  # answer half, leave the rest unprocessed
            self.unprocessed_rounds -= 1
            done, left = keys[: len(keys) // 2], keys[len(keys) // 2 :]
        else:
            done, left = keys, []
        found = [self.items[k["pk"]["S"]] for k in done if k["pk"]["S"] in self.items]
        out: dict[str, Any] = {"Responses": {table: found}}
        if left:
            out["UnprocessedKeys"] = {table: {**req, "Keys": left}}
        return out


def _row(entity: str, ts: int, **features: Any) -> OnlineRow:
    return OnlineRow(entity, ts, features)


def test_keys() -> None:
    assert entity_key(["a", 7]) == "a|7"
    assert item_key("fs", "a|7") == "fs#a|7"


def test_newer_wins_and_older_or_equal_never_overwrites() -> None:
    db = FakeDynamo()
    store = OnlineStore("t", db, max_workers=4)
    assert store.put_latest("fs", 1, [_row("a", 10, x=1), _row("b", 10, x=1)]).written == 2
    stats = store.put_latest("fs", 1, [_row("a", 5, x=2), _row("b", 10, x=3), _row("c", 1, x=4)])
    assert (stats.written, stats.stale) == (1, 2)
    stats = store.put_latest("fs", 2, [_row("a", 11, x=9)])
    assert stats.written == 1
    got = store.get_records("fs", ["a", "b", "c"])
    assert got["a"] is not None and got["a"].features == {"x": 9} and got["a"].feature_set_version == 2
    assert got["b"] is not None and got["b"].features == {"x": 1}
    assert json.loads(db.items["fs#c"]["features"]["S"]) == {"x": 4}


def test_get_many_batches_dedupes_and_marks_unknown() -> None:
    db = FakeDynamo()
    store = OnlineStore("t", db)
    store.put_latest("fs", 1, [_row(f"e{i}", 1, i=i) for i in range(250)])
    ids = [f"e{i}" for i in range(250)] + ["e3", "ghost"]
    got = store.get_many("fs", ids)
    assert len(got) == 251 and got["ghost"] is None and got["e249"] == {"i": 249}
    assert db.batch_sizes == [100, 100, 51]
    assert store.get_many("other_fs", ["e1"]) == {"e1": None}


def test_unprocessed_keys_are_retried_then_reported() -> None:
    db = FakeDynamo(unprocessed_rounds=3)
    store = OnlineStore("t", db)
    store.put_latest("fs", 1, [_row(f"e{i}", 1, i=i) for i in range(8)])
    got = store.get_many("fs", [f"e{i}" for i in range(8)])
    assert all(v is not None for v in got.values())
    stuck = OnlineStore("t", FakeDynamo(unprocessed_rounds=100), max_attempts=3)
    with pytest.raises(OnlineStoreUnavailableError, match="still unprocessed after 3 attempts"):
        stuck.get_many("fs", ["x", "y"])


def test_nan_is_refused_rather_than_stored_as_invalid_json() -> None:
    with pytest.raises(ValueError):
        OnlineStore("t", FakeDynamo()).put_latest("fs", 1, [_row("a", 1, x=float("nan"))])


def test_module_is_import_light() -> None:
    code = (
        "import sys, driftline.features.online as m; m.OnlineStore('t').client; "
        "bad = [x for x in ('pandas', 'pyarrow', 'numpy', 'pydantic', 'sklearn') if x in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    )
    assert out.stdout.strip() == ""
