"""The SQL layer of the local Athena: Trino → DuckDB through sqlglot, ``UNLOAD`` parsed by hand, Glue
types as Arrow types, result values and errors in Athena's shapes.

Pure functions over strings, no I/O, so every query Driftline sends can be golden-tested without an
emulator (:mod:`driftline.local.athena` runs them). Athena speaks Trino; the subset Driftline writes
is the one both Trino and DuckDB evaluate identically (see ``docs/local.md``, "Athena on DuckDB").
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

__all__ = [
    "AthenaQueryError",
    "Ctas",
    "Keep",
    "Statement",
    "TableRef",
    "Unload",
    "arrow_type",
    "athena_type",
    "bind_parameters",
    "csv_line",
    "duckdb_type",
    "glue_type",
    "parse_ctas",
    "parse_statement",
    "partition_filter",
    "to_duckdb",
    "varchar_value",
]

UNLOAD_FORMATS = {"PARQUET": "parquet", "JSON": "json", "TEXTFILE": "csv"}
"""Athena ``UNLOAD`` formats the local engine writes (ORC and AVRO have no DuckDB writer)."""
UNLOAD_COMPRESSIONS = {"parquet": ("gzip", "snappy", "zstd", "none"), "json": ("gzip", "none"), "csv": ("gzip", "none")}
DEFAULT_UNLOAD_COMPRESSION = {"parquet": "gzip", "json": "gzip", "csv": "gzip"}
"""Athena's defaults: ``UNLOAD`` compresses Parquet and text output with gzip unless told otherwise."""


class AthenaQueryError(Exception):
    """A query ends FAILED with ``reason``: Athena's ``ERROR_NAME: line L:C: message`` shape."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _position(sql: str, offset: int) -> str:
    """Athena's ``line L:C`` (1-based) of a character offset."""
    before = sql[:offset]
    return f"line {before.count(chr(10)) + 1}:{offset - (before.rfind(chr(10)) + 1) + 1}"


# ---- UNLOAD ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unload:
    select: str
    """The inner query (Trino), as written."""
    select_offset: int
    to: str
    format: str = "parquet"
    compression: str = "gzip"
    partitioned_by: tuple[str, ...] = ()


def _skip_ws(sql: str, i: int) -> int:
    while i < len(sql):
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = len(sql) if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: unterminated comment")
            i = end + 2
        else:
            return i
    return i


def _quoted(sql: str, i: int, quote: str) -> tuple[str, int]:
    """The quoted token starting at ``i`` (doubled quotes escape) and the offset after it."""
    out = []
    j = i + 1
    while j < len(sql):
        if sql[j] == quote:
            if sql.startswith(quote * 2, j):
                out.append(quote)
                j += 2
                continue
            return "".join(out), j + 1
        out.append(sql[j])
        j += 1
    what = "string" if quote == "'" else "name"
    raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: unterminated {what}")


def _balanced(sql: str, i: int) -> int:
    """Offset just after the ``)`` closing the ``(`` at ``i`` (strings, names and comments skipped)."""
    depth = 0
    j = i
    while j < len(sql):
        c = sql[j]
        if c in "'\"":
            _, j = _quoted(sql, j, c)
            continue
        if sql.startswith("--", j) or sql.startswith("/*", j):
            j = _skip_ws(sql, j)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: unbalanced parentheses")


def _keyword(sql: str, i: int, word: str) -> int | None:
    i = _skip_ws(sql, i)
    if sql[i : i + len(word)].upper() == word and (i + len(word) == len(sql) or not sql[i + len(word)].isalnum()):
        return i + len(word)
    return None


def _property_value(sql: str, i: int) -> tuple[str | tuple[str, ...], int]:
    i = _skip_ws(sql, i)
    if i < len(sql) and sql[i] == "'":
        return _quoted(sql, i, "'")
    after = _keyword(sql, i, "ARRAY")
    if after is not None:
        j = _skip_ws(sql, after)
        if j >= len(sql) or sql[j] != "[":
            raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, j)}: expected '[' after ARRAY")
        items: list[str] = []
        j = _skip_ws(sql, j + 1)
        while j < len(sql) and sql[j] != "]":
            if sql[j] != "'":
                raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, j)}: ARRAY items must be string literals")
            item, j = _quoted(sql, j, "'")
            items.append(item)
            j = _skip_ws(sql, j)
            if j < len(sql) and sql[j] == ",":
                j = _skip_ws(sql, j + 1)
        if j >= len(sql):
            raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: unterminated ARRAY")
        return tuple(items), j + 1
    raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: a property value is a string literal or ARRAY[...]")


