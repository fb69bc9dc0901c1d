"""Interrupted Step Functions executions of the local platform: where each one was, resuming, dismissing.

moto's interpreter runs an execution in a thread of the platform process, so an execution running at
``down`` (or at a crash) ends with the process; persistence (:mod:`driftline.local.persistence`) records
it as interrupted and ``driftline local status`` lists it until it is resumed or dismissed.

**Where it was** comes from durable data, so it is known after a crash too: the control table's step
records of that execution (the workflow records every step's input and output) and the approval item
holding its task token.

**Resuming** is offered only for a run that was waiting for a manual approval (``WaitForApproval``):
the task token it waited with died with the interpreter, and nothing else of the run is lost (the
candidate version is in the registry). Resuming starts a *new* run of the same state machine through
the same path every trigger takes (a ``RetrainRequested`` event with ``version``, so the lock and the
decision log apply): the unchanged definition's ``Registered?`` branch validates that the version is
still a candidate, reloads its metrics from the registry and re-runs the quality gate with the current
configuration, then asks for approval again with a fresh task token (``require_approval``: a request can
only make approval stricter). Nothing of the old run's state is trusted, so no gate can be skipped by
what a resume carries. The old approval item is removed first (its token is dead; approving through it
says so), the run's stale lock is released, and the record is marked resumed. It is the local analogue
of AWS's ``RedriveExecution``, which AWS needs only for failed runs: a deployed run is never interrupted
by a restart.

Resuming is an explicit command, not something ``up`` does: a resumed run notifies the approvers again
under the configuration of now, which the user may first want to change (``local reload``) or not want
at all (``dismiss``). A run interrupted in any other state is listed and can be dismissed; start a new
run for it (``driftline retrain``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPROVAL_STEP",
    "Interrupted",
    "NotResumableError",
    "ResumeError",
    "Resumed",
    "dismiss",
    "locate",
    "resume",
]

APPROVAL_STEP = "request_approval"
"""The workflow step that stores the task token ``WaitForApproval`` waits on."""
STEP_SCAN = 500
"""Newest step records of a model read to find an execution's last step."""


class ResumeError(Exception):
    """The run could not be resumed or dismissed; nothing was changed unless the message says so."""


class NotResumableError(ResumeError):
    """The execution was not waiting for an approval, or its candidate can no longer go through the gate."""


@dataclass(frozen=True)
class Interrupted:
    """One interrupted execution: the persisted record plus where it was (when the control table says)."""

    arn: str
    machine: str
    name: str
    started: float
    interrupted: float
    model: str | None
    last_step: str | None = None
    step_failed: bool = False
    version: int | None = None
    waiting_for_approval: bool = False

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Interrupted:
        arn = str(record.get("arn") or "")
        return cls(
            arn=arn,
            machine=str(record.get("machine") or ""),
            name=str(record.get("name") or arn.rsplit(":", 1)[-1]),
            started=_number(record.get("started")),
            interrupted=_number(record.get("interrupted")),
            model=_input_model(record.get("input")),
        )

    def where(self) -> str:
        """The state it was in, in words."""
        if self.waiting_for_approval:
            return f"waiting for approval of {self.model} v{self.version}"
        if self.last_step:
            of = f" of {self.model} v{self.version}" if self.version is not None else ""
            return f"after step {self.last_step}{' (failed)' if self.step_failed else ''}{of}"
        return "before its first recorded step" if self.model else "state unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "state_machine": self.machine,
            "name": self.name,
            "started": self.started,
            "interrupted": self.interrupted,
            "model": self.model,
            "last_step": self.last_step,
            "version": self.version,
            "waiting_for_approval": self.waiting_for_approval,
            "where": self.where(),
            "resumable": self.waiting_for_approval,
        }


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _input_model(raw: Any) -> str | None:
    try:
        doc = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    return model if isinstance(model, str) and model else None


