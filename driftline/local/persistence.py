"""The local platform's state kept on disk: what is recorded, when it is durable, how ``up`` restores it.

Every request to the emulator that changes S3, DynamoDB or SQS (or writes S3 objects through Firehose)
runs under one lock with the observers of :mod:`driftline.local.moto_state`; if it succeeds, the new
state of what it touched is appended to the journal and fsynced *before* the response leaves. So an
acknowledged write is on disk, and the journal's order is the order the writes took effect in.

- **Data** (object versions with their ids, metadata, tags and bodies; table items; a queue's pending
  messages) is recorded as after-images and put back directly into moto's stores on ``up``: ids,
  ETags and times come back exactly and no notification fires again.
- **Resources** (CreateBucket, bucket configuration, CreateTable, UpdateTimeToLive, CreateQueue, ...) are
  recorded as the requests themselves and replayed into the emulator in order.
- **Step Functions** starts are recorded (arn, state machine, name, input); an execution that had not
  ended when the platform stopped is marked interrupted by the next ``up`` (executions themselves are not
  restored: moto's interpreter keeps them in threads) and stays listed (:meth:`Persistence.interrupted`,
  ``driftline local status``) until it is resumed or dismissed (:meth:`Persistence.resolve`,
  :mod:`driftline.local.resume`).

Restoring happens before provisioning, in a fresh emulator; any record that cannot be applied aborts
the start (the process exits, so nothing half-loaded is ever served). When the journal has grown, a
snapshot of the whole state replaces it (:meth:`Persistence.compact`).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape  # nosec B406 - escape() writes XML text; nothing is parsed here

import orjson

from driftline.local import moto_state as ms
from driftline.local.access import INTERNAL_ENVIRON, signed_service
from driftline.local.journal import Journal, JournalWriteError, Record, StateDirError, encode_record

__all__ = ["DATA_DIR", "RESOLUTIONS", "Persistence", "RestoreSummary", "UnknownExecutionError", "classify", "versions"]

DATA_DIR = "data"
DEFAULT_ACCOUNT = "123456789012"
COMPACT_JOURNAL_BYTES = 64 * 1024 * 1024
COMPACT_MIN_RECORDS = 2_000
_DDB_BATCH = 500
EXECUTION_INPUT_MAX = 256 * 1024
"""Step Functions' own input limit: a recorded input is never longer than the execution could take."""
RESOLUTIONS = ("resumed", "dismissed")
"""How an interrupted execution stops being listed: a new run asks again (resumed), or the user let it go."""


class UnknownExecutionError(KeyError):
    """No interrupted execution has that ARN (it never ran here, or was resumed or dismissed already)."""


_DDB_ITEM_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_DDB_READ = re.compile(r"^(Get|Describe|List|Query|Scan|BatchGet|TransactGet)")
_SQS_UNRECORDED = re.compile(r"^(ReceiveMessage|ChangeMessageVisibility|Get|List)")
_REGION = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/")
_SKIPPED_HEADERS = {
    "HTTP_AUTHORIZATION",
    INTERNAL_ENVIRON,
    "HTTP_USER_AGENT",
    "HTTP_X_AMZ_SECURITY_TOKEN",
    "HTTP_AMZ_SDK_INVOCATION_ID",
    "HTTP_AMZ_SDK_REQUEST",
    "HTTP_X_AMZ_DATE",
    "HTTP_CONNECTION",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_EXPECT",
}


def versions() -> dict[str, str]:
    """What the state depends on: Driftline's version and the emulator's (its records are moto's own)."""
    from importlib.metadata import PackageNotFoundError, version

    import moto

    try:
        driftline = version("driftline")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        driftline = "0+source"
    return {"driftline": driftline, "moto": str(moto.__version__)}


@dataclass
class Request:
    """The parts of a WSGI request persistence looks at."""

    service: str
    operation: str
    method: str
    path: str
    query: str
    region: str
    body: bytes
    headers: dict[str, str]


def _operation(environ: dict[str, Any], service: str, body: bytes) -> str:
    target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
    if target:
        return target.rsplit(".", 1)[-1]
    if service in ("sqs",):
        for source in (str(environ.get("QUERY_STRING") or ""), body.decode("utf-8", "replace")):
            action = parse_qs(source).get("Action")
            if action:
                return action[0]
    return ""


