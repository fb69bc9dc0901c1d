"""Config changes without a wipe: what a new platform definition changes against the running one
(:func:`diff_platforms`, pure), and the removal of what it no longer defines (:func:`remove_resources`).

New and changed resources are provisioned by :func:`driftline.local.provision.provision_platform`
(idempotent); this module only adds what provisioning cannot do: notice and delete what went away.
A bucket that holds objects or a table that holds items is never deleted unless ``prune`` is set,
and the refusal comes before anything is changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.platform import Platform

KINDS = (
    "feature-set", "bucket", "table", "topic", "queue", "bus", "stream", "function", "workflow", "schedule", "rule",
)  # fmt: skip
"""The kinds of resource a diff reports, in the order they are provisioned."""

_ARNS = {
    "topic:alerts": "arn:topic:alerts",
    "topic:approvals": "arn:topic:approvals",
    "workflow:retrain": "arn:workflow:retrain",
}


class ReloadError(ValueError):
    """The configuration cannot be applied (invalid, as synth would say in one line); nothing was changed."""


class ReloadFailedError(RuntimeError):
    """An emulator call failed while applying the change; what was applied before it stays."""


class ReloadRefusedError(ValueError):
    """The change would lose data (a non-empty bucket or table) and ``prune`` was not given."""


@dataclass
class PlatformDiff:
    """Per kind, the physical names added, changed and removed by the new definition."""

    added: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def as_dict(self) -> dict[str, dict[str, list[str]]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}

    def lines(self) -> list[str]:
        """One line per resource: ``+ function dev-driftline-x``, ``~ ...``, ``- ...``."""
        out = []
        for mark, part in (("+", self.added), ("~", self.changed), ("-", self.removed)):
            for kind in KINDS:
                out += [f"{mark} {kind} {name}" for name in part.get(kind, [])]
        return out


def _resources(platform: Platform, account: str, region: str) -> dict[str, dict[str, Any]]:
    """kind -> physical name -> what provisioning makes of it (compared for equality)."""
    p = platform
    values = p.env_values(account, region, _ARNS)
    return {
        "bucket": {p.bucket_name(b.logical, account, region): b for b in p.buckets},
        "table": {p.name(t.logical): t for t in p.tables},
        "topic": {p.name(t): t for t in p.topics},
        "queue": {p.name(q): q for q in p.queues},
        "bus": {p.event_bus: p.event_bus},
        "stream": {p.name(s.logical): s for s in p.streams},
        "function": {p.name(f.logical): (f, {k: values[k] for k in f.env}) for f in p.functions},
        "workflow": {p.name(w.logical): (w, p.workflow_definition(w)) for w in p.workflows},
        "schedule": {p.name(s.logical): s for s in p.schedules},
        "rule": {
            p.name(r.logical): (r.logical, json.dumps(r.pattern, sort_keys=True), r.target, r.target_kind, r.stack)
            for r in p.event_rules
        },
    }


def diff_platforms(old: Platform, new: Platform, account: str, region: str) -> PlatformDiff:
    """What provisioning ``new`` over ``old`` adds, changes and must remove (by physical name)."""
    before, after = _resources(old, account, region), _resources(new, account, region)
    diff = PlatformDiff()
    for kind in before:
        a, b = before[kind], after[kind]
        added = sorted(set(b) - set(a))
        removed = sorted(set(a) - set(b))
        changed = sorted(n for n in set(a) & set(b) if a[n] != b[n])
        for part, names in ((diff.added, added), (diff.changed, changed), (diff.removed, removed)):
            if names:
                part[kind] = names
    return diff


def load_checked(config_path: Path, env: str | None, project_root: Path) -> Platform:
    """The platform of the config file as it is now, checked as synth checks it (the config, then
    every feature set it names); any mistake raises :class:`ReloadError` with synth's one line."""
    from driftline import config
    from driftline.features.schema import FeatureSetCatalog, FeatureSetError
    from driftline.platform import build_platform

    try:
        cfg = config.load(config_path, env)
    except config.ConfigError as e:
        raise ReloadError(str(e)) from None
    try:
        catalog = FeatureSetCatalog(project_root / cfg.feature_sets_dir)
    except FeatureSetError as e:
        raise ReloadError(str(e)) from None
    for m in cfg.models:
        if m.feature_set not in catalog:
            known = ", ".join(catalog.names()) or "none"
            raise ReloadError(
                f"model {m.name}: feature set {m.feature_set!r} is not defined in {cfg.feature_sets_dir} "
                f"(defined: {known})"
            )
    return build_platform(cfg)


def feature_set_files(directory: Path) -> dict[str, str]:
    """File name -> content digest of every feature set file in ``directory``."""
    if not directory.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.yaml"))}