def _version_of(output: Any) -> int | None:
    v = output.get("version") if isinstance(output, Mapping) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def locate(record: Mapping[str, Any], store: Any) -> Interrupted:
    """Where the execution of ``record`` (a :meth:`Persistence.interrupted` entry) was when it stopped.

    ``store``: a :class:`~driftline.control_store.ControlStore` of the platform's control table. An
    approval item holding this execution's token means it was waiting at ``WaitForApproval``; else its
    newest step record says which step it had finished (a ``request_approval`` that succeeded means the
    same, also when a failed approve attempt already removed the dead item).
    """
    found = Interrupted.from_record(record)
    if found.model is None:
        return found
    for request in store.approvals(found.model):
        if request.execution_arn == found.arn:
            return _replace(found, last_step=APPROVAL_STEP, version=request.version, waiting_for_approval=True)
    version: int | None = None
    last: dict[str, Any] | None = None
    for rec in store.retrain_history(found.model, STEP_SCAN, "step"):
        if rec.get("execution_arn") != found.arn:
            continue
        payload = rec.get("payload")
        output = payload.get("output") if isinstance(payload, Mapping) else None
        if last is None:
            last = rec
        if version is None:
            version = _version_of(output)
        if version is not None:
            break
    if last is None:
        return found
    waiting = last.get("action") == APPROVAL_STEP and not last.get("error")
    return _replace(
        found,
        last_step=str(last.get("action")),
        step_failed=bool(last.get("error")),
        version=version,
        waiting_for_approval=waiting and version is not None,
    )


def _replace(found: Interrupted, **changes: Any) -> Interrupted:
    from dataclasses import replace

    return replace(found, **changes)


def _supersede(found: Interrupted, store: Any, control: Any) -> None:
    """Remove what the interrupted run left holding: its approval item (a dead task token) and its lock."""
    if found.model is None:
        return
    if found.version is not None:
        request = store.approval(found.model, found.version)
        if request is not None and request.execution_arn == found.arn:
            store.delete_approval(found.model, found.version)
    control.release(found.model, found.arn)


@dataclass(frozen=True)
class Resumed:
    interrupted: Interrupted
    execution_arn: str
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.interrupted.to_dict(), "resumed_as": self.execution_arn, "event_id": self.event_id}


def resume(
    found: Interrupted,
    *,
    store: Any,
    control: Any,
    registry: Any,
    publish: Callable[[dict[str, Any]], str],
    requested_by: str,
    timeout_s: float = 60.0,
    poll_s: float = 0.3,
) -> Resumed:
    """Start the run that asks again for ``found``'s approval (see the module docstring).

    ``store``/``control``: the control table as :class:`~driftline.control_store.ControlStore` and
    :class:`~driftline.retraining.control.ControlTable`; ``registry``: a
    :class:`~driftline.registry.store.Registry`; ``publish(detail)``: puts a ``RetrainRequested`` event on the
    platform's bus and returns its id (:meth:`driftline.event_bus.EventBus.publish`). Raises
    :class:`NotResumableError` when the run was not waiting for an approval or its version is no longer a
    candidate, :class:`ResumeError` when the retrain-trigger did not start the new run.
    """
    if not found.waiting_for_approval or found.model is None or found.version is None:
        model = found.model or "<model>"
        raise NotResumableError(
            f"execution {found.name} was {found.where()} when the platform stopped; only a run waiting for a "
            f"manual approval can be resumed. Start a new run with `driftline retrain --model {model}` and "
            f"stop listing this one with `driftline local dismiss {found.name}`"
        )
    status = registry.get_version(found.model, found.version).status
    if status != "candidate":
        raise NotResumableError(
            f"{found.model} v{found.version} is {status} now, not a candidate waiting for approval: there is "
            f"nothing to ask again; stop listing execution {found.name} with `driftline local dismiss {found.name}`"
        )
    _supersede(found, store, control)
    detail = {
        "model": found.model,
        "version": found.version,
        "require_approval": True,
        "requested_by": requested_by,
        "reason": f"resumes run {found.name}, interrupted while waiting for approval when the local platform stopped",
    }
    event_id = publish(detail)
    deadline = time.monotonic() + timeout_s
    while True:
        for rec in control.history(found.model, limit=50, kind="decision"):
            if rec.get("trigger_id") != event_id:
                continue
            if rec.get("decision") != "started":
                raise ResumeError(
                    f"the retrain-trigger did not start the resumed run of {found.model} v{found.version}: "
                    f"{rec.get('decision')}: {rec.get('reason')}"
                )
            return Resumed(found, str(rec.get("execution_arn")), event_id)
        if time.monotonic() > deadline:
            raise ResumeError(
                f"no decision on the resume request (event {event_id}) within {timeout_s:.0f} s; is the "
                "retrain-trigger function working? `driftline retrain --history` shows its decisions"
            )
        time.sleep(poll_s)


def dismiss(found: Interrupted, *, store: Any, control: Any) -> None:
    """Let the interrupted run go: its dead approval item and stale lock are removed; the candidate
    version keeps its status (it can be rolled out later with ``driftline retrain --version``)."""
    _supersede(found, store, control)
