"""Whether a scheduled check runs in-process or as the scale-out workflow, and starting the workflow.

The decision is made before any capture is parsed: the window's hour prefixes are listed (as the
in-process reader would list them) and their object sizes summed; the rows are estimated from one
sampled object's rows per byte (v1 lines are one row each, v2 records carry ``rows``). A window at or
above ``drift.scale_out_bytes`` or ``drift.scale_out_rows`` starts the workflow; smaller ones (and an
empty window, which the in-process check answers ``insufficient_data``) keep today's path.

The execution is named per model and window (:func:`driftline.contracts.drift_run_name`), so a retried
schedule finds the execution still running instead of starting a second one; a window whose execution has
ended (failed, incomplete) is checked again under a suffixed name (:func:`run_name`).

The window is taken before the execution starts: a history item with status ``running`` (its execution
ARN and the dispatch's ``listed_until``) is written conditionally, so the next scheduled run starts after
it even when it comes before the workflow's reduce step has completed the item. An execution that ended
without completing it (failed, timed out, aborted, never started) is found by the next run
(:func:`settle_running`), which marks the window ``failed`` with the reason: visible, and checkable again
by hand.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from driftline import aws
from driftline.capture_format import COLUMNS_FIELD, ROW_FIELD, captured_rows
from driftline.capture_tables import (
    TEST_FIELD,
    V1_FEATURES_FIELD,
    V1_PREDICTION_FIELD,
    captures_table_name,
    feedback_table_name,
)
from driftline.captures_store import DELIVERY_LAG
from driftline.contracts import CAPTURES_PREFIX, drift_run_name, drift_shard_data_prefix, hour_prefixes
from driftline.estimation.monitor import ESTIMATOR_ARTIFACT
from driftline.monitoring.history import RUNNING, DriftHistory, HistoryEntry
from driftline.monitoring.lateness import Recheck
from driftline.monitoring.scale.sql import MAX_SHARDS, ShardQuery, row_struct_fields
from driftline.registry.artifacts import ArtifactRef

if TYPE_CHECKING:
    from driftline.monitoring.check import Prepared

__all__ = [
    "ScaleTarget",
    "WindowSize",
    "captured_row_fields",
    "estimate_window",
    "estimation_item",
    "maybe_start",
    "recheck_of",
    "recheck_state",
    "run_name",
    "running_entry",
    "settle_running",
    "start_workflow",
    "wants_scale_out",
    "workflow_input",
]

log = logging.getLogger(__name__)

SAMPLE_BYTES_MAX = 8 * 1024 * 1024
"""The object sampled for rows per byte is read only when at most this big (else the smallest is used)."""
POLL_SECONDS = 5
MAX_POLLS = 720
"""The poll loop gives the query this many polls (an hour at POLL_SECONDS) before stopping it."""
LABEL_LOOKAHEAD = timedelta(days=7)
"""Feedback read past the window's end (as the in-process check's ``LABEL_LOOKAHEAD``)."""
ENDED_WITHOUT_REDUCE = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
"""Execution statuses after which a window still ``running`` will never be completed by its reduce step."""
SETTLE_WINDOWS = 24
"""Newest history items a run looks through for running windows whose execution has ended."""


@dataclass(frozen=True)
class WindowSize:
    objects: int
    bytes: int
    rows: int
    """Estimated from a sampled object's rows per byte."""


@dataclass(frozen=True)
class ScaleTarget:
    """Where the workflow runs: its state machine, the Athena workgroup and the Glue database."""

    state_machine_arn: str
    workgroup: str
    database: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScaleTarget | None:
        """None when the function was not given the workflow (scale-out then never starts)."""
        env = os.environ if env is None else env
        values = [env.get(k, "") for k in ("DRIFT_SCALE_STATE_MACHINE_ARN", "ATHENA_WORKGROUP", "GLUE_DATABASE")]
        return cls(*values) if all(values) else None


def _rows_in(body: bytes) -> int:
    rows = 0
    for line in body.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            rows += captured_rows(rec)  # v3 counts its outputs, v2 its rows, v1 one
    return rows


