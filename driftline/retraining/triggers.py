"""Every retraining trigger → at most one workflow run per model, each decision recorded with its reason.

Triggers: ``DriftDetected`` (monitoring), ``FeatureDataAccepted`` with labels (ingest; fans out to the
models using that feature set), ``RetrainRequested`` (CLI), the per-model schedule whose input is
``{"model": M, "trigger": "schedule"}``, and the hourly feedback-label count ``{"model": M, "trigger":
"feedback"}`` (:mod:`.feedback_trigger`). Storm protection has three layers:

1. a lock item per model (conditional write): a trigger while a run is in progress is skipped; a lock
   whose execution has ended is taken over, so a crashed run never blocks retraining forever;
2. a cooldown for automatic triggers, measured from the last automatic start: triggers within it
   collapse into that run;
3. execution names derived from the trigger and its cooldown window (:mod:`.naming`): if two
   triggers race past 1 and 2, Step Functions refuses the second name (``ExecutionAlreadyExists``).

Imports only the config, boto3 and siblings: this runs in the small ``retrain-trigger`` Lambda.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftline import aws
from driftline.config import MODEL_NAME_RE, ConfigError, PlatformConfig
from driftline.contracts import DRIFT_DETECTED, FEATURE_DATA_ACCEPTED, RETRAIN_REQUESTED
from driftline.retraining.control import INVALID_MODEL_KEY, ControlTable, Decision
from driftline.retraining.feedback_trigger import FEEDBACK_TRIGGER, feedback_requests
from driftline.retraining.naming import AUTOMATIC_TRIGGERS, execution_arn, execution_name

STARTING_GRACE_SECONDS = 60
"""A lock whose execution does not exist yet is treated as 'starting' for this long, not as stale (unless
the decision log records it as started: then it is gone, as on the local platform after a restart)."""

SOURCES = {
    (DRIFT_DETECTED.source, DRIFT_DETECTED.detail_type): "drift",
    (FEATURE_DATA_ACCEPTED.source, FEATURE_DATA_ACCEPTED.detail_type): "labels",
    (RETRAIN_REQUESTED.source, RETRAIN_REQUESTED.detail_type): "manual",
}


class TriggerError(ValueError):
    """An event that cannot start a run: malformed, or naming an unknown model or feature set."""

    def __init__(
        self, message: str, model: str = INVALID_MODEL_KEY, trigger: str = "unknown", trigger_id: str = ""
    ) -> None:
        super().__init__(message)
        self.model = model
        self.trigger = trigger
        self.trigger_id = trigger_id


@dataclass(frozen=True)
class RetrainRequest:
    """One model to retrain, and why."""

    model: str
    trigger: str
    trigger_id: str
    reason: str
    requested_by: str
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- parsing (pure)
def _field(
    detail: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str, required: bool = True
) -> Any:
    """``detail[name]`` checked against ``kind`` (booleans are not numbers here), or a precise ValueError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = detail.get(name)
    if value is None:
        if required:
            raise ValueError(f"{where}: field {name!r} is missing")
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{where}: field {name!r} must be {names}, got {type(value).__name__} {value!r:.60}")
    return value


def _known_model(name: str, config: PlatformConfig, trigger: str, trigger_id: str) -> str:
    try:
        config.model(name)
    except ConfigError as e:
        key = name if MODEL_NAME_RE.match(name) else INVALID_MODEL_KEY
        raise TriggerError(
            f"{e}; nothing was started (add the model to cdk.json or fix the event)",
            model=key,
            trigger=trigger,
            trigger_id=trigger_id,
        ) from None
    return name


