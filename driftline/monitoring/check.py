"""The scheduled per-model drift check (what the ``drift`` Lambda and ``driftline drift check`` run).

1. Find the champion and its reference profile (registry version item -> ``artifacts.profile``,
   read by pinned version and verified by SHA-256); refuse a profile built for another model,
   version or feature-set definition.
2. Read the champion's captures for the window (since the previous check, or the given window).
3. Run the engine on the features and on the ``prediction`` column (prediction drift), with
   distances instead of p-values for windows above 1000 rows.
4. Join feedback labels to the captures by request id; compare the task metrics with the
   version's training metrics (concept drift), or report ``too_few_labels``.
5. Alarm discipline: a window counts as drifted on dataset drift, prediction drift or degraded
   performance; the alarm needs ``persistence_windows`` drifted windows in a row, and windows
   below ``min_window_rows`` neither extend nor break a streak.
6. Write ``result.json`` and ``report.html``, the history item, CloudWatch metrics; on alarm put a
   ``DriftDetected`` event (every alarmed window, so retraining can act after a cooldown) and send
   an SNS alert when the alarm starts (not every hour while it lasts).

Captures land late, so a scheduled window ends ``allowed_lateness`` before now, and each run first
counts the rows that landed after their window's check and re-checks the windows they call for
(:mod:`driftline.monitoring.lateness`), holding the model's drift lease so overlapping runs never
check a window twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from driftline.captures_store import CapturesStore
from driftline.config import ConfigError, ModelConfig, PlatformConfig
from driftline.contracts import DATA_QUALITY_ALERT, METRICS_NAMESPACE
from driftline.drift import DriftInputError, Profile, ProfileFormatError, ProfileMismatchError, check_drift
from driftline.drift.columns import row_keys
from driftline.drift.engine import DriftResult
from driftline.drift.feature_set import PREDICTION_COLUMN
from driftline.drift.methods import SMALL_REFERENCE_ROWS
from driftline.drift.quality import QualityResult, QualityThresholds, check_quality
from driftline.drift.report import render_html
from driftline.estimation import EstimateResult
from driftline.estimation.monitor import alarm_line, estimate_for_segments, estimate_for_version
from driftline.monitoring import captures, lateness, performance, publish
from driftline.monitoring.history import DriftHistory, HistoryEntry, streak_after
from driftline.monitoring.window import NotDueError, Window, WindowError, checked_early, iso, resolve
from driftline.registry.artifacts import ArtifactIntegrityError, ArtifactNotFoundError, ArtifactRef, read_verified
from driftline.registry.store import Registry, RegistryError, UnknownModelError

log = logging.getLogger(__name__)

LABEL_LOOKAHEAD = timedelta(days=7)
"""Feedback stored up to this long after a window still counts for that window (re-checks)."""
HISTORY_IN_REPORT = 24


class MonitoringError(Exception):
    """A check that cannot run: unknown model, no profile, a profile of another version."""


@dataclass(frozen=True)
class Context:
    """Everything a check needs from its environment (the Lambda's, or the CLI's)."""

    config: PlatformConfig
    registry_table: str
    control_table: str
    captures_bucket: str
    reports_bucket: str
    alerts_topic_arn: str
    event_bus: str
    metrics_namespace: str = METRICS_NAMESPACE
    local: bool = False
    """On the local platform (``DRIFTLINE_LOCAL=1``), whose Firehose delivers at once: small default lateness."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Context:
        env = os.environ if env is None else env
        missing = [
            k
            for k in (
                "PLATFORM_CONFIG",
                "REGISTRY_TABLE",
                "CONTROL_TABLE",
                "CAPTURES_BUCKET",
                "REPORTS_BUCKET",
                "ALERTS_TOPIC_ARN",
                "EVENT_BUS_NAME",
            )
            if not env.get(k)
        ]
        if missing:
            raise MonitoringError(
                f"environment variables {', '.join(missing)} are not set; they come from the "
                f"platform definition (driftline/platform.py)"
            )
        return cls(
            config=PlatformConfig.model_validate_json(env["PLATFORM_CONFIG"]),
            registry_table=env["REGISTRY_TABLE"],
            control_table=env["CONTROL_TABLE"],
            captures_bucket=env["CAPTURES_BUCKET"],
            reports_bucket=env["REPORTS_BUCKET"],
            alerts_topic_arn=env["ALERTS_TOPIC_ARN"],
            event_bus=env["EVENT_BUS_NAME"],
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE,
            local=env.get("DRIFTLINE_LOCAL") == "1",
        )


