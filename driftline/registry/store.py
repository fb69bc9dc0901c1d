"""The model registry: versions, champion/challenger aliases and an append-only audit trail.

Storage is the registry DynamoDB table (layout in docs/architecture.md):
``VERSION#<000001>`` items, one ``ALIASES`` item per model, a ``COUNTER`` item and ``AUDIT#`` items.

Guarantees, and how they are enforced:
- version numbers are unique: an atomic ``ADD`` on the counter item;
- there is never more than one champion and no alias update is lost: the aliases live in one item
  and every alias write is a transaction conditional on the ``revision`` read before it, so a
  concurrent writer loses with :class:`ConcurrentUpdateError` instead of overwriting silently;
- every status or alias change is audited: the change and its audit entry (conditional on
  ``attribute_not_exists(sk)``) commit in one transaction;
- the audit trail cannot be changed or deleted by the roles that write it: right after the
  transaction, each entry is sealed as an object in the audit bucket (``AUDIT_BUCKET``), which is
  write-once (S3 Object Lock; the bucket policy refuses any PutObject without ``If-None-Match: *`` and
  every delete; writer roles may only ``s3:PutObject`` under ``audit/``). The table copy is only
  client-side protected (the train and workflow roles may update the registry table), so
  :meth:`Registry.audit` shows the sealed entry and says where the table differs
  (:attr:`AuditEntry.integrity`);
- transitions are explicit: only ``approved`` versions become champion, rejected versions never
  come back; the rules are pure functions and tables in :mod:`driftline.registry.transitions`, asked
  before each write and repeated as the transaction's conditions;
- the quality gate binds every path: a version whose recorded gate outcome (``gate``, written by the
  workflow's gate step or by the approval that evaluated it) failed is neither approved nor promoted
  unless the caller overrides it explicitly, and the override is audited (:func:`gate_refusal`).
  Evaluating the gate needs the model's config, which this module does not read: callers that approve
  a version with no recorded outcome evaluate it (``driftline.retraining.gate``) and pass it in.

Standard library and botocore only (the serving Lambda imports this; :meth:`Registry.aliases` is one
GetItem). Restricting who may approve is the caller's choice: pass ``allowed`` principals
(``ModelConfig.approvers``) in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from driftline import aws
from driftline.dynamo_attrs import get_int, get_json, get_str
from driftline.registry import transitions
from driftline.registry.artifacts import ArtifactRef
from driftline.registry.errors import (
    ConcurrentUpdateError,
    InvalidTransitionError,
    NotAllowedError,
    QualityGateFailedError,
    RegistryError,
    UnknownModelError,
    UnknownVersionError,
)
from driftline.registry.transitions import STATUSES, TRAFFIC_MODES, Slots, gate_refusal, principal_matches

__all__ = [
    "AUDIT_OBJECT_PREFIX",
    "CHANGED",
    "REMOVED",
    "SEALED",
    "STATUSES",
    "SYSTEM_PRINCIPAL",
    "TRAFFIC_MODES",
    "UNSEALED",
    "Aliases",
    "AuditEntry",
    "ConcurrentUpdateError",
    "InvalidTransitionError",
    "ModelVersion",
    "NotAllowedError",
    "QualityGateFailedError",
    "Registry",
    "RegistryError",
    "UnknownModelError",
    "UnknownVersionError",
    "audit_object_key",
    "gate_refusal",
    "principal_matches",
]

log = logging.getLogger(__name__)

AUDIT_OBJECT_PREFIX = "audit/"
"""Where sealed audit entries live in the audit bucket: ``audit/model=<model>/<ts>#<id>.json``."""
SEALED = "sealed"
UNSEALED = "unsealed: not in the audit bucket (written without one, or its seal failed); table copy only"
CHANGED = "sealed; the registry table's copy was changed (the sealed entry is shown)"
REMOVED = "sealed; deleted from the registry table"
SYSTEM_PRINCIPAL = "driftline"


