"""The deployed Glue tables and Athena workgroup are exactly the one catalog definition
(``driftline/athena_tables.py``) the local platform provisions too."""

from __future__ import annotations

from typing import Any

from driftline.athena_tables import athena_workgroup, database_name, platform_tables
from driftline.features.schema import FeatureSetCatalog
from tests.infrastructure.conftest import ROOT, Synth

BUCKET_TOKEN = "BUCKET"


def _resolve(value: Any) -> Any:
    """Replace ``Fn::Join`` of a bucket ``Ref`` with a placeholder, so template and spec compare as data."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Join"}:
            sep, parts = value["Fn::Join"]
            return sep.join(BUCKET_TOKEN if isinstance(p, dict) else str(p) for p in parts)
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v not in ([], None, {})}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def test_glue_tables_are_the_specs(synth: Synth) -> None:
    specs = platform_tables(synth.platform, FeatureSetCatalog(ROOT / synth.platform.config.feature_sets_dir))
    deployed = {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]
        for r in synth.resources("AWS::Glue::Table", "data").values()
    }
    assert set(deployed) == {s.name for s in specs}
    for spec in specs:
        props = deployed[spec.name]
        assert props["DatabaseName"] == database_name(synth.platform) == spec.database
        assert _resolve(props["TableInput"]) == _drop_empty(spec.table_input(BUCKET_TOKEN))


def test_workgroup_is_the_spec(synth: Synth) -> None:
    spec = athena_workgroup(synth.platform)
    (wg,) = synth.resources("AWS::Athena::WorkGroup", "data").values()
    props = wg["Properties"]
    assert props["Name"] == spec.name
    assert _resolve(props["WorkGroupConfiguration"]) == spec.configuration(BUCKET_TOKEN)
