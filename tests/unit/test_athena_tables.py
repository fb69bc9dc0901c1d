"""The catalog's one definition: the Glue table input both CDK and the local platform send."""

from __future__ import annotations

from typing import Any

import pytest

from driftline import athena_tables as at
from driftline.features.catalog import glue_columns


def test_feature_set_table_is_projected_zstd_parquet(platform_def: Any, credit_fs: Any) -> None:
    spec = at.feature_set_table(platform_def, credit_fs)
    ti = spec.table_input("bkt")
    assert spec.database == platform_def.prefix.replace("-", "_") == at.database_name(platform_def)
    assert ti["Name"] == credit_fs.name
    assert ti["StorageDescriptor"]["Location"] == f"s3://bkt/curated/{credit_fs.name}/"
    assert ti["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == at.PARQUET_SERDE
    assert [c["Name"] for c in ti["StorageDescriptor"]["Columns"]] == [c["name"] for c in glue_columns(credit_fs)]
    assert ti["PartitionKeys"] == [{"Name": "date", "Type": "string"}]
    params = ti["Parameters"]
    assert params["projection.enabled"] == "true" and params["projection.date.type"] == "date"
    assert params["storage.location.template"] == f"s3://bkt/curated/{credit_fs.name}/date=${{date}}"
    assert params["driftline.feature_set_version"] == str(credit_fs.version)


def test_json_lines_table_uses_the_hive_json_serde() -> None:
    spec = at.TableSpec(
        database="db",
        name="events",
        bucket="captures",
        prefix="x/",
        columns=(at.Column("id", "string"), at.Column("rows", "array<struct<a:bigint,b:string>>")),
        format="json-lines",
    )
    ti = spec.table_input("b")
    assert ti["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == at.JSON_SERDE
    assert ti["Parameters"] == {"classification": "json"}
    assert ti["StorageDescriptor"]["Columns"][1]["Type"] == "array<struct<a:bigint,b:string>>"
    assert spec.qualified_name == "db.events"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "no-slash"}, "must end with '/'"),
        ({"format": "csv"}, "unknown format"),
        ({"partition_keys": (at.Column("id", "string"),)}, "repeated column names id"),
    ],
)
def test_invalid_specs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "database": "db",
        "name": "t",
        "bucket": "b",
        "prefix": "p/",
        "columns": (at.Column("id", "string"),),
        "format": "parquet",
    }
    with pytest.raises(ValueError, match=message):
        at.TableSpec(**{**base, **kwargs})


def test_platform_tables_one_per_feature_set_and_two_per_model(platform_def: Any, credit_fs: Any) -> None:
    models = [m.name.replace("-", "_") for m in platform_def.config.models]
    assert [t.name for t in at.platform_tables(platform_def, [credit_fs])] == [
        credit_fs.name,
        f"{credit_fs.name}_label_events",
        *(f"{kind}_{m}" for m in models for kind in ("captures", "feedback")),
    ]
    with pytest.raises(ValueError, match="repeated"):
        at.platform_tables(platform_def, [credit_fs, credit_fs])


def test_workgroup_enforces_encrypted_results(platform_def: Any) -> None:
    wg = at.athena_workgroup(platform_def)
    cfg = wg.configuration("reports-bkt")
    assert wg.name == platform_def.name("athena")
    assert cfg["EnforceWorkGroupConfiguration"] is True
    assert cfg["ResultConfiguration"]["OutputLocation"].startswith("s3://reports-bkt/athena-results/")
    assert cfg["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