def parse_event(
    event: Any, config: PlatformConfig, feature_sets: Collection[str]
) -> tuple[list[RetrainRequest], list[Decision]]:
    """Turn one trigger event into retrain requests, plus skip decisions for models whose config opts out.

    ``feature_sets`` are the known feature-set names. Raises :class:`TriggerError` for anything that
    cannot be acted on, with the offending field named.
    """
    if not isinstance(event, Mapping):
        raise TriggerError(f"trigger event must be a JSON object, got {type(event).__name__}")
    if "detail-type" in event or "source" in event:
        return _parse_bus_event(event, config, feature_sets)
    trigger = event.get("trigger")
    if trigger in ("schedule", "manual", FEEDBACK_TRIGGER):
        where = f"{trigger} trigger input"
        try:
            model = _field(event, "model", str, where)
            requested_by = _field(event, "requested_by", str, where, required=False) or trigger
            reason = _field(event, "reason", str, where, required=False) or f"{trigger} retraining"
        except ValueError as e:
            raise TriggerError(
                f'{e}; expected {{"model": "<name>", "trigger": "{trigger}"}}', trigger=str(trigger)
            ) from None
        trigger_id = str(
            event.get("id") or (f"{datetime.now(UTC):%Y%m%dT%H%M}" if trigger == "schedule" else uuid.uuid4().hex)
        )
        _known_model(model, config, trigger, trigger_id)
        return [RetrainRequest(model, trigger, trigger_id, reason, requested_by)], []
    raise TriggerError(
        "unrecognised trigger event: expected an EventBridge event (source and detail-type) "
        'or a schedule input {"model": "<name>", "trigger": "schedule"} (or "feedback"); '
        f"got keys {sorted(map(str, event))[:10]}"
    )


def _parse_bus_event(
    event: Mapping[str, Any], config: PlatformConfig, feature_sets: Collection[str]
) -> tuple[list[RetrainRequest], list[Decision]]:
    key = (event.get("source"), event.get("detail-type"))
    trigger = SOURCES.get(key)  # type: ignore[arg-type]
    event_id = str(event.get("id") or uuid.uuid4().hex)
    if trigger is None:
        known = ", ".join(f"{s}/{t}" for s, t in SOURCES)
        raise TriggerError(
            f"event {key[0]!r}/{key[1]!r} is not a retraining trigger; expected one of {known}", trigger_id=event_id
        )
    detail = event.get("detail")
    where = f"{key[1]} event {event_id} detail"
    if not isinstance(detail, Mapping):
        raise TriggerError(f"{where}: must be an object", trigger=trigger, trigger_id=event_id)
    try:
        if trigger == "drift":
            return _drift(detail, where, event_id, config), []
        if trigger == "labels":
            return _labels(detail, where, event_id, config, feature_sets)
        model = _field(detail, "model", str, where)
        requested_by = _field(detail, "requested_by", str, where)
        reason = _field(detail, "reason", str, where, required=False) or "manual retraining"
        strict = _field(detail, "require_approval", bool, where, required=False) or False
        version = _field(detail, "version", int, where, required=False)
        if version is not None and version < 1:
            raise ValueError(f"{where}: field 'version' must be a positive version number, got {version}")
        _known_model(model, config, trigger, event_id)
        extra: dict[str, Any] = {"require_approval": True} if strict else {}
        if version is not None:  # roll out this registered candidate instead of training a new one
            extra["rollout_version"] = version
        return [RetrainRequest(model, "manual", event_id, reason, requested_by, extra)], []
    except TriggerError:
        raise
    except ValueError as e:
        model = detail.get("model")
        mkey = model if isinstance(model, str) and MODEL_NAME_RE.match(model) else INVALID_MODEL_KEY
        raise TriggerError(f"{e}; nothing was started", model=mkey, trigger=trigger, trigger_id=event_id) from None


class _OptOutError(Exception):
    """Not an error for the caller: the model's config opts out of this trigger (recorded as a skip)."""

    def __init__(self, model: str, trigger: str, trigger_id: str, reason: str, details: dict[str, Any]) -> None:
        super().__init__(reason)
        self.decision = Decision(
            model=model, decision="skipped", reason=reason, trigger=trigger, trigger_id=trigger_id, details=details
        )


def _drift(detail: Mapping[str, Any], where: str, event_id: str, config: PlatformConfig) -> list[RetrainRequest]:
    model = _known_model(_field(detail, "model", str, where), config, "drift", event_id)
    version = _field(detail, "version", int, where, required=False)
    share = _field(detail, "share_drifted", (int, float), where, required=False)
    columns = _field(detail, "drifted_columns", list, where, required=False) or []
    details = {
        "version": version,
        "share_drifted": share,
        "drifted_columns": columns,
        "window_start": detail.get("window_start"),
        "window_end": detail.get("window_end"),
        "report_uri": detail.get("report_uri"),
    }
    cols = ", ".join(map(str, columns[:5])) + (" …" if len(columns) > 5 else "")
    reason = f"drift detected on v{version}"
    reason += f": {share:.0%} of columns drifted" if share is not None else ""
    reason += f" ({cols})" if cols else ""
    if not config.model(model).retrain.on_drift:
        raise _OptOutError(model, "drift", event_id, "retrain.on_drift is false for this model", details)
    return [RetrainRequest(model, "drift", event_id, reason, DRIFT_DETECTED.source, details)]