def estimate_window(client: Any, bucket: str, model: str, start: datetime, end: datetime) -> WindowSize:
    """Objects, bytes and estimated rows of the capture hours a check of [start, end) lists."""
    sizes: list[tuple[int, str]] = []
    for prefix in hour_prefixes(CAPTURES_PREFIX, model, start, end + DELIVERY_LAG):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            sizes += [(int(o["Size"]), o["Key"]) for o in page.get("Contents", [])]
    total = sum(s for s, _ in sizes)
    if not total:
        return WindowSize(len(sizes), 0, 0)
    fitting = [s for s in sizes if 0 < s[0] <= SAMPLE_BYTES_MAX] or [min(sizes)]
    size, key = max(fitting)
    rows = _rows_in(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return WindowSize(len(sizes), total, int(total * rows / size) if size else 0)


def captured_row_fields(glue: Any, database: str, table: str) -> list[str] | None:
    """The fields of the captures table's ``rows`` struct, in order (None when the table does not exist or
    lacks a column the query reads: a table created before the v1, ``test`` or v3 ``cols`` columns, until
    redeployed)."""
    try:
        columns = glue.get_table(DatabaseName=database, Name=table)["Table"]["StorageDescriptor"]["Columns"]
    except glue.exceptions.EntityNotFoundException:
        return None
    types = {col["Name"].lower(): col["Type"] for col in columns}
    needed = (ROW_FIELD, COLUMNS_FIELD, V1_FEATURES_FIELD, V1_PREDICTION_FIELD, TEST_FIELD)
    if any(c not in types for c in needed):
        return None
    return row_struct_fields(types[ROW_FIELD])


def recheck_state(r: Recheck | None) -> dict[str, Any] | None:
    """What the reduce step needs of a re-check (:func:`recheck_of` reads it back): the late rows that
    called for it and whether the previous verdict's event and alert went out already."""
    if r is None:
        return None
    e = r.previous
    return {
        "late_rows": r.late_rows,
        "next_alarmed": r.next_alarmed,
        "previous": {"status": e.status, "alarm": e.alarm, "rechecks": e.rechecks, "version": e.version},
    }


def recheck_of(state: Any, prep: Prepared) -> Recheck | None:
    """The :class:`Recheck` a workflow input describes (None: a first check); a malformed one is refused."""
    if state is None:
        return None
    prev = state.get("previous") if isinstance(state, Mapping) else None
    ok = isinstance(prev, Mapping) and all(
        type(v) is t
        for v, t in (
            (state.get("late_rows"), int),
            (state.get("next_alarmed"), bool),
            (prev.get("alarm"), bool),
            (prev.get("rechecks"), int),
            (prev.get("status"), str),
        )
    )
    if not ok or not isinstance(prev, Mapping):
        raise ValueError(f"recheck must be null or {{late_rows, next_alarmed, previous}}, got {str(state)[:200]}")
    w = prep.window
    previous = HistoryEntry(
        model=prep.model,
        window_start=w.start_iso,
        window_end=w.end_iso,
        version=prev.get("version") if type(prev.get("version")) is int else None,
        status=str(prev["status"]),
        alarm=bool(prev["alarm"]),
        rechecks=int(prev["rechecks"]),
    )
    return Recheck(previous, int(state["late_rows"]), bool(state["next_alarmed"]))


def workflow_input(
    prep: Prepared,
    target: ScaleTarget,
    bucket: str,
    size: WindowSize,
    run: str,
    labelers: list[str],
    shard_rows: int,
    row_fields: list[str],
    *,
    list_until: datetime | None = None,
    recheck: Recheck | None = None,
) -> dict[str, Any]:
    """The execution's input: the rendered query and everything the Map items and reduce need. A re-check
    lists capture hours up to ``list_until`` (where its late captures landed) and carries ``recheck``."""
    shards = max(1, min(MAX_SHARDS, -(-size.rows // shard_rows)))
    window = prep.window
    features = prep.features
    query = ShardQuery(
        database=target.database,
        captures_table=captures_table_name(prep.model),
        feedback_table=feedback_table_name(prep.model),
        version=prep.version.version,
        start=window.start,
        end=window.end,
        list_until=max(window.end + DELIVERY_LAG, list_until or window.end),
        labels_until=window.end + LABEL_LOOKAHEAD,
        features=features,
        row_fields=row_fields,
        shards=shards,
        location=f"s3://{bucket}/{drift_shard_data_prefix(prep.model, run)}",
    )
    profile_ref = prep.version.artifacts["profile"]
    return {
        "model": prep.model,
        "version": prep.version.version,
        "run": run,
        "window_start": window.start_iso,
        "window_end": window.end_iso,
        "query": query.render(),
        "workgroup": target.workgroup,
        "database": target.database,
        "bucket": bucket,
        "data_prefix": drift_shard_data_prefix(prep.model, run),
        "profile": profile_ref if isinstance(profile_ref, dict) else profile_ref.to_dict(),
        "labelers": labelers,
        "estimation": estimation_item(prep),
        "poll_seconds": POLL_SECONDS,
        "max_polls": MAX_POLLS,
        "estimate": {"objects": size.objects, "bytes": size.bytes, "rows": size.rows, "shards": shards},
        "recheck": recheck_state(recheck),
    }


def estimation_item(prep: Prepared) -> dict[str, Any] | None:
    """What each shard needs to write its estimation rows (the estimator's artifact reference and the input
    schema), or None when the model's performance is not estimated or its version has no usable reference
    (the reduce step then reports the estimate as the in-process check does, without rows)."""
    ref = (prep.version.artifacts or {}).get(ESTIMATOR_ARTIFACT)
    if not prep.mc.drift.estimated_performance.enabled or ref is None:
        return None
    try:
        ref = ref if isinstance(ref, ArtifactRef) else ArtifactRef.from_dict(ref)
    except ValueError:
        return None
    return {"estimator": ref.to_dict(), "input_schema": prep.version.input_schema or {}}


def _execution_arn(target: ScaleTarget, name: str) -> str:
    return target.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def run_name(client: Any, target: ScaleTarget, model: str, window_end: str, now: datetime) -> tuple[str, bool]:
    """(execution name, already running) for a check of the window: its own name, unless an execution of
    that name has already ended (a re-check by hand of a failed or incomplete window), which gets a
    suffixed name (and so a fresh, empty UNLOAD prefix, as Athena requires)."""
    name = drift_run_name(model, window_end)
    try:  # asked first: the input differs between retries (listed_until), so AWS would refuse, not dedupe
        status = client.describe_execution(executionArn=_execution_arn(target, name))["status"]
    except client.exceptions.ExecutionDoesNotExist:
        return name, False
    if status == "RUNNING":
        return name, True
    suffix = f"-{now.astimezone(UTC):%Y%m%d%H%M%S}"
    return name[: 80 - len(suffix)] + suffix, False


def start_workflow(client: Any, target: ScaleTarget, state: Mapping[str, Any], running: bool) -> dict[str, Any]:
    """Start the execution named ``state["run"]``; one already running is reported, not started again."""
    name = str(state["run"])
    arn, started = _execution_arn(target, name), False
    if not running:
        try:
            resp = client.start_execution(stateMachineArn=target.state_machine_arn, name=name, input=json.dumps(state))
            arn, started = resp["executionArn"], True
        except client.exceptions.ExecutionAlreadyExists:  # a concurrent retry won the race
            started = False
    return {
        "model": state["model"],
        "version": state["version"],
        "status": "scaled_out",
        "message": (
            f"the window holds about {state['estimate']['rows']:,} rows ({state['estimate']['bytes']:,} bytes); "
            f"it is checked by the scale-out workflow ({'started' if started else 'already running'})"
        ),
        "window_start": state["window_start"],
        "window_end": state["window_end"],
        "execution_arn": arn,
        "started": started,
        "estimate": state["estimate"],
    }


def running_entry(
    prep: Prepared, execution_arn: str, listed_until: str, now: datetime, rechecks: int = 0
) -> HistoryEntry:
    """The history item taking a window handed to the workflow: no verdict, the previous window's streak
    carried unchanged (a window without verdict neither extends nor breaks it); a re-check keeps the
    window's count of re-checks."""
    prev = prep.history.previous(prep.model, prep.window.end_iso)
    return HistoryEntry(
        model=prep.model,
        window_start=prep.window.start_iso,
        window_end=prep.window.end_iso,
        version=prep.version.version,
        status=RUNNING,
        streak=prev.streak if prev else 0,
        listed_until=listed_until,
        execution_arn=execution_arn,
        checked_at=now.astimezone(UTC).isoformat(timespec="seconds"),
        rechecks=rechecks,
    )


def _ended_reason(sfn: Any, arn: str) -> str:
    """Why the execution will never complete its window ("" while it runs or after it succeeded)."""
    try:
        desc = sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return f"the scale-out execution {arn} was never started"
    status = str(desc.get("status", ""))
    if status not in ENDED_WITHOUT_REDUCE:
        return ""
    detail = ": ".join(str(desc[k]) for k in ("error", "cause") if desc.get(k))
    return f"the scale-out execution {arn} ended {status} without completing the window" + (
        f" ({detail})" if detail else ""
    )


def settle_running(history: DriftHistory, model: str, now: datetime, *, sfn: Any | None = None) -> list[str]:
    """Mark failed every recent ``running`` window whose execution ended without completing it; returns a
    note per window marked. The Step Functions client is created only when a running window exists."""
    notes = []
    for e in history.list(model, SETTLE_WINDOWS):
        if e.status != RUNNING or not e.execution_arn:
            continue
        sfn = sfn or aws.client("stepfunctions")
        reason = _ended_reason(sfn, e.execution_arn)
        if reason and history.fail_running(e, reason, now.astimezone(UTC).isoformat(timespec="seconds")):
            log.warning("%s: window %s to %s: %s", model, e.window_start, e.window_end, reason)
            notes.append(
                f"the window {e.window_start} to {e.window_end} is marked failed: {reason}; check it again "
                f"by hand (driftline drift check --window-start … --window-end …)"
            )
    return notes


def wants_scale_out(size: WindowSize, rows_threshold: int | None, bytes_threshold: int | None) -> bool:
    """At or above either configured size (None: that size never scales out)."""
    if not size.bytes:
        return False
    return (rows_threshold is not None and size.rows >= rows_threshold) or (
        bytes_threshold is not None and size.bytes >= bytes_threshold
    )


def maybe_start(
    ctx: Any,
    prep: Prepared,
    listed_until: str,
    *,
    s3: Any | None = None,
    sfn: Any | None = None,
    glue: Any | None = None,
    recheck: Recheck | None = None,
    list_until: datetime | None = None,
) -> dict[str, Any] | None:
    """Start the scale-out workflow for a large window; None keeps the in-process check (small or empty
    window, or a function not given the workflow). ``ctx`` is the check's :class:`Context`.

    A re-check after late rows (``recheck``, reading hours up to ``list_until``) is decided the same way:
    a window above the scale-out size is checked again by the workflow, not read whole in-process."""
    settings = ctx.config.monitoring
    target = ScaleTarget.from_env()
    if target is None or (settings.scale_out_rows is None and settings.scale_out_bytes is None):
        return None
    s3 = s3 or aws.client("s3")
    size = estimate_window(s3, ctx.captures_bucket, prep.model, prep.window.start, prep.window.end)
    if not wants_scale_out(size, settings.scale_out_rows, settings.scale_out_bytes):
        return None
    fields = captured_row_fields(glue or aws.client("glue"), target.database, captures_table_name(prep.model))
    if fields is None:
        log.warning(
            "%s: no captures table %s with the columns the query reads in %s (redeploy); checking in-process",
            prep.model,
            captures_table_name(prep.model),
            target.database,
        )
        return None
    sfn = sfn or aws.client("stepfunctions")
    run, running = run_name(sfn, target, prep.model, prep.window.end_iso, datetime.now(UTC))
    state = workflow_input(
        prep,
        target,
        ctx.captures_bucket,
        size,
        run,
        list(prep.mc.labelers),
        settings.scale_out_shard_rows,
        fields,
        list_until=list_until,
        recheck=recheck,
    )
    state["listed_until"] = listed_until
    if not running:  # taken before starting: a start that fails leaves a window the next run marks failed
        rechecks = recheck.previous.rechecks if recheck else 0
        entry = running_entry(prep, _execution_arn(target, run), listed_until, datetime.now(UTC), rechecks)
        running = not prep.history.claim(entry)
    return start_workflow(sfn, target, state, running)
