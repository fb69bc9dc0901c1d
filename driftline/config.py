"""Typed platform configuration: the one object both the CDK app and the local runtime read.

The source is the ``cdk.json`` context (``driftline:env`` picks an entry of ``driftline:environments``).
Every mistake is reported as one line naming the key, the value and what is allowed, because
infra engineers meet these errors at ``cdk synth`` time and a pydantic traceback helps nobody.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftline.contracts import DEFAULT_MAX_SEGMENTS

ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
TRAINER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
"""``package.module:function``: what ``models[].trainer`` must look like."""
IAM_PRINCIPAL_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}$")
"""An IAM role or user ARN (an assumed-role session matches its role): ``models[].labelers``."""
API_KEY_ID_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
"""An API Gateway API key id (``requestContext.identity.apiKeyId``): ``models[].labelers`` in api_key mode."""

Algorithm = Literal["hist_gradient_boosting", "random_forest", "logistic_regression", "linear_regression"]
ApprovalMode = Literal["auto", "manual"]
DeployMode = Literal["direct", "shadow", "canary"]
AuthMode = Literal["iam", "api_key"]
RemovalMode = Literal["retain", "destroy"]


class ConfigError(ValueError):
    """A configuration mistake, phrased for the person who wrote the config."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


WORKFLOW_TIMEOUT_SECONDS = 7 * 86400
"""The retraining state machine's own timeout (stacks/pipeline_stack.py): a run's approval wait plus
its longest canary bake must fit inside it, or a timed-out run would leave its challenger serving."""
WORKFLOW_STEPS_ALLOWANCE_SECONDS = 3600
"""What the rest of a run (training, gate, deploy, promotion) is given inside that timeout."""

CAPTURE_BUFFER_SECONDS = 60
"""The capture streams' Firehose buffering interval (stacks/serving_stack.py): a capture reaches S3 up
to this long after it was sent, which is what a drift window's allowed lateness must cover."""
LATENESS_MARGIN_SECONDS = 240
"""Added to the buffering interval for the default lateness on AWS: Firehose's delivery retries and a
busy stream's extra buffers (records later than that are counted as late and may re-check a window)."""
LOCAL_ALLOWED_LATENESS_SECONDS = 5
"""The default lateness on the local platform, whose Firehose writes each record to S3 at once
(``DRIFTLINE_LOCAL=1`` in the functions' environment selects it)."""
MAX_ALLOWED_LATENESS_SECONDS = 86_400
"""A window is checked at most a day after it ended: later than that a check reports stale news."""
MAX_SEGMENTS_LIMIT = 50
"""The most segment values per column: each one is a reference profile in the profile artifact and a set of
CloudWatch metrics per window."""
MAX_SEGMENT_COLUMNS = 3
"""Columns per model in ``drift.segments`` (each multiplies the checks a window runs)."""

DEFAULT_MAX_REGRESSION = 0.01
"""The absolute tolerance when neither ``max_regression`` nor ``max_relative_regression`` is set."""


class QualityGate(_Strict):
    """Absolute floors (or ceilings for error metrics) and the allowed regression against the champion.

    The regression tolerance is either absolute (``max_regression``, in the metric's own units, so at
    most 1: the whole range of a score such as ROC AUC) or relative (``max_relative_regression``, a
    fraction of the champion's value: the only usable form for error metrics such as RMSE, whose
    scale is the label's). One of the two, never both: two tolerances would leave the reader
    guessing which one binds.
    """

    min_metrics: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.6})
    max_metrics: dict[str, float] = Field(default_factory=dict)
    max_regression: float | None = Field(default=None, ge=0.0)
    max_relative_regression: float | None = Field(default=None, ge=0.0, le=1.0)
    primary_metric: str = "roc_auc"

    @field_validator("max_regression")
    @classmethod
    def _absolute(cls, v: float | None) -> float | None:
        if v is not None and v > 1.0:
            raise ValueError(
                "max_regression is absolute, in the metric's own units, and at most 1 (the whole "
                "range of a score such as roc_auc); for an error metric such as rmse set "
                "max_relative_regression instead (a fraction of the champion's value, e.g. 0.05 "
                "allows a candidate 5% worse)"
            )
        return v

    @model_validator(mode="after")
    def _one_tolerance(self) -> QualityGate:
        if self.max_regression is not None and self.max_relative_regression is not None:
            raise ValueError(
                "set max_regression (absolute, in the metric's units) or max_relative_regression "
                "(a fraction of the champion's value), not both"
            )
        return self

    @property
    def absolute_regression(self) -> float | None:
        """The absolute tolerance in effect, or None when the relative one is configured."""
        if self.max_relative_regression is not None:
            return None
        return DEFAULT_MAX_REGRESSION if self.max_regression is None else self.max_regression