def _properties(sql: str, i: int) -> tuple[dict[str, str | tuple[str, ...]], int]:
    """``( key = value, ... )`` starting at the ``(`` at ``i``."""
    props: dict[str, str | tuple[str, ...]] = {}
    j = _skip_ws(sql, i + 1)
    while j < len(sql) and sql[j] != ")":
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(sql, j)
        if not m:
            raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, j)}: expected a property name")
        key = m.group(0).lower()
        j = _skip_ws(sql, m.end())
        if j >= len(sql) or sql[j] != "=":
            raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, j)}: expected '=' after {key}")
        props[key], j = _property_value(sql, j + 1)
        j = _skip_ws(sql, j)
        if j < len(sql) and sql[j] == ",":
            j = _skip_ws(sql, j + 1)
    if j >= len(sql):
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: unterminated WITH (...)")
    return props, j + 1


def _unload_options(sql: str, props: dict[str, str | tuple[str, ...]], at: int) -> tuple[str, str, tuple[str, ...]]:
    unknown = sorted(set(props) - {"format", "compression", "partitioned_by"})
    if unknown:
        raise AthenaQueryError(f"NOT_SUPPORTED: {_position(sql, at)}: UNLOAD property {unknown[0]} is not supported")
    fmt_name = props.get("format", "PARQUET")
    if not isinstance(fmt_name, str) or fmt_name.upper() not in UNLOAD_FORMATS:
        raise AthenaQueryError(
            f"NOT_SUPPORTED: {_position(sql, at)}: UNLOAD format {fmt_name!r}; supported: {', '.join(UNLOAD_FORMATS)}"
        )
    fmt = UNLOAD_FORMATS[fmt_name.upper()]
    compression = props.get("compression", DEFAULT_UNLOAD_COMPRESSION[fmt])
    if not isinstance(compression, str) or compression.lower() not in UNLOAD_COMPRESSIONS[fmt]:
        raise AthenaQueryError(
            f"NOT_SUPPORTED: {_position(sql, at)}: compression {compression!r} for {fmt_name}; "
            f"supported: {', '.join(UNLOAD_COMPRESSIONS[fmt])}"
        )
    partitioned = props.get("partitioned_by", ())
    if isinstance(partitioned, str):
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, at)}: partitioned_by is ARRAY['column', ...]")
    return fmt, compression.lower(), partitioned


def parse_unload(sql: str) -> Unload | None:
    """``UNLOAD (SELECT ...) TO 's3://...' [WITH (format = ..., compression = ..., partitioned_by = ARRAY[...])]``,
    or None when ``sql`` is not an UNLOAD (sqlglot has no UNLOAD grammar)."""
    start = _keyword(sql, 0, "UNLOAD")
    if start is None:
        return None
    i = _skip_ws(sql, start)
    if i >= len(sql) or sql[i] != "(":
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, i)}: expected '(' after UNLOAD")
    end = _balanced(sql, i)
    select = sql[i + 1 : end - 1]
    after_to = _keyword(sql, end, "TO")
    if after_to is None:
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, _skip_ws(sql, end))}: expected TO 's3://...'")
    j = _skip_ws(sql, after_to)
    if j >= len(sql) or sql[j] != "'":
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, j)}: the UNLOAD target is a string literal")
    to, j = _quoted(sql, j, "'")
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,62}/.*", to):
        raise AthenaQueryError(f"INVALID_PARAMETER: {_position(sql, j)}: UNLOAD target {to!r} is not an s3:// URI")
    props: dict[str, str | tuple[str, ...]] = {}
    after_with = _keyword(sql, j, "WITH")
    if after_with is not None:
        k = _skip_ws(sql, after_with)
        if k >= len(sql) or sql[k] != "(":
            raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, k)}: expected '(' after WITH")
        props, j = _properties(sql, k)
    j = _skip_ws(sql, j)
    if j < len(sql) and sql[j] == ";":
        j = _skip_ws(sql, j + 1)
    if j < len(sql):
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, j)}: unexpected text after UNLOAD")
    fmt, compression, partitioned = _unload_options(sql, props, after_with or j)
    return Unload(select, i + 1, to if to.endswith("/") else to + "/", fmt, compression, partitioned)


