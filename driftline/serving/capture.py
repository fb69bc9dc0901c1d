"""Inference capture: every request's predictions (or a sticky sample of its rows) via Kinesis Data Firehose.

One capture record per request and role (:mod:`driftline.capture_format`): the request's rows as
received, its outputs, version, request id, time and latency. The rows are written by column (format
v3: one array per field instead of one object per row, :func:`row_columns`), which leaves out the keys
that were ~60 % of a row's bytes; rows whose fields differ keep the row layout (v2). Records go to the per-model
delivery stream ``CAPTURE_STREAM_PREFIX + model``, which writes them as JSON lines to
``captures/model=<model>/YYYY/MM/DD/HH/`` in the captures bucket (docs/architecture.md).

Two modes (``CAPTURE_MODE``):

- ``background`` (default): the request encodes its records (one JSON line per role, msgspec) and
  appends the lines to an in-memory buffer. A daemon thread calls ``PutRecordBatch`` when :data:`BATCH_ROWS` rows
  are waiting or the oldest has waited ``CAPTURE_LINGER_SECONDS`` (default 1 s), so a botocore call is
  paid once per batch, never on the request path. In Lambda the thread runs while the sandbox is
  thawed; records still buffered when it is frozen are sent right after the next thaw, and on SIGTERM
  (sent at shutdown when any extension is registered) everything buffered is flushed. What can be
  lost: the last linger window of an idle sandbox that is reclaimed without SIGTERM.
- ``sync``: each request sends its records before answering: nothing buffered, one round trip added.

The buffer is measured in rows (the work a record costs the thread grows with its rows), so a bound
means the same memory whatever the request sizes. It holds bytes, not the request's objects: keeping
a few dozen requests' rows and outputs alive (thousands of small Python objects) until the thread
encoded them slowed the request thread itself by more than the encoding costs, because every request
then allocated its objects in memory no longer in the CPU's caches (docs/performance.md). Encoded at
once, a request leaves one bytes object behind and the thread only packs, signs and sends.

Backpressure, not loss: when requests produce rows faster than the thread can send them (it shares
the GIL with them), the buffer reaches its bound and the request that finds it full sends a batch
itself before answering. Answers slow down; no record is dropped. Only while deliveries are failing (a
Firehose outage) are the oldest records beyond the bound dropped and counted, so that an outage never
stalls predictions.

A record whose JSON line exceeds Firehose's record limit (:data:`MAX_RECORD_BYTES`) is split into
parts with the same request id (:func:`driftline.capture_format.split_record`), never dropped; only a
single row larger than the limit cannot be written (its record is counted as failed).

A capture failure never fails a prediction: failed records are counted per (model, version) and
drained by the handler into the ``CaptureFailures`` metric, and logged. Delivery is at-least-once
(a retried batch can duplicate records); readers de-duplicate on (request_id, role, part).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import accumulate
from typing import Any, Protocol

import msgspec
from msgspec.structs import astuple

from driftline import aws
from driftline.capture_format import (
    OUTPUT_FIELD,
    ROW_FIELD,
    ROWS_FORMAT_VERSION,
    VERSION_FIELD,
    captured_rows,
    columnar,
    dict_columns,
    is_request_record,
    split_record,
)
from driftline.serving.typed_records import row_dict

log = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500
"""Firehose's limit of records per ``PutRecordBatch`` call (lines are packed into far fewer records)."""
MAX_BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024  # Firehose's 4 MiB per call, with headroom
MAX_RECORD_BYTES = 1000 * 1024
"""Firehose's limit of one record's data: a longer capture line is split (module doc)."""
SOLO_LINE_BYTES = 32 * 1024
"""A line at least this long is sent as its own Firehose record instead of being packed: joining lines
copies every byte (on this VM about as much CPU as the base64 of the same bytes), while a line alone
is billed at most 5 KB more than its size (its rounding to 5 KB: under 16 % at this size, ~4 % for a
100-row request)."""
DEFAULT_LINGER_S = 1.0
BATCH_ROWS = 4000
"""Waiting rows that wake the thread (its delivery size while it keeps up). A call costs a fixed
amount of CPU (botocore, signing, HTTP) plus a little per row (docs/performance.md), so bigger
batches are cheaper per row, but the request that overlaps a send waits longer. One record per
request made rows cheap to buffer and encode, so a batch holds more of them than the per-row format
allowed (about a megabyte of JSON)."""
MAX_DELIVERY_ROWS = 4 * BATCH_ROWS
"""Rows per delivery when the thread is behind (split into calls of at most 4 MiB by the sink)."""
DEFAULT_MAX_BUFFER = 40_000
"""The buffer's bound in rows: beyond it the submitting request delivers a batch itself (module doc)."""