DriftWeighting = Literal["importance", "uniform"]
"""How per-column drift adds up to the dataset share: by the model's feature importance, or equally."""


class DataQualityThresholds(_Strict):
    """Per-window data-quality limits (driftline.drift.quality); a column past any limit raises the
    data-quality alert, which is not drift: retraining on broken inputs would learn the breakage."""

    missing_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """The allowed rise of a column's missing share over the reference's (absolute, 0.05 = 5 points)."""
    out_of_range_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """Share of a numeric column's values outside the declared min/max widened to the reference's range."""
    unseen_category_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    """Share of a categorical column's values outside its declared categories (else the reference's)."""


EstimatedMetric = Literal["roc_auc", "accuracy", "precision", "recall", "f1", "mae", "rmse"]
CLASSIFIER_ESTIMATES = ("roc_auc", "accuracy", "precision", "recall", "f1")
"""What CBPE estimates for classifiers; DLE estimates ``mae`` and ``rmse`` for regressors."""


class EstimatedPerformanceSettings(_Strict):
    """Performance estimated without labels (driftline.estimation: CBPE for classifiers, DLE for
    regressors), fitted at training time and alarmed on like drift (same persistence rule)."""

    enabled: bool = True
    metric: EstimatedMetric | None = None
    """The metric that alarms; None: ``roc_auc`` for classifiers, ``mae`` for regressors."""
    tolerance: float = Field(default=0.05, ge=0.0, le=1.0)
    """As ``performance_tolerance``: scores may fall this much (absolute) below the holdout's value,
    errors rise this much relative to it, before the window counts as degraded."""
    min_rows: int = Field(default=200, ge=10)
    """Fewer usable captured rows in a window: ``insufficient_data``, no estimate and no alarm."""
    calibration: Literal["isotonic", "platt"] = "isotonic"
    """How a classifier's probabilities are calibrated on the holdout (Platt suits small holdouts)."""