# ---- statements and table references ------------------------------------------------------------------
@dataclass(frozen=True)
class TableRef:
    database: str | None
    name: str
    offset: int
    """Where the reference starts in the query text (for Athena's ``line L:C``)."""


@dataclass(frozen=True)
class Ctas:
    """``CREATE TABLE [IF NOT EXISTS] [db.]name WITH (format = 'PARQUET', external_location = 's3://…/',
    partitioned_by = ARRAY[...], write_compression = ...) AS SELECT …``."""

    database: str | None
    name: str
    location: str | None
    """None: Athena's default, ``tables/<query id>/`` next to the query results."""
    compression: str = "gzip"
    partitioned_by: tuple[str, ...] = ()
    if_not_exists: bool = False


_CTAS_PROPERTIES = {"format", "external_location", "partitioned_by", "write_compression"}


def _literal(node: Any) -> str | None:
    return str(node.this) if isinstance(node, exp.Literal) and node.is_string else None


def _ctas_property(prop: exp.Expr, out: dict[str, Any]) -> None:
    if isinstance(prop, exp.FileFormatProperty):
        out["format"] = _literal(prop.this) or prop.this.name
    elif isinstance(prop, exp.PartitionedByProperty) and isinstance(prop.this, exp.Array):
        names = [_literal(e) for e in prop.this.expressions]
        if any(n is None for n in names):
            raise AthenaQueryError("SYNTAX_ERROR: line 1:1: partitioned_by is ARRAY['column', ...]")
        out["partitioned_by"] = tuple(str(n) for n in names)
    elif isinstance(prop, exp.Property):
        key = prop.name.lower()
        if key not in _CTAS_PROPERTIES:
            raise AthenaQueryError(f"NOT_SUPPORTED: line 1:1: CREATE TABLE AS property {key} is not supported")
        value = _literal(prop.args.get("value"))
        if value is None:
            raise AthenaQueryError(f"SYNTAX_ERROR: line 1:1: property {key} takes a string literal")
        out[key] = value
    else:
        raise AthenaQueryError(f"NOT_SUPPORTED: line 1:1: CREATE TABLE AS property {prop.sql('trino')[:100]}")


def parse_ctas(tree: exp.Expr) -> tuple[Ctas, exp.Expr] | None:
    """The CTAS around a SELECT (and the SELECT), or None when ``tree`` is not a CTAS."""
    if not (isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "TABLE"):
        return None
    select = tree.args.get("expression")
    table = tree.this
    if not isinstance(select, exp.Query) or not isinstance(table, exp.Table):
        raise AthenaQueryError("NOT_SUPPORTED: line 1:1: CREATE TABLE without AS SELECT is not supported locally")
    props: dict[str, Any] = {}
    properties = tree.args.get("properties")
    for prop in properties.expressions if isinstance(properties, exp.Properties) else []:
        _ctas_property(prop, props)
    if str(props.get("format", "PARQUET")).upper() != "PARQUET":
        raise AthenaQueryError("NOT_SUPPORTED: line 1:1: CREATE TABLE AS writes Parquet only locally")
    compression = str(props.get("write_compression", "GZIP")).lower()
    if compression not in UNLOAD_COMPRESSIONS["parquet"]:
        raise AthenaQueryError(f"NOT_SUPPORTED: line 1:1: write_compression {compression!r}")
    location = props.get("external_location")
    if location is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,62}/.*", location):
        raise AthenaQueryError(f"INVALID_PARAMETER: line 1:1: external_location {location!r} is not an s3:// URI")
    ctas = Ctas(
        database=table.db or None,
        name=table.name,
        location=None if location is None else (location if location.endswith("/") else location + "/"),
        compression=compression,
        partitioned_by=props.get("partitioned_by", ()),
        if_not_exists=bool(tree.args.get("exists")),
    )
    return ctas, select


