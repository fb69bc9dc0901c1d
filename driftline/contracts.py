"""Every name two parts of Driftline must agree on, defined once: events, metrics, keys, items.

Pure data and string builders (no I/O, no imports beyond the standard library), so the serving
Lambda, the CDK app, the local runtime and the CLI all import it for free. A change of one event
name, key layout or item prefix is a change here; ``tests/unit/test_contracts.py`` fails when one
of these literals is written anywhere else.

Sections: EventBridge events (``source``/``detail-type`` and the detail fields consumers may
rely on), the serving API's test-traffic header, the CloudWatch metric namespace, S3 key layouts
(features, captures, reports buckets) and control-table item keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "APPROVAL_PREFIX",
    "ATHENA_RESULTS_PREFIX",
    "CAPTURES_PREFIX",
    "CAPTURE_ERRORS_PREFIX",
    "CONTROL_PREFIXES",
    "CURATED_PREFIX",
    "DATA_QUALITY_ALERT",
    "DATA_QUALITY_METRIC",
    "DEFAULT_MAX_SEGMENTS",
    "DRIFT_DETECTED",
    "DRIFT_RUNNING",
    "DRIFT_SCRATCH_PREFIX",
    "ESTIMATED_PERFORMANCE_DEGRADED_METRIC",
    "ESTIMATED_PERFORMANCE_METRIC",
    "EVENTS",
    "FEATURE_DATA_ACCEPTED",
    "FEEDBACK_PREFIX",
    "INCOMING_PREFIX",
    "INGEST_PARTS_MAX",
    "INGEST_SCRATCH_PREFIX",
    "LATE_ROWS_METRIC",
    "METRICS_NAMESPACE",
    "MULTIVARIATE_DRIFT_METRIC",
    "MULTIVARIATE_SCORE_METRIC",
    "PENDING_DIR",
    "QUALITY_RATE_METRICS",
    "QUARANTINE_PREFIX",
    "RETRAIN_REQUESTED",
    "S3_OBJECT_CREATED",
    "SCRATCH_EXPIRE_DAYS",
    "SEGMENT_DRIFT_METRIC",
    "SEGMENT_OTHER",
    "SEGMENT_SHARE_METRIC",
    "TEST_TRAFFIC_HEADER",
    "TRAINING_SCRATCH_PREFIX",
    "EventType",
    "approval_pk",
    "capture_error_prefix",
    "capture_prefix",
    "content_key",
    "curated_key",
    "curated_part_key",
    "curated_root",
    "drift_history_pk",
    "drift_lease_key",
    "drift_run_name",
    "drift_run_prefix",
    "drift_shard_data_prefix",
    "drift_shard_rows_key",
    "drift_shard_summary_key",
    "feedback_key",
    "feedback_prefix",
    "hour_prefix",
    "hour_prefixes",
    "incoming_key",
    "ingest_part_key",
    "ingest_parts_execution_name",
    "ingest_parts_prefix",
    "ingest_pk",
    "lock_key",
    "pending_key",
    "quarantine_prefix",
    "record_time",
    "report_prefix",
    "retrain_pk",
]


# ---- events on the platform bus ------------------------------------------------------------------
@dataclass(frozen=True)
class EventType:
    """One EventBridge event the platform publishes: who sends it, and the detail consumers read."""

    source: str
    detail_type: str
    detail_fields: tuple[str, ...]
    """Fields of ``detail`` a consumer may rely on (publishers may add more)."""

    def pattern(self, **detail: list[Any]) -> dict[str, Any]:
        """An EventBridge rule pattern matching this event (and ``detail`` values, if given)."""
        out: dict[str, Any] = {"source": [self.source], "detail-type": [self.detail_type]}
        if detail:
            out["detail"] = detail
        return out

    def entry(self, detail: dict[str, Any], bus: str) -> dict[str, Any]:
        """A ``PutEvents`` entry (the caller serializes ``detail``)."""
        import json

        return {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": json.dumps(detail),
            "EventBusName": bus,
        }


FEATURE_DATA_ACCEPTED = EventType(
    "driftline.ingest",
    "FeatureDataAccepted",
    ("feature_set", "feature_set_version", "upload_id", "rows_accepted", "has_labels", "curated_uri", "curated_keys"),
)
"""An upload committed accepted rows (``has_labels``: some carry labels, a retraining trigger)."""
DRIFT_DETECTED = EventType(
    "driftline.monitoring",
    "DriftDetected",
    ("model", "version", "window_start", "window_end", "share_drifted", "drifted_columns", "report_uri"),
)
"""A scheduled check found dataset drift (or a performance breach) for a model."""
RETRAIN_REQUESTED = EventType(
    "driftline.cli", "RetrainRequested", ("model", "requested_by", "reason", "require_approval", "version")
)
"""Someone asked for a retraining run (``driftline retrain``, the demo, a notebook)."""
EVENTS: tuple[EventType, ...] = (FEATURE_DATA_ACCEPTED, DRIFT_DETECTED, RETRAIN_REQUESTED)
S3_OBJECT_CREATED = "Object Created"
"""The detail-type of S3's own EventBridge notification (an alternative ingest trigger)."""