class DriftSettings(_Strict):
    schedule: str = "rate(1 hour)"
    share_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    persistence_windows: int = Field(default=1, ge=1, le=48)
    min_window_rows: int = Field(default=200, ge=1)
    min_labels: int = Field(default=100, ge=1)
    performance_tolerance: float = Field(default=0.05, ge=0.0, le=1.0)
    profile_sample_size: int = Field(default=5000, ge=100, le=1_000_000)
    reference_rows: int | None = Field(default=100_000, ge=100)
    """Training rows (train + holdout, evenly spaced) the reference profile is built from; None: all."""
    weighting: DriftWeighting = "importance"
    """``importance``: the share of drifted columns is weighted by the model's feature importance
    (stored with the profile at training time), so one shifted feature the model relies on alarms
    while noise in unused columns does not; profiles without importances count columns equally."""
    alert_on_columns: tuple[str, ...] = ()
    """Feature columns whose drift alone is dataset drift (checked against the feature set at load)."""
    segments: tuple[str, ...] = Field(default=(), max_length=MAX_SEGMENT_COLUMNS)
    """Categorical features whose values each get their own drift, data-quality and estimated-performance
    check (checked against the feature set at load): a shift confined to one region shows there even when
    the whole window does not move. The per-segment reference is built with the profile at training."""
    max_segments: int = Field(default=DEFAULT_MAX_SEGMENTS, ge=1, le=MAX_SEGMENTS_LIMIT)
    """Segment values checked per column: the reference's most frequent ones; the rest (and missing values)
    are checked together as one ``__other__`` segment, so a high-cardinality column cannot multiply the
    result size and the CloudWatch metrics."""
    min_segment_rows: int = Field(default=200, ge=1)
    """A segment with fewer rows in the window is ``insufficient_data`` (no alarm): one segment's small
    sample must not alarm on noise."""
    quality: DataQualityThresholds = Field(default_factory=DataQualityThresholds)
    estimated_performance: EstimatedPerformanceSettings = Field(default_factory=EstimatedPerformanceSettings)
    allowed_lateness_seconds: int | None = Field(default=None, ge=0, le=MAX_ALLOWED_LATENESS_SECONDS)
    """This model's override of ``monitoring.allowed_lateness_seconds`` (None: the platform's)."""
    late_recheck_share: float | None = Field(default=None, ge=0.0, le=1.0)
    """This model's override of ``monitoring.late_recheck_share`` (None: the platform's)."""

    @field_validator("alert_on_columns", "segments")
    @classmethod
    def _alert_columns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({c for c in v if v.count(c) > 1})
        if dupes:
            raise ValueError(f"columns listed more than once: {', '.join(dupes)}")
        return v


class MonitoringSettings(_Strict):
    """Platform-wide defaults of the scheduled drift checks (each model's ``drift`` may override them)."""

    allowed_lateness_seconds: int | None = Field(default=None, ge=0, le=MAX_ALLOWED_LATENESS_SECONDS)
    """A window ``[start, end)`` is checked only after ``end`` plus this; None: the capture stream's
    buffering interval plus a margin on AWS, a few seconds on the local platform."""
    late_recheck_share: float = Field(default=0.05, ge=0.0, le=1.0)
    """A checked window is checked again when rows arriving after its check exceed this share of the
    rows it was checked with (any late row when it had fewer than ``min_window_rows``)."""
    scale_out_rows: int | None = Field(default=1_000_000, ge=1)
    """A window estimated at this many captured rows or more is checked by the scale-out workflow (Athena,
    Distributed Map, reduce) instead of in the drift function; None: never by rows."""
    scale_out_bytes: int | None = Field(default=None, ge=1)
    """The same by the window's capture bytes (listed object sizes); None: never by bytes."""
    scale_out_shard_rows: int = Field(default=250_000, ge=1_000, le=5_000_000)
    """Rows per shard the query aims at (shards = estimated rows / this, 1..100): one summarize task
    holds one shard in memory."""
    multivariate: Literal["pca", "domain_classifier", "off"] = "pca"
    """Multivariate drift in every check (driftline.drift.multivariate): ``pca`` (reconstruction error;
    sums that merge across shards, so it runs in the drift function and the scale-out path), ``domain_classifier``
    (a classifier against the profile's reference sample, for small windows; needs scikit-learn where the
    check runs and the window's rows, else reported unavailable) or ``off``. A multivariate alarm makes the
    window drifted (reason ``multivariate_drift``)."""
    multivariate_auc_threshold: float = Field(default=0.65, gt=0.5, le=1.0)
    """``domain_classifier``: drift above this cross-validated ROC AUC (NannyML's default upper bound)."""
    multivariate_max_rows: int = Field(default=1000, ge=10, le=100_000)
    """``domain_classifier``: the window's rows are sampled down to this many, so the fits stay small."""

    def lateness_seconds(self, drift: DriftSettings, *, local: bool) -> int:
        """The allowed lateness of one model's windows: its override, the platform's, or the default."""
        for v in (drift.allowed_lateness_seconds, self.allowed_lateness_seconds):
            if v is not None:
                return v
        return LOCAL_ALLOWED_LATENESS_SECONDS if local else CAPTURE_BUFFER_SECONDS + LATENESS_MARGIN_SECONDS

    def recheck_share(self, drift: DriftSettings) -> float:
        """The late share that re-checks one model's windows: its override or the platform's."""
        return self.late_recheck_share if drift.late_recheck_share is None else drift.late_recheck_share