def feature_sets_digest(directory: Path) -> str:
    """A digest of the feature set files: part of every function's local environment, so a changed
    feature set changes the functions' configuration and the executor starts fresh workers."""
    h = hashlib.sha256()
    for name, digest in feature_set_files(directory).items():
        h.update(f"{name}\0{digest}\0".encode())
    return h.hexdigest()[:16]


def add_feature_set_changes(diff: PlatformDiff, old: dict[str, str], new: dict[str, str]) -> None:
    """Report feature set files added, changed and removed (by file name) in ``diff``."""
    for part, names in (
        (diff.added, sorted(set(new) - set(old))),
        (diff.changed, sorted(n for n in set(old) & set(new) if old[n] != new[n])),
        (diff.removed, sorted(set(old) - set(new))),
    ):
        if names:
            part["feature-set"] = names


def _bucket_holds_data(s3: Any, bucket: str) -> bool:
    try:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    except s3.exceptions.NoSuchBucket:
        return False
    return bool(page.get("Versions") or page.get("DeleteMarkers"))


def _table_holds_data(ddb: Any, table: str) -> bool:
    try:
        return bool(ddb.scan(TableName=table, Limit=1, Select="COUNT").get("Count"))
    except ddb.exceptions.ResourceNotFoundException:
        return False


def check_removals(diff: PlatformDiff, clients: Any, *, prune: bool, retry: str = "reload with --prune") -> None:
    """Refuse (before anything changes) to remove a bucket or table that still holds data unless ``prune``."""
    if prune:
        return
    full = [f"bucket {b}" for b in diff.removed.get("bucket", []) if _bucket_holds_data(clients("s3"), b)]
    full += [f"table {t}" for t in diff.removed.get("table", []) if _table_holds_data(clients("dynamodb"), t)]
    if full:
        raise ReloadRefusedError(
            f"the new configuration removes {', '.join(full)}, which still hold data; nothing was changed "
            f"({retry} to delete them and their data)"
        )


def _empty_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
        ]
        for i in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})


def _gone(call: Any, **kwargs: Any) -> Any:
    """``call(**kwargs)``, where "it does not exist" counts as done (on ``up`` the functions, rules and
    workflows of the last run were never re-created; only the data resources are kept)."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if any(w in code for w in ("NotFound", "NoSuch", "DoesNotExist", "NonExistent")):
            return None
        raise


def remove_resources(diff: PlatformDiff, clients: Any, *, event_bus: str, region: str, account: str) -> None:
    """Delete what the new definition no longer has: rules and schedules first (nothing fires into a
    deleted target), then event buses, workflows, functions, streams, queues, topics, tables and buckets (emptied).
    ``event_bus`` is the bus of the old definition's rules."""
    removed = diff.removed
    events = clients("events")
    for kind, bus in (("schedule", "default"), ("rule", event_bus)):
        for rule in removed.get(kind, []):
            listed = _gone(events.list_targets_by_rule, Rule=rule, EventBusName=bus) or {}
            ids = [t["Id"] for t in listed.get("Targets", [])]
            if ids:
                _gone(events.remove_targets, Rule=rule, EventBusName=bus, Ids=ids)
            _gone(events.delete_rule, Name=rule, EventBusName=bus)
    for name in removed.get("bus", []):
        _gone(events.delete_event_bus, Name=name)
    sfn = clients("stepfunctions")
    for name in removed.get("workflow", []):
        _gone(sfn.delete_state_machine, stateMachineArn=f"arn:aws:states:{region}:{account}:stateMachine:{name}")
    lam = clients("lambda")
    for name in removed.get("function", []):
        _gone(lam.delete_function, FunctionName=name)
    firehose = clients("firehose")
    for name in removed.get("stream", []):
        _gone(firehose.delete_delivery_stream, DeliveryStreamName=name)
    sqs = clients("sqs")
    for name in removed.get("queue", []):
        found = _gone(sqs.get_queue_url, QueueName=name)
        if found:
            _gone(sqs.delete_queue, QueueUrl=found["QueueUrl"])
    sns = clients("sns")
    for name in removed.get("topic", []):
        _gone(sns.delete_topic, TopicArn=f"arn:aws:sns:{region}:{account}:{name}")
    ddb = clients("dynamodb")
    for name in removed.get("table", []):
        _gone(ddb.delete_table, TableName=name)
    s3 = clients("s3")
    for name in removed.get("bucket", []):
        if _bucket_exists(s3, name):
            _empty_bucket(s3, name)
            _gone(s3.delete_bucket, Bucket=name)


def _bucket_exists(s3: Any, bucket: str) -> bool:
    return any(b["Name"] == bucket for b in s3.list_buckets().get("Buckets", []))
