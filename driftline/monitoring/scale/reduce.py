"""The reduce step of the scale-out drift check: every shard reported, merged, checked, published.

The workflow ends here whatever happened before: when Athena's query failed, the check is recorded as
``failed`` with Athena's message (result JSON, report, history item, metrics and an alert); when a shard
file has no summary (its summarize task failed after its retries, or the Distributed Map never listed
it), the check is recorded as ``incomplete`` naming the shard files, and no drift verdict is given: a
partial window is never presented as a complete one. Otherwise the shard summaries are merged
(:meth:`driftline.drift.summary.Summary.merge_all`) and checked with :func:`driftline.drift.check_summary`,
the matched labels give the task metrics (each segment of ``drift.segments`` is judged from the merged
per-segment summaries, as the in-process check judges it: same segment verdicts on both paths), and
:func:`driftline.monitoring.check.conclude` writes the same outputs as the in-process check (one code path
after the merge).

Each outcome completes the window's ``running`` history item written at dispatch: the dispatch's
``listed_until`` is kept (so late rows of the window are counted, also after a failure), the late rows
counted while the workflow ran are carried over (the write is conditional on the count read and merges
what a look-back added meanwhile, as reduce holds no lease: :meth:`DriftHistory.complete`), and the
streaks of windows checked meanwhile (which saw this one as neutral) are recomputed from its verdict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from driftline.contracts import drift_run_prefix, drift_shard_data_prefix, drift_shard_summary_key
from driftline.drift import DriftInputError, ProfileMismatchError, check_summary
from driftline.drift.engine import DriftResult
from driftline.drift.methods import SMALL_REFERENCE_ROWS
from driftline.drift.quality import evaluate_quality, quality_from_summary
from driftline.drift.summary import Summary, summarize
from driftline.estimation.artifact import FittedEstimator
from driftline.estimation.monitor import window_estimator
from driftline.monitoring import lateness, publish
from driftline.monitoring.check import (
    Context,
    MonitoringError,
    Prepared,
    announce_raised,
    bad_lines_notes,
    conclude,
    performance_of,
    prepare,
    quality_thresholds,
)
from driftline.monitoring.history import FAILED, INCOMPLETE, RUNNING
from driftline.monitoring.scale.dispatch import recheck_of
from driftline.monitoring.scale.estimates import WindowRows, read_window_rows, window_estimates
from driftline.monitoring.scale.shards import SHARD_SUMMARY_FORMAT

__all__ = ["FAILED", "INCOMPLETE", "ShardOutcome", "collect", "reduce_check"]

log = logging.getLogger(__name__)

NAMED_SHARDS = 20
"""Missing shards named in a result at most (the count is always given)."""


@dataclass
class ShardOutcome:
    """What the shard listing and the summaries say about one run."""

    data_keys: list[str] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)
    labels: list[tuple[Any, Any]] = field(default_factory=list)
    rows: int = 0
    malformed: int = 0
    """Malformed capture lines the query marked (the in-process reader's ``bad_lines``)."""
    missing: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    estimates: dict[str, Any] = field(default_factory=dict)
    """Each shard file's estimation rows entry (None: its summary has none), :mod:`.estimates`."""

    @property
    def complete(self) -> bool:
        return not self.missing and not self.errors


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(out)


def collect(client: Any, bucket: str, model: str, run: str) -> ShardOutcome:
    """List the run's shard files and read the summary of each (missing or unreadable ones are named)."""
    out = ShardOutcome(data_keys=_keys(client, bucket, drift_shard_data_prefix(model, run)))
    present = set(_keys(client, bucket, drift_run_prefix(model, run) + "summaries/"))
    for key in out.data_keys:
        skey = drift_shard_summary_key(model, run, key)
        if skey not in present:
            out.missing.append(key)
            continue
        try:
            doc = json.loads(client.get_object(Bucket=bucket, Key=skey)["Body"].read())
            if not isinstance(doc, dict) or doc.get("format") != SHARD_SUMMARY_FORMAT:
                raise ValueError(f"not a shard summary ({SHARD_SUMMARY_FORMAT})")
            if "error" in doc:
                out.errors[key] = str(doc["error"])
                continue
            out.summaries.append(Summary.from_dict(doc["summary"]))
            out.estimates[key] = doc.get("estimate")
            out.labels += [(pair[0], pair[1]) for pair in doc.get("labels", [])]
            out.rows += int(doc["rows"])
            out.malformed += int(doc.get("malformed_lines", 0))
        except (ValueError, KeyError, TypeError, DriftInputError) as e:
            out.errors[key] = f"summary {skey} unreadable: {e}"
    return out


def _no_verdict(prep: Prepared, status: str, message: str) -> DriftResult:
    return DriftResult(
        status=status,
        columns={},
        n_reference=0,
        n_current=0,
        share_drifted=0.0,
        dataset_drifted=False,
        share_threshold=prep.mc.drift.share_threshold,
        metadata=dict(prep.profile.metadata),
        message=message,
    )


def _incomplete_message(outcome: ShardOutcome) -> str:
    parts = []
    if outcome.missing:
        named = ", ".join(outcome.missing[:NAMED_SHARDS]) + (" …" if len(outcome.missing) > NAMED_SHARDS else "")
        parts.append(f"{len(outcome.missing)} of {len(outcome.data_keys)} shard files have no summary: {named}")
    for key, err in list(outcome.errors.items())[:NAMED_SHARDS]:
        parts.append(f"shard {key} failed: {err}")
    return "the check is incomplete, no verdict was given: " + "; ".join(parts)


def reduce_check(
    event: Mapping[str, Any], *, ctx: Context, client: Any, now: datetime, athena: Any | None = None
) -> dict[str, Any]:
    """Finish one scale-out check from the workflow's state (``model``, ``run``, ``window_start``,
    ``window_end``, optional ``query_error``); ``athena`` reads a failed query's reason. Returns what
    :func:`driftline.monitoring.check.run_check` returns, with ``engine: "workflow"``."""
    model, run = str(event["model"]), str(event["run"])
    prep = prepare(model, str(event["window_start"]), str(event["window_end"]), ctx, now)
    if not isinstance(prep, Prepared):
        return prep
    prep.history = prep.history.without_lease()  # no lease here: the look-back may add late rows meanwhile
    version = prep.version.version
    if int(event.get("version", version)) != version:
        raise MonitoringError(
            f"{model}: the champion changed from v{event['version']} to v{version} while the window was "
            f"being checked; check the window again"
        )
    try:
        recheck = recheck_of(event.get("recheck"), prep)
    except ValueError as e:
        raise MonitoringError(f"{model}: {e}") from None
    carried = _carried(prep, event)
    query_error = event.get("query_error")
    if query_error:
        msg = f"the Athena query reading the window failed: {_athena_message(query_error, athena)}"
        return _completed(ctx, prep, _finish_without_verdict(ctx, prep, FAILED, msg, now, carried=carried))
    outcome = collect(client, ctx.captures_bucket, model, run)
    loaded = window_estimator(prep.version, prep.mc.drift.estimated_performance)
    rows = _estimation_rows(client, ctx.captures_bucket, outcome, loaded) if outcome.complete else None
    if not outcome.complete:
        out = _finish_without_verdict(ctx, prep, INCOMPLETE, _incomplete_message(outcome), now, outcome, carried)
        return _completed(ctx, prep, out)
    profile = prep.profile
    if outcome.summaries:
        merged = Summary.merge_all(outcome.summaries)
    else:  # the query found no rows: the engine answers insufficient_data
        merged = summarize(profile, {c: np.empty(0) for c in profile.columns})
    try:
        result = check_summary(
            profile,
            merged,
            expected_metadata=prep.expected,
            min_rows=prep.mc.drift.min_window_rows,
            share_threshold=prep.mc.drift.share_threshold,
            distance_above=SMALL_REFERENCE_ROWS,
            multivariate=ctx.config.monitoring.multivariate,
            weighting=prep.mc.drift.weighting,
            alert_on_columns=prep.mc.drift.alert_on_columns,
            segments=prep.mc.drift.segments,
            min_segment_rows=prep.mc.drift.min_segment_rows,
            quality_thresholds=quality_thresholds(prep.mc),
        )
    except (ProfileMismatchError, DriftInputError) as e:
        raise MonitoringError(f"{model} v{version}: the shard summaries could not be checked: {e}") from None
    quality = evaluate_quality(  # from the merged counts: out-of-range is null where declared bounds widen the range
        profile,
        quality_from_summary(profile, merged),
        quality_thresholds(prep.mc),
        min_rows=prep.mc.drift.min_window_rows,
    )
    label = (prep.version.input_schema or {}).get("label")
    perf = performance_of(label, prep.version.metrics, prep.mc, outcome.labels) if label and merged.n_rows else None
    settings = prep.mc.drift.estimated_performance
    estimated = (
        window_estimates(prep.version, settings, loaded, rows, result, profile, merged.n_rows) if loaded else None
    )
    captured = {
        "rows": merged.n_rows,
        "bad_lines": outcome.malformed,
        "shards": len(outcome.data_keys),
        "engine": "workflow",
        "run": run,
        **carried,
    }
    notes = bad_lines_notes(outcome.malformed)
    out = conclude(ctx, prep, result, perf, captured, notes, now, quality=quality, recheck=recheck, estimated=estimated)
    out["engine"] = "workflow"
    return _completed(ctx, prep, out)


def _estimation_rows(
    client: Any, bucket: str, outcome: ShardOutcome, loaded: tuple[FittedEstimator | None, str] | None
) -> WindowRows | None:
    """Every shard's estimation rows when the model is estimated and its estimator is usable; a shard whose
    side file is missing or damaged joins ``outcome.errors`` (the check is incomplete, never estimated on
    part of the window)."""
    estimator = loaded[0] if loaded else None
    if estimator is None or estimator.kind == "unavailable":
        return None
    width = len(estimator.classes) if estimator.kind == "cbpe" else 2
    rows = read_window_rows(client, bucket, estimator, outcome.estimates, width)
    outcome.errors.update(rows.failed)
    return rows


def _carried(prep: Prepared, event: Mapping[str, Any]) -> dict[str, Any]:
    """What the completed history item keeps from the dispatch: its listing mark, the execution, and the
    late rows counted while the workflow ran (only from the running item of this very window). The
    workflow hands reduce no ``listed_until``, so the running item's is the one kept."""
    running = prep.history.get(prep.model, prep.window.end_iso)
    if running is None or running.status != RUNNING:
        running = None
    listed = str(event.get("listed_until") or (running.listed_until if running else ""))
    arn = str(event.get("execution_arn") or (running.execution_arn if running else ""))
    return {
        "listed_until": listed,
        "execution_arn": arn,
        "late_rows_while_running": running.late_rows if running else 0,
    }


def _completed(ctx: Context, prep: Prepared, out: dict[str, Any]) -> dict[str, Any]:
    """Recompute the streaks of windows checked while this one ran (they saw it as neutral) and announce an
    alarm that turns on."""
    later = [e for e in prep.history.list(prep.model, lateness.LATE_WINDOWS) if e.window_end > prep.window.end_iso]
    if later:
        raised, starts = lateness.restreak_after(
            prep.history, prep.model, prep.window.end_iso, prep.window.end_iso, prep.mc.drift.persistence_windows
        )
        announce_raised(ctx, prep.model, lateness.LateReport(raised=raised, starts_alarm=starts))
        out["restreaked"] = [e.window_end for e in raised]
    return out


def _athena_message(error: Any, athena: Any | None) -> str:
    """The reason Athena gave (``StateChangeReason``): asked for by query id, or taken from a
    GetQueryExecution answer, a Step Functions error (``Error``/``Cause``) or a plain string."""
    if isinstance(error, Mapping) and isinstance(error.get("query_id"), str):
        if athena is None:
            return f"query {error['query_id']} ended {error.get('State', 'FAILED')}"
        try:
            status = athena.get_query_execution(QueryExecutionId=error["query_id"])["QueryExecution"]["Status"]
        except Exception as e:
            return f"query {error['query_id']} ended {error.get('State', 'FAILED')} ({type(e).__name__}: {e})"
        return f"{status.get('State', 'FAILED')}: {status.get('StateChangeReason') or 'no reason given'}"
    if isinstance(error, Mapping):
        if "Error" in error:  # a Step Functions error caught from StartQueryExecution
            return f"{error['Error']}: {error.get('Cause', '')}".rstrip(": ")
        status = error.get("Status", error)
        if isinstance(status, Mapping):
            return str(status.get("StateChangeReason") or status.get("State") or "no reason given")
    return str(error)


def _finish_without_verdict(
    ctx: Context,
    prep: Prepared,
    status: str,
    message: str,
    now: datetime,
    outcome: ShardOutcome | None = None,
    carried: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    captured: dict[str, Any] = {"rows": 0, "engine": "workflow", "listed_until": "", **(carried or {})}
    if outcome is not None:
        captured.update(
            {
                "shards": len(outcome.data_keys),
                "missing_shards": outcome.missing,
                "failed_shards": sorted(outcome.errors),
            }
        )
    out = conclude(ctx, prep, _no_verdict(prep, status, message), None, captured, [message], now)
    subject = f"Driftline: drift check {status} for {prep.model} v{prep.version.version}"
    lines = [
        f"{prep.model} v{prep.version.version}, window {prep.window.start_iso} to {prep.window.end_iso}.",
        message,
        f"Report: {out['report_uri']}",
    ]
    out["alert_message_id"] = publish.alert(ctx.alerts_topic_arn, subject, "\n".join(lines), prep.model)
    out["engine"] = "workflow"
    log.warning("%s: %s", subject, message)
    return out