class RetrainSettings(_Strict):
    cooldown_minutes: int = Field(default=60, ge=0, le=10080)
    schedule: str | None = None
    on_new_labels: bool = True
    on_drift: bool = True
    min_training_rows: int = Field(default=500, ge=10)


class DeploySettings(_Strict):
    mode: DeployMode = "canary"
    canary_percent: int = Field(default=10, ge=1, le=100)
    bake_seconds: int = Field(default=600, ge=0, le=86400)
    max_error_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    max_latency_ratio: float = Field(default=1.5, ge=1.0)
    latency_floor_ms: float = Field(default=5.0, ge=0.0, le=60000.0)
    """A latency breach also needs the challenger's p95 above this: ratios of tiny latencies are noise,
    and on a busy shared machine (the local platform on a laptop or CI runner) tails of tens of
    milliseconds are the machine's load, not the model."""
    max_bake_extensions: int = Field(default=3, ge=0, le=24)
    """A canary whose challenger handled too few rows to be judged bakes again (another
    ``bake_seconds``) up to this many times; then the run ends ``inconclusive``: challenger cleared,
    champion unchanged, the candidate left as it was (approvable and promotable later)."""


TrainingCompute = Literal["lambda", "sagemaker", "auto"]
TrainingJoin = Literal["in_process", "athena", "auto"]
"""How the point-in-time training set is built (driftline.features.athena_training_set.choose_join)."""
INSTANCE_TYPE_RE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
"""A SageMaker training instance type such as ``ml.m5.large``."""
MAX_TRAINING_RUNTIME_SECONDS = 5 * 86400
"""A training job must end well inside the retraining workflow's timeout (7 days)."""
MAX_WARM_POOL_SECONDS = 3600
"""SageMaker's limit on ``KeepAlivePeriodInSeconds``."""


MAX_FEEDBACK_WEIGHT = 100.0
"""A feedback row may count at most this many times an uploaded row: beyond that a handful of labels
would decide the whole fit."""
MAX_FEEDBACK_AGE_DAYS = 365
"""How far back a training run reads captures and labels at most: every hour of the window is listed."""
MAX_FEEDBACK_ROWS = 2_000_000
"""Captured rows one training run reads at most (the reader stops there and says so in the lineage)."""


class FeedbackTraining(_Strict):
    """Feedback labels joined to the captured features become training rows (``training.feedback``).

    The captured features are what the model saw at prediction time, so the rows are point-in-time
    correct by construction (driftline.training.feedback_rows). Off by default: turning it on makes the
    callers' labels training data, which is a decision about whose labels one trusts (``labelers``).
    """

    enabled: bool = Field(default=False, strict=True)
    weight: float = Field(default=1.0, gt=0.0, le=MAX_FEEDBACK_WEIGHT, strict=True)
    """Sample weight of each feedback row in the fit (uploaded rows weigh 1); metrics stay unweighted."""
    min_labels: int = Field(default=50, ge=1, le=1_000_000, strict=True)
    """With fewer usable labels than this, no feedback row is used (the lineage says why)."""
    max_age_days: int = Field(default=30, ge=1, le=MAX_FEEDBACK_AGE_DAYS, strict=True)
    """Captures and labels of the last this many days are read."""
    max_rows: int = Field(default=200_000, ge=1, le=MAX_FEEDBACK_ROWS, strict=True)
    """Captured rows read at most, newest day first (the lineage says when the budget cut the read)."""
    retrain_after_labels: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    """Start a retraining once this many new labels arrived since the champion was trained (None: never)."""

    @model_validator(mode="after")
    def _needs_enabled(self) -> FeedbackTraining:
        changed = sorted(
            k
            for k in self.model_fields_set
            if k != "enabled" and getattr(self, k) != type(self).model_fields[k].default
        )
        if not self.enabled and changed:
            raise ValueError(f"{', '.join(changed)}: only used with enabled: true; set enabled or remove them")
        return self