@dataclass
class Prepared:
    """What a check knows before it reads any data: the model, its champion, profile and window.

    Both the in-process check (:func:`run_check`) and the scale-out workflow's reduce step
    (:mod:`driftline.monitoring.scale`) start from it, so they judge the same window the same way."""

    model: str
    mc: ModelConfig
    version: Any
    profile: Profile
    window: Window
    window_notes: list[str]
    history: DriftHistory
    lateness: timedelta = timedelta(0)
    """How long the model's captures may take to land (``allowed_lateness_seconds``)."""
    early: bool = False
    """The window was checked before its end plus the lateness had passed (captures may still land)."""

    @property
    def features(self) -> list[str]:
        return [c for c in self.profile.columns if self.profile.columns[c].role == "feature"]

    @property
    def expected(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version.version,
            "feature_set_fingerprint": self.version.feature_set_fingerprint or None,
        }


def prepare(
    model: str, window_start: str | None, window_end: str | None, ctx: Context, now: datetime
) -> Prepared | dict[str, Any]:
    """The champion, its profile and the window to check; a ``no_champion`` answer when none is served."""
    try:
        mc = ctx.config.model(model)
    except ConfigError as e:
        raise MonitoringError(str(e)) from None
    registry = Registry(ctx.registry_table)
    try:
        champion = registry.aliases(model).champion
    except UnknownModelError:
        champion = None  # configured but never trained: nothing is served yet
    except RegistryError as e:
        raise MonitoringError(f"{model}: {e}") from None
    if champion is None:
        return {
            "model": model,
            "status": "no_champion",
            "message": f"{model} has no champion yet; nothing is served, so there is nothing to monitor",
        }
    version = registry.get_version(model, champion)
    profile = _load_profile(model, version)
    history = DriftHistory(ctx.control_table)
    last = None if window_start else history.latest(model)
    late = timedelta(seconds=ctx.config.monitoring.lateness_seconds(mc.drift, local=ctx.local))
    try:
        window, window_notes = resolve(window_start, window_end, last.window_end if last else None, now, late)
    except WindowError as e:
        raise MonitoringError(str(e)) from None
    except NotDueError as e:
        return {"model": model, "version": version.version, "status": "not_due", "message": str(e)}
    early = checked_early(window, late, now)
    if early:
        window_notes.append(
            f"checked before its end plus the allowed lateness ({int(late.total_seconds())} s): captures of "
            f"this window may still land; later checks count them as late"
        )
    return Prepared(model, mc, version, profile, window, window_notes, history, late, early)