# ---- serving requests ----------------------------------------------------------------------------
TEST_TRAFFIC_HEADER = "X-Driftline-Test"
"""The request header that marks a prediction as test traffic (``1``/``true``): answered as usual, captured
with the mark, and left out of monitoring, canary evaluation and training (docs/serving.md)."""

# ---- metrics -------------------------------------------------------------------------------------
METRICS_NAMESPACE = "Driftline"
"""CloudWatch namespace of every platform metric (EMF from the functions, PutMetricData from drift)."""
LATE_ROWS_METRIC = "LateRows"
"""Captured rows a drift check found in windows already checked before they arrived (dimension Model)."""
DATA_QUALITY_METRIC = "DataQualityAlarm"
"""1 when a window failed a data-quality check, else 0 (dimension Model; driftline.drift.quality)."""
QUALITY_RATE_METRICS = {
    "missing_rate": "MissingRate",
    "out_of_range_rate": "OutOfRangeRate",
    "unseen_category_rate": "UnseenCategoryRate",
}
"""Per-column data-quality rates of a window (dimensions Model, Column), by check name."""
DATA_QUALITY_ALERT = "DataQualityAlert"
"""The ``event`` attribute of the SNS alert a failed data-quality check sends (not a drift alarm)."""
MULTIVARIATE_SCORE_METRIC = "MultivariateScore"
"""A window's multivariate drift statistic (dimensions Model, Method): the mean PCA reconstruction error
(``pca``) or the domain classifier's cross-validated ROC AUC (``domain_classifier``)."""
MULTIVARIATE_DRIFT_METRIC = "MultivariateDrift"
"""1 when the window's multivariate statistic left its bounds, else 0 (dimensions Model, Method)."""
ESTIMATED_PERFORMANCE_METRIC = "EstimatedPerformance"
"""A window's performance estimated without labels (dimensions Model, Metric, Bound: ``estimate``,
``lower``, ``upper``), by CBPE for classifiers and DLE for regressors (driftline.estimation)."""
ESTIMATED_PERFORMANCE_DEGRADED_METRIC = "EstimatedPerformanceDegraded"
"""1 when the configured estimated metric is past its tolerance, else 0 (dimension Model)."""
SEGMENT_SHARE_METRIC = "SegmentShareDrifted"
"""One segment's share of drifted feature columns (dimensions Model, SegmentColumn, Segment; drift.segments)."""
SEGMENT_DRIFT_METRIC = "SegmentDatasetDrift"
"""1 when one segment's window is dataset drift, else 0 (dimensions Model, SegmentColumn, Segment)."""
DEFAULT_MAX_SEGMENTS = 10
"""Segment values checked per ``drift.segments`` column by default (config and engine): the rest are one
``__other__`` segment."""
SEGMENT_OTHER = "__other__"
"""The segment of the values beyond a column's ``drift.max_segments`` most frequent ones, and of missing values."""