class TrainingSettings(_Strict):
    """Where a model trains: the ``train`` Lambda (15 minutes, 10 GB) or a SageMaker training job.

    ``auto`` decides before training from the curated data's metadata (object sizes from one S3
    listing, rows from Parquet footers; driftline.retraining.sagemaker.estimate_curated): SageMaker
    when the estimate reaches ``auto_rows`` or ``auto_bytes``. The other keys shape the job and are
    refused with ``compute: lambda``, where they would silently do nothing.
    """

    compute: TrainingCompute = "lambda"
    auto_rows: int | None = Field(default=2_000_000, ge=1)
    auto_bytes: int | None = Field(default=None, ge=1)
    instance_type: str = "ml.m5.large"
    volume_gb: int = Field(default=30, ge=1, le=16_384)
    max_runtime_seconds: int = Field(default=3600, ge=60, le=MAX_TRAINING_RUNTIME_SECONDS)
    spot: bool = False
    max_wait_seconds: int | None = Field(default=None, ge=60, le=MAX_TRAINING_RUNTIME_SECONDS)
    warm_pool_seconds: int = Field(default=0, ge=0, le=MAX_WARM_POOL_SECONDS)
    spot_retries: int = Field(default=2, ge=0, le=10)
    """Training jobs started again after a spot interruption (a job that fails for another reason is not)."""
    join: TrainingJoin = "in_process"
    """``in_process`` reads the curated data into the train step; ``athena`` joins with an Athena query;
    ``auto``: Athena when the committed curated objects (one S3 listing) reach ``join_auto_bytes``."""
    join_auto_bytes: int = Field(default=1 << 30, ge=1)
    feedback: FeedbackTraining = Field(default_factory=FeedbackTraining)
    """Feedback labels as training rows (off by default)."""

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, v: str) -> str:
        if not INSTANCE_TYPE_RE.match(v):
            raise ValueError("must be a SageMaker training instance type such as ml.m5.large")
        return v

    @model_validator(mode="after")
    def _combinations(self) -> TrainingSettings:
        job_keys = {"instance_type", "volume_gb", "max_runtime_seconds", "spot", "max_wait_seconds"}
        job_keys |= {"warm_pool_seconds", "spot_retries"}
        # a key at its default is not "used": the functions' PLATFORM_CONFIG (model_dump_json) lists every key
        changed = {k for k in self.model_fields_set if getattr(self, k) != type(self).model_fields[k].default}
        if self.compute == "lambda" and (set_keys := sorted(job_keys & changed)):
            raise ValueError(
                f"{', '.join(set_keys)}: only used by SageMaker training jobs; set compute to sagemaker or auto, "
                "or remove them"
            )
        if self.join != "auto" and "join_auto_bytes" in changed:
            raise ValueError("join_auto_bytes only applies to join: auto")
        if self.compute != "auto" and ({"auto_rows", "auto_bytes"} & changed):
            raise ValueError("auto_rows and auto_bytes only apply to compute: auto")
        if self.compute == "auto" and self.auto_rows is None and self.auto_bytes is None:
            raise ValueError("compute auto needs auto_rows or auto_bytes (the size from which SageMaker trains)")
        if not self.spot and ({"max_wait_seconds", "spot_retries"} & changed):
            raise ValueError("max_wait_seconds and spot_retries only apply with spot: true (managed spot training)")
        if self.spot and self.warm_pool_seconds:
            raise ValueError(
                "warm_pool_seconds cannot be combined with spot: SageMaker keeps no warm pool for spot jobs"
            )
        if self.spot and self.max_wait_seconds is not None and self.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError(
                f"max_wait_seconds ({self.max_wait_seconds}) must be at least max_runtime_seconds "
                f"({self.max_runtime_seconds}): it bounds the wait for spot capacity plus the run"
            )
        return self

    @property
    def wait_seconds(self) -> int:
        """The longest a job may take end to end: the spot wait bound, else the max runtime."""
        if self.spot:
            return self.max_wait_seconds if self.max_wait_seconds is not None else 2 * self.max_runtime_seconds
        return self.max_runtime_seconds