@dataclass
class Statement:
    """A parsed query: its tree (Trino), the tables it reads, the UNLOAD or CTAS around it if any."""

    tree: exp.Expr
    tables: list[TableRef] = field(default_factory=list)
    unload: Unload | None = None
    ctas: Ctas | None = None
    text: str = ""
    offset: int = 0


_MAX_QUERY_CHARS = 262_144
"""Athena's query string limit (256 KiB)."""


def _tables(tree: exp.Expr, offset: int) -> list[TableRef]:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    refs = []
    for t in tree.find_all(exp.Table):
        if not isinstance(t.this, exp.Identifier):
            continue  # a table function (UNNEST, a subquery): not a catalog table
        if not t.db and t.name.lower() in ctes:
            continue
        ident = t.args.get("db") if isinstance(t.args.get("db"), exp.Identifier) else t.this
        start = (ident.meta.get("start") if ident is not None else None) or 0
        refs.append(TableRef(t.db or None, t.name, offset + int(start)))
    return refs


def bind_parameters(tree: exp.Expr, parameters: list[str] | None) -> exp.Expr:
    """Athena's ``ExecutionParameters``: each ``?`` of the query, in order, becomes the parameter's SQL
    literal (``'text'``, ``42``, ``DATE '2026-01-01'``); a parameter that is not one literal fails."""
    holes = list(tree.find_all(exp.Placeholder))
    given = list(parameters or [])
    if len(holes) != len(given):
        raise AthenaQueryError(
            f"INVALID_PARAMETER: the query has {len(holes)} parameter(s) (?) but {len(given)} execution parameter(s)"
        )
    for hole, text in zip(holes, given, strict=True):
        try:
            value = sqlglot.parse_one(text, read="trino") if isinstance(text, str) else None
        except sqlglot.errors.SqlglotError:
            value = None
        if value is None or not (
            isinstance(value, exp.Literal | exp.Null | exp.Boolean)
            or (isinstance(value, exp.Cast | exp.Neg) and isinstance(value.this, exp.Literal))
        ):
            raise AthenaQueryError(f"INVALID_PARAMETER: execution parameter {text!r} is not a SQL literal")
        hole.replace(value)
    return tree


def parse_statement(sql: str) -> Statement:
    """Parse one Trino statement (SELECT/WITH or UNLOAD); anything else fails as Athena would."""
    if not isinstance(sql, str) or not sql.strip():
        raise AthenaQueryError("SYNTAX_ERROR: line 1:1: the query string is empty")
    if len(sql) > _MAX_QUERY_CHARS:
        raise AthenaQueryError(f"INVALID_PARAMETER: the query string exceeds {_MAX_QUERY_CHARS} characters")
    if "\x00" in sql:
        raise AthenaQueryError(f"SYNTAX_ERROR: {_position(sql, sql.index(chr(0)))}: NUL character in the query")
    unload = parse_unload(sql)
    text, offset = (unload.select, unload.select_offset) if unload else (sql, 0)
    try:
        trees = [t for t in sqlglot.parse(text, read="trino") if t is not None]
    except sqlglot.errors.ParseError as e:
        first = e.errors[0] if e.errors else {}
        line, col = int(first.get("line") or 1), int(first.get("col") or 1)
        if offset:
            line += sql[:offset].count("\n")
        highlight = first.get("highlight") or ""
        raise AthenaQueryError(
            f"SYNTAX_ERROR: line {line}:{col}: {first.get('description', e)} at {highlight!r}"
        ) from None
    except (sqlglot.errors.SqlglotError, RecursionError) as e:
        raise AthenaQueryError(f"SYNTAX_ERROR: line 1:1: {type(e).__name__}: {str(e)[:500]}") from None
    if len(trees) != 1:
        raise AthenaQueryError("INVALID_PARAMETER: Only one sql statement is allowed.")
    tree = trees[0]
    ctas = None if unload else parse_ctas(tree)
    if ctas is not None:
        return Statement(tree=ctas[1], tables=_tables(ctas[1], offset), ctas=ctas[0], text=text, offset=offset)
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper()
        raise AthenaQueryError(
            f"NOT_SUPPORTED: line 1:1: {kind} statements are not supported by the local Athena "
            "(SELECT, WITH, UNLOAD and CREATE TABLE AS are)"
        )
    return Statement(tree=tree, tables=_tables(tree, offset), unload=unload, text=text, offset=offset)


