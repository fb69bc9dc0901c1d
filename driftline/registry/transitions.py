"""Which registry changes are allowed: version statuses, who may act, the champion/challenger slots.

Pure rules and tables (no I/O): :class:`~driftline.registry.store.Registry` asks them before it
writes and enforces the same statuses again as transaction conditions, so a rule is read in one
place and tested without a table (``tests/unit/test_registry_transitions.py`` walks every allowed
and refused change). The CLI and the approval API phrase refusals with the same functions.

Statuses: a version is registered ``candidate`` (or ``rejected``, with a reason); ``approve`` makes a
candidate ``approved``; ``reject`` and ``record_failure`` make it ``rejected``, which is final;
``archive`` retires an approved version (still a rollback target). Only approved versions are
promoted; rollback may return to approved or archived ones; candidates and approved versions may be
the challenger. A version in a serving slot never becomes rejected or archived.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from driftline.registry.errors import InvalidTransitionError, NotAllowedError

__all__ = [
    "CHALLENGER_MODES",
    "CHALLENGER_STATUSES",
    "INITIAL_STATUSES",
    "NOT_SERVING_STATUSES",
    "PROMOTABLE_STATUSES",
    "ROLLBACK_STATUSES",
    "STATUSES",
    "STATUS_CHANGES",
    "TRAFFIC_MODES",
    "Slots",
    "StatusChange",
    "VersionRef",
    "check_allowed",
    "check_challenger",
    "check_challenger_policy",
    "check_challenger_slot",
    "check_new_champion",
    "check_not_serving",
    "check_promotion",
    "check_reason",
    "check_registration",
    "check_rollback",
    "gate_refusal",
    "leaves_service",
    "principal_matches",
    "replay_champions",
    "rollback_target",
    "status_change",
    "with_challenger",
    "with_champion",
    "without_challenger",
]

STATUSES = ("candidate", "approved", "rejected", "archived")
INITIAL_STATUSES = ("candidate", "rejected")
"""What :meth:`Registry.register` may write (``rejected`` needs a reason)."""
NOT_SERVING_STATUSES = ("rejected", "archived")
"""Statuses a champion or challenger may not move to: the version would keep serving."""
PROMOTABLE_STATUSES = ("approved",)
ROLLBACK_STATUSES = ("approved", "archived")
CHALLENGER_STATUSES = ("candidate", "approved")
TRAFFIC_MODES = ("none", "shadow", "canary")
CHALLENGER_MODES = ("shadow", "canary")


@dataclass(frozen=True)
class StatusChange:
    """One status-changing action: the status it leads to and the statuses it applies to."""

    to: str
    sources: tuple[str, ...]
    repeat_ok: bool = False
    """A version already in ``to`` is left as it is (the action is audited only)."""


STATUS_CHANGES: Mapping[str, StatusChange] = {
    "approve": StatusChange("approved", ("candidate",)),
    "reject": StatusChange("rejected", ("candidate", "approved")),
    "archive": StatusChange("archived", ("approved",)),
    "record_failure": StatusChange("rejected", ("candidate", "approved", "archived"), repeat_ok=True),
}
"""Every action that changes a version's status (promotion and rollback move aliases, not statuses)."""


class VersionRef(Protocol):
    """What the rules read of a version (:class:`~driftline.registry.store.ModelVersion` has it)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def status(self) -> str: ...


class Slots(NamedTuple):
    """The serving part of a model's aliases: who serves, and how traffic reaches the challenger."""

    champion: int | None
    challenger: int | None
    traffic_mode: str = "none"
    traffic_percent: int = 0


# ---- who, and why ---------------------------------------------------------------------------------
def principal_matches(principal: str, allowed: Sequence[str]) -> bool:
    """Exact match, or an STS assumed-role session matching its IAM role ARN.

    ``arn:aws:sts::111:assumed-role/ml-lead/alice`` matches ``arn:aws:iam::111:role/ml-lead``, because
    the CLI sees the session ARN while approvers are configured as role ARNs.

    Parameters
    ----------
    principal:
        Who acts (an ARN, or any name the caller uses).
    allowed:
        The principals allowed (``ModelConfig.approvers``).

    Returns
    -------
    bool
        Whether ``principal`` is one of ``allowed``.
    """
    if principal in allowed:
        return True
    if ":assumed-role/" in principal and principal.startswith("arn:"):
        head, _, rest = principal.partition(":assumed-role/")
        role = rest.split("/")[0]
        partition_account = head.split(":")
        if len(partition_account) >= 5:
            part, account = partition_account[1], partition_account[4]
            candidates = {f"arn:{part}:iam::{account}:role/{role}"}
            return any(
                a in candidates or (a.startswith(f"arn:{part}:iam::{account}:role/") and a.rsplit("/", 1)[-1] == role)
                for a in allowed
            )
    return False