class ModelConfig(_Strict):
    name: str
    feature_set: str
    algorithm: Algorithm = "hist_gradient_boosting"
    trainer: str | None = None
    """``module:function`` in ``trainers_dir`` building the model's unfitted pipeline (your own code);
    when set it trains instead of ``algorithm`` (driftline.training.trainers)."""
    params: dict[str, Any] = Field(default_factory=dict)
    approval: ApprovalMode = "auto"
    approvers: tuple[str, ...] = ()
    approval_timeout_seconds: int = Field(default=86400, ge=60, le=518_400)
    """At most 6 days: the retraining workflow itself times out after 7."""
    labelers: tuple[str, ...] = ()
    """Principals whose feedback labels count for every prediction of this model (IAM role/user ARNs, or
    API key ids with ``serving.auth: api_key``); anyone else's label counts only for their own predictions
    (driftline.serving.labels)."""
    gate: QualityGate = Field(default_factory=QualityGate)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)

    @field_validator("trainer")
    @classmethod
    def _trainer(cls, v: str | None) -> str | None:
        if v is not None and not TRAINER_RE.match(v):
            raise ValueError("must look like 'module:function' (a function in a module of trainers_dir)")
        return v

    @field_validator("labelers")
    @classmethod
    def _labelers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in v if not (IAM_PRINCIPAL_RE.match(p) or API_KEY_ID_RE.match(p))]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: each labeler must be an IAM role or user ARN "
                "(arn:aws:iam::123456789012:role/labeling) or an API key id (serving.auth api_key); "
                "no wildcards"
            )
        if len(set(v)) != len(v):
            raise ValueError("labelers are listed more than once")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not MODEL_NAME_RE.match(v):
            raise ValueError("must match ^[a-z][a-z0-9_-]{0,39}$ (lowercase letters, digits, _ and -)")
        return v

    @model_validator(mode="after")
    def _manual_needs_approvers(self) -> ModelConfig:
        if self.approval == "manual" and not self.approvers:
            raise ValueError(
                "approval 'manual' needs 'approvers': the principals (IAM ARNs, or names on the local "
                "platform) allowed to approve; without them anyone who can call the approval route "
                "could approve"
            )
        return self

    @model_validator(mode="after")
    def _fits_the_workflow(self) -> ModelConfig:
        longest_bake = self.deploy.bake_seconds * (1 + self.deploy.max_bake_extensions)
        budget = WORKFLOW_TIMEOUT_SECONDS - WORKFLOW_STEPS_ALLOWANCE_SECONDS
        t = self.training
        if t.compute != "lambda":  # every attempt of the training job runs inside the same execution
            attempts = 1 + (t.spot_retries if t.spot else 0)
            longest_training = t.wait_seconds * attempts
            if self.approval_timeout_seconds + longest_bake + longest_training > budget:
                raise ValueError(
                    f"the training job's longest run (training.{'max_wait' if t.spot else 'max_runtime'}_seconds "
                    f"{t.wait_seconds} x {attempts} attempt(s) = {longest_training}) plus approval_timeout_seconds "
                    f"({self.approval_timeout_seconds}) and the longest canary bake ({longest_bake}) must be at most "
                    f"{budget} s (the retraining workflow times out after {WORKFLOW_TIMEOUT_SECONDS} s); lower one"
                )
        if self.approval_timeout_seconds + longest_bake > budget:
            raise ValueError(
                f"approval_timeout_seconds ({self.approval_timeout_seconds}) plus the longest canary bake "
                f"(deploy.bake_seconds {self.deploy.bake_seconds} x (1 + deploy.max_bake_extensions "
                f"{self.deploy.max_bake_extensions}) = {longest_bake}) must be at most {budget} s: the "
                f"retraining workflow times out after {WORKFLOW_TIMEOUT_SECONDS} s and the other steps need "
                f"{WORKFLOW_STEPS_ALLOWANCE_SECONDS} s; lower one of them"
            )
        return self


