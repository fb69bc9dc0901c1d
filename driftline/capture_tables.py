"""The Glue tables over captures and feedback labels, per model, so Athena can query both.

Per model ``m`` (one Firehose stream each):

- ``captures_<m>``: the capture records (:mod:`driftline.capture_format`): the request's scalar
  fields, ``cols struct<…one array<type> per feature…>`` (format v3, the rows by column),
  ``rows array<struct<…the model's features…>>`` (format v2, the row layout), ``outputs
  array<struct<label, probability, probabilities, value>>``, ``index``/``part``/``parts``; JSON lines
  under ``captures/model=<m>/YYYY/MM/DD/HH/``. A line has either ``cols`` or ``rows`` (the other reads
  as null), and older v1 lines (one per row) have neither: they fill ``features``/``prediction``. The
  Python reader (:class:`driftline.captures_store.CapturesStore`) reads all three.
- ``feedback_<m>``: one line per label (``request_id`` = the row id, ``label``, ``ts``, ``by``) under
  ``feedback/model=<m>/YYYY/MM/DD/HH/``.

Both are partitioned by ``hour`` with partition projection over the hour layout Firehose writes when
its prefix holds no timestamp expression (``YYYY/MM/DD/HH/`` in UTC after ``captures/model=<m>/``,
stacks/serving_stack.py) and the feedback writer copies (:func:`driftline.contracts.feedback_key`),
so no crawler and no partition maintenance are needed. Column types come from the model's feature set,
so a query reads typed features without parsing JSON itself.

:func:`model_tables` is called by :func:`driftline.athena_tables.platform_tables`, so the CDK stack and
the local platform create these tables from the same specs.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftline.athena_tables import Column, TableSpec, database_name
from driftline.capture_format import (
    COLUMNS_FIELD,
    INDEX_FIELD,
    OUTPUT_FIELD,
    PARTS_FIELDS,
    REQUEST_FIELDS,
    ROW_FIELD,
    TEST_FIELD,
)
from driftline.contracts import CAPTURES_PREFIX, FEEDBACK_PREFIX, capture_prefix, feedback_prefix
from driftline.features.catalog import GLUE_TYPES
from driftline.features.schema import FeatureSet
from driftline.platform import Platform
from driftline.serving.labels import FEEDBACK_BY

__all__ = [
    "HOUR_PARTITION",
    "TEST_FIELD",
    "V1_FEATURES_FIELD",
    "V1_PREDICTION_FIELD",
    "capture_columns",
    "captures_table",
    "captures_table_name",
    "feedback_table",
    "feedback_table_name",
    "hour_projection",
    "model_tables",
]

V1_FEATURES_FIELD = "features"
"""A v1 capture's row (format v1: one line per predicted row, :mod:`driftline.capture_format`)."""
V1_PREDICTION_FIELD = "prediction"
"""A v1 capture's output."""
HOUR_PARTITION = "hour"
"""The projected partition of both tables: ``yyyy/MM/dd/HH``, the hour directory Firehose writes."""
HOUR_RANGE_START = "2020/01/01/00"
"""The earliest hour projected (Athena only lists the hours a query's ``hour`` predicate names)."""


def captures_table_name(model: str) -> str:
    """``captures_<model>`` in Glue's character set (lower case, ``_`` for ``-``)."""
    return f"{CAPTURES_PREFIX}_{model}".replace("-", "_").lower()


def feedback_table_name(model: str) -> str:
    """``feedback_<model>`` in Glue's character set (lower case, ``_`` for ``-``)."""
    return f"{FEEDBACK_PREFIX}_{model}".replace("-", "_").lower()


def hour_projection() -> tuple[tuple[str, str], ...]:
    """Partition projection of ``hour`` over the Firehose hour layout (one partition per UTC hour)."""
    return (
        (f"{HOUR_PARTITION}.type", "date"),
        (f"{HOUR_PARTITION}.format", "yyyy/MM/dd/HH"),
        (f"{HOUR_PARTITION}.range", f"{HOUR_RANGE_START},NOW"),
        (f"{HOUR_PARTITION}.interval", "1"),
        (f"{HOUR_PARTITION}.interval.unit", "HOURS"),
    )


def _label_type(fs: FeatureSet) -> str | None:
    """The Glue type of the model's label, or None for a feature set without one."""
    label = fs.label
    if label is None:
        return None
    if label.task == "regression":
        return "double"
    return "bigint" if all(isinstance(c, int) for c in label.class_values) else "string"