# ---- features bucket -----------------------------------------------------------------------------
INCOMING_PREFIX = "incoming"
CURATED_PREFIX = "curated"
QUARANTINE_PREFIX = "quarantine"
PENDING_DIR = "_pending"
"""``curated/<feature_set>/_pending/<upload-id>``: an upload whose commit has not finished.

Written before an upload's first curated file and deleted after its last write, so a reader that
skips the files of pending uploads never reads half a commit (a crashed one stays pending until a
retry or ``driftline features redrive`` finishes it). Not a ``date=`` partition: Athena's
projected partitions never look at it.
"""


def incoming_key(feature_set: str, name: str) -> str:
    """``incoming/<feature_set>/<name>``: where an upload lands (ingest validates it on arrival)."""
    return f"{INCOMING_PREFIX}/{feature_set}/{name}"


def curated_root(feature_set: str) -> str:
    return f"{CURATED_PREFIX}/{feature_set}/"


def curated_key(feature_set: str, day: str, upload_id: str) -> str:
    """``curated/<feature_set>/date=YYYY-MM-DD/<upload-id>.parquet``: one file per upload and UTC day."""
    return f"{CURATED_PREFIX}/{feature_set}/date={day}/{upload_id}.parquet"


def curated_part_key(feature_set: str, day: str, upload_id: str, part: int) -> str:
    """``curated/<feature_set>/date=YYYY-MM-DD/<upload-id>.part-NNNNN.parquet``: one file per part and UTC day
    of an upload validated in parts (the file stem up to its first dot is still the upload id)."""
    return f"{CURATED_PREFIX}/{feature_set}/date={day}/{upload_id}.part-{part:05d}.parquet"


def pending_key(feature_set: str, upload_id: str) -> str:
    return f"{CURATED_PREFIX}/{feature_set}/{PENDING_DIR}/{upload_id}"


def quarantine_prefix(feature_set: str, upload_id: str) -> str:
    return f"{QUARANTINE_PREFIX}/{feature_set}/{upload_id}/"


# ---- captures bucket -----------------------------------------------------------------------------
CAPTURES_PREFIX = "captures"
FEEDBACK_PREFIX = "feedback"
CAPTURE_ERRORS_PREFIX = "capture-errors"


def capture_prefix(model: str) -> str:
    """``captures/model=<model>/``: where the model's Firehose stream delivers (``YYYY/MM/DD/HH/`` below)."""
    return f"{CAPTURES_PREFIX}/model={model}/"


def feedback_prefix(model: str) -> str:
    """``feedback/model=<model>/``: where the model's labels are stored (``YYYY/MM/DD/HH/`` below)."""
    return f"{FEEDBACK_PREFIX}/model={model}/"


def capture_error_prefix(model: str) -> str:
    """``capture-errors/model=<model>/``: where the model's Firehose stream files records it could not
    deliver (Firehose's error-output-type and time below)."""
    return f"{CAPTURE_ERRORS_PREFIX}/model={model}/"


def hour_prefix(root: str, model: str, hour: datetime) -> str:
    """``<root>/model=<model>/YYYY/MM/DD/HH/`` for ``root`` ``captures`` or ``feedback`` (UTC hour)."""
    return f"{root}/model={model}/{hour:%Y/%m/%d/%H}/"


def hour_prefixes(root: str, model: str, start: datetime, end: datetime) -> list[str]:
    """:func:`hour_prefix` for every hour from ``start`` through ``end`` (none when ``end < start``)."""
    t = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while t <= end:
        out.append(hour_prefix(root, model, t))
        t += timedelta(hours=1)
    return out