class ServingSettings(_Strict):
    auth: AuthMode = "iam"
    throttle_rate: float = Field(default=100.0, gt=0)
    throttle_burst: int = Field(default=200, ge=1)
    public_throttle_rate: float = Field(default=5.0, gt=0)
    public_throttle_burst: int = Field(default=10, ge=1)
    """Throttle of the unauthenticated routes (GET /health, GET /openapi.json), per method and apart from
    the prediction routes': anyone can call them, so a flood of them must not take the clients' share."""
    cors_origins: tuple[str, ...] = ()
    reserved_concurrency: int | None = Field(default=None, ge=1)
    provisioned_concurrency: int = Field(default=0, ge=0)
    snap_start: bool = False
    """Lambda SnapStart on the serving function: new sandboxes resume from a snapshot taken after
    every champion was loaded, instead of importing and loading on their first request."""
    champion_ttl_seconds: float = Field(default=5.0, ge=0.0, le=3600.0)
    capture_sampling: float = Field(default=1.0, ge=0.0, le=1.0)
    max_rows: int = Field(default=1000, ge=1, le=10000)
    memory_mb: int = Field(default=1024, ge=128, le=10240)

    @model_validator(mode="after")
    def _one_warm_start(self) -> ServingSettings:
        if self.snap_start and self.provisioned_concurrency:
            raise ValueError(
                "snap_start and provisioned_concurrency cannot both be set (Lambda does not combine them); keep one"
            )
        return self


class PlatformConfig(_Strict):
    """Everything that differs between deployments; the rest is fixed in ``driftline.platform``."""

    env_name: str = "dev"
    region: str | None = None
    account: str | None = None
    feature_sets_dir: str = "examples/feature_sets"
    trainers_dir: str = "trainers"
    """Folder (relative to cdk.json) of the modules named by ``models[].trainer``."""
    alert_email: str | None = None
    removal: RemovalMode = "destroy"
    log_retention_days: int = 30
    models: tuple[ModelConfig, ...] = Field(min_length=1)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @field_validator("env_name")
    @classmethod
    def _env(cls, v: str) -> str:
        if not ENV_NAME_RE.match(v):
            raise ValueError("must match ^[a-z][a-z0-9-]{0,11}$ (it prefixes every resource name)")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        allowed = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)
        if v not in allowed:
            raise ValueError(f"must be one of CloudWatch Logs' retention periods: {', '.join(map(str, allowed))}")
        return v

    @field_validator("alert_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v):
            raise ValueError("must be an e-mail address such as ops@example.com")
        return v

    @model_validator(mode="after")
    def _unique_models(self) -> PlatformConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        return self

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.models)
        raise ConfigError(f"unknown model {name!r}; configured models: {known}")


