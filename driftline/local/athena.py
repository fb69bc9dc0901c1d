"""The local Athena: queries run on DuckDB (in-process), tables come from the emulator's Glue catalog and
their data from the emulator's S3 through pyarrow's S3 filesystem.

One DuckDB connection per query, on a small worker pool (``max_concurrent``), each with ``threads``
DuckDB threads: a laptop or a 2-core CI machine stays responsive while a query runs. Every query runs
asynchronously, as Athena's do (QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED), so Step Functions
poll loops (Wait → GetQueryExecution → Choice) behave as on AWS.

Tables: each catalog table a query names is listed under its location (names starting with ``_`` or
``.`` skipped, as Hive does) and registered with DuckDB under a private name: Parquet as a pyarrow
dataset (DuckDB pushes column selection and filters into it, so partitions a predicate excludes are
not read), JSON lines parsed with the Glue column types. Partition values come from ``key=value`` path
segments or the table's ``storage.location.template``. The whole location is listed on every query
(partition projection is not used to narrow the listing): cheap at local sizes, and the data scanned
that GetQueryExecution reports is the size of the files listed, an upper bound of what Athena bills.

DuckDB runs with external access disabled and its configuration locked, so a hostile query cannot
read the machine's files, load extensions or change settings; only the registered tables exist.
``UNLOAD`` results are written by pyarrow to the target through the same S3 filesystem.
"""

from __future__ import annotations

import base64
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from sqlglot import exp

from driftline.athena_queries import string_literal
from driftline.athena_tables import PARQUET_SERDE
from driftline.local.athena_sql import (
    AthenaQueryError,
    Ctas,
    Keep,
    Statement,
    TableRef,
    Unload,
    arrow_type,
    athena_type,
    bind_parameters,
    csv_line,
    duckdb_type,
    glue_type,
    parse_statement,
    partition_filter,
    to_duckdb,
    varchar_value,
)

__all__ = [
    "MAX_RESULTS",
    "MAX_WRITE_PARTITIONS",
    "AthenaEngine",
    "Catalog",
    "EngineOptions",
    "GlueCatalog",
    "InMemoryCatalog",
    "QueryExecution",
    "ResultsError",
    "TableData",
    "s3_filesystem",
]

MAX_RESULTS = 1000
"""GetQueryResults' page size limit (Athena's)."""
MAX_WRITE_PARTITIONS = 100
"""Athena's limit of partitions one UNLOAD or CREATE TABLE AS may write."""
COPY_CHUNK_BYTES = 32 << 20
"""Read size when copying a JSON object out of S3: each read is one ranged GET, and the emulator loads the
whole object for every range it serves, so 1 MiB reads of a Firehose-sized (128 MB) object cost 128 full
loads; 32 MiB reads cost 4 while bounding the bytes in flight."""
DEFAULT_DATABASE = "default"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class Catalog(Protocol):
    """Where table definitions come from: the emulator's Glue (:class:`GlueCatalog`) or a dict (tests)."""

    def table(self, database: str, name: str) -> dict[str, Any] | None: ...

    def has_database(self, database: str) -> bool: ...

    def create_table(self, database: str, table_input: dict[str, Any]) -> bool:
        """Add a table (CREATE TABLE AS); False when one of that name exists."""
        ...


class GlueCatalog:
    """Glue ``GetTable``/``GetDatabase`` through an injected boto3 client (the emulator's)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def table(self, database: str, name: str) -> dict[str, Any] | None:
        try:
            out: dict[str, Any] = self.client.get_table(DatabaseName=database, Name=name)["Table"]
        except self.client.exceptions.EntityNotFoundException:
            return None
        return out

    def has_database(self, database: str) -> bool:
        try:
            self.client.get_database(Name=database)
        except self.client.exceptions.EntityNotFoundException:
            return False
        return True

    def create_table(self, database: str, table_input: dict[str, Any]) -> bool:
        try:
            self.client.create_table(DatabaseName=database, TableInput=table_input)
        except self.client.exceptions.AlreadyExistsException:
            return False
        return True


class InMemoryCatalog:
    """Glue ``TableInput`` dicts by database and name (unit tests, tools)."""

    def __init__(self, tables: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.tables = {db.lower(): {n.lower(): t for n, t in ts.items()} for db, ts in tables.items()}

    def table(self, database: str, name: str) -> dict[str, Any] | None:
        return self.tables.get(database.lower(), {}).get(name.lower())

    def has_database(self, database: str) -> bool:
        return database.lower() in self.tables

    def create_table(self, database: str, table_input: dict[str, Any]) -> bool:
        tables = self.tables.setdefault(database.lower(), {})
        if table_input["Name"].lower() in tables:
            return False
        tables[table_input["Name"].lower()] = table_input
        return True


def s3_filesystem(endpoint_url: str, access_key: str, secret_key: str, region: str) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem against an emulator endpoint (``http://127.0.0.1:5000``)."""
    scheme, _, host = endpoint_url.partition("://")
    return pafs.S3FileSystem(
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        endpoint_override=host.rstrip("/"),
        scheme=scheme or "http",
        allow_bucket_creation=False,
    )