def _labels(
    detail: Mapping[str, Any], where: str, event_id: str, config: PlatformConfig, feature_sets: Collection[str]
) -> tuple[list[RetrainRequest], list[Decision]]:
    fs = _field(detail, "feature_set", str, where)
    if fs not in feature_sets:
        known = ", ".join(sorted(feature_sets)) or "none"
        raise TriggerError(
            f"{where}: unknown feature set {fs!r}; known: {known}; nothing was started",
            trigger="labels",
            trigger_id=event_id,
        )
    has_labels = _field(detail, "has_labels", bool, where)
    rows = _field(detail, "rows_accepted", int, where)
    if rows < 0:
        raise ValueError(f"{where}: field 'rows_accepted' must be >= 0, got {rows}")
    details = {
        "feature_set": fs,
        "upload_id": detail.get("upload_id"),
        "rows_accepted": rows,
        "curated_uri": detail.get("curated_uri"),
    }
    requests: list[RetrainRequest] = []
    skips: list[Decision] = []
    for m in config.models:
        if m.feature_set != fs:
            continue
        why = (
            "the upload has no labels"
            if not has_labels
            else "the upload accepted no rows"
            if rows == 0
            else "retrain.on_new_labels is false for this model"
            if not m.retrain.on_new_labels
            else ""
        )
        if why:
            skips.append(
                Decision(
                    model=m.name, decision="skipped", reason=why, trigger="labels", trigger_id=event_id, details=details
                )
            )
        else:
            requests.append(
                RetrainRequest(
                    m.name,
                    "labels",
                    event_id,
                    f"{rows} new labeled rows in {fs} (upload {details['upload_id']})",
                    FEATURE_DATA_ACCEPTED.source,
                    details,
                )
            )
    return requests, skips


# ---------------------------------------------------------------- deciding and starting
@dataclass
class TriggerOutcome:
    decisions: list[Decision]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": [d.to_dict() for d in self.decisions], "error": self.error}