# ---- partition pruning ------------------------------------------------------------------------------
Keep = Callable[[dict[str, str | None]], bool]
"""Whether a file with these partition values may hold rows the query needs."""

_COMPARE: dict[type, Callable[[str, str], bool]] = {
    exp.EQ: lambda v, lit: v == lit,
    exp.GT: lambda v, lit: v > lit,
    exp.GTE: lambda v, lit: v >= lit,
    exp.LT: lambda v, lit: v < lit,
    exp.LTE: lambda v, lit: v <= lit,
}
_FLIPPED: dict[type, type] = {exp.EQ: exp.EQ, exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}


def _conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.Where):
        return _conjuncts(node.this)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _text(node: Any) -> str | None:
    return str(node.this) if isinstance(node, exp.Literal) and node.is_string else None


def _condition(cond: exp.Expr, column: Callable[[Any], str | None]) -> tuple[str, Callable[[str], bool]] | None:
    """``(partition column, test of its value)`` for ``col <op> 'text'``, ``col BETWEEN 'a' AND 'b'``,
    ``col IN ('a', ...)``; None for anything else (it prunes nothing)."""
    if isinstance(cond, exp.Between):
        name, low, high = column(cond.this), _text(cond.args.get("low")), _text(cond.args.get("high"))
        if name and low is not None and high is not None:
            return name, lambda v: low <= v <= high
    if isinstance(cond, exp.In) and not cond.args.get("query"):
        name, items = column(cond.this), [_text(e) for e in cond.expressions]
        if name and items and all(i is not None for i in items):
            return name, lambda v: v in items
    if type(cond) in _COMPARE:
        left, right, op = cond.this, cond.expression, type(cond)
        if column(left) is None:
            left, right, op = right, left, _FLIPPED[op]
        name, lit = column(left), _text(right)
        if name and lit is not None:
            compare = _COMPARE[op]
            return name, lambda v: compare(v, lit)
    return None


def partition_filter(table: exp.Table, partition_keys: set[str]) -> Keep | None:
    """What the WHERE of the SELECT reading ``table`` says about its string partition columns: only the
    top-level AND-ed comparisons with text literals (rows failing one of them leave that SELECT whatever
    the joins), so skipping files that fail them cannot change the result. None: read every file."""
    parent = table.parent
    select = parent.parent if isinstance(parent, exp.From | exp.Join) else None
    if not isinstance(select, exp.Select):
        return None
    sources = [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]
    single = len([x for x in sources if x is not None]) == 1
    alias = table.alias_or_name.lower()

    def column(node: Any) -> str | None:
        if not isinstance(node, exp.Column) or node.name.lower() not in partition_keys:
            return None
        qualifier = node.table.lower()
        return node.name.lower() if qualifier == alias or (not qualifier and single) else None

    tests = [c for c in (_condition(x, column) for x in _conjuncts(select.args.get("where"))) if c is not None]
    if not tests:
        return None
    return lambda values: all((v := values.get(k)) is not None and test(v) for k, test in tests)


# ---- Trino → DuckDB --------------------------------------------------------------------------------
_MD5_PREFIX_LENGTH = 8


def _md5_prefix_as_bigint(node: exp.Expr) -> exp.Expr:
    """``from_big_endian_64(substr(md5(B), 1, 8))`` → the same signed 64-bit number in DuckDB.

    DuckDB has no ``from_big_endian_64`` and no substring of a BLOB; its ``md5`` returns hex, so the
    first 8 bytes are the first 16 hex digits, read as an unsigned and reinterpreted as signed.
    """
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "from_big_endian_64" and node.expressions):
        return node
    arg = node.expressions[0]
    if not (
        isinstance(arg, exp.Substring)
        and isinstance(arg.this, exp.MD5Digest)
        and arg.args.get("start") == exp.Literal.number(1)
        and arg.args.get("length") == exp.Literal.number(_MD5_PREFIX_LENGTH)
    ):
        return node
    digest = exp.Anonymous(this="md5", expressions=[arg.this.this]).sql(dialect="duckdb")
    unsigned = f"CAST('0x' || SUBSTRING({digest}, 1, 16) AS UBIGINT)"
    signed = (
        f"CAST(CAST({unsigned} AS HUGEINT) - CASE WHEN {unsigned} >= CAST(9223372036854775808 AS UBIGINT) "
        f"THEN CAST(18446744073709551616 AS HUGEINT) ELSE CAST(0 AS HUGEINT) END AS BIGINT)"
    )
    return sqlglot.parse_one(signed, read="duckdb")