def run_check(
    model: str,
    *,
    window_start: str | None = None,
    window_end: str | None = None,
    ctx: Context | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check one model's latest window (or the given one) and act on the outcome.

    Holds the model's drift lease throughout: an overlapping run answers ``busy`` and checks nothing.
    First counts late captures of the windows already checked (and re-checks those they call for),
    then checks the window; a scheduled window that is not due yet answers ``not_due``.
    """
    ctx = ctx or Context.from_env()
    now = now or datetime.now(UTC)
    history = DriftHistory(ctx.control_table)
    with history.lease(model) as lease:
        if lease is None:
            return {"model": model, "status": "busy", "message": f"another drift check of {model} is running"}
        from driftline.monitoring.scale import dispatch  # its reduce step imports this module

        settled = dispatch.settle_running(history, model, now)  # scaled-out windows whose execution died
        prep = prepare(model, window_start, window_end, ctx, now)
        if isinstance(prep, dict) and prep["status"] == "no_champion":
            return prep
        ds = ctx.config.model(model).drift
        late = lateness.look_back(
            history,
            CapturesStore(ctx.captures_bucket),
            model,
            lease,
            now=now,
            wall=datetime.now(UTC),
            share=ctx.config.monitoring.recheck_share(ds),
            min_rows=ds.min_window_rows,
            persistence=ds.persistence_windows,
            recheck=lambda r: _recheck(ctx, r, now),
        )
        late.notes[:0] = settled
        announce_raised(ctx, model, late)
        if not isinstance(prep, Prepared):
            return {**prep, "late_rows": late.rows, "late": late.to_dict()}
        scaled = dispatch.maybe_start(ctx, prep, iso(lateness.scan_mark(datetime.now(UTC))))
        if scaled is not None:  # a large window: the scale-out workflow checks it (docs/monitoring.md)
            return {**scaled, "late_rows": late.rows, "late": late.to_dict()}
        return check_prepared(ctx, prep, now, late=late)


def announce_raised(ctx: Context, model: str, late: lateness.LateReport) -> None:
    """``DriftDetected`` for the newest window whose alarm a re-check turned on, and the alert when that
    alarm follows a window without one (so nobody has heard of it)."""
    if not late.raised:
        return
    e = late.raised[-1]
    detail = {
        "model": model,
        "version": e.version,
        "window_start": e.window_start,
        "window_end": e.window_end,
        "share_drifted": e.share_drifted,
        "drifted_columns": e.drifted_columns,
        "report_uri": e.report_uri,
        "reasons": e.reasons,
        "prediction_drifted": e.prediction_drifted,
        "performance_degraded": e.performance_degraded,
    }
    publish.drift_event(ctx.event_bus, detail)
    if late.starts_alarm:
        message = (
            f"{model} v{e.version}: an earlier window was checked again after late captures arrived, and the "
            f"window {e.window_start} to {e.window_end} now completes {e.streak} drifted windows in a row "
            f"({', '.join(e.reasons)}).\nReport: {e.report_uri}"
        )
        publish.alert(ctx.alerts_topic_arn, _subject(model, e.version or 0, e), message, model)


def _recheck(ctx: Context, r: lateness.Recheck, now: datetime) -> str:
    """Check a window again after late rows arrived; "" when done, else why not."""
    e = r.previous
    prep = prepare(e.model, e.window_start, e.window_end, ctx, now)
    if not isinstance(prep, Prepared):
        return str(prep.get("message", ""))
    if prep.version.version != e.version:
        return f"not re-checked: it was checked for v{e.version}, the champion is now v{prep.version.version}"
    until = min(max(now, datetime.now(UTC)), prep.window.end + lateness.LATE_HORIZON)  # where late ones landed
    from driftline.monitoring.scale import dispatch  # its reduce step imports this module

    mark = iso(lateness.scan_mark(datetime.now(UTC)))
    scaled = dispatch.maybe_start(ctx, prep, mark, recheck=r, list_until=until)
    if scaled is not None:  # a large window: read by the workflow, never whole in-process
        return f"being checked again by the scale-out workflow ({scaled['execution_arn']})"
    check_prepared(ctx, prep, now, recheck=r, list_until=until)
    return ""


def check_prepared(
    ctx: Context,
    prep: Prepared,
    now: datetime,
    *,
    late: lateness.LateReport | None = None,
    recheck: lateness.Recheck | None = None,
    list_until: datetime | None = None,
) -> dict[str, Any]:
    """Read the prepared window's captures in-process, run the engine and :func:`conclude`."""
    model, profile, version, window = prep.model, prep.profile, prep.version, prep.window
    listed_until = lateness.scan_mark(datetime.now(UTC))
    data = captures.read_window(
        ctx.captures_bucket, model, window, version.version, prep.features, list_until=list_until
    )
    prediction = PREDICTION_COLUMN if PREDICTION_COLUMN in profile.columns else None
    frame = data.frame(profile.numerical, profile.categorical, prediction)
    try:
        result = check_drift(
            profile,
            frame,
            expected_metadata=prep.expected,
            min_rows=prep.mc.drift.min_window_rows,
            share_threshold=prep.mc.drift.share_threshold,
            distance_above=SMALL_REFERENCE_ROWS,
            multivariate=ctx.config.monitoring.multivariate,
            auc_threshold=ctx.config.monitoring.multivariate_auc_threshold,
            multivariate_max_rows=ctx.config.monitoring.multivariate_max_rows,
            weighting=prep.mc.drift.weighting,
            alert_on_columns=prep.mc.drift.alert_on_columns,
            segments=prep.mc.drift.segments,
            min_segment_rows=prep.mc.drift.min_segment_rows,
            quality_thresholds=quality_thresholds(prep.mc),
        )
    except ProfileMismatchError as e:
        raise MonitoringError(f"{model} v{version.version}: {e}") from None
    except DriftInputError as e:
        raise MonitoringError(f"{model} v{version.version}: the captures could not be checked: {e}") from None
    quality = window_quality(prep, frame)
    perf = _performance(ctx, model, version.input_schema, version.metrics, prep.mc, data, window, now)
    estimated = estimate_for_version(
        version, prep.mc.drift.estimated_performance, data.predictions, data.columns, row_ids=data.request_ids
    )
    segment_estimates(prep, result, frame, data)
    captured = {
        "rows": data.n_rows,
        "lines": data.n_lines,
        "bad_lines": data.n_bad_lines,
        "other_roles_or_versions": data.n_other,
        "duplicates": data.n_duplicates,
        "test_traffic": data.n_test,
        "truncated": data.truncated,
        "listed_until": iso(listed_until),
    }
    return conclude(
        ctx,
        prep,
        result,
        perf,
        captured,
        _capture_notes(data),
        now,
        late=late,
        recheck=recheck,
        quality=quality,
        estimated=estimated,
    )


def conclude(
    ctx: Context,
    prep: Prepared,
    result: DriftResult,
    perf: performance.PerformanceResult | None,
    captured: Mapping[str, Any],
    capture_notes: list[str],
    now: datetime,
    *,
    late: lateness.LateReport | None = None,
    recheck: lateness.Recheck | None = None,
    estimated: EstimateResult | None = None,
    quality: QualityResult | None = None,
) -> dict[str, Any]:
    """Everything after the engine ran, shared by the in-process check and the scale-out reduce step:
    alarm state, result JSON and HTML report, history item, metrics, ``DriftDetected`` and the alert.

    ``captured["listed_until"]`` (ISO) is the last S3 second the read covered: later objects of the
    window count as late (without it the window is never looked at again). ``late`` is what this run's
    look-back found; ``recheck`` says the window is checked again, which replaces its report and
    history item and alerts only when it starts an alarm no neighbouring window had raised. ``estimated``
    is the window's performance estimated without labels (None: disabled for the model)."""
    model, version, window, mc, history = prep.model, prep.version, prep.window, prep.mc, prep.history
    prev = history.previous(model, window.end_iso)
    entry = _alarm_state(
        model, version.version, window, result.to_dict(), perf, prev, mc, bool(estimated and estimated.degraded)
    )
    entry.listed_until = str(captured.get("listed_until", ""))
    entry.execution_arn = str(captured.get("execution_arn", ""))
    entry.late_rows = int(captured.get("late_rows_while_running", 0))  # counted while the workflow ran
    entry.rechecks = recheck.previous.rechecks + 1 if recheck else 0
    entry.quality_failed = bool(quality and quality.alarm)
    doc = result.to_dict()
    notes = [*doc["notes"], *prep.window_notes, *capture_notes, *(late.notes if late else [])]
    if recheck:
        notes.append(f"checked again: {recheck.late_rows:,} rows arrived after the previous check")
    for w in late.windows if late else []:
        notes.append(
            f"{w.late_rows:,} rows of the window {w.window_start} to {w.window_end} arrived after it was checked"
            + (" (checked again)" if w.rechecked else f" ({w.note})" if w.note else "")
        )
    late_rows = recheck.late_rows if recheck else late.rows if late else 0
    doc.update(
        {
            "model": model,
            "version": version.version,
            "window_start": window.start_iso,
            "window_end": window.end_iso,
            "notes": notes,
            "performance": perf.to_dict() if perf else None,
            "quality": quality.to_dict() if quality else None,
            "estimated_performance": estimated.with_realized(perf.metrics if perf else None) if estimated else None,
            "alarm": {
                "drifted": entry.drifted,
                "reasons": entry.reasons,
                "streak": entry.streak,
                "required": mc.drift.persistence_windows,
                "alarm": entry.alarm,
            },
            "captures": dict(captured),
            "rechecked": recheck is not None,
            "late_rows": late_rows,
            "late": late.to_dict() if late else None,
            "lateness": {"allowed_seconds": int(prep.lateness.total_seconds()), "checked_early": prep.early},
        }
    )
    result.notes = notes
    past = [h.to_dict() for h in reversed(history.list(model, HISTORY_IN_REPORT)) if h.window_end < window.end_iso]
    html = render_html(
        result,
        history=past,
        window={"start": window.start_iso, "end": window.end_iso},
        performance=doc["performance"],
        alarm=doc["alarm"],
        quality=doc["quality"],
        estimated=doc["estimated_performance"],
    )
    result_uri, report_uri = publish.write_report(ctx.reports_bucket, model, window.end_iso, doc, html)
    entry.report_uri, entry.result_uri = report_uri, result_uri
    entry.checked_at = now.astimezone(UTC).isoformat(timespec="seconds")
    history.put(entry)
    n_metrics = publish.put_metrics(
        ctx.metrics_namespace, publish.metric_data(model, version.version, doc, doc["performance"], now)
    )
    quality_alert_id = _quality_alert(ctx, prep, doc, prev, recheck, report_uri)

    event_id, message_id = "", ""
    was_alarmed = bool(recheck and recheck.previous.alarm)  # its event and alert went out already
    if entry.alarm and not was_alarmed:
        detail = {
            "model": model,
            "version": version.version,
            "window_start": window.start_iso,
            "window_end": window.end_iso,
            "share_drifted": doc["share_drifted"],
            "drifted_columns": doc["drifted_columns"],
            "report_uri": report_uri,
            "reasons": entry.reasons,
            "prediction_drifted": doc["prediction_drifted"],
            "performance_degraded": entry.performance_degraded,
            "drifted_segments": doc["drifted_segments"],
        }
        event_id = publish.drift_event(ctx.event_bus, detail)
        if not (prev and prev.alarm) and not (recheck and recheck.next_alarmed):
            message_id = publish.alert(
                ctx.alerts_topic_arn,
                _subject(model, version.version, entry),
                _message(model, version.version, window, doc, entry, report_uri),
                model,
            )
    return {
        "model": model,
        "version": version.version,
        "status": doc["status"],
        "message": doc["message"],
        "window_start": window.start_iso,
        "window_end": window.end_iso,
        "n_current": doc["n_current"],
        "share_drifted": doc["share_drifted"],
        "dataset_drifted": doc["dataset_drifted"],
        "prediction_drifted": doc["prediction_drifted"],
        "drifted_columns": doc["drifted_columns"],
        "drifted_segments": doc["drifted_segments"],
        "multivariate": doc["multivariate"],
        "performance": {"status": perf.status, "degraded": perf.degraded, "n_labels": perf.n_labels} if perf else None,
        "estimated_performance": (
            {"status": estimated.status, "degraded": estimated.degraded, "metric": estimated.metric}
            if estimated
            else None
        ),
        "drifted": entry.drifted,
        "reasons": entry.reasons,
        "streak": entry.streak,
        "required_windows": mc.drift.persistence_windows,
        "alarm": entry.alarm,
        "event_id": event_id,
        "alert_message_id": message_id,
        "quality": {"status": quality.status, "alarm": quality.alarm, "failures": quality.failures}
        if quality
        else None,
        "quality_alert_message_id": quality_alert_id,
        "metrics_published": n_metrics,
        "report_uri": report_uri,
        "result_uri": result_uri,
        "rechecked": doc["rechecked"],
        "late_rows": late_rows,
        "late": doc["late"],
        "lateness": doc["lateness"],
        "notes": notes,
    }


def quality_thresholds(mc: ModelConfig) -> QualityThresholds:
    """The model's ``drift.quality`` limits, for the window and for each of its segments."""
    return QualityThresholds.from_mapping(mc.drift.quality.model_dump())


def segment_estimates(prep: Prepared, result: DriftResult, frame: Any, data: captures.WindowData) -> None:
    """Each checked segment's estimated performance (CBPE/DLE on the segment's rows; ``insufficient_data``
    below ``drift.estimated_performance.min_rows``), put on ``result.segments``; the scale-out reduce step
    computes the same from the rows its shards wrote (:func:`driftline.monitoring.scale.reduce.estimates_of`)."""
    for column, res in result.segments.items():
        seg = prep.profile.segments.get(column)
        keys = row_keys(frame, column) if seg is not None and res.status == "ok" else None
        if seg is None or keys is None or len(keys) != len(data.predictions):
            continue
        labels = seg.labels(keys)
        groups = {v: np.flatnonzero(labels == v).tolist() for v, r in res.values.items() if r.drift is not None}
        found = estimate_for_segments(
            prep.version,
            prep.mc.drift.estimated_performance,
            data.predictions,
            data.columns,
            groups,
            row_ids=data.request_ids,
        )
        for value, est in found.items():
            res.values[value].estimate = est.to_dict()


def window_quality(prep: Prepared, frame: Any) -> QualityResult | None:
    """The window's data-quality checks (missing, out-of-range and unseen-category rates) with the model's
    ``drift.quality`` thresholds, passed to :func:`conclude` as ``quality``; None when they cannot run
    (the drift check has already read the same columns, so this is a safeguard, never the verdict)."""
    thresholds = quality_thresholds(prep.mc)
    try:
        return check_quality(prep.profile, frame, thresholds, min_rows=prep.mc.drift.min_window_rows)
    except DriftInputError as e:
        log.warning("%s: data-quality checks skipped: %s", prep.model, e)
        return None


def _quality_alert(
    ctx: Context,
    prep: Prepared,
    doc: Mapping[str, Any],
    prev: HistoryEntry | None,
    recheck: lateness.Recheck | None,
    report_uri: str,
) -> str:
    """The data-quality alert (SNS, ``event`` = DataQualityAlert) when this window fails a check and the
    window before it did not (nor this window at its previous check); "" otherwise. Not a drift alarm:
    no ``DriftDetected`` event, so nothing retrains on broken inputs."""
    quality = doc.get("quality") or {}
    if not quality.get("alarm"):
        return ""
    if (prev and prev.quality_failed) or (recheck and recheck.previous.quality_failed):
        return ""
    model, version, window = prep.model, prep.version.version, prep.window
    lines = [
        f"{model} v{version}, window {window.start_iso} to {window.end_iso} ({doc['n_current']:,} requests): "
        f"data-quality checks failed. This is not drift and triggers no retraining: fix the inputs."
    ]
    for f in quality["failures"][:20]:
        base = " above the reference's missing rate" if f["check"] == "missing_rate" else ""
        lines.append(
            f"- {f['column']}: {f['check'].replace('_', ' ')} {f['rate']:.1%} (limit {f['threshold']:.1%}{base})"
        )
    lines.append(f"Report: {report_uri}")
    subject = f"Driftline: data quality on {model} v{version}"
    return publish.alert(ctx.alerts_topic_arn, subject, "\n".join(lines), model, event=DATA_QUALITY_ALERT)


def _load_profile(model: str, version: Any) -> Profile:
    ref = version.artifacts.get("profile")
    if ref is None:
        raise MonitoringError(
            f"{model} v{version.version} has no drift profile among its artifacts "
            f"({', '.join(sorted(version.artifacts)) or 'none'}); retrain it so the profile is "
            f"built, or register one under artifacts.profile"
        )
    ref = ref if isinstance(ref, ArtifactRef) else ArtifactRef.from_dict(ref)
    try:
        return Profile.from_json(read_verified(ref), source=ref.uri)
    except (ArtifactNotFoundError, ArtifactIntegrityError, ProfileFormatError) as e:
        raise MonitoringError(f"{model} v{version.version}: {e}") from None


def _performance(
    ctx: Context,
    model: str,
    schema: Mapping[str, Any],
    baseline: Mapping[str, Any],
    mc: ModelConfig,
    data: captures.WindowData,
    window: Window,
    now: datetime,
) -> performance.PerformanceResult | None:
    label = (schema or {}).get("label")
    if not label or not data.n_rows:
        return None
    until = min(max(now, window.end), window.end + LABEL_LOOKAHEAD)
    labels = captures.read_labels(ctx.captures_bucket, model, window.start, until, labelers=mc.labelers)
    matched = []
    for rid, caller, pred in zip(data.request_ids, data.callers, data.predictions, strict=True):
        found, truth = labels.for_capture(rid, caller)  # only the caller's own or a labeler's label counts
        if found:
            matched.append((truth, pred))
    return performance_of(label, baseline, mc, matched)


def performance_of(
    label: Mapping[str, Any], baseline: Mapping[str, Any], mc: ModelConfig, matched: list[tuple[Any, Any]]
) -> performance.PerformanceResult:
    """Concept drift from (label, prediction) pairs, however they were matched (in-process or per shard)."""
    task = "regression" if label.get("task") == "regression" else "classification"
    return performance.evaluate(
        task,
        list(label.get("classes") or []),
        [m[0] for m in matched],
        [m[1] for m in matched],
        baseline,
        min_labels=mc.drift.min_labels,
        tolerance=mc.drift.performance_tolerance,
        primary_metric=mc.gate.primary_metric,
    )


def _alarm_state(
    model: str,
    version: int,
    window: Window,
    result: Mapping[str, Any],
    perf: performance.PerformanceResult | None,
    prev: HistoryEntry | None,
    mc: ModelConfig,
    estimate_degraded: bool = False,
) -> HistoryEntry:
    ok = result["status"] == "ok"
    perf_degraded = bool(perf and perf.status == "ok" and perf.degraded)
    reasons = []
    if ok and result["dataset_drifted"]:
        reasons.append("data_drift")
    if ok and result["prediction_drifted"]:
        reasons.append("prediction_drift")
    if ok and (result.get("multivariate") or {}).get("drifted"):
        reasons.append("multivariate_drift")
    if ok and result.get("drifted_segments"):  # a segment's own verdict: the whole window may not show it
        reasons.append("segment_drift")
    if perf_degraded:
        reasons.append("performance")
    if estimate_degraded:  # judged on its own rows (min_rows), so it counts even when drift had too few
        reasons.append("estimated_performance")
    drifted = bool(reasons)
    streak = streak_after(prev.streak if prev else 0, ok, perf_degraded or estimate_degraded, drifted)
    return HistoryEntry(
        model=model,
        window_start=window.start_iso,
        window_end=window.end_iso,
        version=version,
        status=result["status"],
        share_drifted=result["share_drifted"] if ok else None,
        dataset_drifted=bool(ok and result["dataset_drifted"]),
        prediction_drifted=result["prediction_drifted"],
        performance_degraded=perf_degraded,
        performance_status=perf.status if perf else "no_labels",
        drifted=drifted,
        streak=streak,
        alarm=drifted and streak >= mc.drift.persistence_windows,
        drifted_columns=list(result["drifted_columns"]),
        n_current=int(result["n_current"]),
        reasons=reasons,
    )


def _capture_notes(data: captures.WindowData) -> list[str]:
    notes = []
    if data.truncated:
        notes.append(f"reading stopped at {data.n_rows:,} captures; the window holds more")
    notes += bad_lines_notes(data.n_bad_lines)
    if data.n_other:
        notes.append(f"{data.n_other} captures of other roles or versions (shadow, challenger) were not checked")
    return notes


def segment_lines(doc: Mapping[str, Any]) -> list[str]:
    """The alert's lines naming each drifted segment (which column value, which of its columns drifted)."""
    lines = []
    for column, res in (doc.get("segments") or {}).items():
        for value in res.get("drifted_segments", []):
            r = res["values"][value]
            lines.append(
                f"Segment {column}={value} drifted ({r['rows']:,} requests): {len(r['drifted_columns'])} of "
                f"{r['n_columns_tested']} feature columns ({r['share_drifted']:.0%}): {', '.join(r['drifted_columns'])}"
                + ("; the whole window is not dataset drift." if not doc.get("dataset_drifted") else ".")
            )
    return lines


def bad_lines_notes(n: int) -> list[str]:
    """The note on malformed capture lines, worded once for the in-process reader and the scale-out query."""
    return [f"{n} capture lines were not JSON objects and were skipped"] if n else []


def _subject(model: str, version: int, e: HistoryEntry) -> str:
    what = {
        "data_drift": "data drift",
        "prediction_drift": "prediction drift",
        "multivariate_drift": "multivariate drift",
        "segment_drift": "segment drift",
        "performance": "performance drop",
        "estimated_performance": "estimated performance drop",
    }
    return f"Driftline: {' + '.join(what[r] for r in e.reasons)} on {model} v{version}"


def _message(model: str, version: int, window: Window, doc: Mapping[str, Any], e: HistoryEntry, report_uri: str) -> str:
    lines = [
        f"{model} v{version}, window {window.start_iso} to {window.end_iso} ({doc['n_current']:,} requests).",
        f"Drifted {e.streak} window(s) in a row: {', '.join(e.reasons)}.",
    ]
    if doc["status"] == "ok":
        lines.append(
            f"{doc['n_drifted']} of {doc['n_columns_tested']} feature columns drifted "
            f"({doc['share_drifted']:.0%}): {', '.join(doc['drifted_columns']) or 'none'}."
        )
        if doc["prediction_drifted"]:
            lines.append("The distribution of the model's predictions shifted.")
        mv = doc.get("multivariate") or {}
        if mv.get("drifted"):
            lines.append(f"Multivariate drift ({mv.get('method')}): {mv.get('message')}.")
        lines += segment_lines(doc)
    perf = doc.get("performance") or {}
    if perf.get("degraded"):
        lines.append(f"Prediction quality dropped: {perf.get('message')}.")
    estimated = alarm_line(doc.get("estimated_performance"))
    if estimated:
        lines.append(estimated)
    lines.append(f"Report: {report_uri}")
    return "\n".join(lines)