@dataclass(frozen=True)
class EngineOptions:
    threads: int = 1
    """DuckDB threads per query."""
    max_concurrent: int = 2
    """Queries running at once; more wait QUEUED."""
    memory_limit: str = "1GB"
    """DuckDB's memory limit per query (spills or fails with EXCEEDED_LOCAL_MEMORY_LIMIT beyond it)."""
    results_kept: int = 100
    """SELECT results held in memory for GetQueryResults (the most recent ones); older ones stay in S3 only."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EngineOptions:
        """``DRIFTLINE_ATHENA_THREADS``, ``DRIFTLINE_ATHENA_CONCURRENCY``, ``DRIFTLINE_ATHENA_MEMORY`` (defaults
        fit a 2-core machine shared with the platform's functions)."""
        default = cls()
        try:
            threads = int(environ.get("DRIFTLINE_ATHENA_THREADS", default.threads))
            concurrent = int(environ.get("DRIFTLINE_ATHENA_CONCURRENCY", default.max_concurrent))
        except ValueError as e:
            raise ValueError(f"DRIFTLINE_ATHENA_THREADS / DRIFTLINE_ATHENA_CONCURRENCY: {e}") from None
        memory = environ.get("DRIFTLINE_ATHENA_MEMORY", default.memory_limit)
        if threads < 1 or concurrent < 1 or not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory):
            raise ValueError(
                "DRIFTLINE_ATHENA_THREADS and DRIFTLINE_ATHENA_CONCURRENCY must be >= 1 and "
                f"DRIFTLINE_ATHENA_MEMORY a size like 1GB (got {threads}, {concurrent}, {memory!r})"
            )
        return cls(threads=threads, max_concurrent=concurrent, memory_limit=memory)


@dataclass
class QueryExecution:
    id: str
    query: str
    database: str
    output_location: str | None
    """``s3://bucket/prefix/<id>.csv`` (Athena's naming), or None when neither client nor workgroup gave one."""
    workgroup: str = "primary"
    parameters: list[str] | None = None
    """``ExecutionParameters``: SQL literals for the query's ``?`` placeholders, in order."""
    state: str = "QUEUED"
    reason: str | None = None
    submitted: float = field(default_factory=time.time)
    completed: float | None = None
    scanned_bytes: int = 0
    engine_ms: int = 0
    columns: list[tuple[str, str]] = field(default_factory=list)
    """(name, Athena type) of a SELECT's result."""
    rows: list[list[str | None]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    """Objects an UNLOAD wrote."""
    copies: dict[str, str] = field(default_factory=dict)
    """Local copies of JSON objects the query reads → their ``s3://`` names."""
    update_count: int = 0
    """Rows an UNLOAD or CREATE TABLE AS wrote (GetQueryResults' ``UpdateCount``)."""
    released: bool = False
    """Its rows were dropped from memory (only the CSV in the output location remains)."""
    connection: Any = None
    done: threading.Event = field(default_factory=threading.Event)


class ResultsError(ValueError):
    """GetQueryResults refused (still running, failed, bad token, bad page size): Athena's
    InvalidRequestException message."""


@dataclass
class TableData:
    """A catalog table made ready for DuckDB."""

    source: Any
    """A pyarrow dataset or table (registered with DuckDB), or a DuckDB SELECT (made a view)."""
    scanned_bytes: int
    copies: dict[str, str] = field(default_factory=dict)
    """Local copy → ``s3://`` object (error messages name the object, not the copy)."""


def _split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise AthenaQueryError(f"HIVE_INVALID_METADATA: location {uri!r} is not an s3:// URI")
    return uri[5:].split("/", 1)[0], uri[5:].split("/", 1)[1] if "/" in uri[5:] else ""


def _listed(fs: pafs.FileSystem, location: str) -> list[pafs.FileInfo]:
    bucket, key = _split_uri(location)
    base = f"{bucket}/{key}".rstrip("/")
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as e:
        raise AthenaQueryError(f"HIVE_FILESYSTEM_ERROR: cannot list {location}: {e}") from None
    out = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base) :].lstrip("/")
        if any(part.startswith(("_", ".")) for part in rel.split("/")) or not info.size:
            continue
        out.append(info)
    return sorted(out, key=lambda i: i.path)