def _unnest_rows(node: exp.Expr) -> exp.Expr:
    """Trino's ``UNNEST(array_of_rows) [WITH ORDINALITY] AS r(a, b[, n])`` → DuckDB.

    Trino expands each row's fields into the alias columns (by position); DuckDB's UNNEST of a list
    of structs yields one struct column. A lateral subquery takes the fields by position instead.
    """
    if not isinstance(node, exp.Unnest) or len(node.expressions) != 1:
        return node
    alias = node.args.get("alias")
    if not isinstance(alias, exp.TableAlias) or len(alias.columns) < 2:
        return node
    columns = list(alias.columns)
    offset = node.args.get("offset")
    element = exp.column("__s", table="__u")
    fields: list[exp.Expr] = [
        exp.alias_(exp.Anonymous(this="struct_extract_at", expressions=[element.copy(), exp.Literal.number(i)]), c)
        for i, c in enumerate(columns, start=1)
    ]
    if isinstance(offset, exp.Identifier):
        fields.append(exp.alias_(exp.column("__n", table="__u"), offset))
    unnest = exp.Unnest(
        expressions=[node.expressions[0].copy()],
        alias=exp.TableAlias(this=exp.to_identifier("__u"), columns=[exp.to_identifier("__s")]),
        offset=exp.to_identifier("__n") if isinstance(offset, exp.Identifier) else None,
    )
    inner = exp.select(*fields).from_(unnest)
    return exp.Lateral(this=inner.subquery(), view=False, outer=False, alias=exp.TableAlias(this=alias.this.copy()))


