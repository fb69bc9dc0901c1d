"""Feature set → Glue/Athena table columns (used by the CDK catalog; same types the curated
Parquet files are written with)."""

from __future__ import annotations

from driftline.features.schema import FeatureSet

GLUE_TYPES = {
    "int": "bigint",
    "float": "double",
    "bool": "boolean",
    "categorical": "string",
    "string": "string",
    "timestamp": "timestamp",
}


def glue_columns(fs: FeatureSet) -> list[dict[str, str]]:
    """Columns of the curated table: entity keys, event timestamp, features, labels (not ``date``,
    the partition key)."""
    cols = [{"name": e, "type": "string", "comment": "entity key"} for e in fs.entity]
    cols.append({"name": fs.timestamp, "type": "timestamp", "comment": "event timestamp (UTC)"})
    cols += [{"name": f.name, "type": GLUE_TYPES[f.type], "comment": f.description[:255]} for f in fs.features]
    for label in fs.labels:
        ltype = (
            "double"
            if label.task == "regression"
            else ("bigint" if all(isinstance(c, int) for c in label.class_values) else "string")
        )
        cols.append({"name": label.name, "type": ltype, "comment": f"label ({label.task})"})
    return cols
