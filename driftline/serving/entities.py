"""Feature values by entity id from the online store, for ``{"entities": [...]}`` requests.

Uses ``driftline.features.online.OnlineStore.get_many`` when that module is present; until then a
reader of the documented item layout (docs/architecture.md, table ``online``: ``pk`` =
``<feature_set>#<entity key>``, ``features`` = JSON string) with ``BatchGetItem``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from driftline import aws

BATCH_GET_MAX_KEYS = 100


class EntityLookup(Protocol):
    def get_many(self, feature_set: str, keys: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        """Latest feature values for each key that exists (missing keys are absent from the result)."""
        ...


class DynamoEntityLookup:
    """``BatchGetItem`` on the online table, 100 keys per call, unprocessed keys retried."""

    def __init__(self, table: str, max_attempts: int = 5) -> None:
        self.table = table
        self.max_attempts = max_attempts

    def get_many(self, feature_set: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        ddb = aws.client("dynamodb")
        wanted = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        prefix = f"{feature_set}#"
        for start in range(0, len(wanted), BATCH_GET_MAX_KEYS):
            request: dict[str, Any] = {self.table: {
                "Keys": [{"pk": {"S": prefix + k}} for k in wanted[start:start + BATCH_GET_MAX_KEYS]],
                "ProjectionExpression": "pk, features"}}
            for _ in range(self.max_attempts):
                resp = ddb.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    out[item["pk"]["S"][len(prefix):]] = json.loads(item["features"]["S"])
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
            if request:
                raise RuntimeError(f"online store kept {len(request[self.table]['Keys'])} keys unprocessed "
                                   f"(throttled); retry the request")
        return out


def default_lookup() -> EntityLookup:
    try:
        from driftline.features.online import OnlineStore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return DynamoEntityLookup(aws.env("ONLINE_TABLE"))
    store: EntityLookup = OnlineStore.from_env()
    return store