def _field_types(fs: FeatureSet) -> list[tuple[str, str]]:
    """The model's features and their Glue types as captured (timestamps stay the ISO text the client sent)."""
    return [(f.name, "string" if f.type == "timestamp" else GLUE_TYPES[f.type]) for f in fs.features]


def _row_type(fs: FeatureSet) -> str:
    """A row as received: the model's features."""
    return f"struct<{','.join(f'{name}:{t}' for name, t in _field_types(fs))}>"


def _columns_type(fs: FeatureSet) -> str:
    """The rows by column (format v3): one array per feature, in the same order as :func:`_row_type`'s fields."""
    return f"struct<{','.join(f'{name}:array<{t}>' for name, t in _field_types(fs))}>"


def _output_type(fs: FeatureSet) -> str:
    """A prediction: ``value`` (regression) or ``label``, ``probability`` and ``probabilities`` (classes)."""
    label = _label_type(fs)
    if label is None or label == "double":
        return "struct<value:double>"
    return f"struct<label:{label},probability:double,probabilities:map<string,double>>"


def capture_columns(fs: FeatureSet) -> tuple[Column, ...]:
    """The columns of a captures table for a model trained on ``fs``: the request's fields, the rows by
    column (v3) and as rows (v2, nullable: older records and the writer's fallback), the outputs, then the
    nullable v1 fields (so a window still holding v1 captures is read whole by the scale-out query) and the
    test traffic flag. A line lacking a field reads it as NULL."""
    scalars = tuple(Column(name, glue_type) for name, glue_type in REQUEST_FIELDS)
    return (
        *scalars,
        Column(ROW_FIELD, f"array<{_row_type(fs)}>", "format v2: the request's rows as received"),
        Column(COLUMNS_FIELD, _columns_type(fs), "format v3: the request's rows by column, one value per row"),
        Column(OUTPUT_FIELD, f"array<{_output_type(fs)}>", "one prediction per row, in order"),
        Column(INDEX_FIELD, "array<int>", "the rows' positions in the request when not 0..n-1"),
        *(Column(name, "int", "split records only") for name in PARTS_FIELDS),
        Column(V1_FEATURES_FIELD, _row_type(fs), "v1 captures only: the row"),
        Column(V1_PREDICTION_FIELD, _output_type(fs), "v1 captures only: the prediction"),
        Column(TEST_FIELD, "boolean", "true on test traffic (not monitored)"),
    )


def captures_table(platform: Platform, model: str, fs: FeatureSet) -> TableSpec:
    """The captures of ``model`` (JSON lines, projected on ``hour``)."""
    return TableSpec(
        database=database_name(platform),
        name=captures_table_name(model),
        bucket="captures",
        prefix=capture_prefix(model),
        columns=capture_columns(fs),
        format="json-lines",
        partition_keys=(Column(HOUR_PARTITION, "string"),),
        projection=hour_projection(),
        location_template=f"${{{HOUR_PARTITION}}}",
        description=f"Inference captures of model {model} (a record per request and role: v3 columns, v2 rows; v1)",
        parameters=(("driftline.feature_set", fs.name), ("driftline.feature_set_version", str(fs.version))),
    )


def feedback_table(platform: Platform, model: str, fs: FeatureSet) -> TableSpec:
    """The feedback labels of ``model`` (JSON lines, projected on ``hour``); ``request_id`` is a row id."""
    return TableSpec(
        database=database_name(platform),
        name=feedback_table_name(model),
        bucket="captures",
        prefix=feedback_prefix(model),
        columns=(
            Column("request_id", "string", "the labeled row: <request id>:<row position>"),
            Column("label", _label_type(fs) or "string"),
            Column("ts", "string", "when the label was stored (ISO 8601)"),
            Column(FEEDBACK_BY, "string", "the principal that submitted it, if authenticated"),
        ),
        format="json-lines",
        partition_keys=(Column(HOUR_PARTITION, "string"),),
        projection=hour_projection(),
        location_template=f"${{{HOUR_PARTITION}}}",
        description=f"Feedback labels of model {model}",
    )


def model_tables(platform: Platform, feature_sets: Iterable[FeatureSet]) -> list[TableSpec]:
    """The captures and feedback tables of every configured model whose feature set is among
    ``feature_sets`` (the columns are typed from it; a catalog built for some feature sets only, as
    tests and partial provisioning do, gets the tables of the models it can type)."""
    by_name = {fs.name: fs for fs in feature_sets}
    out: list[TableSpec] = []
    for m in platform.config.models:
        fs = by_name.get(m.feature_set)
        if fs is not None:
            out += [captures_table(platform, m.name, fs), feedback_table(platform, m.name, fs)]
    return out