def record_time(value: Any) -> datetime | None:
    """The ``ts`` of a capture or label record (ISO 8601, ``Z`` or an offset; naive = UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


DRIFT_SCRATCH_PREFIX = "drift-scratch"
"""``drift-scratch/model=<m>/<run>/``: one scale-out drift check's shard files (``data/shard=<k>/``,
written by Athena's UNLOAD) and shard summaries (``summaries/``); expired after :data:`SCRATCH_EXPIRE_DAYS`."""
TRAINING_SCRATCH_PREFIX = "training-scratch"
"""Features bucket: an Athena training-set build's scratch, ``training-scratch/<fs>/labels/build=<id>/``
(given label events, the ``<fs>_label_events`` table) and ``training-scratch/<fs>/athena/<id>/`` (the
UNLOAD); expired after :data:`SCRATCH_EXPIRE_DAYS` (the snapshot itself lives under ``training-sets/``)."""
INGEST_SCRATCH_PREFIX = "ingest-scratch"
"""Features bucket: an upload validated in parts, ``ingest-scratch/<fs>/<upload id>/`` (the plan, one
descriptor per part under ``items/`` for the Distributed Map's listing, part data, staged outputs and part
results); expired after :data:`SCRATCH_EXPIRE_DAYS` (the commit copies what it keeps)."""
INGEST_PARTS_MAX = 1000
"""Parts of one upload at most: what one S3 listing of the Distributed Map's item reader returns (moto reads
one listing only; on AWS the reader pages, but the commit reads every part result within one function)."""
SCRATCH_EXPIRE_DAYS = 7
"""Days after which scratch data (the scale-out check's ``drift-scratch/``, Athena's ``athena-results/``)
expires by S3 lifecycle rule, its noncurrent versions a day later: a check reads its scratch within its
run (hours), and a week leaves time to inspect a failed run."""


def ingest_parts_prefix(feature_set: str, upload_id: str) -> str:
    """``ingest-scratch/<feature_set>/<upload id>/``: everything the parts path of one upload writes."""
    return f"{INGEST_SCRATCH_PREFIX}/{feature_set}/{upload_id}/"


def ingest_part_key(feature_set: str, upload_id: str, kind: str, part: int | None = None, suffix: str = "") -> str:
    """``<parts prefix><kind>/part-NNNNN<suffix>`` (``items``, ``data``, ``staged``, ``results``), or
    ``<parts prefix><kind>/`` for ``part=None``: keys derived from (upload id, part), so a retry overwrites."""
    base = f"{ingest_parts_prefix(feature_set, upload_id)}{kind}/"
    return base if part is None else f"{base}part-{part:05d}{suffix}"


def ingest_parts_execution_name(upload_id: str, redrive: str | None = None) -> str:
    """``ingest-<upload id>[-<redrive marker>]``: one execution per upload, so a re-delivered event starts
    nothing twice, while a redrive (a fresh marker) may start it again (80 characters at most)."""
    name = f"ingest-{upload_id}" + (f"-{redrive}" if redrive else "")
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:80]


def drift_run_prefix(model: str, run: str) -> str:
    """``drift-scratch/model=<model>/<run>/``: everything one scale-out check writes."""
    return f"{DRIFT_SCRATCH_PREFIX}/model={model}/{run}/"


def drift_shard_data_prefix(model: str, run: str) -> str:
    """``<run prefix>data/``: the UNLOAD target (Athena writes ``shard=<k>/<file>`` below it)."""
    return f"{drift_run_prefix(model, run)}data/"


def drift_shard_summary_key(model: str, run: str, data_key: str) -> str:
    """``<run prefix>summaries/<path below data/>.json``: the summary of one shard file (idempotent)."""
    data = drift_shard_data_prefix(model, run)
    if not data_key.startswith(data) or len(data_key) == len(data):
        raise ValueError(f"{data_key!r} is not a shard file under {data}")
    return f"{drift_run_prefix(model, run)}summaries/{data_key[len(data) :]}.json"