# ---------------------------------------------------------------- records
@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    status: str
    created_at: str
    created_by: str
    algorithm: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    input_schema: dict[str, Any] = field(default_factory=dict)
    feature_set: str = ""
    feature_set_version: int = 0
    feature_set_fingerprint: str = ""
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    trigger: str = ""
    reason: str = ""
    updated_at: str = ""
    gate: dict[str, Any] = field(default_factory=dict)
    """The recorded quality-gate outcome (``driftline.retraining.gate.gate_record``); empty when the
    gate was never evaluated for this version."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "algorithm": self.algorithm,
            "params": self.params,
            "metrics": self.metrics,
            "input_schema": self.input_schema,
            "feature_set": self.feature_set,
            "feature_set_version": self.feature_set_version,
            "feature_set_fingerprint": self.feature_set_fingerprint,
            "artifacts": {k: v.to_dict() for k, v in self.artifacts.items()},
            "lineage": self.lineage,
            "trigger": self.trigger,
            "reason": self.reason,
            "updated_at": self.updated_at,
            "gate": self.gate,
        }


@dataclass(frozen=True)
class Aliases:
    model: str
    champion: int | None = None
    challenger: int | None = None
    traffic_mode: str = "none"
    traffic_percent: int = 0
    revision: int = 0
    updated_at: str = ""

    @property
    def traffic(self) -> dict[str, Any]:
        return {"mode": self.traffic_mode, "percent": self.traffic_percent}

    @property
    def slots(self) -> Slots:
        """Who serves (what the transition rules judge)."""
        return Slots(self.champion, self.challenger, self.traffic_mode, self.traffic_percent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "champion": self.champion,
            "challenger": self.challenger,
            "traffic": self.traffic,
            "revision": self.revision,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class AuditEntry:
    model: str
    ts: str
    who: str
    action: str
    version: int | None
    why: str
    details: dict[str, Any] = field(default_factory=dict)
    integrity: str = ""
    """:data:`SEALED`, or how the table and the sealed copy disagree (empty: no audit bucket configured)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ts": self.ts,
            "who": self.who,
            "action": self.action,
            "version": self.version,
            "why": self.why,
            "details": self.details,
            "integrity": self.integrity,
        }


# ---------------------------------------------------------------- helpers
class _Act(NamedTuple):
    """Who did what to which version, and why: the audited part of every change."""

    who: str
    action: str
    version: int | None
    why: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _pk(model: str) -> str:
    return f"MODEL#{model}"


def _vsk(version: int) -> str:
    return f"VERSION#{version:06d}"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _version_from_item(item: Mapping[str, Any]) -> ModelVersion:
    arts = get_json(item, "artifacts", {})
    return ModelVersion(
        model=get_str(item, "model"),
        version=get_int(item, "version") or 0,
        status=get_str(item, "status"),
        created_at=get_str(item, "created_at"),
        created_by=get_str(item, "created_by"),
        algorithm=get_str(item, "algorithm"),
        params=get_json(item, "params", {}),
        metrics=get_json(item, "metrics", {}),
        input_schema=get_json(item, "input_schema", {}),
        feature_set=get_str(item, "feature_set"),
        feature_set_version=get_int(item, "feature_set_version") or 0,
        feature_set_fingerprint=get_str(item, "feature_set_fingerprint"),
        artifacts={k: ArtifactRef.from_dict(v) for k, v in arts.items()},
        lineage=get_json(item, "lineage", {}),
        trigger=get_str(item, "trigger"),
        reason=get_str(item, "reason"),
        updated_at=get_str(item, "updated_at"),
        gate=get_json(item, "gate", {}),
    )


def _aliases_from_item(model: str, item: Mapping[str, Any]) -> Aliases:
    traffic = get_json(item, "traffic", {}) or {"mode": "none", "percent": 0}
    return Aliases(
        model=model,
        champion=get_int(item, "champion"),
        challenger=get_int(item, "challenger"),
        traffic_mode=str(traffic.get("mode", "none")),
        traffic_percent=int(traffic.get("percent", 0)),
        revision=get_int(item, "revision") or 0,
        updated_at=get_str(item, "updated_at"),
    )


def _audit_from_item(model: str, item: Mapping[str, Any], integrity: str = "") -> AuditEntry:
    return AuditEntry(
        model=model,
        ts=get_str(item, "ts") or get_str(item, "sk").split("#")[1],
        who=get_str(item, "who"),
        action=get_str(item, "action"),
        version=get_int(item, "version"),
        why=get_str(item, "why"),
        details=get_json(item, "details", {}),
        integrity=integrity,
    )


