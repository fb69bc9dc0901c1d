"""The Glue Data Catalog of the platform, defined once: every table Athena queries, with its columns,
partitions, projection and storage format.

The CDK stack (``stacks/glue.py``) builds its ``AWS::Glue::Table`` resources from these specs and the
local platform creates the same database and tables in the emulator's Glue catalog
(:mod:`driftline.local.provision`), where the local Athena engine (:mod:`driftline.local.athena`)
resolves them. A table added here therefore exists on AWS and locally, with the same types.

Only names, types and layouts live here; no AWS client is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from driftline.contracts import ATHENA_RESULTS_PREFIX, TRAINING_SCRATCH_PREFIX, curated_root
from driftline.features.catalog import glue_columns
from driftline.features.schema import FeatureSet
from driftline.platform import Platform

__all__ = [
    "JSON_SERDE",
    "LABEL_EVENTS_PARTITION",
    "PARQUET_SERDE",
    "AthenaWorkgroup",
    "Column",
    "TableFormat",
    "TableSpec",
    "athena_workgroup",
    "database_name",
    "feature_set_table",
    "label_events_prefix",
    "label_events_table",
    "label_events_table_name",
    "platform_tables",
]

TableFormat = Literal["parquet", "json-lines"]
"""How a table's objects are stored: zstd Parquet, or JSON lines read by the Hive JSON SerDe."""

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
"""The JSON SerDe Athena documents for JSON lines (tolerates unknown keys and nested structs)."""

_STORAGE: dict[str, tuple[str, str, str]] = {
    "parquet": (
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        PARQUET_SERDE,
    ),
    "json-lines": (
        "org.apache.hadoop.mapred.TextInputFormat",
        "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        JSON_SERDE,
    ),
}


@dataclass(frozen=True)
class Column:
    """One column; ``type`` is a Glue/Hive type string (``bigint``, ``array<struct<name:string,v:double>>``)."""

    name: str
    type: str
    comment: str | None = None

    def glue(self) -> dict[str, str]:
        out = {"Name": self.name, "Type": self.type}
        if self.comment is not None:
            out["Comment"] = self.comment
        return out


@dataclass(frozen=True)
class TableSpec:
    """One external table over objects under ``s3://<bucket>/<prefix>``.

    ``bucket`` is the platform's logical bucket name; the physical name is supplied when the Glue table
    input is built (a CDK token on AWS, the emulator's name locally), so the spec itself is environment-free.
    ``projection`` holds the Athena partition-projection parameters without the ``projection.`` prefix
    (``{"date.type": "date", ...}``); ``location_template`` is the part of ``storage.location.template``
    after the table's location (``date=${date}``).
    """

    database: str
    name: str
    bucket: str
    prefix: str
    columns: tuple[Column, ...]
    format: TableFormat
    partition_keys: tuple[Column, ...] = ()
    projection: tuple[tuple[str, str], ...] = ()
    location_template: str | None = None
    description: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    """Extra table parameters (after the format's and the projection's)."""
    ignore_malformed_json: bool = True
    """JSON lines only: a line that is not JSON reads as a row of NULLs instead of failing the query
    (the SerDe's ``ignore.malformed.json``), so a truncated object is counted, not fatal."""

    def __post_init__(self) -> None:
        if self.format not in _STORAGE:
            raise ValueError(f"table {self.name}: unknown format {self.format!r}")
        if not self.prefix.endswith("/"):
            raise ValueError(f"table {self.name}: prefix {self.prefix!r} must end with '/'")
        names = [c.name for c in (*self.columns, *self.partition_keys)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"table {self.name}: repeated column names {', '.join(dupes)}")

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    def location(self, bucket_name: str) -> str:
        return f"s3://{bucket_name}/{self.prefix}"

    def table_parameters(self, bucket_name: str) -> dict[str, str]:
        params: dict[str, str] = (
            {"classification": "parquet", "parquet.compression": "ZSTD"}
            if self.format == "parquet"
            else {"classification": "json"}
        )
        if self.projection:
            params["projection.enabled"] = "true"
            params.update({f"projection.{k}": v for k, v in self.projection})
        if self.location_template is not None:
            params["storage.location.template"] = self.location(bucket_name) + self.location_template
        params.update(dict(self.parameters))
        return params

    def serde_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"SerializationLibrary": _STORAGE[self.format][2]}
        if self.format == "json-lines" and self.ignore_malformed_json:
            info["Parameters"] = {"ignore.malformed.json": "true"}
        return info

    def table_input(self, bucket_name: str) -> dict[str, Any]:
        """The Glue ``TableInput`` (the API's shape: ``glue.create_table(DatabaseName=..., TableInput=...)``)."""
        input_format, output_format, _ = _STORAGE[self.format]
        return {
            "Name": self.name,
            "TableType": "EXTERNAL_TABLE",
            "Description": self.description,
            "PartitionKeys": [c.glue() for c in self.partition_keys],
            "Parameters": self.table_parameters(bucket_name),
            "StorageDescriptor": {
                "Location": self.location(bucket_name),
                "Columns": [c.glue() for c in self.columns],
                "InputFormat": input_format,
                "OutputFormat": output_format,
                "SerdeInfo": self.serde_info(),
            },
        }