def drift_shard_rows_key(model: str, run: str, data_key: str) -> str:
    """``<run prefix>estimates/<path below data/>.parquet``: the estimation rows of one shard file (the
    side file of its summary, :mod:`driftline.estimation.rows`)."""
    summary = drift_shard_summary_key(model, run, data_key)
    below = summary[len(drift_run_prefix(model, run)) + len("summaries/") : -len(".json")]
    return f"{drift_run_prefix(model, run)}estimates/{below}.parquet"


def drift_run_name(model: str, window_end: str) -> str:
    """``drift-<model>-<window end as digits>``: the workflow execution (and scratch run) of one window,
    the same for a retried schedule, so it never starts twice (Step Functions names allow 80 characters)."""
    digits = "".join(ch for ch in window_end if ch.isdigit())[:14]
    return f"drift-{model}-{digits}"[:80]


DRIFT_RUNNING = "running"
"""Status of a drift-history item whose window the scale-out workflow is checking: the window is taken
(the next scheduled window starts after it) but has no verdict yet."""


def feedback_key(model: str, when: datetime, object_id: str) -> str:
    """``feedback/model=<model>/YYYY/MM/DD/HH/<id>.jsonl``: one labels request, JSON lines."""
    return f"{hour_prefix(FEEDBACK_PREFIX, model, when)}{object_id}.jsonl"


# ---- reports bucket ------------------------------------------------------------------------------
ATHENA_RESULTS_PREFIX = "athena-results"
"""``athena-results/<query id>.csv``: the Athena workgroup's query results (SELECT output, ``.metadata``)."""


def report_prefix(model: str, window_end: str) -> str:
    """``drift/<model>/<window end>/``: ``result.json`` and ``report.html`` of one check."""
    return f"drift/{model}/{window_end}/"


# ---- control table items (pk, sk) ---------------------------------------------------------------
CONTROL_PREFIXES = {
    "INGEST#": "ingest records: pk INGEST#<feature set>, sk <event time>#<upload id> (features.ingest)",
    "CONTENT#": "content hashes of ingested uploads: pk CONTENT#<feature set>, sk <sha256> (features.ingest)",
    "LOCK#": "one retraining run per model: pk LOCK#<model>, sk RETRAIN (retraining.control); one drift check "
    "run per model and its late-capture scan mark: pk LOCK#<model>, sk DRIFT (monitoring.lateness)",
    "RETRAIN#": "trigger decisions and workflow steps: pk RETRAIN#<model>, sk <time>#<id> (retraining.control)",
    "APPROVAL#": "a run waiting for approval, with its task token: pk APPROVAL#<model>, sk <version> "
    "(retraining.approvals)",
    "DRIFT#": "drift check history: pk DRIFT#<model> (monitoring.history)",
}
"""Every item kind of the control table, its key layout and the one module that decides its content (the
items are encoded by :mod:`driftline.control_items` and read and written through :mod:`driftline.control_store`)."""


def ingest_pk(feature_set: str) -> str:
    return f"INGEST#{feature_set}"


def content_key(feature_set: str, sha256: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"CONTENT#{feature_set}"}, "sk": {"S": sha256}}


def lock_key(model: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"LOCK#{model}"}, "sk": {"S": "RETRAIN"}}


def drift_lease_key(model: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"LOCK#{model}"}, "sk": {"S": "DRIFT"}}


def retrain_pk(model: str) -> str:
    return f"RETRAIN#{model}"


APPROVAL_PREFIX = "APPROVAL#"
"""Partition keys of waiting approvals: IAM denies every role but the workflow's and approve's these keys."""


def approval_pk(model: str) -> str:
    return f"{APPROVAL_PREFIX}{model}"


def drift_history_pk(model: str) -> str:
    return f"DRIFT#{model}"