def to_duckdb(tree: exp.Expr, rename: Callable[[exp.Table], str | None] | None = None) -> str:
    """The DuckDB text of a parsed Trino query; ``rename`` maps catalog tables to registered names."""
    tree = tree.copy()
    if rename is not None:
        for t in list(tree.find_all(exp.Table)):
            new = rename(t)
            if new is None:
                continue
            alias = t.alias or t.name
            t.replace(
                exp.Table(
                    this=exp.to_identifier(new, quoted=True),
                    alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
                )
            )
    tree = tree.transform(_md5_prefix_as_bigint).transform(_unnest_rows)
    try:
        return tree.sql(dialect="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as e:
        raise AthenaQueryError(f"NOT_SUPPORTED: line 1:1: {str(e)[:500]}") from None


# ---- Glue types ↔ Arrow ↔ Athena ---------------------------------------------------------------------
_SIMPLE: dict[str, pa.DataType] = {
    "string": pa.string(),
    "varchar": pa.string(),
    "char": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "tinyint": pa.int8(),
    "double": pa.float64(),
    "float": pa.float32(),
    "real": pa.float32(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "binary": pa.binary(),
}


class _TypeParser:
    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.i = 0

    def fail(self, what: str) -> AthenaQueryError:
        return AthenaQueryError(f"HIVE_INVALID_METADATA: Glue type {self.text!r}: {what} at character {self.i + 1}")

    def word(self) -> str:
        m = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*").match(self.text, self.i)
        if not m:
            raise self.fail("expected a name")
        self.i = m.end()
        return m.group(1)

    def expect(self, c: str) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1
        if not self.text.startswith(c, self.i):
            raise self.fail(f"expected {c!r}")
        self.i += 1

    def peek(self, c: str) -> bool:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1
        return self.text.startswith(c, self.i)

    def parse(self) -> pa.DataType:
        name = self.word().lower()
        if name == "array":
            self.expect("<")
            item = self.parse()
            self.expect(">")
            return pa.list_(item)
        if name == "map":
            self.expect("<")
            key = self.parse()
            self.expect(",")
            value = self.parse()
            self.expect(">")
            return pa.map_(key, value)
        if name == "struct":
            self.expect("<")
            fields = []
            while True:
                fname = self.word()
                self.expect(":")
                fields.append(pa.field(fname, self.parse()))
                if not self.peek(","):
                    break
                self.expect(",")
            self.expect(">")
            return pa.struct(fields)
        if name == "decimal":
            m = re.compile(r"\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)").match(self.text, self.i)
            if not m:
                return pa.decimal128(10, 0)
            self.i = m.end()
            return pa.decimal128(int(m.group(1)), int(m.group(2) or 0))
        if name in ("varchar", "char"):
            m = re.compile(r"\s*\(\s*\d+\s*\)").match(self.text, self.i)
            if m:
                self.i = m.end()
        if name not in _SIMPLE:
            raise self.fail(f"unknown type {name!r}")
        return _SIMPLE[name]


def arrow_type(glue_type: str) -> pa.DataType:
    """The Arrow type of a Glue/Hive column type (``array<struct<a:bigint,b:string>>`` included)."""
    p = _TypeParser(glue_type)
    out = p.parse()
    if p.i < len(p.text.rstrip()):
        raise p.fail("unexpected text")
    return out


def _quoted_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_type(t: pa.DataType) -> str:
    """DuckDB's name of an Arrow type (the JSON reader's ``columns``; maps and nested structs included)."""
    simple = {
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.int16(): "SMALLINT",
        pa.int8(): "TINYINT",
        pa.float64(): "DOUBLE",
        pa.float32(): "FLOAT",
        pa.bool_(): "BOOLEAN",
        pa.string(): "VARCHAR",
        pa.binary(): "BLOB",
        pa.date32(): "DATE",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    if pa.types.is_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{_quoted_name(f.name)} {duckdb_type(f.type)}" for f in t) + ")"
    raise AthenaQueryError(f"NOT_SUPPORTED: type {t} in a JSON table")


def glue_type(t: pa.DataType) -> str:
    """The Glue/Hive type of an Arrow type (the columns of a table CREATE TABLE AS makes)."""
    simple = {
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.int16(): "smallint",
        pa.int8(): "tinyint",
        pa.float64(): "double",
        pa.float32(): "float",
        pa.bool_(): "boolean",
        pa.string(): "string",
        pa.large_string(): "string",
        pa.binary(): "binary",
        pa.date32(): "date",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_map(t):
        return f"map<{glue_type(t.key_type)},{glue_type(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{glue_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{glue_type(f.type)}" for f in t) + ">"
    if pa.types.is_unsigned_integer(t):
        return "bigint"
    raise AthenaQueryError(f"NOT_SUPPORTED: no Glue type for a result column of type {t}")


def athena_type(t: pa.DataType) -> str:
    """Athena's ``ColumnInfo.Type`` name for a result column."""
    if pa.types.is_boolean(t):
        return "boolean"
    ints = {8: "tinyint", 16: "smallint", 32: "integer", 64: "bigint"}
    if pa.types.is_integer(t):
        return ints.get(t.bit_width, "bigint")
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "varbinary"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "array"
    if pa.types.is_map(t):
        return "map"
    if pa.types.is_struct(t):
        return "row"
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return "interval day to second"
    return "varchar"


def _nested(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_nested(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list) and v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
        return "{" + ", ".join(f"{k}={_nested(x)}" for k, x in v) + "}"  # an Arrow map
    if isinstance(v, list):
        return "[" + ", ".join(_nested(x) for x in v) + "]"
    return varchar_value(v) or ""


def varchar_value(v: Any) -> str | None:
    """A result value as Athena's ``VarCharValue`` text (None for SQL NULL)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if isinstance(v, dt.datetime):
        text = v.strftime("%Y-%m-%d %H:%M:%S.") + f"{v.microsecond // 1000:03d}"
        return text + (" UTC" if v.tzinfo is not None else "")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, bytes):
        return " ".join(f"{b:02x}" for b in v)
    if isinstance(v, (list, dict)):
        return _nested(v)
    return str(v)


def csv_line(values: list[str | None]) -> str:
    """One row of Athena's result CSV: every value double-quoted (``"`` doubled), NULL empty and unquoted."""
    return ",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in values) + "\n"