def classify(environ: dict[str, Any]) -> str | None:
    """The service whose state a request may change (``s3``, ``dynamodb``, ``sqs``, ``firehose``,
    ``states``), or None for reads and for services whose state is not kept."""
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return None
    auth = str(environ.get("HTTP_AUTHORIZATION") or "")
    service = signed_service(auth)
    if service is None:
        credential = parse_qs(str(environ.get("QUERY_STRING") or "")).get("X-Amz-Credential")
        if credential:
            service = signed_service(f"Credential={credential[0]}")
    if service == "s3":
        return "s3"
    target = str(environ.get("HTTP_X_AMZ_TARGET") or "").rsplit(".", 1)[-1]
    if service == "dynamodb":
        return None if _DDB_READ.match(target) else "dynamodb"
    if service == "sqs":
        return None if target and _SQS_UNRECORDED.match(target) else "sqs"
    if service == "firehose":
        return "firehose" if target in ("PutRecord", "PutRecordBatch") else None
    if service == "states":
        return "states" if target == "StartExecution" else None
    return None


@dataclass
class RestoreSummary:
    records: int = 0
    objects: int = 0
    items: int = 0
    queues: int = 0
    requests: int = 0
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"restored {self.objects} object key(s), {self.items} item(s), {self.queues} queue(s) and "
            f"{self.requests} resource request(s) from {self.records} record(s) in {self.seconds:.1f} s"
        )