class CaptureSink(Protocol):
    def send(self, model: str, lines: Sequence[bytes]) -> list[bool]:
        """Deliver JSON lines for ``model``; return per line whether it was accepted."""
        ...


class FirehoseSink:
    """``PutRecordBatch`` to ``<prefix><model>``: lines packed into records, records into calls.

    Firehose bills each record rounded up to 5 KB, so one ~0.7 KB capture line per record would be
    billed 7x its size. JSON lines are packed into records of up to ``pack_bytes`` (the S3 objects
    are byte-for-byte the same: Firehose concatenates record data), except lines of
    :data:`SOLO_LINE_BYTES` or more, which are records of their own; then into calls of at most 500
    records / 4 MiB. Rejected records are retried once.
    """

    def __init__(
        self, stream_prefix: str, client: Callable[[], Any] | None = None, pack_bytes: int = MAX_RECORD_BYTES
    ) -> None:
        self.stream_prefix = stream_prefix
        self._client = client or (lambda: aws.client("firehose"))
        self.pack_bytes = pack_bytes

    def _packs(self, lines: Sequence[bytes]) -> list[tuple[bytes, list[int]]]:
        """Consecutive lines joined into records of at most ``pack_bytes`` (a longer line alone, and a
        line of :data:`SOLO_LINE_BYTES` or more alone, uncopied), with the line numbers each holds."""
        sizes = list(map(len, lines))
        if not sizes or max(sizes) < SOLO_LINE_BYTES:
            return self._pack_run(lines, sizes, 0, len(lines))
        packs: list[tuple[bytes, list[int]]] = []
        start = 0
        for i, size in enumerate(sizes):
            if size >= SOLO_LINE_BYTES:
                packs += self._pack_run(lines, sizes, start, i)
                packs.append((lines[i], [i]))
                start = i + 1
        return packs + self._pack_run(lines, sizes, start, len(lines))

    def _pack_run(self, lines: Sequence[bytes], sizes: list[int], lo: int, hi: int) -> list[tuple[bytes, list[int]]]:
        """The packs of ``lines[lo:hi]``. Cut points come from a bisection of the running sizes: a
        4,000-line delivery costs a few joins, not a Python step per line."""
        ends = list(accumulate(sizes[lo:hi]))
        packs: list[tuple[bytes, list[int]]] = []
        start, base = 0, 0
        while start < len(ends):
            end = max(bisect_right(ends, base + self.pack_bytes, lo=start), start + 1)
            packs.append((b"".join(lines[lo + start : lo + end]), list(range(lo + start, lo + end))))
            base, start = ends[end - 1], end
        return packs

    def send(self, model: str, lines: Sequence[bytes]) -> list[bool]:
        ok = [False] * len(lines)
        stream = self.stream_prefix + model
        packs = self._packs(lines)
        for start, end in _chunks([data for data, _ in packs]):
            todo = list(range(start, end))
            for _attempt in range(2):
                resp = put_record_batch(self._client(), stream, [packs[j][0] for j in todo])
                failed = []
                for j, r in zip(todo, resp.get("RequestResponses", []), strict=False):
                    if r.get("ErrorCode"):
                        failed.append(j)
                    else:
                        for i in packs[j][1]:
                            ok[i] = True
                if not failed:
                    break
                todo = failed
        return ok


_PLACEHOLDER_STREAM = "driftline-capture-body-not-swapped"
"""The stream name the call is validated with. No such stream exists, so if the prebuilt body were ever
not swapped in, the call would fail (counted, logged) instead of writing empty records."""
_STAGED = threading.local()
_HOOK_ID = "driftline-capture-prebuilt-body"


