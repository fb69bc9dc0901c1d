"""The retraining workflow's steps, one function per ``action`` of the ``workflow`` Lambda.

Every step after ``validate`` receives the whole execution state (``state``) and reads what it needs,
so a state reached through a Catch (where some results are missing) still gets a precise message
rather than a JSONPath failure. Each step's input and output are recorded in the control table for
lineage (:meth:`ControlTable.record_step`). Registry changes go through
:class:`driftline.registry.store.Registry`, so every one of them lands in the audit trail.

Failure rules: a failed run never touches the champion; the candidate is marked ``rejected`` with
the reason (``record_failure``), and a challenger slot it held is cleared. A canary that never got
enough traffic is not a failure: it bakes again up to ``deploy.max_bake_extensions`` times, then ends
``inconclusive`` (challenger cleared, candidate left as it was, audited).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftline import aws
from driftline.config import ConfigError, ModelConfig, PlatformConfig
from driftline.contracts import record_time
from driftline.registry.store import (
    SYSTEM_PRINCIPAL,
    Registry,
    RegistryError,
    UnknownModelError,
    UnknownVersionError,
)
from driftline.retraining import approvals, captures, sagemaker
from driftline.retraining.control import ControlTable
from driftline.retraining.gate import ChampionEvidence, evaluate_gate, gate_record
from driftline.retraining.notify import publish


class StepError(Exception):
    """A step that cannot proceed; the class name becomes the Step Functions error name."""


class InvalidRequestError(StepError):
    """The run's request names an unknown model or feature set, or is malformed."""


class InvalidStepInputError(StepError):
    """A step got a state without what it needs (a bug in the definition or a hand-made call)."""


@dataclass
class StepContext:
    config: PlatformConfig
    registry: Registry
    control: ControlTable
    feature_sets: Collection[str]
    captures_bucket: str
    approvals_topic: str
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    clients: Callable[[str], Any] = aws.client
    """AWS clients of the steps that call a service directly (the SageMaker training-job loop)."""

    @classmethod
    def from_env(cls) -> StepContext:
        from driftline.features.schema import FeatureSetCatalog

        return cls(
            config=PlatformConfig.model_validate_json(aws.env("PLATFORM_CONFIG")),
            registry=Registry.from_env(),
            control=ControlTable.from_env(),
            feature_sets=FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets")).names(),
            captures_bucket=aws.env("CAPTURES_BUCKET"),
            approvals_topic=aws.env("APPROVALS_TOPIC_ARN"),
        )


# ---------------------------------------------------------------- state access
def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidStepInputError(f"{what} must be an object, got {type(value).__name__}")
    return dict(value)


def _value(state: Mapping[str, Any], key: str, required: bool = True) -> dict[str, Any] | None:
    """``state[key]['value']`` — where the definition's ResultSelector puts a Lambda step's result."""
    node = state.get(key)
    if isinstance(node, Mapping) and isinstance(node.get("value"), Mapping):
        return dict(node["value"])
    if required:
        raise InvalidStepInputError(
            f"the workflow state has no {key!r} result (keys: {sorted(state)}); "
            f"this step must run after the step that produces it"
        )
    return None


def _version(candidate: Mapping[str, Any]) -> int:
    v = candidate.get("version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidStepInputError(
            f"the train step's result has no integer 'version' (got {v!r}); keys: {sorted(candidate)}"
        )
    return v


def _now(ctx: StepContext) -> str:
    return ctx.clock().isoformat(timespec="microseconds")


def _model_cfg(ctx: StepContext, request: Mapping[str, Any]) -> ModelConfig:
    name = request.get("model")
    if not isinstance(name, str):
        raise InvalidRequestError(f"request field 'model' must be a string, got {name!r}")
    try:
        return ctx.config.model(name)
    except ConfigError as e:
        raise InvalidRequestError(str(e)) from None


def _run_label(request: Mapping[str, Any]) -> str:
    return str(request.get("execution_name") or request.get("execution_id", "?")).rsplit(":", 1)[-1]


