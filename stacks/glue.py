"""Glue Data Catalog of the platform: the database and one ``AWS::Glue::Table`` per table spec of
:mod:`driftline.athena_tables` (the local platform creates the same tables from the same specs), so
Athena queries need no crawler; partition projection means no partition maintenance either."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from driftline.athena_tables import TableSpec, athena_workgroup, database_name, platform_tables
from driftline.features.schema import FeatureSetCatalog
from driftline.platform import Platform


def _table_input(spec: TableSpec, bucket_name: str) -> glue.CfnTable.TableInputProperty:
    """The spec's Glue ``TableInput`` as CDK properties (the same dict the local platform sends to Glue)."""
    ti = spec.table_input(bucket_name)
    sd = ti["StorageDescriptor"]

    def columns(cols: list[dict[str, str]]) -> list[glue.CfnTable.ColumnProperty]:
        return [glue.CfnTable.ColumnProperty(name=c["Name"], type=c["Type"], comment=c.get("Comment")) for c in cols]

    return glue.CfnTable.TableInputProperty(
        name=ti["Name"],
        table_type=ti["TableType"],
        description=ti["Description"],
        partition_keys=columns(ti["PartitionKeys"]),
        parameters=ti["Parameters"],
        storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
            location=sd["Location"],
            columns=columns(sd["Columns"]),
            input_format=sd["InputFormat"],
            output_format=sd["OutputFormat"],
            serde_info=glue.CfnTable.SerdeInfoProperty(
                serialization_library=sd["SerdeInfo"]["SerializationLibrary"],
                parameters=sd["SerdeInfo"].get("Parameters"),
            ),
        ),
    )


class FeatureCatalog(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        platform: Platform,
        buckets: Mapping[str, s3.IBucket],
        feature_sets_dir: Path,
    ) -> None:
        super().__init__(scope, cid)
        account = Stack.of(self).account
        self.database_name = database_name(platform)
        db = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="Driftline curated feature data (Hive-partitioned zstd Parquet)"
            ),
        )
        self.tables = platform_tables(platform, FeatureSetCatalog(feature_sets_dir))
        for spec in self.tables:
            table = glue.CfnTable(
                self,
                f"Table{spec.name.title().replace('_', '')}",
                catalog_id=account,
                database_name=self.database_name,
                table_input=_table_input(spec, buckets[spec.bucket].bucket_name),
            )
            table.add_dependency(db)


class AthenaWorkgroup(Construct):
    """The environment's Athena workgroup (:func:`driftline.athena_tables.athena_workgroup`): results
    under one prefix of the reports bucket, SSE-S3 encrypted, the workgroup's settings enforced so no
    client can send results elsewhere or unencrypted. The local platform creates the same workgroup."""

    def __init__(self, scope: Construct, cid: str, *, platform: Platform, buckets: Mapping[str, s3.IBucket]) -> None:
        super().__init__(scope, cid)
        spec = athena_workgroup(platform)
        config = spec.configuration(buckets[spec.bucket].bucket_name)
        result = config["ResultConfiguration"]
        self.name = spec.name
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=spec.name,
            description="Driftline queries (drift at scale, point-in-time joins)",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=config["EnforceWorkGroupConfiguration"],
                publish_cloud_watch_metrics_enabled=config["PublishCloudWatchMetricsEnabled"],
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=result["OutputLocation"],
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option=result["EncryptionConfiguration"]["EncryptionOption"]
                    ),
                ),
            ),
        )
