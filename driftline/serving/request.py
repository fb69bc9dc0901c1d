"""The predict request body: rows given in full (``records``) or by entity id (``entities``).

Body shapes (see docs/serving.md)::

    {"records": [{"age": 41, ..., "channel": "online"}, ...]}
    {"entities": ["C0000042", ...], "features": {"channel": "online"}}
    {"entities": [{"customer_id": "C0000042", "channel": "branch", "income": 51000.0}, ...]}

In entity mode a row's values come from the online store, then ``features`` (shared by every row),
then the entity object's own fields: later sources win. Request-time features are never read from the
store. This module only checks the shape; field values are checked by
:class:`driftline.serving.validation.InputValidator` after the rows are assembled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.serving.errors import ServingError, unprocessable
from driftline.serving.validation import InputValidator, describe

TOP_LEVEL_KEYS = ("records", "entities", "features")
KEY_SEPARATOR = "|"


@dataclass
class EntityRows:
    """Entity mode, parsed: the online-store key per row and the request's own values."""

    keys: list[str]
    labels: list[Any]
    """The entity as the client wrote it (a string or an object), echoed in error messages."""
    shared: dict[str, Any] = field(default_factory=dict)
    per_row: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PredictRequest:
    records: list[Any] | None = None
    entities: EntityRows | None = None

    @property
    def n_rows(self) -> int:
        if self.records is not None:
            return len(self.records)
        assert self.entities is not None
        return len(self.entities.keys)


def too_many_rows(n: int, max_rows: int) -> ServingError:
    return ServingError(
        413,
        "too_many_rows",
        f"the request has {n:,} rows; at most {max_rows:,} are accepted per request (split it into several requests)",
    )


def parse_predict(body: Any, validator: InputValidator, max_rows: int) -> PredictRequest:
    """Check the body's shape; 422 for a wrong shape, 413 for too many rows."""
    if not isinstance(body, dict):
        raise unprocessable(
            f"the body must be a JSON object with 'records' or 'entities', got {describe(body)}", code="invalid_body"
        )
    unknown = [k for k in body if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise unprocessable(
            f"unknown top-level field(s) {', '.join(repr(k) for k in unknown)}; the body "
            f"takes 'records', or 'entities' with optional 'features'",
            code="invalid_body",
        )
    has_records, has_entities = "records" in body, "entities" in body
    if has_records == has_entities:
        what = "both" if has_records else "neither"
        raise unprocessable(
            f"the body has {what} 'records' and 'entities'; send exactly one of them", code="invalid_body"
        )
    if has_records:
        if "features" in body:
            raise unprocessable(
                "'features' applies only to 'entities'; put the values into each record", code="invalid_body"
            )
        records = _rows_list(body["records"], "records", max_rows)
        return PredictRequest(records=records)
    items = _rows_list(body["entities"], "entities", max_rows)
    shared = body.get("features", {})
    if not isinstance(shared, dict):
        raise unprocessable(
            f"'features' must be an object of feature values, got {describe(shared)}", code="invalid_body"
        )
    bad_shared = [k for k in shared if k in validator.entity]
    if bad_shared:
        raise unprocessable(
            f"'features' cannot set entity column(s) {', '.join(bad_shared)}; identify rows in 'entities'",
            code="invalid_body",
        )
    return PredictRequest(entities=_parse_entities(items, validator.entity, shared))


def _rows_list(value: Any, name: str, max_rows: int) -> list[Any]:
    if not isinstance(value, list):
        raise unprocessable(f"'{name}' must be an array, got {describe(value)}", code="invalid_body")
    if not value:
        raise unprocessable(f"'{name}' is empty; send at least one row", code="invalid_body")
    if len(value) > max_rows:
        raise too_many_rows(len(value), max_rows)
    return value


def _key_part(v: Any) -> str | None:
    if isinstance(v, str) and v:
        return v
    if type(v) is int:
        return str(v)
    return None


def _parse_entities(items: Sequence[Any], entity_cols: Sequence[str], shared: Mapping[str, Any]) -> EntityRows:
    if not entity_cols:
        raise unprocessable("this model's feature set has no entity columns; send 'records'", code="invalid_body")
    single = len(entity_cols) == 1
    keys: list[str] = []
    per_row: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    expected = (
        (
            f"the {entity_cols[0]} value (a non-empty string or an integer), or an object with "
            f"'{entity_cols[0]}' and optional feature values"
        )
        if single
        else (f"an object with {', '.join(repr(c) for c in entity_cols)} and optional feature values")
    )
    for i, item in enumerate(items):
        if isinstance(item, dict):
            parts = []
            for col in entity_cols:
                part = _key_part(item.get(col))
                if part is None:
                    got = describe(item[col]) if col in item else "nothing (the field is missing)"
                    problems.append(
                        {
                            "row": i,
                            "field": col,
                            "expected": "a non-empty string or an integer",
                            "got": got,
                            "message": f"row {i}, field '{col}': expected a non-empty "
                            f"string or an integer identifying the entity, got {got}",
                        }
                    )
                parts.append(part or "")
            keys.append(KEY_SEPARATOR.join(parts))
            per_row.append({k: v for k, v in item.items() if k not in entity_cols})
            continue
        part = _key_part(item) if single else None
        if part is None:
            got = describe(item)
            problems.append(
                {
                    "row": i,
                    "field": None,
                    "expected": expected,
                    "got": got,
                    "message": f"row {i}: expected {expected}, got {got}",
                }
            )
            part = ""
        keys.append(part)
        per_row.append({})
    if problems:
        raise unprocessable(
            f"{len(problems)} problem(s) in 'entities'; see 'details'", problems, code="invalid_entities"
        )
    return EntityRows(keys=keys, labels=list(items), shared=dict(shared), per_row=per_row)


def assemble_entity_rows(
    req: EntityRows, stored: Mapping[str, Mapping[str, Any] | None], validator: InputValidator
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Merge store values, shared ``features`` and per-row values; remember where each came from."""
    store_fields = [f.name for f in validator.fields if not f.request_time]
    rows: list[dict[str, Any]] = []
    origins: list[dict[str, str]] = []
    for key, own in zip(req.keys, req.per_row, strict=True):
        found = stored[key]
        assert found is not None  # the caller answers 404 for entities the store does not have
        row = {n: found[n] for n in store_fields if n in found}
        origin = dict.fromkeys(row, "online_store")
        for src, values in (("features", req.shared), ("entity", own)):
            if values:
                row.update(values)
                origin.update(dict.fromkeys(values, src))
        rows.append(row)
        origins.append(origin)
    return rows, origins