def audit_object_key(model: str, sk: str) -> str:
    """The sealed copy's key of the audit item ``sk`` (``AUDIT#<ts>#<id>``)."""
    return f"{AUDIT_OBJECT_PREFIX}model={model}/{sk.removeprefix('AUDIT#')}.json"


# ---------------------------------------------------------------- registry
class Registry:
    """All reads and writes of the registry table. Cheap to construct; holds no state but names."""

    def __init__(self, table_name: str, audit_bucket: str | None = None) -> None:
        self.table = table_name
        self.audit_bucket = audit_bucket or None
        """Where audit entries are sealed; None: the table copy only (no write-once trail)."""

    @classmethod
    def from_env(cls) -> Registry:
        """The functions' registry (``REGISTRY_TABLE``, and ``AUDIT_BUCKET`` for those that write audits)."""
        return cls(aws.env("REGISTRY_TABLE"), audit_bucket=os.environ.get("AUDIT_BUCKET"))

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    # ------------------------------------------------------------ reads
    def aliases(self, model: str, consistent: bool = False) -> Aliases:
        """Champion, challenger and traffic policy: one GetItem (serving polls this)."""
        resp = self._ddb.get_item(
            TableName=self.table, Key={"pk": {"S": _pk(model)}, "sk": {"S": "ALIASES"}}, ConsistentRead=consistent
        )
        item = resp.get("Item")
        if item is None:
            # no Scan here: serving calls this, and unknown names must stay one GetItem
            raise UnknownModelError(
                f"model {model!r} is not in the registry (no version was ever "
                f"registered); list models with `driftline models list`"
            )
        return _aliases_from_item(model, item)

    def exists(self, model: str) -> bool:
        resp = self._ddb.get_item(
            TableName=self.table, Key={"pk": {"S": _pk(model)}, "sk": {"S": "ALIASES"}}, ProjectionExpression="pk"
        )
        return "Item" in resp

    def get_version(self, model: str, version: int) -> ModelVersion:
        key = {"pk": {"S": _pk(model)}, "sk": {"S": _vsk(version)}}
        resp = self._ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item = resp.get("Item")
        if item is None:
            if not self.exists(model):
                raise UnknownModelError(
                    f"model {model!r} is not in the registry; list models with `driftline models list`"
                )
            raise UnknownVersionError(
                f"model {model!r} has no version {version}; list them with `driftline models list --model {model}`"
            )
        return _version_from_item(item)

    def list_versions(self, model: str) -> list[ModelVersion]:
        """All versions, oldest first."""
        out = [_version_from_item(i) for i in self._query(model, "VERSION#")]
        if not out and not self.exists(model):
            raise UnknownModelError(
                f"model {model!r} is not in the registry; known models: {', '.join(self.list_models()) or 'none'}"
            )
        return out

    def list_models(self) -> list[str]:
        """Names of registered models (a filtered scan: for the CLI, not for hot paths)."""
        names: set[str] = set()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :a",
            "ExpressionAttributeValues": {":a": {"S": "ALIASES"}},
            "ProjectionExpression": "pk",
        }
        while True:
            resp = self._ddb.scan(**kwargs)
            names.update(i["pk"]["S"].removeprefix("MODEL#") for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return sorted(names)
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def audit(self, model: str) -> list[AuditEntry]:
        """The audit trail, oldest first.

        With an audit bucket the sealed entries are the trail: an entry changed in the table is shown as
        sealed and flagged, one deleted from the table is still shown, one never sealed is shown from
        the table and flagged (:attr:`AuditEntry.integrity`).
        """
        if not self.exists(model):
            raise UnknownModelError(f"model {model!r} is not in the registry")
        table = {i["sk"]["S"]: i for i in self._query(model, "AUDIT#")}
        if self.audit_bucket is None:
            return [_audit_from_item(model, i) for i in table.values()]
        sealed = self._sealed(model)
        out = []
        for sk in sorted(set(table) | set(sealed)):
            item, seal = table.get(sk), sealed.get(sk)
            if seal is None:
                assert item is not None
                out.append(_audit_from_item(model, item, UNSEALED))
            else:
                integrity = SEALED if item == seal else (REMOVED if item is None else CHANGED)
                out.append(_audit_from_item(model, seal, integrity))
        return out

    def _sealed(self, model: str) -> dict[str, dict[str, Any]]:
        """sk -> sealed audit item of ``model`` (read from the audit bucket)."""
        s3 = aws.client("s3")
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.audit_bucket, Prefix=f"{AUDIT_OBJECT_PREFIX}model={model}/"
            )
            for o in page.get("Contents", [])
        ]

        def read(key: str) -> dict[str, Any]:
            return json.loads(s3.get_object(Bucket=self.audit_bucket, Key=key)["Body"].read())  # type: ignore[no-any-return]

        with ThreadPoolExecutor(max_workers=8) as pool:
            items = list(pool.map(read, keys))
        return {i["sk"]["S"]: i for i in items if isinstance(i, dict) and "S" in (i.get("sk") or {})}

    def _query(self, model: str, prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":pk": {"S": _pk(model)}, ":p": {"S": prefix}},
        }
        while True:
            resp = self._ddb.query(**kwargs)
            yield from resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # ------------------------------------------------------------ registration
    def next_version(self, model: str) -> int:
        """Reserve the next version number (atomic counter); creates the model's aliases item once."""
        now = _now()
        with contextlib.suppress(self._ddb.exceptions.ConditionalCheckFailedException):
            self._ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": _pk(model)},
                    "sk": {"S": "ALIASES"},
                    "revision": {"N": "0"},
                    "traffic": {"S": _dumps({"mode": "none", "percent": 0})},
                    "updated_at": {"S": now},
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
        resp = self._ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": _pk(model)}, "sk": {"S": "COUNTER"}},
            UpdateExpression="ADD next_version :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(resp["Attributes"]["next_version"]["N"])

    def register(
        self,
        model: str,
        *,
        version: int | None = None,
        status: str = "candidate",
        created_by: str = SYSTEM_PRINCIPAL,
        algorithm: str = "",
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        input_schema: Mapping[str, Any] | None = None,
        feature_set: str = "",
        feature_set_version: int = 0,
        feature_set_fingerprint: str = "",
        artifacts: Mapping[str, ArtifactRef | Mapping[str, Any]] | None = None,
        lineage: Mapping[str, Any] | None = None,
        trigger: str = "manual",
        reason: str = "",
    ) -> ModelVersion:
        """Write a version item (``version`` from :meth:`next_version`, or reserved here).

        Training reserves the number first so artifacts can live under ``models/<model>/v<version>/``.
        A version is written once; registering the same number twice is refused.
        """
        transitions.check_registration(status, reason)
        if version is None:
            version = self.next_version(model)
        arts = {
            k: (v if isinstance(v, ArtifactRef) else ArtifactRef.from_dict(dict(v))).to_dict()
            for k, v in (artifacts or {}).items()
        }
        now = _now()
        item = {
            "pk": {"S": _pk(model)},
            "sk": {"S": _vsk(version)},
            "model": {"S": model},
            "version": {"N": str(version)},
            "status": {"S": status},
            "created_at": {"S": now},
            "updated_at": {"S": now},
            "created_by": {"S": created_by},
            "algorithm": {"S": algorithm},
            "params": {"S": _dumps(dict(params or {}))},
            "metrics": {"S": _dumps(dict(metrics or {}))},
            "input_schema": {"S": _dumps(dict(input_schema or {}))},
            "feature_set": {"S": feature_set},
            "feature_set_version": {"N": str(feature_set_version)},
            "feature_set_fingerprint": {"S": feature_set_fingerprint},
            "artifacts": {"S": _dumps(arts)},
            "lineage": {"S": _dumps(dict(lineage or {}))},
            "trigger": {"S": trigger},
            "reason": {"S": reason},
        }
        act = _Act(created_by, "register", version, reason or f"registered as {status}")
        audit = self._audit_put(model, act, {"status": status, "trigger": trigger})
        try:
            self._commit(
                [
                    {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(sk)"}},
                    audit,
                ]
            )
        except self._ddb.exceptions.TransactionCanceledException:
            raise InvalidTransitionError(
                f"model {model!r} version {version} is already registered; reserve a new number with next_version()"
            ) from None
        return _version_from_item(item)

    # ------------------------------------------------------------ status changes
    def approve(
        self,
        model: str,
        version: int,
        principal: str,
        reason: str,
        allowed: Sequence[str] | None = None,
        *,
        gate: Mapping[str, Any] | None = None,
        override_gate: bool = False,
    ) -> ModelVersion:
        """candidate -> approved. ``allowed``: principals who may approve (empty/None = anyone).

        Refused (:class:`QualityGateFailedError`) when the version's quality gate failed, unless
        ``override_gate``; ``gate`` is an outcome the caller evaluated for a version that has none
        recorded, stored with the approval. An override is audited with the reason.
        """
        transitions.check_allowed("approve", model, principal, allowed)
        return self._set_status(model, version, principal, reason, "approve", gate=(gate, override_gate))

    def reject(
        self, model: str, version: int, principal: str, reason: str, allowed: Sequence[str] | None = None
    ) -> ModelVersion:
        """candidate/approved -> rejected (never the serving champion or challenger)."""
        transitions.check_allowed("reject", model, principal, allowed)
        return self._set_status(model, version, principal, reason, "reject")

    def archive(
        self, model: str, version: int, principal: str, reason: str, allowed: Sequence[str] | None = None
    ) -> ModelVersion:
        """approved -> archived: kept for rollback, but no longer offered for promotion by default."""
        transitions.check_allowed("archive", model, principal, allowed)
        return self._set_status(model, version, principal, reason, "archive")

    def record_failure(self, model: str, version: int, reason: str, principal: str = SYSTEM_PRINCIPAL) -> ModelVersion:
        """Mark a version rejected because a pipeline step failed (gate, canary, conversion...).

        Idempotent for an already rejected version (the first reason is kept, the new one audited).
        """
        current = self.get_version(model, version)
        change = transitions.STATUS_CHANGES["record_failure"]
        if change.repeat_ok and current.status == change.to:
            self._commit(
                [self._audit_put(model, _Act(principal, "record_failure", version, reason), {"status": "rejected"})]
            )
            return current
        return self._set_status(model, version, principal, reason, "record_failure")

    def record_gate(
        self, model: str, version: int, outcome: Mapping[str, Any], principal: str = SYSTEM_PRINCIPAL
    ) -> ModelVersion:
        """Store the quality-gate outcome on the version (status unchanged) and audit it (action ``gate``).

        A later outcome replaces an earlier one (a retried gate step); the audit trail keeps both.
        """
        now = _now()
        summary = str(
            outcome.get("summary") or ("quality gate passed" if outcome.get("passed") else "quality gate failed")
        )
        details = {k: outcome.get(k) for k in ("passed", "reasons", "champion_version", "comparison", "evaluated_by")}
        try:
            self._commit(
                [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": {"S": _pk(model)}, "sk": {"S": _vsk(version)}},
                            "UpdateExpression": "SET gate = :g, updated_at = :now",
                            "ConditionExpression": "attribute_exists(sk)",
                            "ExpressionAttributeValues": {":g": {"S": _dumps(dict(outcome))}, ":now": {"S": now}},
                        }
                    },
                    self._audit_put(model, _Act(principal, "gate", version, summary[:1000]), details),
                ]
            )
        except self._ddb.exceptions.TransactionCanceledException:
            self.get_version(model, version)  # raises the precise not-found error
            raise ConcurrentUpdateError(
                f"{model!r} v{version} changed while its gate outcome was being recorded; retry"
            ) from None
        return self.get_version(model, version)

    def record_event(
        self,
        model: str,
        version: int | None,
        action: str,
        why: str,
        details: Mapping[str, Any] | None = None,
        principal: str = SYSTEM_PRINCIPAL,
    ) -> None:
        """Append an audit entry that changes nothing else (an outcome worth finding later, such as an
        inconclusive canary)."""
        self._commit([self._audit_put(model, _Act(principal, action, version, why[:1000]), dict(details or {}))])

    def _gate_terms(
        self, action: str, current: ModelVersion, gate: Mapping[str, Any] | None, override: bool, reason: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(outcome to store on the version, audit details) of an approve/promote, or the refusal.

        The recorded outcome wins over one the caller evaluated: it is what the gate said when the
        version was judged (for the workflow, on the candidate's own holdout).
        """
        recorded = current.gate
        outcome = dict(recorded or gate or {})
        refusal = gate_refusal(action, current, outcome, override)
        if refusal:
            raise QualityGateFailedError(refusal)
        if not outcome:
            return None, {"gate": {"passed": None, "note": "no quality-gate outcome recorded or supplied"}}
        details: dict[str, Any] = {
            "gate": {k: outcome.get(k) for k in ("passed", "champion_version", "comparison", "evaluated_by")}
        }
        if outcome.get("passed") is not True:
            details["gate_override"] = {"reason": reason, "failed": list(outcome.get("reasons") or [])}
        return (None if recorded else outcome), details

    def _set_status(
        self,
        model: str,
        version: int,
        principal: str,
        reason: str,
        action: str,
        gate: tuple[Mapping[str, Any] | None, bool] | None = None,
    ) -> ModelVersion:
        """Change the status as ``action`` does (:data:`transitions.STATUS_CHANGES`) and audit it;
        ``gate`` = (supplied outcome, override) enforces the gate."""
        transitions.check_reason(action, model, reason, version)
        current = self.get_version(model, version)
        new = transitions.status_change(action, model, version, current.status)
        al = self.aliases(model, consistent=True)
        transitions.check_not_serving(action, model, version, new, al.slots)
        store_gate, gate_details = (
            self._gate_terms(action, current, gate[0], gate[1], reason) if gate is not None else (None, {})
        )
        now = _now()
        values = {":new": {"S": new}, ":old": {"S": current.status}, ":why": {"S": reason}, ":now": {"S": now}}
        expr = "SET #st = :new, reason = :why, updated_at = :now"
        if store_gate is not None:
            expr += ", gate = :gate"
            values[":gate"] = {"S": _dumps(store_gate)}
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": _pk(model)}, "sk": {"S": _vsk(version)}},
                    "UpdateExpression": expr,
                    "ConditionExpression": "#st = :old",
                    "ExpressionAttributeNames": {"#st": "status"},
                    "ExpressionAttributeValues": values,
                }
            },
            self._audit_put(
                model, _Act(principal, action, version, reason), {"from": current.status, "to": new, **gate_details}
            ),
        ]
        if transitions.leaves_service(new):  # must not be serving when the status changes
            items.append(self._aliases_unchanged(model, al.revision))
        try:
            self._commit(items)
        except self._ddb.exceptions.TransactionCanceledException:
            raise ConcurrentUpdateError(
                f"{model!r} v{version} changed while it was being updated "
                f"({action}); check `driftline models show` and retry"
            ) from None
        return self.get_version(model, version)

    # ------------------------------------------------------------ aliases
    def promote(
        self,
        model: str,
        version: int,
        principal: str,
        reason: str,
        *,
        allowed: Sequence[str] | None = None,
        expected_revision: int | None = None,
        gate: Mapping[str, Any] | None = None,
        override_gate: bool = False,
    ) -> Aliases:
        """Make an approved version the champion.

        Conditional on the aliases revision (``expected_revision`` if given, else the one read here) and
        on the version still being approved; a lost race raises :class:`ConcurrentUpdateError`.
        If the version was the challenger, the challenger slot and traffic split are cleared.
        The quality gate is enforced as in :meth:`approve` (``gate``, ``override_gate``).
        """
        transitions.check_allowed("promote", model, principal, allowed)
        transitions.check_reason("promote", model, reason)
        target = self.get_version(model, version)
        transitions.check_promotion(model, version, target.status)
        store_gate, gate_details = self._gate_terms("promote", target, gate, override_gate, reason)
        al = self.aliases(model, consistent=True)
        if expected_revision is not None and expected_revision != al.revision:
            raise ConcurrentUpdateError(self._race_message(model, "promote", expected_revision, al.revision))
        transitions.check_new_champion(model, version, al.slots)
        new = Aliases(model, *transitions.with_champion(al.slots, version), revision=al.revision + 1, updated_at=_now())
        self._write_aliases(
            al,
            new,
            _Act(principal, "promote", version, reason),
            extra=[self._status_is(model, version, transitions.PROMOTABLE_STATUSES, set_gate=store_gate)],
            details=gate_details,
        )
        return new

    def rollback(
        self,
        model: str,
        principal: str,
        reason: str,
        to_version: int | None = None,
        *,
        allowed: Sequence[str] | None = None,
    ) -> Aliases:
        """Make the previous champion (from the audit trail) champion again, or ``to_version``."""
        transitions.check_allowed("rollback", model, principal, allowed)
        transitions.check_reason("rollback", model, reason)
        al = self.aliases(model, consistent=True)
        history = self.champion_history(model) if to_version is None else []
        to_version = transitions.rollback_target(model, history, to_version)
        transitions.check_new_champion(model, to_version, al.slots)
        target = self.get_version(model, to_version)
        transitions.check_rollback(model, to_version, target.status)
        new = Aliases(
            model, *transitions.with_champion(al.slots, to_version), revision=al.revision + 1, updated_at=_now()
        )
        self._write_aliases(
            al,
            new,
            _Act(principal, "rollback", to_version, reason),
            extra=[self._status_is(model, to_version, transitions.ROLLBACK_STATUSES)],
        )
        return new

    def set_challenger(
        self,
        model: str,
        version: int,
        mode: str,
        percent: int,
        *,
        principal: str = SYSTEM_PRINCIPAL,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> Aliases:
        """Route ``percent`` of traffic to ``version`` (canary) or mirror it (shadow)."""
        transitions.check_challenger_policy(mode, percent)
        target = self.get_version(model, version)
        transitions.check_challenger(model, version, target.status)
        al = self.aliases(model, consistent=True)
        if expected_revision is not None and expected_revision != al.revision:
            raise ConcurrentUpdateError(self._race_message(model, "set_challenger", expected_revision, al.revision))
        transitions.check_challenger_slot(model, version, al.slots)
        new = Aliases(
            model,
            *transitions.with_challenger(al.slots, version, mode, percent),
            revision=al.revision + 1,
            updated_at=_now(),
        )
        act = _Act(principal, "set_challenger", version, reason or f"{mode} {percent}%")
        self._write_aliases(al, new, act, extra=[self._status_is(model, version, transitions.CHALLENGER_STATUSES)])
        return new

    def clear_challenger(
        self, model: str, *, principal: str = SYSTEM_PRINCIPAL, reason: str = "", expected_revision: int | None = None
    ) -> Aliases:
        """Remove the challenger and stop splitting traffic (a no-op without a challenger)."""
        al = self.aliases(model, consistent=True)
        if expected_revision is not None and expected_revision != al.revision:
            raise ConcurrentUpdateError(self._race_message(model, "clear_challenger", expected_revision, al.revision))
        cleared = transitions.without_challenger(al.slots)
        if cleared is None:
            return al
        new = Aliases(model, *cleared, revision=al.revision + 1, updated_at=_now())
        self._write_aliases(al, new, _Act(principal, "clear_challenger", al.challenger, reason or "challenger cleared"))
        return new

    def champion_history(self, model: str) -> list[int]:
        """Champion stack replayed from the audit trail: promote pushes, rollback pops back to its target."""
        return transitions.replay_champions(
            (e.action, e.version, int(e.details.get("revision", 0)), e.ts)
            for e in self.audit(model)
            if e.action in ("promote", "rollback") and e.version is not None
        )

    # ------------------------------------------------------------ write plumbing
    @staticmethod
    def _race_message(model: str, action: str, expected: int, actual: int) -> str:
        return (
            f"{action} of {model!r} lost a race: the aliases changed (revision {expected} -> {actual}) "
            f"since they were read; re-read them and retry"
        )

    def _status_is(
        self, model: str, version: int, statuses: tuple[str, ...], set_gate: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A condition on the version's status; an Update storing ``set_gate`` under the same condition
        when given (one transaction may not both check and update an item)."""
        values: dict[str, Any] = {f":s{i}": {"S": s} for i, s in enumerate(statuses)}
        op: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": _pk(model)}, "sk": {"S": _vsk(version)}},
            "ConditionExpression": f"#st IN ({', '.join(values)})",
            "ExpressionAttributeNames": {"#st": "status"},
            "ExpressionAttributeValues": values,
        }
        if set_gate is None:
            return {"ConditionCheck": op}
        values[":gate"] = {"S": _dumps(dict(set_gate))}
        return {"Update": {**op, "UpdateExpression": "SET gate = :gate"}}

    def _aliases_unchanged(self, model: str, revision: int) -> dict[str, Any]:
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": {"pk": {"S": _pk(model)}, "sk": {"S": "ALIASES"}},
                "ConditionExpression": "revision = :rev",
                "ExpressionAttributeValues": {":rev": {"N": str(revision)}},
            }
        }

    def _commit(self, items: Sequence[dict[str, Any]]) -> None:
        """One transaction, then a sealed copy of each audit entry in it (after the commit: a failed
        transaction leaves no entry). A seal that fails is logged, not raised: the change is committed, and
        :meth:`audit` shows the entry as unsealed."""
        self._ddb.transact_write_items(TransactItems=list(items))
        if self.audit_bucket is None:
            return
        for op in items:
            item = op.get("Put", {}).get("Item")
            if item and item["sk"]["S"].startswith("AUDIT#"):
                self._seal(item)

    def _seal(self, item: Mapping[str, Any]) -> None:
        model = item["pk"]["S"].removeprefix("MODEL#")
        key = audit_object_key(model, item["sk"]["S"])
        try:
            aws.client("s3").put_object(
                Bucket=self.audit_bucket,
                Key=key,
                IfNoneMatch="*",
                Body=json.dumps(item, sort_keys=True).encode(),
                ContentType="application/json",
            )
        except Exception as e:  # the change is committed; audit() reports the entry as unsealed
            log.error(
                "audit entry %s of %s was committed but not sealed in s3://%s/%s: %s",
                item["sk"]["S"],
                model,
                self.audit_bucket,
                key,
                e,
            )

    def _audit_put(self, model: str, act: _Act, details: Mapping[str, Any]) -> dict[str, Any]:
        who, action, version, why = act
        ts = _now()
        item: dict[str, Any] = {
            "pk": {"S": _pk(model)},
            "sk": {"S": f"AUDIT#{ts}#{uuid.uuid4().hex}"},
            "ts": {"S": ts},
            "who": {"S": who},
            "action": {"S": action},
            "why": {"S": why},
            "details": {"S": _dumps(dict(details))},
        }
        if version is not None:
            item["version"] = {"N": str(version)}
        return {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(sk)"}}

    def _write_aliases(
        self,
        old: Aliases,
        new: Aliases,
        act: _Act,
        extra: Sequence[dict[str, Any]] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        action, version = act.action, act.version
        values: dict[str, Any] = {
            ":rev": {"N": str(old.revision)},
            ":next": {"N": str(new.revision)},
            ":traffic": {"S": _dumps(new.traffic)},
            ":now": {"S": new.updated_at},
        }
        sets = ["revision = :next", "traffic = :traffic", "updated_at = :now"]
        removes = []
        for slot in ("champion", "challenger"):
            value = getattr(new, slot)
            if value is None:
                removes.append(slot)
            else:
                sets.append(f"{slot} = :{slot}")
                values[f":{slot}"] = {"N": str(value)}
        expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": _pk(old.model)}, "sk": {"S": "ALIASES"}},
            "UpdateExpression": expr,
            "ConditionExpression": "revision = :rev",
            "ExpressionAttributeValues": values,
        }
        audit_details = {
            "previous": old.to_dict(),
            "current": new.to_dict(),
            "revision": new.revision,
            "previous_champion": old.champion,
            **(details or {}),
        }
        audit = self._audit_put(old.model, act, audit_details)
        items = [{"Update": update}, audit, *extra]
        try:
            self._commit(items)
        except self._ddb.exceptions.TransactionCanceledException as e:
            cancel = getattr(e, "response", {}).get("CancellationReasons", [])
            reasons = [r.get("Code", "None") for r in cancel]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                current = self.aliases(old.model, consistent=True)
                raise ConcurrentUpdateError(
                    self._race_message(old.model, action, old.revision, current.revision)
                ) from None
            if len(reasons) > 2 and "ConditionalCheckFailed" in reasons[2:]:
                raise ConcurrentUpdateError(
                    f"{action} of {old.model!r} v{version}: the version's status "
                    f"changed concurrently; check `driftline models show` and retry"
                ) from None
            raise ConcurrentUpdateError(
                f"{action} of {old.model!r} was cancelled by a concurrent write "
                f"({', '.join(reasons) or 'no reason given'}); retry"
            ) from None