def check_allowed(action: str, model: str, principal: str, allowed: Sequence[str] | None) -> None:
    """Refuse an anonymous actor, or one outside ``allowed`` (empty/None: anyone may act).

    Parameters
    ----------
    action, model:
        What is done, to which model (for the message).
    principal:
        Who does it.
    allowed:
        Who may (``ModelConfig.approvers``).

    Raises
    ------
    NotAllowedError
        No principal, or one not allowed.
    """
    if not principal:
        raise NotAllowedError(f"{action} of model {model!r} needs a principal (who is doing this)")
    if allowed and not principal_matches(principal, allowed):
        raise NotAllowedError(
            f"{principal} may not {action} versions of model {model!r}; "
            f"allowed principals (ModelConfig.approvers): {', '.join(allowed)}"
        )


def check_reason(action: str, model: str, reason: str, version: int | None = None) -> None:
    """Refuse a change without a reason: the audit trail records why.

    Parameters
    ----------
    action, model, version:
        What is done, to which model and version (for the message).
    reason:
        Why.

    Raises
    ------
    InvalidTransitionError
        ``reason`` is empty.
    """
    if not reason:
        what = f"{model!r}" if version is None else f"{model!r} v{version}"
        raise InvalidTransitionError(f"{action} of {what} needs a reason (--reason)")


# ---- statuses -------------------------------------------------------------------------------------
def check_registration(status: str, reason: str) -> None:
    """Refuse a new version's status other than ``candidate``, or ``rejected`` without a reason.

    Parameters
    ----------
    status, reason:
        What :meth:`Registry.register` was asked to write.

    Raises
    ------
    InvalidTransitionError
        The status is not an initial one, or a rejection has no reason.
    """
    if status not in INITIAL_STATUSES:
        raise InvalidTransitionError(
            f"a new version starts as 'candidate' (or 'rejected' with a reason), not {status!r}"
        )
    if status == "rejected" and not reason:
        raise InvalidTransitionError("a version registered as 'rejected' needs a reason")


def status_change(action: str, model: str, version: int, current: str) -> str:
    """The status ``action`` moves a version in ``current`` to.

    Parameters
    ----------
    action:
        A key of :data:`STATUS_CHANGES`.
    model, version:
        Which version (for the message).
    current:
        Its status now.

    Returns
    -------
    str
        The new status.

    Raises
    ------
    InvalidTransitionError
        ``action`` does not apply to ``current`` (or is not a status change).
    """
    change = STATUS_CHANGES.get(action)
    if change is None:
        raise InvalidTransitionError(
            f"{action!r} does not change a version's status; status changes are {', '.join(STATUS_CHANGES)}"
        )
    if current not in change.sources:
        raise InvalidTransitionError(
            f"cannot {action} {model!r} v{version}: its status is {current!r}, and {action} "
            f"applies only to {' or '.join(repr(s) for s in change.sources)} versions"
        )
    return change.to


def leaves_service(status: str) -> bool:
    """Whether a version moving to ``status`` must not be serving (champion or challenger).

    Parameters
    ----------
    status:
        The new status.

    Returns
    -------
    bool
        True for :data:`NOT_SERVING_STATUSES`.
    """
    return status in NOT_SERVING_STATUSES


def check_not_serving(action: str, model: str, version: int, new: str, slots: Slots) -> None:
    """Refuse to reject or archive the version that is champion or challenger.

    Parameters
    ----------
    action, model, version:
        What is done, to which version.
    new:
        The status it would get.
    slots:
        Who serves now.

    Raises
    ------
    InvalidTransitionError
        The version serves and ``new`` would take it out of service.
    """
    if leaves_service(new) and version in (slots.champion, slots.challenger):
        role = "champion" if version == slots.champion else "challenger"
        fix = "roll back or promote another version" if role == "champion" else "clear the challenger"
        raise InvalidTransitionError(f"cannot {action} {model!r} v{version}: it is the current {role}; {fix} first")