class RetrainTrigger:
    """Applies the lock, cooldown and naming rules, starts runs and records every decision."""

    def __init__(
        self,
        config: PlatformConfig,
        control: ControlTable,
        state_machine_arn: str,
        feature_sets: Collection[str],
        clock: Callable[[], float] = time.time,
        label_counter: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.control = control
        self.state_machine_arn = state_machine_arn
        self.feature_sets = feature_sets
        self.clock = clock
        self.label_counter = label_counter
        """Counts feedback labels for the ``feedback`` trigger (driftline.retraining.feedback_trigger)."""

    @property
    def _sfn(self) -> Any:
        return aws.client("stepfunctions")

    def handle(self, event: Any) -> TriggerOutcome:
        try:
            requests, skips = parse_event(event, self.config, self.feature_sets)
            if requests and requests[0].trigger == FEEDBACK_TRIGGER:  # the schedule input only named the model
                requests, skips = self._feedback(requests[0])
        except _OptOutError as o:
            self.control.record_decision(o.decision)
            return TriggerOutcome([o.decision])
        except TriggerError as e:
            d = Decision(
                model=e.model,
                decision="rejected",
                reason=str(e),
                trigger=e.trigger,
                trigger_id=e.trigger_id,
                details={"event": _clip(event)},
            )
            self.control.record_decision(d)
            return TriggerOutcome([d], error=str(e))
        decisions = list(skips)
        for d in skips:
            self.control.record_decision(d)
        for r in requests:
            decisions.append(self.start(r))
        return TriggerOutcome(decisions)

    def _feedback(self, r: RetrainRequest) -> tuple[list[RetrainRequest], list[Decision]]:
        if self.label_counter is None:
            raise TriggerError(
                "the feedback trigger needs the captures bucket (CAPTURES_BUCKET) to count labels; redeploy",
                model=r.model,
                trigger=FEEDBACK_TRIGGER,
                trigger_id=r.trigger_id,
            )
        now = datetime.fromtimestamp(self.clock(), UTC)
        return feedback_requests({"model": r.model}, self.config, self.label_counter, now, RetrainRequest)

    def _status(self, arn: str) -> str | None:
        try:
            return str(self._sfn.describe_execution(executionArn=arn)["status"])
        except self._sfn.exceptions.ExecutionDoesNotExist:
            return None

    def _was_started(self, model: str, holder: str) -> bool:
        """Whether the decision log records ``holder`` as started: then a holder the service does not know
        is not still starting but gone (the local platform forgets executions across a restart)."""
        return any(
            d.get("decision") == "started" and d.get("execution_arn") == holder
            for d in self.control.history(model, limit=50, kind="decision")
        )

    def start(self, r: RetrainRequest) -> Decision:
        """Start a run for one request unless the lock or cooldown says no; record the decision."""
        m = self.config.model(r.model)
        now = self.clock()
        automatic = r.trigger in AUTOMATIC_TRIGGERS
        cooldown_s = m.retrain.cooldown_minutes * 60 if automatic else None
        name = execution_name(r.model, r.trigger, r.trigger_id, now, m.retrain.cooldown_minutes)
        arn = execution_arn(self.state_machine_arn, name)

        def decide(kind: str, reason: str, **extra: Any) -> Decision:
            d = Decision(
                model=r.model,
                decision=kind,  # type: ignore[arg-type]
                reason=reason,
                trigger=r.trigger,  # type: ignore[arg-type]
                trigger_id=r.trigger_id,
                requested_by=r.requested_by,
                execution_name=name,
                execution_arn=arn if kind == "started" else extra.pop("arn", ""),
                details={**r.details, **extra},
            )
            self.control.record_decision(d)
            return d

        previous = None
        for _ in range(3):  # a stale lock is released at most a couple of times before we give up
            previous = self.control.try_acquire(r.model, arn, name, now, cooldown_s)
            if previous is not None:
                break
            lock = self.control.lock(r.model)
            if lock.holder:
                status = self._status(lock.holder)
                starting = (
                    status is None
                    and lock.acquired_at is not None
                    and now - lock.acquired_at < STARTING_GRACE_SECONDS
                    and not self._was_started(r.model, lock.holder)
                )
                if status == "RUNNING" or starting:
                    return decide(
                        "skipped",
                        f"run {lock.holder_name} is in progress; at most one run per "
                        f"model at a time, so this trigger is not started",
                        arn=lock.holder,
                    )
                self.control.release(r.model, lock.holder)  # its execution ended: the lock is stale
                continue
            if cooldown_s and lock.last_auto_start is not None and now - lock.last_auto_start < cooldown_s:
                last = _iso(lock.last_auto_start)
                until = _iso(lock.last_auto_start + cooldown_s)
                return decide(
                    "skipped",
                    f"cooldown: the last automatically triggered run started at {last}; "
                    f"automatic triggers until {until} collapse into it "
                    f"(retrain.cooldown_minutes={m.retrain.cooldown_minutes})",
                )
        if previous is None:
            return decide("skipped", "the model's retraining lock kept changing; another trigger is starting a run")
        payload = {
            "model": r.model,
            "trigger": r.trigger,
            "trigger_id": r.trigger_id,
            "reason": r.reason,
            "requested_by": r.requested_by,
            "details": r.details,
            "execution_name": name,
            "requested_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "require_approval": bool(r.details.get("require_approval")),
        }
        if isinstance(r.details.get("rollout_version"), int):  # not "version": drift details carry the drifted one
            payload["rollout_version"] = r.details["rollout_version"]
        try:
            self._sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload))
        except self._sfn.exceptions.ExecutionAlreadyExists:
            self.control.release(r.model, arn, previous.last_auto_start, restore=automatic)
            return decide(
                "skipped",
                f"execution {name} already exists: this trigger collapses into it (same trigger and cooldown window)",
                arn=arn,
            )
        except Exception:
            self.control.release(r.model, arn, previous.last_auto_start, restore=automatic)
            raise
        return decide("started", r.reason)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _clip(event: Any, limit: int = 2000) -> Any:
    text = json.dumps(event, default=str)
    return event if len(text) <= limit else text[:limit] + "…"
