"""The Arrow schema of curated feature data, derived from a :class:`FeatureSet`.

Every curated Parquet file is written with exactly this schema (labels included, null when an
upload had none), so readers, the Glue table (``driftline.features.catalog``) and the training
set builder never meet two shapes of the same feature set.
"""

from __future__ import annotations

import pyarrow as pa

from driftline.features.schema import Feature, FeatureSet, Label

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

_FEATURE_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "categorical": pa.string(),
    "string": pa.string(),
    "timestamp": TIMESTAMP_TYPE,
}


def feature_type(feature: Feature) -> pa.DataType:
    return _FEATURE_TYPES[feature.type]


def label_type(label: Label) -> pa.DataType:
    """float64 for regression; int64 when every class is an int; string otherwise."""
    if label.task == "regression":
        return pa.float64()
    if label.class_values and all(isinstance(c, int) and not isinstance(c, bool) for c in label.class_values):
        return pa.int64()
    return pa.string()


def curated_schema(fs: FeatureSet) -> pa.Schema:
    """entity keys (string), event timestamp (UTC, µs), features, labels — in definition order."""
    fields = [pa.field(e, pa.string(), nullable=False) for e in fs.entity]
    fields.append(pa.field(fs.timestamp, TIMESTAMP_TYPE, nullable=False))
    fields += [pa.field(f.name, feature_type(f), nullable=f.nullable) for f in fs.features]
    fields += [pa.field(lb.name, label_type(lb)) for lb in fs.labels]
    return pa.schema(
        fields,
        metadata={
            "driftline.feature_set": fs.name,
            "driftline.feature_set_version": str(fs.version),
            "driftline.feature_set_fingerprint": fs.fingerprint,
        },
    )


def required_columns(fs: FeatureSet) -> list[str]:
    """Columns every upload must have: entity keys, the event timestamp and every feature."""
    return [*fs.entity, fs.timestamp, *fs.feature_names]
