"""The capture record format, defined once: what the serving function writes, what every reader expands.

Version 2 (written since issue 19): **one record per request and role**. A 100-row request answered by
the champion costs one record (one dict on the request path, one JSON line in the capture thread, one
Firehose record's share), not 100; a canary request costs one record per side; a shadowed request one
more for the shadow. A record::

    {"v": 2, "request_id": "client-42", "model": "credit-default", "version": 3, "role": "champion",
     "ts": "2026-11-26T01:02:03.123456+00:00", "latency_ms": 0.4, "caller": "arn:aws:sts::…",
     "rows": [{"age": 41, …}, …], "outputs": [{"label": 1, "probability": 0.83, …}, …],
     "index": [0, 2, 5], "part": 0, "parts": 2}

- ``request_id`` is the request's id; the id of its ``i``-th row is ``<request_id>:<i>`` (what the
  answer returns and what feedback labels name). ``rows`` are the rows as received (validated), and
  ``outputs`` the predictions in the same order.
- ``index`` gives each row's position in the request when the record does not hold rows ``0..n-1``
  (canary routing and capture sampling pick rows; a split record always carries it).
- ``part``/``parts``: a record whose JSON line exceeds Firehose's record limit is split into several
  records with the same ``request_id`` and role, each with its share of the rows (:func:`split_record`).
- ``caller`` is absent for unauthenticated calls, as in v1.
- ``test``: ``true`` on a request marked as test traffic (the ``X-Driftline-Test`` header,
  :data:`driftline.contracts.TEST_TRAFFIC_HEADER`), absent otherwise. Readers leave such records out of
  monitoring windows, canary evaluation and label joins (:func:`is_test`); the name is shared with the
  Glue table and the Athena queries over captures.

Version 1 (no ``v``): one record per predicted row, ``request_id`` the row id, ``features`` and
``prediction`` instead of ``rows`` and ``outputs``. :func:`expand` turns a v2 record into exactly those
v1 row views, so readers (monitoring, canary evaluation, feedback binding) see one shape for both.

Standard library only: the serving function and the readers import it; the Glue tables over captures
(:mod:`driftline.capture_tables`) take their column names from :data:`REQUEST_FIELDS` and
:data:`ROW_FIELD`/:data:`OUTPUT_FIELD`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from driftline.serving.labels import CAPTURE_CALLER

__all__ = [
    "FORMAT_VERSION",
    "INDEX_FIELD",
    "OUTPUT_FIELD",
    "PARTS_FIELDS",
    "REQUEST_FIELDS",
    "ROW_FIELD",
    "TEST_FIELD",
    "VERSION_FIELD",
    "captured_rows",
    "expand",
    "is_test",
    "is_v2",
    "record_key",
    "request_record",
    "row_id",
    "split_record",
]

FORMAT_VERSION = 2
VERSION_FIELD = "v"
ROW_FIELD = "rows"
OUTPUT_FIELD = "outputs"
INDEX_FIELD = "index"
PARTS_FIELDS = ("part", "parts")
TEST_FIELD = "test"
"""``true`` on a test-traffic record (absent otherwise): excluded by every reader of monitoring data."""
REQUEST_FIELDS: tuple[tuple[str, str], ...] = (
    (VERSION_FIELD, "int"),
    ("request_id", "string"),
    ("model", "string"),
    ("version", "bigint"),
    ("role", "string"),
    ("ts", "string"),
    ("latency_ms", "double"),
    (CAPTURE_CALLER, "string"),
)
"""The per-request scalar fields of a v2 record and their Glue types (``ts`` is ISO 8601 text)."""
_HEAD_FIELDS = tuple(name for name, _ in REQUEST_FIELDS if name != VERSION_FIELD)
_MAX_PART_DIGITS = 99_999
"""A stand-in ``part``/``parts`` value while sizing the parts of a split (never fewer digits than the real ones)."""


def row_id(request_id: str, position: int) -> str:
    """The id of one row of a request (``<request id>:<position>``), as answered and as labels name it."""
    return f"{request_id}:{position}"


def request_record(
    *,
    request_id: str,
    model: str,
    version: int,
    role: str,
    ts: Any,
    latency_ms: float,
    rows: Sequence[Any],
    outputs: Sequence[Any],
    index: Sequence[int] | None = None,
    caller: str | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """One v2 record (a dict the capture writer encodes). Built on the request path, so it only
    references the request's lists: ``rows`` are typed rows or dicts, ``ts`` a datetime or ISO text.
    ``index`` is omitted when the rows are the request's rows ``0..n-1``; ``test`` is written only when
    true, so ordinary records stay as they were."""
    rec: dict[str, Any] = {
        VERSION_FIELD: FORMAT_VERSION,
        "request_id": request_id,
        "model": model,
        "version": version,
        "role": role,
        "ts": ts,
        "latency_ms": latency_ms,
    }
    if caller:
        rec[CAPTURE_CALLER] = caller
    if test:
        rec[TEST_FIELD] = True
    rec[ROW_FIELD] = rows
    rec[OUTPUT_FIELD] = outputs
    if index is not None:
        rec[INDEX_FIELD] = index
    return rec


def is_v2(record: Mapping[str, Any]) -> bool:
    return record.get(VERSION_FIELD) == FORMAT_VERSION


def is_test(record: Mapping[str, Any]) -> bool:
    """Whether a capture record (or a row view of one) is marked as test traffic (only a JSON ``true`` is)."""
    return record.get(TEST_FIELD) is True


def captured_rows(record: Any) -> int:
    """How many predicted rows one capture line holds (v2: its ``rows``; v1: one)."""
    if isinstance(record, dict) and is_v2(record):
        rows = record.get(ROW_FIELD)
        return len(rows) if isinstance(rows, list) else 0
    return 1


def record_key(record: Mapping[str, Any]) -> tuple[str, str, int]:
    """The identity of one v2 record under at-least-once delivery: (request id, role, part)."""
    part = record.get("part")
    return str(record.get("request_id")), str(record.get("role", "champion")), part if type(part) is int else 0


def _positions(record: Mapping[str, Any], n: int) -> Sequence[int] | None:
    """The rows' positions in the request, or None when ``index`` is present but not ``n`` integers."""
    index = record.get(INDEX_FIELD)
    if index is None:
        return range(n)
    if not isinstance(index, list) or len(index) != n:
        return None
    if not all(type(i) is int and i >= 0 for i in index):
        return None
    return index


