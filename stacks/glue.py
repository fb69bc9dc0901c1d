"""Glue Data Catalog for the curated feature data: one table per feature set, partition projection
on ``date`` so Athena queries need no crawler and no partition maintenance."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from driftline.features.catalog import glue_columns
from driftline.features.schema import FeatureSetCatalog
from driftline.platform import Platform


class FeatureCatalog(Construct):
    def __init__(
        self, scope: Construct, cid: str, *, platform: Platform, bucket: s3.IBucket, feature_sets_dir: Path
    ) -> None:
        super().__init__(scope, cid)
        account = Stack.of(self).account
        self.database_name = platform.prefix.replace("-", "_")
        db = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="Driftline curated feature data (Hive-partitioned zstd Parquet)"
            ),
        )
        for fs in FeatureSetCatalog(feature_sets_dir):
            location = f"s3://{bucket.bucket_name}/curated/{fs.name}/"
            table = glue.CfnTable(
                self,
                f"Table{fs.name.title().replace('_', '')}",
                catalog_id=account,
                database_name=self.database_name,
                table_input=glue.CfnTable.TableInputProperty(
                    name=fs.name,
                    table_type="EXTERNAL_TABLE",
                    description=fs.description or f"Curated rows of feature set {fs.name}",
                    partition_keys=[glue.CfnTable.ColumnProperty(name="date", type="string")],
                    parameters={
                        "classification": "parquet",
                        "parquet.compression": "ZSTD",
                        "projection.enabled": "true",
                        "projection.date.type": "date",
                        "projection.date.format": "yyyy-MM-dd",
                        "projection.date.range": "2000-01-01,NOW",
                        "projection.date.interval": "1",
                        "projection.date.interval.unit": "DAYS",
                        "storage.location.template": location + "date=${date}",
                        "driftline.feature_set_version": str(fs.version),
                    },
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=location,
                        columns=[
                            glue.CfnTable.ColumnProperty(name=c["name"], type=c["type"], comment=c.get("comment"))
                            for c in glue_columns(fs)
                        ],
                        input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                        output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                        ),
                    ),
                ),
            )
            table.add_dependency(db)