def put_record_batch(client: Any, stream: str, datas: Sequence[bytes]) -> Any:
    """``PutRecordBatch`` with a body built from bytes.

    botocore would base64 each record into a str and then ``json.dumps`` the whole request, scanning
    the larger text for characters to escape while holding the GIL, at twice the cost of the base64
    itself (docs/performance.md). Base64 needs no escaping, so the same
    JSON is built from the bytes in one pass (:func:`batch_body`). botocore still validates, signs, retries and parses:
    the call is made with placeholder records (same count), and a ``before-call`` handler, botocore's
    documented point for changing a serialized request, swaps in the prebuilt body. Clients without
    botocore's event system (test fakes) get the plain call."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return client.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": d} for d in datas])
    events.register("before-call.firehose.PutRecordBatch", _swap_in_body, unique_id=_HOOK_ID)
    _STAGED.body = batch_body(stream, datas)
    try:
        return client.put_record_batch(DeliveryStreamName=_PLACEHOLDER_STREAM, Records=[{"Data": b""}] * len(datas))
    finally:
        _STAGED.body = None


class _Record(msgspec.Struct, gc=False):
    Data: bytes


class _Body(msgspec.Struct, gc=False):
    DeliveryStreamName: str
    Records: list[_Record]


_BODY_ENCODER = msgspec.json.Encoder()


def batch_body(stream: str, datas: Sequence[bytes]) -> bytes:
    """The JSON body of ``PutRecordBatch(DeliveryStreamName=stream, Records=[{"Data": d}, ...])``.

    msgspec writes ``bytes`` as standard base64 text straight into the body: one pass over the data,
    instead of a base64 copy of each record and a join of the copies."""
    return _BODY_ENCODER.encode(_Body(stream, [_Record(d) for d in datas]))


def _swap_in_body(params: dict[str, Any], **kwargs: Any) -> None:
    body = getattr(_STAGED, "body", None)
    if body is not None:
        params["body"] = body


def _chunks(records: Sequence[bytes]) -> list[tuple[int, int]]:
    """[start, end) ranges of records that fit one PutRecordBatch call (500 records, 4 MiB)."""
    out: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, rec in enumerate(records):
        if i > start and (i - start >= MAX_BATCH_RECORDS or size + len(rec) > MAX_BATCH_BYTES):
            out.append((start, i))
            start, size = i, 0
        size += len(rec)
    if start < len(records):
        out.append((start, len(records)))
    return out


_ENCODER = msgspec.json.Encoder(enc_hook=str)


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSON line, written in the capture thread.

    msgspec writes the typed rows of :mod:`~driftline.serving.typed_records` natively and standard JSON
    (a NaN becomes null), in less than half the time of orjson plus a struct-to-dict conversion
    (docs/performance.md). That matters even off the request path: in Lambda this thread only runs while a
    request is being handled, holding the GIL. The timestamp keeps its ``+00:00`` ISO form. What
    msgspec cannot encode (a lone surrogate in a string, an integer beyond 64 bits) goes through
    ``json`` with the same rules (ASCII escapes, a non-finite number written as null), so one odd
    record never fails its whole batch and every line stays standard JSON that Athena can read."""
    ts = record.get("ts")
    if type(ts) is datetime:
        record = {**record, "ts": _iso(ts)}
    try:
        return _ENCODER.encode(record) + b"\n"
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        plain = _finite(msgspec.to_builtins(record, enc_hook=_plain))
        return (json.dumps(plain, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (what msgspec writes for them)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is dict:
        return {k: _finite(v) for k, v in value.items()}
    if type(value) is list:
        return [_finite(v) for v in value]
    return value


def encode_lines(records: list[dict[str, Any]]) -> list[bytes]:
    """The JSON lines of a batch (each with its newline), as :func:`encode_record` writes them.

    One msgspec call for the whole batch, then one split: per record, no Python call, no dict copy
    and no bytes concatenation (those were most of the capture thread's non-network time).
    Timestamps are formatted once per request
    and stored in place (the records belong to the capture buffer). A batch msgspec cannot encode
    whole (a lone surrogate in some string) is encoded record by record, so one odd record never
    fails the others."""
    for r in records:
        ts = r.get("ts")
        if type(ts) is datetime:
            r["ts"] = _iso(ts)
    try:
        blob = _ENCODER.encode_lines(records)
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return [encode_record(r) for r in records]
    return blob.splitlines(keepends=True)  # JSON escapes CR and LF inside strings: one line per record


@lru_cache(maxsize=64)
def _iso(ts: datetime) -> str:
    """Records of one request share its timestamp: formatted once, not once per role."""
    return ts.isoformat()


def _plain(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return row_dict(value)
    return value.isoformat() if isinstance(value, datetime) else str(value)


def record_lines(record: dict[str, Any], line: bytes) -> tuple[list[bytes], int]:
    """The lines that carry one record: its own line, or the parts of a v2 record whose line exceeds
    :data:`MAX_RECORD_BYTES`; with the number of rows that could not be written (one row alone over the
    limit, or a record of another shape that cannot be split)."""
    if len(line) <= MAX_RECORD_BYTES:
        return [line], 0
    outputs = record.get(OUTPUT_FIELD)
    if not is_request_record(record) or not isinstance(outputs, list):
        rows = record.get(ROW_FIELD)
        return [], len(rows) if isinstance(rows, list) else 1
    return split_record(record, encode_record, MAX_RECORD_BYTES)


@lru_cache(maxsize=32)
def _struct_layout(row_type: type[msgspec.Struct]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """A typed row's JSON names (as the client sent them) and the positions of its optional fields
    (those with a default: the non-input fields, which may be unset)."""
    names = row_type.__struct_encode_fields__
    optional = len(row_type.__struct_defaults__)
    return names, tuple(range(len(names) - optional, len(names)))


def row_columns(rows: Sequence[Any]) -> Mapping[str, Sequence[Any]] | None:
    """The rows by column (``{name: values}``, one value per row), or None when they cannot be (no rows,
    rows of different shapes, a typed row with an optional field unset, dicts whose keys differ): such
    a record keeps the row layout, so an absent field is never written as a null.

    Typed rows (:mod:`driftline.serving.typed_records`) are turned into tuples by msgspec in C and
    transposed by ``zip``: a few microseconds for 100 rows of 21 fields, where reading 2,100 attributes
    one by one cost several times that, on the request path (docs/performance.md)."""
    if not rows:
        return None
    first = type(rows[0])
    if not issubclass(first, msgspec.Struct):
        return dict_columns(rows)
    if len(set(map(type, rows))) != 1:
        return None
    names, optional = _struct_layout(first)
    cols = list(zip(*map(astuple, rows), strict=True))
    if any(msgspec.UNSET in cols[j] for j in optional):
        return None
    return dict(zip(names, cols, strict=True))


@dataclass(frozen=True, slots=True)
class Captured:
    """One capture record as the buffer holds it: its JSON line and what delivery and failure counting
    need to know without decoding it."""

    model: str
    version: int
    request_id: str
    rows: int
    """The record's rows (a record without ``rows`` weighs one): the buffer's measure."""
    line: bytes
    """The JSON line, with its newline."""


def capture_entry(record: dict[str, Any]) -> Captured:
    """The record encoded (as :func:`encode_record` writes it), a row-layout record by column when its
    rows allow (:func:`row_columns`): raises KeyError/TypeError/ValueError for a record without a string
    ``model`` or an integer ``version`` (a programming error)."""
    model, version = record["model"], record["version"]
    if type(model) is not str or type(version) is not int:
        raise TypeError(f"a capture record needs a string model and an integer version, not {model!r}, {version!r}")
    rows = record.get(ROW_FIELD)
    if record.get(VERSION_FIELD) == ROWS_FORMAT_VERSION and isinstance(rows, list):
        cols = row_columns(rows)
        if cols is not None:
            record = columnar(record, cols)
    n = captured_rows(record) if is_request_record(record) else len(rows) if isinstance(rows, list) else 1
    return Captured(model, version, str(record.get("request_id")), n or 1, _line(record))


_SCRATCH = threading.local()
"""A per-thread encoding buffer: msgspec writes into it without regrowing for every record."""


def _line(record: dict[str, Any]) -> bytes:
    """:func:`encode_record`, encoded into the thread's reused buffer and copied out once (a fresh
    encoding grows its output several times over a 100-row record)."""
    ts = record.get("ts")
    if type(ts) is datetime:
        record["ts"] = _iso(ts)  # the record belongs to the writer now
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None:
        buf = _SCRATCH.buf = bytearray(64 * 1024)
    try:
        _ENCODER.encode_into(record, buf)
    except (TypeError, ValueError):  # what msgspec cannot encode: encode_record's fallback
        return encode_record(record)
    buf.append(10)  # the line's newline
    return bytes(buf)


def _rows(entries: Sequence[Captured]) -> int:
    return sum(e.rows for e in entries)


class CaptureWriter:
    """Buffers encoded capture records and delivers them (in the background or synchronously).

    The buffer holds one entry per request (its arrival time, its encoded records and their rows) and a
    count of the rows in it, so handing over a request's records is one encoding and one append."""

    def __init__(
        self,
        sink: CaptureSink,
        *,
        mode: str = "background",
        linger_s: float = DEFAULT_LINGER_S,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        if mode not in ("background", "sync"):
            raise ValueError(f"CAPTURE_MODE must be 'background' or 'sync', not {mode!r}")
        self.sink = sink
        self.mode = mode
        self.linger_s = linger_s
        self.max_buffer = max_buffer
        self._buf: deque[tuple[float, list[Captured], int]] = deque()
        self._size = 0
        """Rows in ``_buf`` (changed only under ``_lock``)."""
        self._in_flight = 0
        """Records taken from the buffer whose delivery has not finished (changed only under ``_lock``)."""
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[tuple[str, int], int] = {}
        self._healthy = True
        """False after a delivery in which nothing was accepted (switches the full-buffer policy)."""
        self.sent = 0
        """Capture records delivered (a split record counts once, when all its parts were accepted)."""

    # ------------------------------------------------------------------ request path
    def submit(self, records: list[dict[str, Any]]) -> None:
        """Hand over a request's records (never raises: capture must not fail a prediction). The list
        now belongs to the writer."""
        if not records:
            return
        entries = self._encode(records)
        if not entries:
            return
        if self.mode == "sync":
            with self._lock:
                self._in_flight += len(entries)
            self._deliver(entries)
            return
        now = time.monotonic()
        rows = _rows(entries)
        with self._lock:
            self._buf.append((now, entries, rows))
            self._size += rows
            size = self._size
        if self._thread is None:
            self._start()
        if size >= BATCH_ROWS:
            self._wake.set()
        if size >= self.max_buffer:
            self._relieve()

    def _encode(self, records: list[dict[str, Any]]) -> list[Captured]:
        """The records as buffer entries; a record that cannot be encoded is logged and counted, never raised."""
        out = []
        for r in records:
            try:
                out.append(capture_entry(r))
            except Exception as e:
                log.error("capture record of request %s cannot be encoded: %r", r.get("request_id"), e)
                self._count_failures([r])
        return out

    def _relieve(self) -> None:
        """The buffer is at its bound. While deliveries succeed, send the oldest batch from this
        (request) thread: backpressure, nothing lost. While they fail, drop and count the oldest records
        beyond the bound instead: an outage must not stall predictions."""
        if self._healthy:
            self._deliver(self._take(MAX_DELIVERY_ROWS))
            return
        dropped = self._take(self._size - self.max_buffer, deliver=False)
        if dropped:
            self._count_failures(dropped)
            log.error(
                "capture buffer full (%d rows) while deliveries fail; dropped %d oldest records",
                self.max_buffer,
                len(dropped),
            )

    @property
    def failures_pending(self) -> bool:
        """A lock-free peek, so the request path takes the lock only when there is something to drain."""
        return bool(self._failures)

    def drain_failures(self) -> dict[tuple[str, int], int]:
        """Failed records counted since the last call, per (model, version)."""
        with self._lock:
            out, self._failures = self._failures, {}
        return out

    # ------------------------------------------------------------------ delivery
    def _take(self, n: int, *, deliver: bool = True) -> list[Captured]:
        """The oldest buffered records holding at least ``n`` rows (fewer if fewer are buffered), removed
        from the buffer. A record is never cut; a request's records (one per role) may be separated.
        With ``deliver`` they count as in flight until :meth:`_deliver` has finished with them."""
        out: list[Captured] = []
        taken = 0
        with self._lock:
            buf = self._buf
            while buf and taken < n:
                t, recs, rows = buf[0]
                if taken + rows <= n or len(recs) == 1:
                    buf.popleft()
                    out.extend(recs)
                    taken += rows
                    continue
                k = part = 0
                while taken + part < n:
                    part += recs[k].rows
                    k += 1
                out.extend(recs[:k])
                buf[0] = (t, recs[k:], rows - part)
                taken += part
            self._size -= taken
            if deliver:
                self._in_flight += len(out)
        return out

    def flush(self, timeout_s: float = 30.0) -> None:
        """Deliver everything buffered now, in the calling thread, and wait (up to ``timeout_s``) for a
        delivery the background thread has in flight (tests, shutdown, benchmarks)."""
        while batch := self._take(MAX_DELIVERY_ROWS):
            self._deliver(batch)
        deadline = time.monotonic() + timeout_s
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.001)

    def pending(self) -> int:
        """Rows buffered."""
        return self._size

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="driftline-capture", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        """Never returns: an unexpected error is logged and the loop goes on (the request path does not
        check the thread's health, which would cost time on every request)."""
        while True:
            try:
                self._step()
            except Exception:
                log.exception("capture thread error; continuing")
                time.sleep(self.linger_s)

    def _oldest(self) -> float | None:
        with self._lock:
            return self._buf[0][0] if self._buf else None

    def _step(self) -> None:
        oldest = self._oldest()
        timeout = self.linger_s if oldest is None else max(0.0, oldest + self.linger_s - time.monotonic())
        self._wake.wait(timeout)
        self._wake.clear()
        oldest = self._oldest()
        if oldest is None or (self._size < BATCH_ROWS and time.monotonic() - oldest < self.linger_s):
            return
        self._deliver(self._take(MAX_DELIVERY_ROWS))

    def _deliver(self, records: list[Captured]) -> None:
        try:
            self._deliver_taken(records)
        finally:
            with self._lock:
                self._in_flight -= len(records)

    def _deliver_taken(self, records: list[Captured]) -> None:
        by_model: dict[str, list[Captured]] = {}
        for r in records:
            by_model.setdefault(r.model, []).append(r)
        with self._send_lock:
            for model, recs in by_model.items():
                try:
                    good, any_sent = self._send(model, recs)
                except Exception as e:  # network, throttling, missing stream: counted, never raised
                    log.error("capture of %d records for %s failed: %s", len(recs), model, e)
                    self._count_failures(recs)
                    self._healthy = False
                    continue
                failed = [r for r, ok in zip(recs, good, strict=True) if not ok]
                self.sent += len(recs) - len(failed)
                if any_sent is not None:  # unwritable rows say nothing about the stream's health
                    self._healthy = any_sent
                if failed:
                    log.error("capture: %d of %d records for %s were not delivered", len(failed), len(recs), model)
                    self._count_failures(failed)

    def _send(self, model: str, recs: list[Captured]) -> tuple[list[bool], bool | None]:
        """Send one model's records: per record whether all of it was delivered, and whether the stream
        accepted anything (None when nothing was sent)."""
        lines = [r.line for r in recs]
        if max(map(len, lines), default=0) <= MAX_RECORD_BYTES:  # the common case: one line per record
            ok = self.sink.send(model, lines) if lines else []
            return ok, (any(ok) if lines else None)
        good = [True] * len(recs)
        flat: list[bytes] = []
        owner: list[int] = []
        for i, (rec, line) in enumerate(zip(recs, lines, strict=True)):
            parts, lost = record_lines(_decoded(line), line) if len(line) > MAX_RECORD_BYTES else ([line], 0)
            if lost:
                good[i] = False
                log.error(
                    "capture: %d rows of request %s for %s exceed %d bytes alone and were not written",
                    lost,
                    rec.request_id,
                    model,
                    MAX_RECORD_BYTES,
                )
            flat += parts
            owner += [i] * len(parts)
        if not flat:
            return good, None
        ok = self.sink.send(model, flat)
        for i, accepted in zip(owner, ok, strict=True):
            good[i] = good[i] and accepted
        return good, any(ok)

    def _count_failures(self, records: Sequence[Captured | dict[str, Any]]) -> None:
        with self._lock:
            for r in records:
                if isinstance(r, Captured):
                    key = (r.model, r.version)
                else:
                    version = r.get("version")
                    key = (str(r.get("model")), version if type(version) is int else 0)
                self._failures[key] = self._failures.get(key, 0) + 1


def _decoded(line: bytes) -> dict[str, Any]:
    """A record back from its line, to split it (only records over :data:`MAX_RECORD_BYTES`)."""
    record: dict[str, Any] = msgspec.json.decode(line)
    return record