def _valid_parts(record: Mapping[str, Any]) -> bool:
    part, parts = record.get("part"), record.get("parts")
    if part is None and parts is None:
        return True
    return type(part) is int and type(parts) is int and 0 <= part < parts


def expand(record: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The v1 row views of a v2 record (``request_id`` = the row's id, ``features``, ``prediction`` and
    the request's fields), or None when the record is malformed (the reader counts it as a bad line).

    Malformed: no string ``request_id``, ``rows``/``outputs`` not lists of objects of equal length, an
    ``index`` that is not one non-negative integer per row, or inconsistent ``part``/``parts``."""
    rid, rows, outputs = record.get("request_id"), record.get(ROW_FIELD), record.get(OUTPUT_FIELD)
    if not isinstance(rid, str) or not isinstance(rows, list) or not isinstance(outputs, list):
        return None
    if len(rows) != len(outputs) or not _valid_parts(record):
        return None
    positions = _positions(record, len(rows))
    if positions is None:
        return None
    if not all(isinstance(r, dict) for r in rows) or not all(isinstance(o, dict) for o in outputs):
        return None
    head = {k: record[k] for k in _HEAD_FIELDS if k in record and k != "request_id"}
    if is_test(record):
        head[TEST_FIELD] = True
    return [
        {"request_id": row_id(rid, i), **head, "features": r, "prediction": o}
        for i, r, o in zip(positions, rows, outputs, strict=True)
    ]


def split_record(
    record: Mapping[str, Any], encode: Callable[[dict[str, Any]], bytes], limit: int
) -> tuple[list[bytes], int]:
    """A v2 record too large for one Firehose record, as parts of at most ``limit`` bytes each.

    Each part carries the request's fields, ``part``/``parts`` and the ``index`` of its rows, so the
    parts are complete records on their own. Rows are halved until every part fits: a few extra
    encodings, paid only by requests larger than the limit, in the capture thread.

    Returns
    -------
    tuple[list[bytes], int]
        The encoded parts in row order, and the number of rows that could not be written because one
        row alone exceeds the limit (those rows are left out; the caller counts the record as failed).
    """
    rows, outputs = record[ROW_FIELD], record[OUTPUT_FIELD]
    positions = list(_positions(record, len(rows)) or range(len(rows)))
    head = {k: v for k, v in record.items() if k not in (ROW_FIELD, OUTPUT_FIELD, INDEX_FIELD, *PARTS_FIELDS)}

    def part(a: int, b: int, k: int, n: int) -> bytes:
        return encode(
            {
                **head,
                "part": k,
                "parts": n,
                ROW_FIELD: rows[a:b],
                OUTPUT_FIELD: outputs[a:b],
                INDEX_FIELD: positions[a:b],
            }
        )

    ranges: list[tuple[int, int]] = []
    lost = 0
    todo = [(0, len(rows))]
    while todo:
        a, b = todo.pop()
        if len(part(a, b, _MAX_PART_DIGITS, _MAX_PART_DIGITS)) <= limit:
            ranges.append((a, b))
        elif b - a == 1:
            lost += 1
        else:
            mid = (a + b) // 2
            todo += [(mid, b), (a, mid)]  # popped left first: parts stay in row order
    return [part(a, b, k, len(ranges)) for k, (a, b) in enumerate(ranges)], lost