def check_feature_columns(config: PlatformConfig, feature_sets: Any) -> None:
    """Refuse per-model column lists (``drift.alert_on_columns``, ``drift.segments``) naming columns the
    model's feature set lacks, and segment columns that are not categorical (a segment is one value of a
    category); ``feature_sets`` maps a feature-set name to its definition (models whose set is absent are
    skipped: the training step reports an unknown feature set with the defined ones)."""
    problems = []
    for i, m in enumerate(config.models):
        fs = feature_sets.get(m.feature_set) if m.feature_set in feature_sets else None
        if fs is None or not (m.drift.alert_on_columns or m.drift.segments):
            continue
        checked = [f for f in fs.features if f.drift.enabled and f.type in ("int", "float", "categorical", "bool")]
        allowed = [f.name for f in checked]
        unknown = [c for c in m.drift.alert_on_columns if c not in allowed]
        if unknown:
            problems.append(
                f"'models[{i}].drift.alert_on_columns': {', '.join(map(repr, unknown))} not in the drift-checked "
                f"features of feature set {m.feature_set!r}; allowed: {', '.join(allowed)}"
            )
        categorical = [f.name for f in checked if f.type in ("categorical", "bool")]
        wrong = [c for c in m.drift.segments if c not in categorical]
        if wrong:
            numeric = [c for c in wrong if c in allowed]
            why = f" ({', '.join(map(repr, numeric))} numerical)" if numeric else ""
            problems.append(
                f"'models[{i}].drift.segments': {', '.join(map(repr, wrong))} not a drift-checked categorical "
                f"feature of feature set {m.feature_set!r}{why}; allowed: {', '.join(categorical) or 'none'}"
            )
    if problems:
        raise ConfigError("; ".join(problems))


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def format_validation_error(err: ValidationError, prefix: str, where: str = "cdk.json context") -> str:
    """One line per problem: key, offending value, what is allowed."""
    lines = []
    errors = err.errors()
    for e in errors:
        loc = tuple(e["loc"])
        # A length error on a list whose items already failed is noise (pydantic reports both).
        if e["type"] == "too_short" and any(
            len(o["loc"]) > len(loc) and tuple(o["loc"][: len(loc)]) == loc for o in errors
        ):
            continue
        key = f"{where} '{_loc(prefix, tuple(e['loc']))}'"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check the spelling against the configuration reference)")
            continue
        if e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
            continue
        value = json.dumps(e.get("input"), default=str)
        if len(value) > 80:
            value = value[:77] + "..."
        lines.append(f"{key}: {value} is not allowed: {msg}")
    return "; ".join(lines)


def from_context(context: dict[str, Any], env: str | None = None) -> PlatformConfig:
    """Build the config from a CDK context dict (``cdk.json``'s ``context`` or ``app.node`` values)."""
    envs = context.get("driftline:environments")
    if not isinstance(envs, dict) or not envs:
        raise ConfigError("cdk.json context 'driftline:environments': required key is missing or not an object")
    env = env or context.get("driftline:env") or "dev"
    if env not in envs:
        raise ConfigError(
            f"cdk.json context 'driftline:env': {env!r} is not allowed: "
            f"choose one of {', '.join(sorted(envs))} (defined under 'driftline:environments')"
        )
    raw = envs[env]
    if not isinstance(raw, dict):
        raise ConfigError(f"cdk.json context 'driftline:environments.{env}': must be an object")
    data = {"env_name": env, **raw}
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"driftline:environments.{env}")) from None


def load(cdk_json: str | Path = "cdk.json", env: str | None = None) -> PlatformConfig:
    """Load and validate the config from a ``cdk.json`` file."""
    path = Path(cdk_json)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root or pass --config)") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    context = doc.get("context") if isinstance(doc, dict) else None  # a list or null file: the message below
    if not isinstance(context, dict):
        raise ConfigError(f"{path}: 'context' must be an object holding the driftline:* keys")
    config = from_context(context, env)
    if any(m.drift.alert_on_columns or m.drift.segments for m in config.models):
        from driftline.features.schema import FeatureSetCatalog, FeatureSetError  # it imports this module

        try:
            catalog = FeatureSetCatalog(path.parent / config.feature_sets_dir)
        except FeatureSetError as e:
            raise ConfigError(f"{path}: drift.alert_on_columns/drift.segments need the feature sets: {e}") from None
        check_feature_columns(config, catalog)
    return config
