"""Online feature store: the latest feature values per entity, in the DynamoDB ``online`` table.

Item layout (docs/architecture.md): ``pk = <feature_set>#<entity key>`` (composite keys joined by
``|``), ``event_ts`` (N, epoch microseconds), ``features`` (JSON string), ``feature_set_version``
(N). Every write is conditional on ``attribute_not_exists(pk) OR event_ts < :ts``, so a newer
timestamp always wins and a late-arriving older row can never overwrite a newer one, whatever
order concurrent uploads finish in.

Standard library and boto3 only: the serving Lambda imports this module on its fast path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

ENTITY_SEPARATOR = "|"
MAX_KEY_BYTES = 2048
"""DynamoDB's limit on a partition key value (UTF-8 bytes): the item key ``<feature_set>#<entity>``."""
BATCH_GET_LIMIT = 100
CONDITION = "attribute_not_exists(pk) OR event_ts < :ts"


class OnlineStoreUnavailableError(RuntimeError):
    """DynamoDB kept keys unprocessed after every retry; the caller should answer 503, not guess."""


def entity_key(values: Sequence[Any]) -> str:
    """The entity part of the key: values joined by ``|`` (one value for single-column entities)."""
    return ENTITY_SEPARATOR.join(str(v) for v in values)


def item_key(feature_set: str, entity: str) -> str:
    return f"{feature_set}#{entity}"


def max_entity_bytes(feature_set: str) -> int:
    """The longest entity key (UTF-8 bytes, parts joined by ``|``) the online store can hold."""
    return MAX_KEY_BYTES - len(item_key(feature_set, "").encode("utf-8"))


@dataclass(frozen=True)
class OnlineRow:
    """One entity's latest values as the ingest path hands them over."""

    entity: str
    event_ts_us: int
    features: Mapping[str, Any]


@dataclass(frozen=True)
class OnlineRecord:
    features: dict[str, Any]
    event_ts_us: int
    feature_set_version: int


@dataclass(frozen=True)
class WriteStats:
    written: int
    """Items created or replaced by a newer row."""
    stale: int
    """Rows not written because the stored item is as new or newer."""


class OnlineStore:
    """Reads and conditional writes on the online table. Thread-safe (boto3 clients are)."""

    def __init__(
        self, table_name: str, client: Any | None = None, *, max_workers: int = 16, max_attempts: int = 8
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.max_workers = max_workers
        self.max_attempts = max_attempts

    @property
    def client(self) -> Any:
        if self._client is None:
            from driftline import aws

            self._client = aws.client("dynamodb")
        return self._client

    # ---- writes -------------------------------------------------------------------------------
    def _put(self, feature_set: str, version: int, row: OnlineRow) -> bool:
        ts = str(int(row.event_ts_us))
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": item_key(feature_set, row.entity)},
                    "event_ts": {"N": ts},
                    "features": {"S": json.dumps(row.features, separators=(",", ":"), allow_nan=False)},
                    "feature_set_version": {"N": str(int(version))},
                },
                ConditionExpression=CONDITION,
                ExpressionAttributeValues={":ts": {"N": ts}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def put_latest(self, feature_set: str, version: int, rows: Iterable[OnlineRow]) -> WriteStats:
        """Write each entity's row unless the stored one is as new or newer.

        Rows should hold one entry per entity (the newest of an upload); conditional writes run
        concurrently because DynamoDB's BatchWriteItem cannot carry conditions.
        """
        rows = list(rows)
        if not rows:
            return WriteStats(0, 0)
        workers = max(1, min(self.max_workers, len(rows)))
        if workers == 1:
            results = [self._put(feature_set, version, r) for r in rows]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(lambda r: self._put(feature_set, version, r), rows))
        written = sum(results)
        return WriteStats(written, len(rows) - written)

    # ---- reads --------------------------------------------------------------------------------
    def get_records(
        self, feature_set_name: str, entity_ids: Sequence[str], *, consistent: bool = False
    ) -> dict[str, OnlineRecord | None]:
        """Stored record per entity id (``None`` when the entity has none). BatchGetItem, 100 keys a call."""
        wanted = list(dict.fromkeys(entity_ids))  # BatchGetItem refuses duplicate keys
        out: dict[str, OnlineRecord | None] = dict.fromkeys(wanted)
        prefix = f"{feature_set_name}#"
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            chunk = wanted[start : start + BATCH_GET_LIMIT]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{"pk": {"S": item_key(feature_set_name, e)}} for e in chunk],
                    "ProjectionExpression": "pk, event_ts, features, feature_set_version",
                    "ConsistentRead": consistent,
                }
            }
            for attempt in range(self.max_attempts):
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table_name, []):
                    entity = item["pk"]["S"][len(prefix) :]
                    out[entity] = OnlineRecord(
                        features=json.loads(item["features"]["S"]),
                        event_ts_us=int(item["event_ts"]["N"]),
                        feature_set_version=int(item.get("feature_set_version", {}).get("N", "0")),
                    )
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.02 * 2**attempt))
            else:
                left = len(request.get(self.table_name, {}).get("Keys", []))
                raise OnlineStoreUnavailableError(
                    f"online table {self.table_name}: {left} keys still unprocessed after "
                    f"{self.max_attempts} attempts (throttled); retry the request later"
                )
        return out

    def get_many(self, feature_set_name: str, entity_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Latest feature values per entity id (``None`` for entities the store has never seen)."""
        return {
            e: (r.features if r is not None else None)
            for e, r in self.get_records(feature_set_name, entity_ids).items()
        }