class Persistence:
    """The state directory of one running platform: records writes, restores them, compacts."""

    def __init__(
        self,
        state_dir: Path,
        warn: Callable[[str], None] = print,
        compact_bytes: int = COMPACT_JOURNAL_BYTES,
    ) -> None:
        self.directory = state_dir / DATA_DIR
        self.warn = warn
        self.compact_bytes = compact_bytes
        self.journal = Journal(self.directory, versions(), warn=warn)
        self._mutex = threading.RLock()
        self._control: list[Record] = []
        self._executions: dict[str, dict[str, Any]] = {}
        self._journal_records = 0
        self._snapshot_records = 0
        self.summary = RestoreSummary()

    # ---- start and stop ----
    def open(self, fresh: bool = False) -> None:
        missing = ms.check_state_hooks()
        if missing:
            raise StateDirError(f"the installed moto lacks {', '.join(missing)}; persistence cannot run")
        self.journal.open(fresh=fresh)

    def restore(self, app: Callable[..., Iterable[bytes]]) -> RestoreSummary:
        """Put the recorded state into the (fresh) emulator behind ``app``, then start recording."""
        started = time.perf_counter()
        snapshot, journal = self.journal.load()
        self._snapshot_records, self._journal_records = len(snapshot), len(journal)
        summary = RestoreSummary(records=len(snapshot) + len(journal))
        for n, record in enumerate([*snapshot, *journal]):
            try:
                self._apply(app, record, summary)
            except (ms.MissingContainerError, KeyError, ValueError, TypeError) as e:
                where = "snapshot" if n < len(snapshot) else "journal"
                raise StateDirError(
                    f"the state in {self.directory} cannot be restored: {where} record {n} "
                    f"({record.meta.get('t')}) failed: {e!r}. Nothing was served; start empty with "
                    "`driftline local up --fresh` (keep a copy of the directory if the data matters)"
                ) from None
        summary.interrupted = [e for e in self._executions.values() if not e.get("ended") and not e.get("interrupted")]
        summary.seconds = time.perf_counter() - started
        ms.install_observers()
        self.journal.start_appending()
        now = time.time()
        for execution in summary.interrupted:  # warned about by this start; listed until resumed or dismissed
            execution["interrupted"] = now
            self.journal.sync(self.journal.append({"t": "sfn", "arn": execution["arn"], "interrupted": now}))
        if self.journal.journal_size() > self.compact_bytes or (
            self._journal_records > COMPACT_MIN_RECORDS and self._journal_records > self._snapshot_records
        ):
            self.compact()
        self.summary = summary
        return summary

    def close(self, compact: bool = True) -> None:
        """Stop recording; with ``compact``, fold a long journal into a snapshot so the next ``up`` is fast."""
        with self._mutex:
            if compact and self.journal.failed is None and self._journal_records > COMPACT_MIN_RECORDS:
                try:
                    self.compact()
                except OSError as e:  # the journal stays valid: the next up replays it
                    self.warn(f"warning: could not compact the local state ({e}); the journal is kept")
            self.journal.close()

    # ---- restoring ----
    def _apply(self, app: Callable[..., Iterable[bytes]], record: Record, summary: RestoreSummary) -> None:
        meta, kind = record.meta, record.meta.get("t")
        if kind == "s3k":
            ms.restore_s3_key(meta["a"], meta["b"], meta["k"], meta["v"], record.blob)
            summary.objects += 1
        elif kind == "ddb":
            ms.restore_ddb_item(meta["a"], meta["r"], meta["tb"], meta["k"], meta.get("i"))
            summary.items += 1
        elif kind == "ddbb":
            ms.restore_ddb_items(meta["a"], meta["r"], meta["tb"], orjson.loads(record.blob))
            summary.items += int(meta.get("n", 0))
        elif kind == "sqs":
            ms.restore_sqs_queue(meta["a"], meta["r"], meta["q"], meta.get("m"))
            summary.queues += 1
        elif kind == "req":
            status, body = _replay(app, meta, record.blob)
            if not 200 <= status < 300:
                raise ValueError(
                    f"{meta.get('svc')} {meta.get('op') or meta['m'] + ' ' + meta['p']} answered {status}: "
                    f"{body[:300].decode(errors='replace')}"
                )
            self._control.append(record)
            summary.requests += 1
        elif kind == "sfn":  # a start, then at most an interruption and an end, each adding its fields
            self._executions.setdefault(meta["arn"], {"arn": meta["arn"]}).update(
                {k: v for k, v in meta.items() if k != "t"}
            )
        else:
            raise ValueError(f"unknown record type {kind!r}")

    # ---- recording ----
    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """``app`` wrapped so its state-changing requests are recorded before they are answered."""

        def persisted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            service = classify(environ)
            if service is None:
                return app(environ, start_response)
            return self._recorded(app, service, environ, start_response)

        return persisted

    def _recorded(
        self, app: Callable[..., Iterable[bytes]], service: str, environ: dict[str, Any], start_response: Any
    ) -> Iterable[bytes]:
        if self.journal.failed is not None:
            return _error(start_response, "507 Insufficient Storage", self.journal.failed)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        req = Request(
            service=service,
            operation=_operation(environ, service, body),
            method=str(environ.get("REQUEST_METHOD", "")).upper(),
            path=str(environ.get("PATH_INFO", "")),
            query=str(environ.get("QUERY_STRING", "")),
            region=(m.group(1) if (m := _REGION.search(str(environ.get("HTTP_AUTHORIZATION") or ""))) else "us-east-1"),
            body=body,
            headers={
                k: str(v)
                for k, v in environ.items()
                if (k.startswith("HTTP_") or k == "CONTENT_TYPE") and k not in _SKIPPED_HEADERS
            },
        )
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        offset = 0
        with self._mutex:
            with ms.observing() as touched:
                chunks = list(app(environ, capture))
            status = str(captured.get("status", "500"))
            if status[:1] == "2":
                try:
                    for meta, blob in self._records(req, touched, b"".join(chunks)):
                        offset = self.journal.append(meta, blob)
                        self._journal_records += 1
                        if meta["t"] == "req":
                            self._control.append(Record(meta, blob))
                except JournalWriteError as e:
                    self.warn(f"error: {e}")
                    return _error(start_response, "507 Insufficient Storage", str(e))
        if offset:
            try:
                self.journal.sync(offset)
            except JournalWriteError as e:
                self.warn(f"error: {e}")
                return _error(start_response, "507 Insufficient Storage", str(e))
        start_response(captured["status"], captured["headers"])
        return chunks

    def _records(self, req: Request, touched: ms.Touched, response: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
        for account, bucket, key in sorted(touched.s3_keys):
            entries, bodies = ms.s3_key_state(account, bucket, key)
            yield {"t": "s3k", "a": account, "b": bucket, "k": key, "v": entries}, b"".join(bodies)
        for account, region, name in sorted(touched.queues):
            yield (
                {"t": "sqs", "a": account, "r": region, "q": name, "m": ms.sqs_queue_state(account, region, name)},
                b"",
            )
        if req.service == "dynamodb" and req.operation in _DDB_ITEM_WRITES:
            keys = _ddb_keys(req)
            if keys is not None:
                for table, key_or_item in keys:
                    item_key = ms.ddb_key(DEFAULT_ACCOUNT, req.region, table, key_or_item)
                    item = ms.ddb_item(DEFAULT_ACCOUNT, req.region, table, item_key)
                    yield (
                        {"t": "ddb", "a": DEFAULT_ACCOUNT, "r": req.region, "tb": table, "k": item_key, "i": item},
                        b"",
                    )
                return
        if req.service == "states":
            try:
                arn = str(json.loads(response)["executionArn"])
                machine = str(json.loads(req.body)["stateMachineArn"])
            except (ValueError, KeyError, TypeError):
                return
            record = {"arn": arn, "machine": machine, "name": arn.rsplit(":", 1)[-1], "started": time.time()}
            raw_input = _execution_input(req.body)
            if raw_input is not None:
                record["input"] = raw_input
            self._executions[arn] = record
            yield {"t": "sfn", **record}, b""
            return
        if req.service == "firehose" or touched.s3_keys or touched.queues:
            return
        if req.service == "s3" and ("uploadId" in req.query or "uploads" in req.query):
            return  # parts of an unfinished multipart upload: not kept (the completed object is)
        data = req.service == "dynamodb"  # an item write we could not attribute (PartiQL, ...): replayed as is
        yield (
            {
                "t": "req",
                "svc": req.service,
                "op": req.operation,
                "m": req.method,
                "p": req.path,
                "q": req.query,
                "r": req.region,
                "h": req.headers,
                **({"data": True} if data and req.operation.startswith(("Execute", "BatchExecute")) else {}),
            },
            req.body,
        )

    def settle_executions(self, status: Callable[[str], str | None]) -> None:
        """Record which of the started executions have ended (``status(arn)`` is their current status);
        the ones still running are reported as interrupted by the next ``up``."""
        for arn in self.running_executions():
            if status(arn) not in (None, "RUNNING", "PENDING_REDRIVE"):
                with self._mutex:
                    self._executions[arn]["ended"] = True
                    try:
                        self.journal.sync(self.journal.append({"t": "sfn", "arn": arn, "ended": True}))
                    except JournalWriteError as e:
                        self.warn(f"error: {e}")
                        return

    def running_executions(self) -> list[str]:
        return [a for a, e in self._executions.items() if not e.get("ended") and not e.get("interrupted")]

    def interrupted(self) -> list[dict[str, Any]]:
        """Executions that were running when the platform last stopped, oldest first, until each is resumed
        or dismissed: arn, machine, name, started, interrupted (epoch seconds) and input (JSON text)."""
        with self._mutex:
            found = [
                {"name": str(e["arn"]).rsplit(":", 1)[-1], **e}
                for e in self._executions.values()
                if e.get("interrupted") and not e.get("ended")
            ]
        return sorted(found, key=lambda e: float(e.get("started") or 0.0))

    def resolve(self, arn: str, resolution: str, detail: str = "") -> dict[str, Any]:
        """Stop listing the interrupted execution ``arn`` (durably): ``resumed`` (``detail``: the new run)
        or ``dismissed``. Raises :class:`UnknownExecutionError`, or ValueError for another resolution."""
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
        with self._mutex:
            entry = self._executions.get(arn)
            if entry is None or not entry.get("interrupted") or entry.get("ended"):
                listed = ", ".join(str(e["name"]) for e in self.interrupted()) or "none"
                raise UnknownExecutionError(f"no interrupted execution {arn!r} (interrupted executions: {listed})")
            meta = {"t": "sfn", "arn": arn, "ended": True, "resolution": resolution, "detail": detail[:2048]}
            self.journal.sync(self.journal.append(meta))
            self._journal_records += 1
            entry.update({k: v for k, v in meta.items() if k != "t"})
            return dict(entry)

    # ---- compaction ----
    def compact(self) -> None:
        """Replace the snapshot and journal with a snapshot of the current state (writers wait)."""
        with self._mutex:
            records = 0

            def encoded() -> Iterator[bytes]:
                nonlocal records
                for record in _dedupe(self._control):
                    records += 1
                    yield encode_record(record.meta, record.blob)
                for account, bucket, key in ms.iter_s3_keys():
                    entries, bodies = ms.s3_key_state(account, bucket, key)
                    if entries:
                        records += 1
                        yield encode_record(
                            {"t": "s3k", "a": account, "b": bucket, "k": key, "v": entries}, b"".join(bodies)
                        )
                batch: list[dict[str, Any]] = []
                where: tuple[str, str, str] | None = None
                for account, region, table, item in ms.iter_ddb_items():
                    if where != (account, region, table) or len(batch) >= _DDB_BATCH:
                        if batch and where is not None:
                            records += 1
                            yield _item_batch(where, batch)
                        batch, where = [], (account, region, table)
                    batch.append(item)
                if batch and where is not None:
                    records += 1
                    yield _item_batch(where, batch)
                for account, region, name in ms.iter_sqs_queues():
                    messages = ms.sqs_queue_state(account, region, name)
                    if messages:
                        records += 1
                        yield encode_record({"t": "sqs", "a": account, "r": region, "q": name, "m": messages})
                for e in self._executions.values():
                    if not e.get("ended"):
                        records += 1
                        yield encode_record({"t": "sfn", **e})

            self.journal.compact(encoded())
            self._control = list(_dedupe(self._control))
            self._executions = {a: e for a, e in self._executions.items() if not e.get("ended")}
            self._snapshot_records, self._journal_records = records, 0


def _execution_input(body: bytes) -> str | None:
    """The ``input`` of a StartExecution request body (JSON text), when it has one that fits."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    value = doc.get("input") if isinstance(doc, dict) else None
    return value if isinstance(value, str) and len(value) <= EXECUTION_INPUT_MAX else None


def _item_batch(where: tuple[str, str, str], items: list[dict[str, Any]]) -> bytes:
    account, region, table = where
    return encode_record(
        {"t": "ddbb", "a": account, "r": region, "tb": table, "n": len(items)},
        orjson.dumps(items),
    )


def _dedupe(control: list[Record]) -> Iterator[Record]:
    """Resource requests minus the ones a snapshot makes redundant: item writes replayed as requests
    (their items are in the snapshot) and a request repeated with nothing between it and its previous
    copy on the same resource (provisioning repeats its configuration on every ``up``)."""
    last: dict[str, tuple[Any, ...]] = {}
    for record in control:
        meta = record.meta
        if meta.get("data"):
            continue
        signature = (meta.get("m"), meta.get("p"), meta.get("q"), meta.get("op"), record.blob)
        resource = f"{meta.get('svc')} {meta.get('p')} {_resource_name(record)}"
        if last.get(resource) == signature:
            continue
        last[resource] = signature
        yield record


def _resource_name(record: Record) -> str:
    try:
        doc = json.loads(record.blob or b"{}")
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    return str(doc.get("TableName") or doc.get("QueueName") or doc.get("QueueUrl") or "")


def _ddb_keys(req: Request) -> list[tuple[str, dict[str, Any]]] | None:
    """(table, key or item) of every item a DynamoDB item write names; None when it cannot be read."""
    try:
        doc = json.loads(req.body)
        out: list[tuple[str, dict[str, Any]]] = []
        if req.operation == "PutItem":
            out.append((_table_name(doc["TableName"]), doc["Item"]))
        elif req.operation in ("UpdateItem", "DeleteItem"):
            out.append((_table_name(doc["TableName"]), doc["Key"]))
        elif req.operation == "BatchWriteItem":
            for table, writes in doc["RequestItems"].items():
                for w in writes:
                    out.append(
                        (
                            _table_name(table),
                            w["PutRequest"]["Item"] if "PutRequest" in w else w["DeleteRequest"]["Key"],
                        )
                    )
        elif req.operation == "TransactWriteItems":
            for t in doc["TransactItems"]:
                for kind, op in t.items():
                    if kind == "Put":
                        out.append((_table_name(op["TableName"]), op["Item"]))
                    elif kind in ("Update", "Delete"):
                        out.append((_table_name(op["TableName"]), op["Key"]))
        return out
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _table_name(name: str) -> str:
    return name.split(":table/", 1)[1].split("/", 1)[0] if name.startswith("arn:") else name


def _replay(app: Callable[..., Iterable[bytes]], meta: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    """Send a recorded resource request to the emulator in-process (no socket)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": meta["m"],
        "PATH_INFO": meta["p"],
        "QUERY_STRING": meta.get("q", ""),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "4566",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": (
            f"AWS4-HMAC-SHA256 Credential=replay/20260101/{meta.get('r', 'us-east-1')}/{meta['svc']}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }
    environ.update(meta.get("h") or {})
    environ.setdefault("HTTP_HOST", "localhost:4566")
    status: dict[str, str] = {}

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        status["s"] = s
        return lambda _data: None

    out = b"".join(app(environ, start_response))
    return int(status.get("s", "500").split()[0]), out


def _error(start_response: Any, status: str, message: str) -> list[bytes]:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>InsufficientStorage</Code>"
        f"<Message>{escape(message)}</Message></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]
