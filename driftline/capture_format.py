"""The capture record format, defined once: what the serving function writes, what every reader expands.

Version 3 (written since issue 19's capture target): version 2's record with the rows **by column**::

    {"v": 3, "request_id": "client-42", …the request's fields as in v2…,
     "cols": {"age": [41, 37, …], "region": ["north", null, …], …}, "outputs": [{…}, …]}

``cols`` holds one array per field of the rows, each with one value per row in row order (the ``i``-th
row is ``{name: cols[name][i]}``); everything else is as in v2. Why: a row's keys were ~60 % of a v2
line, and every stage after the request (encoding, the base64 of the ``PutRecordBatch`` body, its
SHA-256 for SigV4, the socket, Firehose's and Athena's bytes) is paid per byte (docs/performance.md).
The writer uses v3 when the rows share one set of fields (always, for the typed rows of a valid
request) and falls back to v2 otherwise (rows whose optional fields differ), so a row's absent field
never turns into a null. A v3 record is malformed when a column is not an array of exactly one value
per output (``len(outputs)`` is the row count), besides v2's rules.

Version 2: **one record per request and role**. A 100-row request answered by
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
``prediction`` instead of ``rows`` and ``outputs``. :func:`expand` turns a v2 or v3 record into exactly
those v1 row views, so readers (monitoring, canary evaluation, feedback binding) see one shape for all.

Standard library only: the serving function and the readers import it; the Glue tables over captures
(:mod:`driftline.capture_tables`) take their column names from :data:`REQUEST_FIELDS`,
:data:`ROW_FIELD`/:data:`COLUMNS_FIELD`/:data:`OUTPUT_FIELD`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from driftline.serving.labels import CAPTURE_CALLER

__all__ = [
    "COLUMNS_FIELD",
    "FORMAT_VERSION",
    "INDEX_FIELD",
    "OUTPUT_FIELD",
    "PARTS_FIELDS",
    "REQUEST_FIELDS",
    "ROWS_FORMAT_VERSION",
    "ROW_FIELD",
    "TEST_FIELD",
    "VERSION_FIELD",
    "captured_rows",
    "columnar",
    "dict_columns",
    "expand",
    "is_request_record",
    "is_test",
    "record_key",
    "request_record",
    "row_id",
    "split_record",
]

FORMAT_VERSION = 3
"""The columnar record (:data:`COLUMNS_FIELD`), written whenever the rows share one set of fields."""
ROWS_FORMAT_VERSION = 2
"""The row-layout record (:data:`ROW_FIELD`): written when the rows' fields differ; still read."""
VERSION_FIELD = "v"
ROW_FIELD = "rows"
COLUMNS_FIELD = "cols"
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
"""The per-request scalar fields of a v2/v3 record and their Glue types (``ts`` is ISO 8601 text)."""
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
    """One record in the row layout (v2; a dict the capture writer encodes, turning it into v3 with
    :func:`columnar` when it can). Built on the request path, so it only references the request's lists:
    ``rows`` are typed rows or dicts, ``ts`` a datetime or ISO text. ``index`` is omitted when the rows
    are the request's rows ``0..n-1``; ``test`` is written only when true, so ordinary records stay as
    they were."""
    rec: dict[str, Any] = {
        VERSION_FIELD: ROWS_FORMAT_VERSION,
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


def columnar(record: Mapping[str, Any], columns: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The v3 form of a row-layout record whose rows are ``columns`` (one sequence per field, one value
    per row, as :func:`dict_columns` or the serving writer builds them): the same fields, ``cols``
    instead of ``rows``."""
    out = {k: v for k, v in record.items() if k not in (ROW_FIELD, OUTPUT_FIELD, INDEX_FIELD)}
    out[VERSION_FIELD] = FORMAT_VERSION
    out[COLUMNS_FIELD] = columns
    out[OUTPUT_FIELD] = record[OUTPUT_FIELD]
    if INDEX_FIELD in record:
        out[INDEX_FIELD] = record[INDEX_FIELD]
    return out


def dict_columns(rows: Sequence[Any]) -> dict[str, list[Any]] | None:
    """The columns of rows that are dicts with one same set of keys (in the first row's key order), or
    None (no rows, a row that is not a dict, or rows whose keys differ: those stay in the row layout, so
    an absent field is never written as a null)."""
    if not rows or type(rows[0]) is not dict:
        return None
    keys = rows[0].keys()
    if not all(type(r) is dict and r.keys() == keys for r in rows):
        return None
    return {k: [r[k] for r in rows] for k in keys}


def is_request_record(record: Mapping[str, Any]) -> bool:
    """Whether a capture line is one record per request (v2 rows or v3 columns), not a v1 row."""
    v = record.get(VERSION_FIELD)
    return type(v) is int and v in (FORMAT_VERSION, ROWS_FORMAT_VERSION)


def is_test(record: Mapping[str, Any]) -> bool:
    """Whether a capture record (or a row view of one) is marked as test traffic (only a JSON ``true`` is)."""
    return record.get(TEST_FIELD) is True


def captured_rows(record: Any) -> int:
    """How many predicted rows one capture line holds (v2: its ``rows``; v3: its ``outputs``; v1: one)."""
    if isinstance(record, dict) and is_request_record(record):
        rows = record.get(OUTPUT_FIELD if record.get(VERSION_FIELD) == FORMAT_VERSION else ROW_FIELD)
        return len(rows) if isinstance(rows, list) else 0
    return 1


def record_key(record: Mapping[str, Any]) -> tuple[str, str, int]:
    """The identity of one v2/v3 record under at-least-once delivery: (request id, role, part)."""
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


def _column_rows(record: Mapping[str, Any], n: int) -> list[dict[str, Any]] | None:
    """The rows of a v3 record with ``n`` outputs, or None when ``cols`` is not an object of arrays of
    ``n`` values each."""
    cols = record.get(COLUMNS_FIELD)
    if not isinstance(cols, dict) or not all(isinstance(c, list) and len(c) == n for c in cols.values()):
        return None
    if not cols:
        return [{} for _ in range(n)]
    names = list(cols)
    return [dict(zip(names, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def expand(record: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The v1 row views of a v2 or v3 record (``request_id`` = the row's id, ``features``, ``prediction``
    and the request's fields), or None when the record is malformed (the reader counts it as a bad line).

    Malformed: no string ``request_id``, ``rows``/``outputs`` not lists of objects of equal length (v3:
    ``cols`` not an object of arrays with one value per output), an ``index`` that is not one
    non-negative integer per row, or inconsistent ``part``/``parts``."""
    rid, outputs = record.get("request_id"), record.get(OUTPUT_FIELD)
    if not isinstance(rid, str) or not isinstance(outputs, list):
        return None
    if record.get(VERSION_FIELD) == FORMAT_VERSION:
        rows: Any = _column_rows(record, len(outputs))
    else:
        rows = record.get(ROW_FIELD)
    if not isinstance(rows, list):
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
    """A v2 or v3 record too large for one Firehose record, as parts of at most ``limit`` bytes each.

    Each part carries the request's fields, ``part``/``parts`` and the ``index`` of its rows, so the
    parts are complete records on their own. Rows are halved until every part fits: a few extra
    encodings, paid only by requests larger than the limit, in the capture thread.

    Returns
    -------
    tuple[list[bytes], int]
        The encoded parts in row order, and the number of rows that could not be written because one
        row alone exceeds the limit (those rows are left out; the caller counts the record as failed).
    """
    outputs = record[OUTPUT_FIELD]
    positions = list(_positions(record, len(outputs)) or range(len(outputs)))
    skip = (ROW_FIELD, COLUMNS_FIELD, OUTPUT_FIELD, INDEX_FIELD, *PARTS_FIELDS)
    head = {k: v for k, v in record.items() if k not in skip}
    cols = record.get(COLUMNS_FIELD) if record.get(VERSION_FIELD) == FORMAT_VERSION else None

    def rows_of(a: int, b: int) -> tuple[str, Any]:
        if cols is not None:
            return COLUMNS_FIELD, {name: c[a:b] for name, c in cols.items()}
        return ROW_FIELD, record[ROW_FIELD][a:b]

    def part(a: int, b: int, k: int, n: int) -> bytes:
        field, rows = rows_of(a, b)
        return encode(
            {
                **head,
                "part": k,
                "parts": n,
                field: rows,
                OUTPUT_FIELD: outputs[a:b],
                INDEX_FIELD: positions[a:b],
            }
        )

    ranges: list[tuple[int, int]] = []
    lost = 0
    todo = [(0, len(outputs))]
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