# ---- the quality gate -----------------------------------------------------------------------------
def gate_refusal(action: str, mv: VersionRef, gate: Mapping[str, Any] | None, override: bool) -> str | None:
    """Why ``action`` (approve/promote) of ``mv`` is refused because of the quality gate, or None.

    ``gate`` is the outcome to judge (the recorded one, or one evaluated by the caller); without one
    there is nothing to enforce here. A failed gate is refused unless ``override``. Pure, so the CLI,
    the approval API and the registry itself phrase the refusal identically.

    Parameters
    ----------
    action:
        ``approve`` or ``promote``.
    mv:
        The version.
    gate:
        The gate outcome (``driftline.retraining.gate.gate_record``), if any.
    override:
        Whether the caller overrides a failed gate (with a reason, audited).

    Returns
    -------
    str | None
        The refusal message, or None when the action may go ahead.
    """
    if not gate or gate.get("passed") is True or override:
        return None
    reasons = [str(r) for r in gate.get("reasons") or []] or [str(gate.get("summary") or "no reason recorded")]
    champion = gate.get("champion_version")
    against = (
        f"against champion v{champion}"
        + (" on the same holdout" if gate.get("comparison") == "same_holdout" else " (its registered metrics)")
        if champion is not None
        else "with no champion to compare with"
    )
    where = f" by {gate['evaluated_by']}" if gate.get("evaluated_by") else ""
    if mv.status == "rejected":
        fix = "it is rejected and can never be approved; train a new version"
    else:
        fix = (
            f"to {action} it anyway, say why: driftline models {action} --model {mv.model} --version "
            f"{mv.version} --override-gate --reason '...' (the override and the reason go to the audit trail)"
        )
    return (
        f"cannot {action} {mv.model!r} v{mv.version}: it failed the quality gate ({against}, evaluated"
        f"{where}): {'; '.join(reasons)}; {fix}"
    )


# ---- champion and challenger ----------------------------------------------------------------------
def check_promotion(model: str, version: int, status: str) -> None:
    """Refuse to promote a version that is not approved.

    Parameters
    ----------
    model, version:
        The version to promote.
    status:
        Its status.

    Raises
    ------
    InvalidTransitionError
        It is not in :data:`PROMOTABLE_STATUSES` (the message says what to do).
    """
    if status not in PROMOTABLE_STATUSES:
        hint = (
            f"approve it first (driftline models approve --model {model} --version {version})"
            if status == "candidate"
            else "a rejected or archived version cannot become champion"
        )
        raise InvalidTransitionError(f"cannot promote {model!r} v{version}: its status is {status!r}; {hint}")


def check_new_champion(model: str, version: int, slots: Slots) -> None:
    """Refuse to make the champion champion again (promotion or rollback).

    Parameters
    ----------
    model, version:
        The version to make champion.
    slots:
        Who serves now.

    Raises
    ------
    InvalidTransitionError
        ``version`` is the champion already.
    """
    if slots.champion == version:
        raise InvalidTransitionError(f"{model!r} v{version} is already the champion")


def rollback_target(model: str, history: Sequence[int], to_version: int | None) -> int:
    """The version a rollback returns to: ``to_version``, else the champion before the current one.

    Parameters
    ----------
    model:
        The model (for the message).
    history:
        The champion stack, oldest first (:func:`replay_champions`).
    to_version:
        The version asked for, if any.

    Returns
    -------
    int
        The rollback target.

    Raises
    ------
    InvalidTransitionError
        No version asked for and no previous champion.
    """
    if to_version is not None:
        return to_version
    if len(history) < 2:
        raise InvalidTransitionError(
            f"{model!r} has no previous champion to roll back to "
            f"(champion history: {list(history) or 'empty'}); "
            f"use --version to choose one"
        )
    return history[-2]