# ---------------------------------------------------------------- steps
def validate(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Check the request and expand it with the model's config, so later steps need no config lookups."""
    raw = _obj(event.get("state"), "the execution input")
    m = _model_cfg(ctx, raw)
    if m.feature_set not in ctx.feature_sets:
        known = ", ".join(sorted(ctx.feature_sets)) or "none"
        raise InvalidRequestError(
            f"model {m.name!r} uses feature set {m.feature_set!r}, which is not defined (known: {known})"
        )
    trigger = raw.get("trigger", "manual")
    if not isinstance(trigger, str):
        raise InvalidRequestError(f"request field 'trigger' must be a string, got {trigger!r}")
    try:
        champion = ctx.registry.aliases(m.name, consistent=True).champion
    except UnknownModelError:
        champion = None
    execution_id = str(event.get("execution_id", ""))
    # a request may ask for a stricter approval than the config (never a looser one)
    approval = "manual" if m.approval == "manual" or raw.get("require_approval") is True else "auto"
    registered = _registered_version(ctx, m.name, raw.get("rollout_version"))
    return {
        **({"rollout_version": registered} if registered is not None else {}),
        # with a trainer (the user's code) configured, no algorithm is named: naming one would override it
        "model": m.name,
        "feature_set": m.feature_set,
        "algorithm": None if m.trainer else m.algorithm,
        "trainer": m.trainer,
        "params": m.params,
        "trigger": trigger,
        "trigger_id": str(raw.get("trigger_id", "")),
        "reason": str(raw.get("reason") or f"{trigger} retraining"),
        "requested_by": str(raw.get("requested_by") or trigger),
        "details": raw.get("details") or {},
        "min_training_rows": m.retrain.min_training_rows,
        "approval": approval,
        "approvers": list(m.approvers),
        "approval_timeout_seconds": m.approval_timeout_seconds,
        "gate": m.gate.model_dump(),
        "deploy": m.deploy.model_dump(),
        "champion_version": champion,
        "execution_id": execution_id,
        "execution_name": str(raw.get("execution_name") or execution_id.rsplit(":", 1)[-1]),
        "validated_at": _now(ctx),
    }


def _champion_metrics(candidate: Mapping[str, Any]) -> tuple[dict[str, Any] | None, int | None]:
    """The champion's metrics on the candidate's holdout, as the train step reports them."""
    champ = candidate.get("champion")
    if isinstance(champ, Mapping):
        metrics = champ.get("metrics")
        version = champ.get("version")
        return (dict(metrics) if isinstance(metrics, Mapping) else None, version if isinstance(version, int) else None)
    metrics = candidate.get("champion_metrics")
    version = candidate.get("champion_version")
    return (dict(metrics) if isinstance(metrics, Mapping) else None, version if isinstance(version, int) else None)


def _registered_version(ctx: StepContext, model: str, version: Any) -> int | None:
    """A run may roll out a version registered earlier (imported from a notebook or a file) instead of
    training one: it must exist and still be a candidate."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidRequestError(f"request field 'rollout_version' must be a positive integer, got {version!r}")
    try:
        mv = ctx.registry.get_version(model, version)
    except (UnknownModelError, UnknownVersionError):
        raise InvalidRequestError(f"model {model!r} has no version {version}") from None
    if mv.status != "candidate":
        raise InvalidRequestError(
            f"{model} v{version} is {mv.status}, not a candidate: only a candidate can go "
            f"through the gate, approval and canary"
        )
    return version


def registered(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The train step's result for a version registered earlier: its metrics, and the champion's on the
    same holdout when the champion then is the champion now (else the gate compares without them)."""
    state = _obj(event.get("state"), "state")
    request = _value(state, "request")
    assert request is not None
    m = _model_cfg(ctx, request)
    version = request.get("rollout_version")
    if not isinstance(version, int):
        raise InvalidStepInputError(f"the request has no 'rollout_version' (got {version!r})")
    mv = ctx.registry.get_version(m.name, version)
    lineage = mv.lineage or {}
    parent = lineage.get("parent_version")
    champion = request.get("champion_version")
    same = parent is not None and parent == champion and isinstance(lineage.get("champion_metrics"), Mapping)
    return {
        "model": m.name,
        "version": version,
        "status": mv.status,
        "metrics": dict(mv.metrics),
        "champion_version": champion,
        "champion_metrics": dict(lineage["champion_metrics"]) if same else None,
        "reason": mv.reason,
        "champion_error": None
        if same or champion is None
        else f"v{version} was scored against v{parent}, not the current champion v{champion}",
    }


def gate(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Quality gate; approves the candidate in ``auto`` mode, rejects it (with reasons) on failure."""
    state = _obj(event.get("state"), "state")
    request, candidate = _value(state, "request"), _value(state, "candidate")
    assert request is not None and candidate is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    approval = "manual" if m.approval == "manual" or request.get("approval") == "manual" else "auto"
    out: dict[str, Any] = {"version": version, "approval": approval}
    if candidate.get("status") == "rejected":
        reason = str(candidate.get("reason") or "training rejected the candidate")
        ctx.registry.record_failure(m.name, version, f"training: {reason}")
        return {
            **out,
            "passed": False,
            "reasons": [reason],
            "summary": f"training rejected the candidate: {reason}",
            "checks": [],
            "champion_version": request.get("champion_version"),
        }
    metrics = candidate.get("metrics")
    if not isinstance(metrics, Mapping):
        raise InvalidStepInputError(f"the train step's result has no 'metrics' object (keys: {sorted(candidate)})")
    champion_version = request.get("champion_version")
    champ_metrics, reported_version = _champion_metrics(candidate)
    if champion_version is not None and reported_version not in (None, champion_version):
        champ_metrics = None  # evaluated against another version than the one serving: not comparable
    note = str(candidate.get("champion_error") or "")
    result = evaluate_gate(
        metrics,
        None if champion_version is None else (champ_metrics or {}),
        m.gate,
        champion_version,
        champion_note=note,
    )
    run = _run_label(request)
    evidence = (
        None
        if champion_version is None
        else ChampionEvidence(champion_version, champ_metrics, same_holdout=True, note=note)
    )
    # recorded on the version first: approving or promoting it later, by anyone, checks this outcome
    ctx.registry.record_gate(
        m.name, version, gate_record(result, evidence, evaluated_by=f"run {run}", evaluated_at=_now(ctx))
    )
    if result.passed and approval == "auto":
        ctx.registry.approve(m.name, version, SYSTEM_PRINCIPAL, f"run {run}: {result.summary}"[:1000])
    elif not result.passed:
        ctx.registry.record_failure(m.name, version, f"run {run}: {result.summary}"[:1000])
    return {**out, **result.to_dict(), "champion_version": champion_version}


def request_approval(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Store the task token and ask the approvers (SNS); the run waits until someone resolves it."""
    state = _obj(event.get("state"), "state")
    request, candidate, gate_out = _value(state, "request"), _value(state, "candidate"), _value(state, "gate")
    assert request is not None and candidate is not None and gate_out is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    token = event.get("task_token")
    if not isinstance(token, str) or not token:
        raise InvalidStepInputError("request_approval needs the task token ($$.Task.Token) as 'task_token'")
    summary = str(gate_out.get("summary", ""))
    approvals.store_token(
        ctx.control.table,
        m.name,
        version,
        task_token=token,
        execution_arn=str(event.get("execution_id", "")),
        requested_at=_now(ctx),
        timeout_seconds=m.approval_timeout_seconds,
        summary=summary,
    )
    who = ", ".join(m.approvers) or "anyone with access to the registry"
    message = {
        "model": m.name,
        "version": version,
        "metrics": candidate.get("metrics"),
        "gate": summary,
        "trigger": request.get("trigger"),
        "reason": request.get("reason"),
        "run": _run_label(request),
        "approvers": who,
        "timeout_seconds": m.approval_timeout_seconds,
        "approve": f"driftline models approve --model {m.name} --version {version} --reason '...'",
        "reject": f"driftline models reject --model {m.name} --version {version} --reason '...'",
    }
    publish(ctx.approvals_topic, f"Driftline: approve {m.name} v{version}?", message)
    return {"requested": True, "model": m.name, "version": version}


def reject_timeout(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Nobody decided in time: the candidate is rejected, the champion keeps serving."""
    state = _obj(event.get("state"), "state")
    request, candidate = _value(state, "request"), _value(state, "candidate")
    assert request is not None and candidate is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    reason = (
        f"run {_run_label(request)}: no approval within {m.approval_timeout_seconds} s "
        f"(approval_timeout_seconds); rejected automatically"
    )
    current = ctx.registry.get_version(m.name, version)
    if current.status == "candidate":
        ctx.registry.reject(m.name, version, SYSTEM_PRINCIPAL, reason)
    elif current.status == "approved":
        # approved in the registry without resuming this run: keep the person's decision, deploy nothing
        reason = (
            f"run {_run_label(request)}: no decision reached the run within "
            f"{m.approval_timeout_seconds} s; v{version} is approved in the registry (not through "
            f"resolve_approval), so it stays approved but this run does not deploy it"
        )
    approvals.delete_token(ctx.control.table, m.name, version)
    return {"model": m.name, "version": version, "status": current.status, "reason": reason}


def deploy(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Register the candidate as challenger (shadow/canary) or prepare a direct promotion."""
    state = _obj(event.get("state"), "state")
    request, candidate = _value(state, "request"), _value(state, "candidate")
    assert request is not None and candidate is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    try:
        al = ctx.registry.aliases(m.name, consistent=True)
        champion = al.champion
    except UnknownModelError:
        champion = None
    status = ctx.registry.get_version(m.name, version).status
    if status != "approved":  # the registry, not the state's path through the workflow, says it may serve
        raise InvalidStepInputError(f"{m.name} v{version} is {status}, not approved: it cannot be deployed")
    mode: str = m.deploy.mode
    note = f"deploy mode {mode} (config)"
    if champion is None and mode != "direct":
        mode, note = "direct", f"first model of {m.name!r}: no champion to compare a {m.deploy.mode} against"
    percent = 0
    if mode in ("shadow", "canary"):
        percent = 100 if mode == "shadow" else m.deploy.canary_percent
        ctx.registry.set_challenger(
            m.name,
            version,
            mode,
            percent,
            principal=SYSTEM_PRINCIPAL,
            reason=f"run {_run_label(request)}: {mode} {percent}% for {m.deploy.bake_seconds} s",
        )
    return {
        "mode": mode,
        "note": note,
        "percent": percent,
        "bake_seconds": m.deploy.bake_seconds,
        "champion_version": champion,
        "challenger_version": version,
        "started_at": _now(ctx),
    }


def evaluate_canary(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Judge the challenger against the champion on the bake window's captures and labels."""
    from driftline.retraining import canary  # numpy: only this step pays for it

    state = _obj(event.get("state"), "state")
    request, candidate, dep = _value(state, "request"), _value(state, "candidate"), _value(state, "deploy")
    assert request is not None and candidate is not None and dep is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    champion = dep.get("champion_version")
    start = record_time(dep.get("started_at"))
    if not isinstance(champion, int) or start is None:
        raise InvalidStepInputError(f"the deploy result lacks champion_version/started_at: {dep}")
    end = ctx.clock()
    records = captures.read_captures(ctx.captures_bucket, m.name, start, end, {champion, version})
    labels = captures.read_feedback(ctx.captures_bucket, m.name, start, end, labelers=m.labelers)
    schema = ctx.registry.get_version(m.name, version).input_schema
    label = schema.get("label") or {}
    task = str(label.get("task") or "binary_classification")
    classes = label.get("classes") or [0, 1]
    positive = classes[1] if task == "binary_classification" and len(classes) == 2 else None
    champ, chall = canary.summarize(records, labels, champion, version, task)
    limits = canary.CanaryLimits(
        max_error_rate=m.deploy.max_error_rate,
        max_latency_ratio=m.deploy.max_latency_ratio,
        latency_floor_ms=m.deploy.latency_floor_ms,
        max_regression=m.gate.absolute_regression,
        max_relative_regression=m.gate.max_relative_regression,
        primary_metric=m.gate.primary_metric,
        min_labels=m.drift.min_labels,
    )
    decision = canary.decide(champ, chall, limits, task=task, mode=str(dep.get("mode")), positive=positive)
    outcome, extensions = canary_outcome(
        decision.verdict, _value(state, "canary", required=False), m.deploy.max_bake_extensions
    )
    out = {
        **decision.to_dict(),
        "outcome": outcome,
        "extensions": extensions,
        "max_extensions": m.deploy.max_bake_extensions,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "records": len(records),
        "labels": len(labels),
    }
    if outcome == CANARY_EXTEND:
        out["summary"] = (
            f"{decision.summary}; baking {m.deploy.bake_seconds} s more (extension {extensions} "
            f"of {m.deploy.max_bake_extensions}, deploy.max_bake_extensions)"
        )
    elif outcome == CANARY_INCONCLUSIVE:
        out["summary"] = (
            f"{decision.summary}; still too little traffic after {extensions} bake extension(s) "
            f"(deploy.max_bake_extensions {m.deploy.max_bake_extensions}): the run ends "
            f"inconclusive"
        )
    return out


CANARY_PROMOTE, CANARY_ROLLBACK, CANARY_EXTEND, CANARY_INCONCLUSIVE = "promote", "rollback", "extend", "inconclusive"
"""``evaluate_canary``'s ``outcome``: what the definition's ``CanaryHealthy?`` choice does next."""
CANARY_INCONCLUSIVE_ACTION = "canary_inconclusive"
"""The audit action (and workflow step) of an inconclusive canary."""


def canary_outcome(verdict: str, previous: Mapping[str, Any] | None, max_extensions: int) -> tuple[str, int]:
    """(outcome, extensions so far) from the canary's verdict and the previous evaluation of this run.

    Too little traffic extends the bake while extensions remain; once they are used up the run ends
    inconclusive. The count lives in the execution state (the previous ``canary`` result), so a
    retried evaluation of the same bake counts once.
    """
    done = previous.get("extensions") if previous else 0
    done = done if isinstance(done, int) and not isinstance(done, bool) else 0
    if verdict == "healthy":
        return CANARY_PROMOTE, done
    if verdict != "inconclusive":
        return CANARY_ROLLBACK, done
    if done < max_extensions:
        return CANARY_EXTEND, done + 1
    return CANARY_INCONCLUSIVE, done


def _error_text(error: Any) -> str:
    """``{"Error", "Cause"}`` from a Catch → one line (the Lambda error message when the cause has one)."""
    if not isinstance(error, Mapping):
        return "unknown error"
    name, cause = str(error.get("Error", "Error")), error.get("Cause", "")
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping) and parsed.get("errorMessage"):
            cause = parsed["errorMessage"]
    return f"{name}: {cause}".strip().rstrip(":")[:1000]


def rollback(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The canary breached (or could not be judged): clear the challenger, reject the candidate."""
    state = _obj(event.get("state"), "state")
    request, candidate = _value(state, "request"), _value(state, "candidate")
    assert request is not None and candidate is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    verdict = _value(state, "canary", required=False)
    why = str(verdict["summary"]) if verdict else f"canary evaluation failed: {_error_text(state.get('error'))}"
    reason = f"run {_run_label(request)}: {why}"[:1000]
    al = ctx.registry.aliases(m.name, consistent=True)
    if al.challenger == version:
        ctx.registry.clear_challenger(m.name, principal=SYSTEM_PRINCIPAL, reason=f"rollback: {reason}"[:1000])
    if al.champion != version:
        ctx.registry.record_failure(m.name, version, reason)
    return {"model": m.name, "version": version, "champion": al.champion, "reason": reason, "canary": verdict}


def canary_inconclusive(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """The canary never got enough traffic to be judged: stop the experiment, decide nothing.

    The challenger is cleared and the champion keeps serving; the candidate keeps its status
    (``approved`` or ``candidate``, never ``rejected``: nothing was found wrong with it), so it can be
    promoted later (``driftline models promote``) or retried. The outcome goes to the audit trail.
    """
    state = _obj(event.get("state"), "state")
    request, candidate = _value(state, "request"), _value(state, "candidate")
    verdict = _value(state, "canary")
    assert request is not None and candidate is not None and verdict is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    reason = f"run {_run_label(request)}: {verdict.get('summary')}"[:1000]
    al = ctx.registry.aliases(m.name, consistent=True)
    if al.challenger == version:
        ctx.registry.clear_challenger(
            m.name, principal=SYSTEM_PRINCIPAL, reason=f"canary inconclusive: {reason}"[:1000]
        )
    status = ctx.registry.get_version(m.name, version).status
    raw = verdict.get("challenger")
    challenger: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    ctx.registry.record_event(
        m.name,
        version,
        CANARY_INCONCLUSIVE_ACTION,
        f"{reason}; v{version} stays {status} and can be promoted or canaried later",
        {
            "rows": challenger.get("rows"),
            "extensions": verdict.get("extensions"),
            "window_start": verdict.get("window_start"),
            "window_end": verdict.get("window_end"),
            "status": status,
        },
    )
    return {
        "model": m.name,
        "version": version,
        "outcome": CANARY_INCONCLUSIVE,
        "status": status,
        "champion": al.champion,
        "reason": reason,
        "canary": verdict,
    }


def promote(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Make the candidate champion (idempotent when a retry finds it already promoted)."""
    state = _obj(event.get("state"), "state")
    request, candidate = _value(state, "request"), _value(state, "candidate")
    assert request is not None and candidate is not None
    m = _model_cfg(ctx, request)
    version = _version(candidate)
    before = ctx.registry.aliases(m.name, consistent=True)
    verdict = _value(state, "canary", required=False)
    dep = _value(state, "deploy", required=False) or {}
    evidence = verdict["summary"] if verdict else f"{dep.get('mode', 'direct')} deploy"
    why = f"{request.get('trigger')}: {request.get('reason')}"
    reason = f"run {_run_label(request)} ({why}); {evidence}"[:1000]
    if before.champion == version:
        return {
            "model": m.name,
            "version": version,
            "previous_champion": None,
            "revision": before.revision,
            "reason": reason,
            "already": True,
        }
    after = ctx.registry.promote(m.name, version, SYSTEM_PRINCIPAL, reason)
    return {
        "model": m.name,
        "version": version,
        "previous_champion": before.champion,
        "revision": after.revision,
        "reason": reason,
    }


def record_failure(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A step failed: reject the candidate with the error and make sure it no longer takes traffic.

    Tolerant by design (it is the Catch target of every step): a missing request or candidate only
    narrows what can be recorded.
    """
    state = event.get("state") if isinstance(event.get("state"), Mapping) else {}
    assert isinstance(state, Mapping)
    request = _value(state, "request", required=False) or dict(state)
    candidate = _value(state, "candidate", required=False) or {}
    error = _error_text(state.get("error"))
    model = request.get("model")
    version = candidate.get("version")
    out: dict[str, Any] = {"model": model, "version": version, "error": error, "recorded_on_version": False}
    if not isinstance(model, str) or isinstance(version, bool) or not isinstance(version, int):
        return out
    reason = f"run {_run_label(request)}: {error}"[:1000]
    try:
        al = ctx.registry.aliases(model, consistent=True)
        if al.challenger == version:
            ctx.registry.clear_challenger(model, principal=SYSTEM_PRINCIPAL, reason=f"failure: {reason}"[:1000])
        if al.champion != version:
            ctx.registry.record_failure(model, version, reason)
            out["recorded_on_version"] = True
    except RegistryError as e:  # the version may not exist (training failed before registering it)
        out["registry_error"] = str(e)
    return out


ACTIONS: dict[str, Callable[[Mapping[str, Any], StepContext], dict[str, Any]]] = {
    "validate": validate,
    "registered": registered,
    "gate": gate,
    "request_approval": request_approval,
    "reject_timeout": reject_timeout,
    "deploy": deploy,
    "evaluate_canary": evaluate_canary,
    "canary_inconclusive": canary_inconclusive,
    "rollback": rollback,
    "promote": promote,
    "record_failure": record_failure,
    # the SageMaker training-job loop (driftline.retraining.sagemaker; the train Lambda starts and registers)
    "training_job_status": lambda e, c: sagemaker.job_status(e, sagemaker=c.clients("sagemaker"), clock=c.clock),
    "restart_training_job": lambda e, c: sagemaker.restart_job(e, sagemaker=c.clients("sagemaker")),
    "stop_training_job": lambda e, c: sagemaker.stop_job(e, sagemaker=c.clients("sagemaker")),
}


def _model_of(event: Mapping[str, Any]) -> str | None:
    state = event.get("state")
    if not isinstance(state, Mapping):
        return None
    request = state.get("request")
    if isinstance(request, Mapping) and isinstance(request.get("value"), Mapping):
        model = request["value"].get("model")
    else:
        model = state.get("model")
    return model if isinstance(model, str) else None


def run_step(event: Mapping[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Dispatch on ``action``, and record the step's input and output (or error) for lineage."""
    action = event.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise InvalidStepInputError(f"unknown workflow action {action!r}; expected one of {', '.join(ACTIONS)}")
    model = _model_of(event)
    execution_id = str(event.get("execution_id", ""))
    logged_in = {k: v for k, v in event.items() if k != "task_token"}
    t0 = time.perf_counter()
    try:
        out = ACTIONS[action](event, ctx)
    except Exception as e:
        if model and model in {m.name for m in ctx.config.models}:
            ctx.control.record_step(
                model,
                execution_id,
                action,
                payload_in=logged_in,
                payload_out=None,
                duration_ms=(time.perf_counter() - t0) * 1000,
                error=f"{type(e).__name__}: {e}",
            )
        raise
    if model:
        ctx.control.record_step(
            model,
            execution_id,
            action,
            payload_in=logged_in,
            payload_out=out,
            duration_ms=(time.perf_counter() - t0) * 1000,
        )
    return out