def _partition_matcher(table: dict[str, Any], keys: list[str]) -> Callable[[str], dict[str, str]]:
    """Partition values of a file (path relative to the location): the location template's ``${key}``
    slots if the table has one, else ``key=value`` path segments."""
    location = table["StorageDescriptor"]["Location"].rstrip("/") + "/"
    template = (table.get("Parameters") or {}).get("storage.location.template")
    if template and template.startswith(location):
        rel = template[len(location) :]
        names: dict[str, str] = {}
        pattern = ""
        for piece in re.split(r"(\$\{[^}]+\})", rel):
            m = re.fullmatch(r"\$\{([^}]+)\}", piece)
            if m:
                names[f"p{len(names)}"] = m.group(1)
                pattern += f"(?P<p{len(names) - 1}>.+?)"
            else:
                pattern += re.escape(piece)
        regex = re.compile(pattern + "/[^/]+$")

        def by_template(rel_path: str) -> dict[str, str]:
            m = regex.match(rel_path)
            return {names[g]: v for g, v in m.groupdict().items()} if m else {}

        return by_template

    def by_segments(rel_path: str) -> dict[str, str]:
        out = {}
        for seg in rel_path.split("/")[:-1]:
            k, sep, v = seg.partition("=")
            if sep and k in keys:
                out[k] = v
        return out

    return by_segments