def check_rollback(model: str, version: int, status: str) -> None:
    """Refuse to roll back to a version that may not serve.

    Parameters
    ----------
    model, version:
        The rollback target.
    status:
        Its status.

    Raises
    ------
    InvalidTransitionError
        It is not in :data:`ROLLBACK_STATUSES`.
    """
    if status not in ROLLBACK_STATUSES:
        raise InvalidTransitionError(
            f"cannot roll {model!r} back to v{version}: its status is "
            f"{status!r}; only approved or archived versions can serve"
        )


def check_challenger_policy(mode: str, percent: Any) -> None:
    """Refuse a traffic policy other than shadow 0-100% or canary 1-100%.

    Parameters
    ----------
    mode, percent:
        The policy asked for.

    Raises
    ------
    InvalidTransitionError
        An unknown mode, or a percent that is not an integer in range.
    """
    if mode not in CHALLENGER_MODES:
        raise InvalidTransitionError(f"challenger mode must be 'shadow' or 'canary', not {mode!r}")
    if not isinstance(percent, int) or not 0 <= percent <= 100 or (mode == "canary" and percent == 0):
        raise InvalidTransitionError(f"challenger percent must be an integer 0-100 (1-100 for canary), not {percent!r}")


def check_challenger(model: str, version: int, status: str) -> None:
    """Refuse a challenger that is neither a candidate nor approved.

    Parameters
    ----------
    model, version:
        The would-be challenger.
    status:
        Its status.

    Raises
    ------
    InvalidTransitionError
        It is not in :data:`CHALLENGER_STATUSES`.
    """
    if status not in CHALLENGER_STATUSES:
        raise InvalidTransitionError(f"cannot make {model!r} v{version} challenger: its status is {status!r}")


def check_challenger_slot(model: str, version: int, slots: Slots) -> None:
    """Refuse to make the champion the challenger too.

    Parameters
    ----------
    model, version:
        The would-be challenger.
    slots:
        Who serves now.

    Raises
    ------
    InvalidTransitionError
        ``version`` is the champion.
    """
    if slots.champion == version:
        raise InvalidTransitionError(f"{model!r} v{version} is the champion; it cannot also be the challenger")


def with_champion(slots: Slots, version: int) -> Slots:
    """The slots after ``version`` becomes champion: a challenger that was ``version`` leaves its slot
    and traffic stops splitting; another challenger keeps its slot and policy.

    Parameters
    ----------
    slots:
        Who serves now.
    version:
        The new champion.

    Returns
    -------
    Slots
        Who serves then.
    """
    if slots.challenger == version:
        return Slots(version, None, "none", 0)
    return slots._replace(champion=version)


def with_challenger(slots: Slots, version: int, mode: str, percent: int) -> Slots:
    """The slots after ``version`` becomes the challenger under ``mode``/``percent`` (checked before).

    Parameters
    ----------
    slots:
        Who serves now.
    version, mode, percent:
        The challenger and its traffic policy.

    Returns
    -------
    Slots
        Who serves then (the champion unchanged).
    """
    return Slots(slots.champion, version, mode, percent)


def without_challenger(slots: Slots) -> Slots | None:
    """The slots with no challenger and no traffic split, or None when there is nothing to clear.

    Parameters
    ----------
    slots:
        Who serves now.

    Returns
    -------
    Slots | None
        Who serves then; None means clearing is a no-op (nothing is written or audited).
    """
    if slots.challenger is None and slots.traffic_mode == "none":
        return None
    return Slots(slots.champion, None, "none", 0)


def replay_champions(changes: Iterable[tuple[str, int, int, str]]) -> list[int]:
    """The champion stack replayed from audited promotions and rollbacks.

    A promotion pushes its version; a rollback to a version on the stack pops back to it (a rollback
    to one never champion before pushes it).

    Parameters
    ----------
    changes:
        ``(action, version, aliases revision, ts)`` of each ``promote``/``rollback`` audit entry, any order.

    Returns
    -------
    list[int]
        Champions, oldest first; the last is the current one.
    """
    stack: list[int] = []
    for action, version, _, _ in sorted(changes, key=lambda c: (c[2], c[3])):
        if action == "rollback" and version in stack:
            while stack[-1] != version:
                stack.pop()
        else:
            stack.append(version)
    return stack
