"""Manual approval of a retrained candidate: the waiting task token, and resolving it.

The workflow's ``WaitForApproval`` state (``lambda:invoke.waitForTaskToken``) calls the ``request_approval``
step, which stores the task token in the control table (``pk=APPROVAL#<model>, sk=<version>``) and
notifies the approvals topic. A person then resolves it with :func:`resolve_approval` (what
``driftline models approve|reject`` calls): the principal is checked against
``ModelConfig.approvers``, the decision is written to the registry's audit trail (approve/reject with
who and why), and the run resumes (``SendTaskSuccess``) or takes the rejected path
(``SendTaskFailure`` with error ``Rejected``). Anything that cannot be resolved — no run waiting, a
run that already ended, a principal not allowed, no reason — raises :class:`ApprovalError` and
changes nothing. The same function serves ``driftline models approve|reject`` and the IAM-authorized
route ``POST /v1/models/{model}/versions/{version}/approval`` (:mod:`driftline.retraining.approval_api`).

The quality gate binds approvals too: :func:`version_gate` gives the outcome an approval or promotion
must honour (the recorded one, or one evaluated now for a version registered by hand), and a failed
gate is refused with :func:`driftline.registry.store.gate_refusal`'s message unless overridden.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftline import aws
from driftline.config import ConfigError, PlatformConfig, QualityGate
from driftline.contracts import APPROVAL_PREFIX
from driftline.control_items import ApprovalRequest
from driftline.control_store import ControlStore
from driftline.registry.store import (
    ModelVersion,
    QualityGateFailedError,
    Registry,
    UnknownModelError,
    UnknownVersionError,
    gate_refusal,
    principal_matches,
)
from driftline.retraining.gate import assess_registered, gate_record

APPROVAL_KEY_PREFIX = APPROVAL_PREFIX
"""Partition-key prefix of the control-table items holding a waiting run's task token. Whoever reads the
token can resume the run, so IAM denies every other function's role any item under this prefix
(``dynamodb:LeadingKeys``, stacks/functions.py): only the workflow (writes it) and approve read it."""
APPROVAL_RECORD_GRACE_SECONDS = 86400
"""Approval items expire (DynamoDB TTL) this long after their timeout."""


class ApprovalError(Exception):
    """A manual approval that cannot be applied; nothing was changed. ``status_code`` for an API."""

    status_code = 409


class ApprovalNotWaitingError(ApprovalError):
    pass


class ApprovalNotAllowedError(ApprovalError):
    status_code = 403


class ApprovalNotFoundError(ApprovalNotWaitingError):
    """The model is not configured or the version is not registered: nothing can wait on it (404)."""

    status_code = 404


@dataclass(frozen=True)
class PendingApproval:
    model: str
    version: int
    execution_arn: str
    requested_at: str
    timeout_seconds: int
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "execution_arn": self.execution_arn,
            "requested_at": self.requested_at,
            "timeout_seconds": self.timeout_seconds,
            "summary": self.summary,
        }


def version_gate(registry: Registry, gate: QualityGate, mv: ModelVersion, *, evaluated_by: str) -> dict[str, Any]:
    """The quality-gate outcome an approval or promotion of ``mv`` must honour.

    The recorded one when there is one (the workflow's, decided on the candidate's own holdout);
    otherwise the gate evaluated now from the version's metrics and ``gate`` against the current
    champion. Not stored here: the registry stores it with the approval or promotion it allows, so a
    refused attempt leaves no stale verdict behind and the next attempt judges with the current config.
    """
    if mv.gate:
        return dict(mv.gate)
    try:
        champion = registry.aliases(mv.model, consistent=True).champion
    except UnknownModelError:
        champion = None
    if champion == mv.version:
        champion = None
    champion_metrics = registry.get_version(mv.model, champion).metrics if champion is not None else None
    result, evidence = assess_registered(mv.metrics, mv.lineage, gate, champion, champion_metrics)
    return gate_record(
        result, evidence, evaluated_by=evaluated_by, evaluated_at=datetime.now(UTC).isoformat(timespec="microseconds")
    )


def store_token(
    control_table: str,
    model: str,
    version: int,
    *,
    task_token: str,
    execution_arn: str,
    requested_at: str,
    timeout_seconds: int,
    summary: str,
    client: Any | None = None,
) -> None:
    """Remember the waiting run's task token (a re-invoked step overwrites it with the newer token).

    ``client``: a DynamoDB client (default ``aws.client("dynamodb")``), as for every function here.
    """
    ControlStore(control_table, client).put_approval(
        ApprovalRequest(
            model=model,
            version=version,
            task_token=task_token,
            execution_arn=execution_arn,
            requested_at=requested_at,
            timeout_seconds=timeout_seconds,
            summary=summary,
            expires_at=int(time.time()) + timeout_seconds + APPROVAL_RECORD_GRACE_SECONDS,
        )
    )


def delete_token(control_table: str, model: str, version: int, *, client: Any | None = None) -> None:
    ControlStore(control_table, client).delete_approval(model, version)


def _pending_from(request: ApprovalRequest) -> PendingApproval:
    return PendingApproval(
        model=request.model,
        version=request.version,
        execution_arn=request.execution_arn,
        requested_at=request.requested_at,
        timeout_seconds=request.timeout_seconds,
        summary=request.summary,
    )


def pending_approvals(control_table: str, model: str, *, client: Any | None = None) -> list[PendingApproval]:
    """Runs of ``model`` waiting for a decision, oldest version first."""
    found = ControlStore(control_table, client).approvals(model)
    return sorted((_pending_from(r) for r in found), key=lambda p: p.version)


def _default_config() -> PlatformConfig:
    raw = os.environ.get("PLATFORM_CONFIG")
    if raw:
        return PlatformConfig.model_validate_json(raw)
    from driftline import config as config_mod

    return config_mod.load("cdk.json")


def _table(env_name: str, config: PlatformConfig, logical: str) -> str:
    if os.environ.get(env_name):
        return os.environ[env_name]
    from driftline.platform import build_platform

    return build_platform(config).name(logical)


def resolve_approval(
    model: str,
    version: int,
    approve: bool,
    principal: str,
    reason: str,
    *,
    config: PlatformConfig | None = None,
    registry: Registry | None = None,
    control_table: str | None = None,
    override_gate: bool = False,
    control_client: Any | None = None,
    sfn_client: Any | None = None,
) -> dict[str, Any]:
    """Approve or reject the candidate ``model`` v``version`` that a retraining run is waiting on.

    ``principal`` is who decides (an IAM/STS ARN or a user name); it must be in the model's
    ``approvers`` when that list is configured. Returns what was done. Raises
    :class:`ApprovalError` (nothing changed; :class:`ApprovalNotFoundError` for an unknown model or
    version), or :class:`QualityGateFailedError` (409, nothing changed) when approving a version that
    failed the quality gate without ``override_gate``. The CLI and the HTTP route
    (``lambdas/approve.py``) both decide through here. ``control_client`` (DynamoDB) and ``sfn_client``
    (Step Functions) default to ``aws.client``'s.
    """
    cfg = config or _default_config()
    try:
        model_cfg = cfg.model(model)
    except ConfigError as e:
        raise ApprovalNotFoundError(str(e)) from None
    approvers = model_cfg.approvers
    verb = "approve" if approve else "reject"
    if not principal:
        raise ApprovalNotAllowedError(f"{verb} of {model!r} v{version} needs a principal (who is deciding)")
    if not reason or not reason.strip():
        raise ApprovalError(f"{verb} of {model!r} v{version} needs a reason (--reason); it goes to the audit trail")
    if approvers and not principal_matches(principal, approvers):
        raise ApprovalNotAllowedError(
            f"{principal} may not {verb} {model!r} v{version}; allowed approvers "
            f"(ModelConfig.approvers): {', '.join(approvers)}"
        )
    table = control_table or _table("CONTROL_TABLE", cfg, "control")
    reg = registry or Registry(_table("REGISTRY_TABLE", cfg, "registry"), audit_bucket=os.environ.get("AUDIT_BUCKET"))
    gate: dict[str, Any] | None = None
    if approve:  # the gate first: "it failed the gate" says more than "no run is waiting for it"
        try:
            mv = reg.get_version(model, version)
        except (UnknownModelError, UnknownVersionError):
            mv = None  # answered below, with the runs that are waiting
        if mv is not None:
            gate = version_gate(reg, model_cfg.gate, mv, evaluated_by=f"approval by {principal}")
            refusal = gate_refusal("approve", mv, gate, override_gate)
            if refusal:
                raise QualityGateFailedError(refusal)
    request = ControlStore(table, control_client).approval(model, version)
    if request is None:
        waiting = ", ".join(f"v{p.version}" for p in pending_approvals(table, model, client=control_client)) or "none"
        try:
            reg.get_version(model, version)
        except (UnknownModelError, UnknownVersionError) as e:
            raise ApprovalNotFoundError(
                f"no retraining run is waiting for approval of {model!r} v{version}: "
                f"{e} (runs waiting for {model!r}: {waiting})"
            ) from None
        raise ApprovalNotWaitingError(
            f"no retraining run is waiting for approval of {model!r} v{version} (runs waiting for {model!r}: {waiting})"
        )
    arn = request.execution_arn
    sfn = sfn_client or aws.client("stepfunctions")
    try:
        status = str(sfn.describe_execution(executionArn=arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        status = "MISSING"
    if status != "RUNNING":
        delete_token(table, model, version, client=control_client)
        name = arn.rsplit(":", 1)[-1]
        # a deployed run is never missing; a local one is after a restart (driftline/local/resume.py)
        hint = (
            "; on the local platform a restart interrupts running executions: `driftline local status` "
            f"lists it and `driftline local resume {name}` asks for this approval again"
            if status == "MISSING"
            else ""
        )
        raise ApprovalNotWaitingError(
            f"the run that asked to approve {model!r} v{version} is no longer "
            f"waiting (execution {name} is {status}); nothing was changed{hint}"
        )
    token = request.task_token
    if approve:
        reg.approve(
            model, version, principal, reason, allowed=approvers or None, gate=gate, override_gate=override_gate
        )
        _send(
            sfn,
            lambda: sfn.send_task_success(
                taskToken=token, output=json.dumps({"approved": True, "by": principal, "reason": reason})
            ),
            model,
            version,
        )
    else:
        reg.reject(model, version, principal, reason, allowed=approvers or None)
        _send(
            sfn,
            lambda: sfn.send_task_failure(
                taskToken=token, error="Rejected", cause=f"rejected by {principal}: {reason}"[:32768]
            ),
            model,
            version,
        )
    delete_token(table, model, version, client=control_client)
    return {
        "model": model,
        "version": version,
        "decision": "approved" if approve else "rejected",
        "by": principal,
        "reason": reason,
        "execution_arn": arn,
    }


def _send(sfn: Any, call: Any, model: str, version: int) -> None:
    try:
        call()
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.InvalidToken, sfn.exceptions.TaskDoesNotExist) as e:
        raise ApprovalNotWaitingError(
            f"the run waiting on {model!r} v{version} stopped waiting while the "
            f"decision was being applied ({type(e).__name__}); the registry "
            f"records the decision, the run took its own path"
        ) from None