def _cast_scalar(value: str | None, t: pa.DataType) -> pa.Scalar:
    if value is None:
        return pa.scalar(None, type=t)
    try:
        return pc.cast(pa.scalar(value), t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise AthenaQueryError(f"HIVE_INVALID_PARTITION_VALUE: partition value {value!r} is not a {t}") from None


def _string_partitions(table: dict[str, Any]) -> set[str]:
    """Partition columns compared as text (the only ones :func:`partition_filter` prunes on)."""
    return {
        str(k["Name"]).lower()
        for k in table.get("PartitionKeys") or []
        if str(k.get("Type", "")).lower().split("(")[0] in ("string", "varchar", "char")
    }


def _any_of(filters: list[Keep | None]) -> Keep | None:
    """A file is needed when any reference to the table needs it (None: one reads everything)."""
    if not filters or any(f is None for f in filters):
        return None
    tests = [f for f in filters if f is not None]
    return lambda values: any(test(values) for test in tests)


def _glue_schema(cols: list[dict[str, Any]]) -> pa.Schema:
    return pa.schema([pa.field(c["Name"].lower(), arrow_type(c["Type"])) for c in cols])


def load_table(fs: pafs.FileSystem, table: dict[str, Any], workdir: Path, keep: Keep | None = None) -> TableData:
    """The table's data, partition columns included: Parquet as a pyarrow dataset read from S3 as DuckDB
    scans it; JSON lines as a DuckDB SELECT over copies in ``workdir`` (DuckDB streams them)."""
    sd = table.get("StorageDescriptor") or {}
    location = sd.get("Location")
    if not location:
        raise AthenaQueryError(f"HIVE_INVALID_METADATA: table {table.get('Name')} has no location")
    columns = _glue_schema(sd.get("Columns") or [])
    partitions = _glue_schema(table.get("PartitionKeys") or [])
    serde = ((sd.get("SerdeInfo") or {}).get("SerializationLibrary") or "").lower()
    files = _listed(fs, location)
    base = "/".join(_split_uri(location)).rstrip("/") + "/"
    match = _partition_matcher(table, partitions.names)
    values = [match(f.path[len(base) :]) for f in files]
    if keep is not None:  # files whose partition values the query's WHERE excludes are not read
        kept = [(f, v) for f, v in zip(files, values, strict=True) if keep(dict(v))]
        files, values = [f for f, _ in kept], [v for _, v in kept]
    scanned = sum(f.size or 0 for f in files)
    if "parquet" in serde:
        return TableData(_parquet(fs, files, values, columns, partitions), scanned)
    if "json" in serde:
        lenient = ((sd.get("SerdeInfo") or {}).get("Parameters") or {}).get("ignore.malformed.json") == "true"
        copies: dict[str, str] = {}
        view = _json_lines(fs, files, values, columns, partitions, lenient, workdir, copies)
        return TableData(view, scanned, copies)
    raise AthenaQueryError(f"NOT_SUPPORTED: SerDe {serde or '(none)'} of table {table.get('Name')} (Parquet and JSON)")


def _parquet(
    fs: pafs.FileSystem,
    files: list[pafs.FileInfo],
    values: list[dict[str, str]],
    columns: pa.Schema,
    partitions: pa.Schema,
) -> Any:
    fmt = ds.ParquetFileFormat()
    fields = list(columns)
    if files:
        try:
            physical = fmt.inspect(files[0].path, filesystem=fs)
        except (OSError, pa.ArrowInvalid) as e:
            raise AthenaQueryError(f"HIVE_CURSOR_ERROR: {files[0].path}: {e}") from None
        by_name = {f.name.lower(): f for f in physical}
        fields = [by_name[f.name].with_name(f.name) if f.name in by_name else f for f in columns]
    schema = pa.schema([*fields, *partitions])
    if not files:
        return schema.empty_table()
    exprs = []
    for vals in values:
        cond: ds.Expression = ds.scalar(True)
        for p in partitions:
            v = _cast_scalar(vals.get(p.name), p.type)
            cond = cond & (ds.field(p.name).is_null() if not v.is_valid else ds.field(p.name) == v)
        exprs.append(cond)
    return ds.FileSystemDataset.from_paths(
        [f.path for f in files], schema=schema, format=fmt, filesystem=fs, partitions=exprs
    )


def _json_lines(
    fs: pafs.FileSystem,
    files: list[pafs.FileInfo],
    values: list[dict[str, str]],
    columns: pa.Schema,
    partitions: pa.Schema,
    lenient: bool,
    workdir: Path,
    copies: dict[str, str],
) -> Any:
    """JSON lines read by DuckDB's JSON reader with the Glue column types (pyarrow's cannot build maps),
    streamed from local copies of the objects: memory stays bounded whatever the table's size.

    With ``ignore.malformed.json`` a line that is not a JSON object (or a value of the wrong type) reads
    as NULLs, as the SerDe does; without it such a line fails the query."""
    if not files:
        return pa.schema([*columns, *partitions]).empty_table()
    paths = []
    for info in files:
        local = workdir / f"{uuid.uuid4().hex}.jsonl"
        try:
            with fs.open_input_stream(info.path, compression="detect") as src, local.open("wb") as dst:
                while chunk := src.read(COPY_CHUNK_BYTES):
                    dst.write(chunk)
        except OSError as e:
            raise AthenaQueryError(f"HIVE_CURSOR_ERROR: cannot read s3://{info.path}: {e}") from None
        paths.append(str(local))
        copies[str(local)] = f"s3://{info.path}"
    spec = ", ".join(f"{string_literal(f.name)}: {string_literal(duckdb_type(f.type))}" for f in columns)
    reader = (
        f"read_json([{', '.join(string_literal(p) for p in paths)}], format = 'newline_delimited', "
        f"records = 'true', columns = {{{spec}}}, ignore_errors = {str(lenient).lower()}, "
        "filename = '__driftline_file')"
    )
    picked = ", ".join(f"j.{_quoted(f.name)}" for f in columns)
    if not len(partitions):
        return f"SELECT {picked} FROM {reader} AS j"  # noqa: S608  # nosec B608 - names quoted, paths this module wrote

    # Each file's partition values by a CASE on its name, not a join with a VALUES list: DuckDB built that
    # join's hash table on the JSON side (it cannot estimate the reader's rows), holding every record of the
    # table in memory (a 2M-row captures window failed at 512 MB; with the CASE it streams).
    def by_file(k: pa.Field) -> str:
        arms = " ".join(
            f"WHEN {string_literal(p)} THEN {_sql_value(vals.get(k.name))}"
            for p, vals in zip(paths, values, strict=True)
        )
        return f"CAST(CASE j.__driftline_file {arms} END AS {duckdb_type(k.type)}) AS {_quoted(k.name)}"

    parts = ", ".join(by_file(k) for k in partitions)
    return f"SELECT {picked}, {parts} FROM {reader} AS j"  # noqa: S608  # nosec B608 - names quoted, values literals


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_value(value: str | None) -> str:
    return "NULL" if value is None else string_literal(value)


_DUCK_ERRORS: tuple[tuple[str, str], ...] = (
    ("ParserException", "SYNTAX_ERROR"),
    ("BinderException", "SYNTAX_ERROR"),
    ("CatalogException", "FUNCTION_NOT_FOUND"),
    ("ConversionException", "INVALID_CAST_ARGUMENT"),
    ("OutOfRangeException", "NUMERIC_VALUE_OUT_OF_RANGE"),
    ("OutOfMemoryException", "EXCEEDED_LOCAL_MEMORY_LIMIT"),
    ("PermissionException", "PERMISSION_DENIED"),
    ("InvalidInputException", "INVALID_FUNCTION_ARGUMENT"),
)


def duckdb_reason(e: Exception) -> str:
    """Athena's ``ERROR_NAME: line 1:1: message`` for an error DuckDB raised."""
    message = str(e).split("\n")[0]
    m = re.search(r'Referenced column "([^"]+)" not found', message)
    if m:
        return f"COLUMN_NOT_FOUND: line 1:1: Column '{m.group(1)}' cannot be resolved"
    if "Malformed JSON" in message or "JSON transform error" in message:
        return f"HIVE_BAD_DATA: Error parsing field value: {message[:1000]}"
    if "No function matches" in message:
        return f"FUNCTION_NOT_FOUND: line 1:1: {message[:1000]}"
    if "Division by zero" in message:
        return "DIVISION_BY_ZERO: line 1:1: Division by zero"
    m = re.search(r"Scalar Function with name (\S+) does not exist", message)
    if m:
        return f"FUNCTION_NOT_FOUND: line 1:1: Function '{m.group(1)}' not registered"
    name = type(e).__name__
    for kind, athena in _DUCK_ERRORS:
        if name == kind:
            return f"{athena}: line 1:1: {message[:1000]}"
    return f"GENERIC_INTERNAL_ERROR: {message[:1000]}"


class AthenaEngine:
    """Runs Athena queries on DuckDB; holds every execution's state and SELECT results in memory."""

    def __init__(
        self,
        catalog: Catalog,
        filesystem: pafs.FileSystem,
        options: EngineOptions | None = None,
    ) -> None:
        self.catalog = catalog
        self.fs = filesystem
        self.options = options or EngineOptions()
        self._pool = ThreadPoolExecutor(max_workers=self.options.max_concurrent, thread_name_prefix="driftline-athena")
        self._executions: dict[str, QueryExecution] = {}
        self._held: list[QueryExecution] = []
        self._lock = threading.Lock()

    # ---- API ----
    def start(
        self,
        query: str,
        *,
        database: str | None = None,
        output_location: str | None = None,
        workgroup: str = "primary",
        query_id: str | None = None,
        parameters: list[str] | None = None,
    ) -> str:
        """Queue a query; ``output_location`` is the results prefix (``<id>.csv`` is added unless given)."""
        qid = query_id or str(uuid.uuid4())
        if output_location and not output_location.endswith(".csv"):
            output_location = output_location.rstrip("/") + f"/{qid}.csv"
        ex = QueryExecution(
            qid,
            query if isinstance(query, str) else "",
            database or DEFAULT_DATABASE,
            output_location,
            workgroup,
            parameters=list(parameters) if parameters else None,
        )
        with self._lock:
            self._executions[qid] = ex
        self._pool.submit(self._run, ex)
        return qid

    def execution(self, query_id: str) -> QueryExecution | None:
        with self._lock:
            return self._executions.get(query_id)

    def wait(self, query_id: str, timeout_s: float = 60.0) -> QueryExecution:
        ex = self.execution(query_id)
        if ex is None:
            raise KeyError(query_id)
        ex.done.wait(timeout_s)
        return ex

    def stop(self, query_id: str) -> None:
        ex = self.execution(query_id)
        if ex is None:
            return
        with self._lock:
            if ex.state in TERMINAL:
                return
            ex.state = "CANCELLED"
            ex.reason = "Query cancelled by user"
            ex.completed = time.time()
            con = ex.connection
        if con is not None:
            con.interrupt()
        ex.done.set()

    def results(self, query_id: str, next_token: str | None = None, max_results: int | None = None) -> dict[str, Any]:
        """A GetQueryResults page: ``ResultSet`` (column names as the first row of the first page),
        ``NextToken`` while rows remain."""
        ex = self.execution(query_id)
        if ex is None:
            raise ResultsError(f"QueryExecution {query_id} was not found")
        if ex.state != "SUCCEEDED":
            if ex.state in ("QUEUED", "RUNNING"):
                raise ResultsError(f"Query has not yet finished. Current state: {ex.state}")
            raise ResultsError(f"Query did not finish successfully. Final query state: {ex.state}")
        if ex.released:
            raise ResultsError(
                f"The local Athena keeps the results of its {self.options.results_kept} most recent queries; "
                f"read this one's at {ex.output_location}"
            )
        size = MAX_RESULTS if max_results is None else max_results
        if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS:
            raise ResultsError(f"MaxResults must be between 1 and {MAX_RESULTS}")
        start = self._token_offset(query_id, next_token)
        header: list[str | None] = [name for name, _ in ex.columns]
        table = [header, *ex.rows] if ex.columns else []
        page = table[start : start + size]
        out: dict[str, Any] = {
            "UpdateCount": ex.update_count,
            "ResultSet": {
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in page],
                "ResultSetMetadata": {
                    "ColumnInfo": [
                        {
                            "CatalogName": "hive",
                            "SchemaName": "",
                            "TableName": "",
                            "Name": name,
                            "Label": name,
                            "Type": typ,
                            "Precision": 0,
                            "Scale": 0,
                            "Nullable": "UNKNOWN",
                            "CaseSensitive": typ == "varchar",
                        }
                        for name, typ in ex.columns
                    ]
                },
            },
        }
        if start + size < len(table):
            out["NextToken"] = base64.urlsafe_b64encode(f"{query_id}:{start + size}".encode()).decode()
        return out

    @staticmethod
    def _token_offset(query_id: str, token: str | None) -> int:
        if not token:
            return 0
        try:
            qid, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition(":")
            if qid == query_id and int(offset) >= 0:
                return int(offset)
        except (ValueError, UnicodeError):
            pass
        raise ResultsError("The NextToken is not valid for this query")

    def shutdown(self) -> None:
        for ex in list(self._executions.values()):
            self.stop(ex.id)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- execution ----
    def _run(self, ex: QueryExecution) -> None:
        with self._lock:
            if ex.state != "QUEUED":
                return
            ex.state = "RUNNING"
        t0 = time.monotonic()
        try:
            self._execute(ex)
            outcome, reason = "SUCCEEDED", None
        except AthenaQueryError as e:
            outcome, reason = "FAILED", e.reason
        except duckdb.InterruptException:
            outcome, reason = "CANCELLED", "Query cancelled by user"
        except duckdb.Error as e:
            outcome, reason = "FAILED", duckdb_reason(e)
            for local, remote in ex.copies.items():
                reason = reason.replace(local, remote)
        except (pa.ArrowException, OSError) as e:
            outcome, reason = "FAILED", f"HIVE_CURSOR_ERROR: {str(e)[:1000]}"
        except Exception as e:  # a hostile query must end FAILED, never take the emulator down
            outcome, reason = "FAILED", f"GENERIC_INTERNAL_ERROR: {type(e).__name__}: {str(e)[:1000]}"
        with self._lock:
            ex.engine_ms = int((time.monotonic() - t0) * 1000)
            if ex.state == "RUNNING":
                ex.state, ex.reason = outcome, reason
                ex.completed = time.time()
            ex.connection = None
            if ex.rows:
                self._held.append(ex)
                while len(self._held) > max(1, self.options.results_kept):
                    old = self._held.pop(0)
                    old.rows, old.released = [], True
        ex.done.set()

    def _connect(self, workdir: Path) -> duckdb.DuckDBPyConnection:
        """A sandboxed connection: files only under ``workdir`` (the query's copies of JSON objects), no
        extensions, configuration locked before any query text runs."""
        con = duckdb.connect(
            config={
                "threads": max(1, self.options.threads),
                "memory_limit": self.options.memory_limit,
                "temp_directory": str(workdir / "spill"),  # beyond memory_limit, spill inside the sandbox
                "integer_division": True,  # Trino's: 7 / 2 = 3 on integers (DuckDB's default gives 3.5)
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
        )
        con.execute(f"SET allowed_directories = [{string_literal(str(workdir) + '/')}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def _register_tables(
        self, con: duckdb.DuckDBPyConnection, ex: QueryExecution, stmt: Statement, workdir: Path
    ) -> Callable[[exp.Table], str | None]:
        """Register every catalog table the statement reads (only the partitions its WHERE clauses can
        need, :func:`partition_filter`); returns the renaming of table references."""
        ctes = {c.alias_or_name.lower() for c in stmt.tree.find_all(exp.CTE)}

        def key_of(t: exp.Table) -> tuple[str, str] | None:
            if not isinstance(t.this, exp.Identifier) or (not t.db and t.name.lower() in ctes):
                return None
            return ((t.db or ex.database).lower(), t.name.lower())

        tables: dict[tuple[str, str], dict[str, Any]] = {}
        for ref in stmt.tables:  # in query order: the first unknown table is the one reported
            key = ((ref.database or ex.database).lower(), ref.name.lower())
            if key not in tables:
                tables[key] = self._table(ex, ref, key)
        filters: dict[tuple[str, str], list[Keep | None]] = {}
        for node in stmt.tree.find_all(exp.Table):
            node_key = key_of(node)
            if node_key is not None and node_key in tables:
                keys = _string_partitions(tables[node_key])
                filters.setdefault(node_key, []).append(partition_filter(node, keys))
        names: dict[tuple[str, str], str] = {}
        for key, table in tables.items():
            data = load_table(self.fs, table, workdir, _any_of(filters.get(key, [None])))
            names[key] = f"__driftline_t{len(names)}"
            ex.scanned_bytes += data.scanned_bytes
            ex.copies.update(data.copies)
            if isinstance(data.source, str):
                con.execute(f"CREATE TEMP VIEW {_quoted(names[key])} AS {data.source}")
            else:
                con.register(names[key], data.source)

        def rename(t: exp.Table) -> str | None:
            key = key_of(t)
            return names.get(key) if key else None

        return rename

    def _table(self, ex: QueryExecution, ref: TableRef, key: tuple[str, str]) -> dict[str, Any]:
        database, name = key
        table = self.catalog.table(database, name)
        if table is None:
            where = _line_col(ex.query, ref.offset)
            if not self.catalog.has_database(database):
                raise AthenaQueryError(f"SCHEMA_NOT_FOUND: {where}: Schema '{database}' does not exist")
            raise AthenaQueryError(f"TABLE_NOT_FOUND: {where}: Table 'awsdatacatalog.{database}.{name}' does not exist")
        return table

    def _execute(self, ex: QueryExecution) -> None:
        stmt = parse_statement(ex.query)
        stmt.tree = bind_parameters(stmt.tree, ex.parameters)
        with tempfile.TemporaryDirectory(prefix="driftline-athena-") as tmp:
            con = self._connect(Path(tmp))
            try:
                with self._lock:
                    if ex.state != "RUNNING":
                        return
                    ex.connection = con
                sql = to_duckdb(stmt.tree, self._register_tables(con, ex, stmt, Path(tmp)))
                self._run_statement(con, ex, stmt, sql)
            finally:
                con.close()

    def _run_statement(self, con: duckdb.DuckDBPyConnection, ex: QueryExecution, stmt: Statement, sql: str) -> None:
        if stmt.unload is not None:
            self._unload(con, ex, stmt.unload, sql)
        elif stmt.ctas is not None:
            self._ctas(con, ex, stmt.ctas, sql)
        else:
            self._select(con, ex, sql)

    def _select(self, con: duckdb.DuckDBPyConnection, ex: QueryExecution, sql: str) -> None:
        result: pa.Table = _relation(con.sql(sql)).to_arrow_table()
        ex.columns = [(f.name, athena_type(f.type)) for f in result.schema]
        ex.rows = [[varchar_value(v) for v in row.values()] for row in result.to_pylist()]
        self._write_output(ex, [name for name, _ in ex.columns], ex.rows)

    def _write_output(self, ex: QueryExecution, header: list[str], rows: list[list[str | None]]) -> None:
        if not ex.output_location:
            return
        bucket, key = _split_uri(ex.output_location)
        try:
            with _open_output(self.fs, f"{bucket}/{key}") as out:
                out.write(csv_line(list(header)).encode())
                for row in rows:
                    out.write(csv_line(row).encode())
        except OSError as e:
            raise AthenaQueryError(
                f"HIVE_FILESYSTEM_ERROR: cannot write the results to {ex.output_location}: {e}"
            ) from None

    def _write_parquet(
        self,
        con: duckdb.DuckDBPyConnection,
        ex: QueryExecution,
        sql: str,
        target: str,
        compression: str,
        partitioned_by: tuple[str, ...],
        table: str,
    ) -> pa.Schema:
        """Run ``sql`` and write its rows as Hive-partitioned Parquet under ``target`` the way Athena names
        them (``<column>=<value>/<query id>_<n>``); returns the result's schema."""
        bucket, prefix = _split_uri(target)
        base = f"{bucket}/{prefix}".rstrip("/")
        if _listed(self.fs, target):
            raise AthenaQueryError(
                f"HIVE_PATH_ALREADY_EXISTS: Target directory for table '{table}' already exists: "
                f"{target}. This query may have failed because the target location is not empty."
            )
        reader: pa.RecordBatchReader = _relation(con.sql(sql)).to_arrow_reader(batch_size=65_536)
        missing = [c for c in partitioned_by if c not in reader.schema.names]
        if missing:
            raise AthenaQueryError(f"COLUMN_NOT_FOUND: line 1:1: partition column '{missing[0]}' is not in the query")
        partitioning = (
            ds.partitioning(pa.schema([reader.schema.field(c) for c in partitioned_by]), flavor="hive")
            if partitioned_by
            else None
        )
        fmt = ds.ParquetFileFormat()
        written: list[str] = []
        rows = [0]

        def visited(f: Any) -> None:
            written.append(f"s3://{f.path}")
            rows[0] += f.metadata.num_rows if f.metadata is not None else 0

        ds.write_dataset(
            reader,
            base,
            format=fmt,
            file_options=fmt.make_write_options(compression=compression),
            filesystem=self.fs,
            partitioning=partitioning,
            basename_template=f"{ex.id}_{{i}}",
            existing_data_behavior="overwrite_or_ignore",
            create_dir=self.fs.type_name != "s3",  # S3 has no folders: no empty marker objects
            max_rows_per_group=131_072,  # each open partition buffers at most one row group
            file_visitor=visited,
        )
        ex.written = sorted(written)
        ex.update_count = rows[0]
        partitions = {w.rsplit("/", 1)[0] for w in written}
        if len(partitions) > MAX_WRITE_PARTITIONS:  # checked after writing: Athena leaves the files too
            raise AthenaQueryError(
                f"HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of {MAX_WRITE_PARTITIONS} open writers for "
                f"partitions/buckets ({len(partitions)} partitions under {target})"
            )
        ex.columns = []
        if ex.output_location:  # Athena lists what it wrote in <id>-manifest.csv next to the results
            bucket_o, key_o = _split_uri(ex.output_location)
            with _open_output(self.fs, f"{bucket_o}/{key_o.removesuffix('.csv')}-manifest.csv") as out:
                out.write("".join(f"{w}\n" for w in ex.written).encode())
        schema: pa.Schema = reader.schema
        return schema

    def _unload(self, con: duckdb.DuckDBPyConnection, ex: QueryExecution, unload: Unload, sql: str) -> None:
        self._write_parquet(con, ex, sql, unload.to, unload.compression, unload.partitioned_by, f"{ex.database}.unload")

    def _ctas(self, con: duckdb.DuckDBPyConnection, ex: QueryExecution, ctas: Ctas, sql: str) -> None:
        """CREATE TABLE AS: the rows written as Parquet (as UNLOAD does) and the table added to Glue."""
        database, name = (ctas.database or ex.database).lower(), ctas.name.lower()
        if not self.catalog.has_database(database):
            raise AthenaQueryError(f"SCHEMA_NOT_FOUND: line 1:14: Schema '{database}' does not exist")
        if self.catalog.table(database, name) is not None:
            if ctas.if_not_exists:
                return
            raise AthenaQueryError(
                f"TABLE_ALREADY_EXISTS: line 1:1: Table 'awsdatacatalog.{database}.{name}' already exists"
            )
        location = ctas.location
        if location is None:
            if not ex.output_location:
                raise AthenaQueryError(
                    "INVALID_PARAMETER: CREATE TABLE AS needs external_location or an output location"
                )
            location = ex.output_location.rsplit("/", 1)[0] + f"/tables/{ex.id}/"
        schema = self._write_parquet(
            con, ex, sql, location, ctas.compression, ctas.partitioned_by, f"{database}.{name}"
        )
        columns = [{"Name": f.name, "Type": glue_type(f.type)} for f in schema if f.name not in ctas.partitioned_by]
        keys = [{"Name": c, "Type": glue_type(schema.field(c).type)} for c in ctas.partitioned_by]
        table_input = {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "parquet.compression": ctas.compression.upper()},
            "PartitionKeys": keys,
            "StorageDescriptor": {
                "Location": location,
                "Columns": columns,
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
            },
        }
        if not self.catalog.create_table(database, table_input):
            raise AthenaQueryError(
                f"TABLE_ALREADY_EXISTS: line 1:1: Table 'awsdatacatalog.{database}.{name}' already exists"
            )


def _line_col(sql: str, offset: int) -> str:
    before = sql[:offset]
    return f"line {before.count(chr(10)) + 1}:{offset - (before.rfind(chr(10)) + 1) + 1}"


def _relation(result: duckdb.DuckDBPyRelation | None) -> duckdb.DuckDBPyRelation:
    if result is None:
        raise AthenaQueryError("GENERIC_INTERNAL_ERROR: the statement returned no result")
    return result


def _open_output(fs: pafs.FileSystem, path: str) -> Any:
    """A new object (S3) or file (a local filesystem in tests, whose parent folders must exist)."""
    if fs.type_name != "s3":
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    return fs.open_output_stream(path)