def database_name(platform: Platform) -> str:
    """The Glue database of the environment (Glue names allow no '-')."""
    return platform.prefix.replace("-", "_")


_DATE_PROJECTION = (
    ("date.type", "date"),
    ("date.format", "yyyy-MM-dd"),
    ("date.range", "2000-01-01,NOW"),
    ("date.interval", "1"),
    ("date.interval.unit", "DAYS"),
)


def feature_set_table(platform: Platform, fs: FeatureSet) -> TableSpec:
    """The curated rows of one feature set: Hive-partitioned zstd Parquet, projected on ``date``."""
    return TableSpec(
        database=database_name(platform),
        name=fs.name,
        bucket="features",
        prefix=curated_root(fs.name),
        columns=tuple(Column(c["name"], c["type"], c.get("comment")) for c in glue_columns(fs)),
        format="parquet",
        partition_keys=(Column("date", "string"),),
        projection=_DATE_PROJECTION,
        location_template="date=${date}",
        description=fs.description or f"Curated rows of feature set {fs.name}",
        parameters=(("driftline.feature_set_version", str(fs.version)),),
    )


LABEL_EVENTS_PARTITION = "build"
"""Partition of :func:`label_events_table`: one training-set build's label events (injected projection:
every query names its build, so Athena reads that one folder)."""


def label_events_table_name(feature_set: str) -> str:
    return f"{feature_set}_label_events"


def label_events_prefix(feature_set: str) -> str:
    """``training-scratch/<feature_set>/labels/``: the location of :func:`label_events_table`."""
    return f"{TRAINING_SCRATCH_PREFIX}/{feature_set}/labels/"


def label_events_table(platform: Platform, fs: FeatureSet) -> TableSpec:
    """Label events given to an Athena training-set build (:mod:`driftline.features.athena_training_set`):
    ``training-scratch/<fs>/labels/build=<id>/`` Parquet with the entity keys, the timestamp, the labels
    and ``driftline_event`` (the event's row number, so equal events stay distinct rows)."""
    columns = {c["name"]: c for c in glue_columns(fs)}
    names = [*fs.entity, fs.timestamp, *(lb.name for lb in fs.labels)]
    return TableSpec(
        database=database_name(platform),
        name=label_events_table_name(fs.name),
        bucket="features",
        prefix=label_events_prefix(fs.name),
        columns=(*(Column(n, columns[n]["type"]) for n in names), Column("driftline_event", "bigint")),
        format="parquet",
        partition_keys=(Column(LABEL_EVENTS_PARTITION, "string"),),
        projection=((f"{LABEL_EVENTS_PARTITION}.type", "injected"),),
        description=f"Label events of training-set builds of feature set {fs.name}",
    )


def platform_tables(platform: Platform, feature_sets: Iterable[FeatureSet]) -> tuple[TableSpec, ...]:
    """Every table of the environment: per feature set its curated rows and the label events of its
    training-set builds, and per model its captures and feedback tables (:mod:`driftline.capture_tables`)."""
    from driftline.capture_tables import model_tables  # it builds on this module's TableSpec

    feature_sets = list(feature_sets)
    tables = [feature_set_table(platform, fs) for fs in feature_sets]
    tables += [label_events_table(platform, fs) for fs in feature_sets]
    tables += model_tables(platform, feature_sets)
    names = [t.name for t in tables]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"Glue table names repeated: {', '.join(dupes)}")
    return tuple(tables)


@dataclass(frozen=True)
class AthenaWorkgroup:
    """The environment's Athena workgroup: results under ``s3://<bucket>/<results_prefix>``, SSE-S3,
    workgroup settings enforced (clients cannot redirect results elsewhere)."""

    name: str
    bucket: str
    results_prefix: str
    encryption: str = "SSE_S3"
    enforce: bool = True

    def output_location(self, bucket_name: str) -> str:
        return f"s3://{bucket_name}/{self.results_prefix}"

    def configuration(self, bucket_name: str) -> dict[str, Any]:
        """The ``WorkGroupConfiguration`` in the API's shape (``athena.create_work_group(Configuration=...)``)."""
        return {
            "ResultConfiguration": {
                "OutputLocation": self.output_location(bucket_name),
                "EncryptionConfiguration": {"EncryptionOption": self.encryption},
            },
            "EnforceWorkGroupConfiguration": self.enforce,
            "PublishCloudWatchMetricsEnabled": True,
        }


def athena_workgroup(platform: Platform) -> AthenaWorkgroup:
    return AthenaWorkgroup(name=platform.name("athena"), bucket="reports", results_prefix=ATHENA_RESULTS_PREFIX + "/")
