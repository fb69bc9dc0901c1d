"""Reading and restoring what moto stores: S3 object versions, DynamoDB items, SQS messages.

The persistence layer (:mod:`driftline.local.persistence`) keeps the platform's data as *after-images*:
once a request has changed a key, an item or a queue, their new state is read from moto and recorded;
on ``up`` it is put back into a fresh moto directly, without requests. Put back directly, an object keeps
its version id, ETag and last-modified time exactly (the registry records and checks version ids),
no S3 notification fires twice, and tens of thousands of records load in seconds.

Like :mod:`driftline.local.moto_hooks`, this reaches into moto's private classes (``FakeKey``,
``FakeDeleteMarker``, ``_VersionedKeyStore``, ``Table.items``, ``Queue._messages``); moto is pinned and
:func:`check_state_hooks` refuses to start on a moto that lacks them. The S3 and SQS observers are
guarded replacements of backend methods that note, in the calling thread only, which keys and queues
a request touched.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "EmulatorKey",
    "MissingContainerError",
    "MissingKeyStoreError",
    "Touched",
    "check_key_store",
    "check_state_hooks",
    "ddb_item",
    "ddb_key",
    "emulator_key",
    "install_observers",
    "invoke_decision",
    "iter_ddb_items",
    "iter_s3_keys",
    "iter_sqs_queues",
    "observing",
    "restore_ddb_item",
    "restore_ddb_items",
    "restore_s3_key",
    "restore_sqs_queue",
    "s3_key_state",
    "sqs_queue_state",
]

PARTITION = "aws"


class MissingContainerError(LookupError):
    """A record names a bucket, table or queue the restored emulator does not hold."""


@dataclass
class Touched:
    """What one request changed, noted by the observers."""

    s3_keys: set[tuple[str, str, str]] = field(default_factory=set)  # (account, bucket, key)
    queues: set[tuple[str, str, str]] = field(default_factory=set)  # (account, region, queue name)


_local = threading.local()
_installed: dict[tuple[Any, str], Any] = {}


def _current() -> Touched | None:
    return getattr(_local, "touched", None)


@contextlib.contextmanager
def observing() -> Iterator[Touched]:
    """Note the S3 keys and queues changed by this thread until the block ends."""
    touched = Touched()
    previous = _current()
    _local.touched = touched
    try:
        yield touched
    finally:
        _local.touched = previous


def _state_points() -> list[tuple[Any, str]]:
    from moto.s3.models import S3Backend
    from moto.sqs.models import Queue, SQSBackend

    return [
        (S3Backend, "put_object"),
        (S3Backend, "delete_object"),
        (S3Backend, "put_object_tagging"),
        (S3Backend, "delete_object_tagging"),
        (S3Backend, "put_object_acl"),
        (S3Backend, "put_object_retention"),
        (S3Backend, "put_object_legal_hold"),
        (Queue, "add_message"),
        (Queue, "delete_message"),
        (SQSBackend, "purge_queue"),
    ]


def check_state_hooks() -> list[str]:
    """Names of the moto internals persistence needs that are missing (empty when all are there)."""
    from moto.dynamodb.models.table import Table
    from moto.s3.models import FakeDeleteMarker, FakeKey
    from moto.s3.utils import _VersionedKeyStore
    from moto.sqs.models import Message

    missing = [f"{o.__name__}.{n}" for o, n in _state_points() if not hasattr(o, n)]
    for owner, name in (
        (_VersionedKeyStore, "setlist"),
        (_VersionedKeyStore, "getlist"),
        (Table, "put_item"),
        (Table, "delete_item"),
        (Table, "get_item"),
        (FakeKey, "set_metadata"),
    ):
        if not hasattr(owner, name):
            missing.append(f"{owner.__name__}.{name}")
    if FakeDeleteMarker is None or Message is None:  # pragma: no cover - imports above would have failed
        missing.append("FakeDeleteMarker/Message")
    return missing


def install_observers() -> None:
    """Wrap the backend methods that change keys and queues so a request running under
    :func:`observing` learns what it touched. Idempotent; other threads see no difference."""
    if _installed:
        return
    from moto.s3.models import S3Backend
    from moto.sqs.models import Queue, SQSBackend

    def note_key(backend: Any, bucket: str, key: str) -> None:
        t = _current()
        if t is not None:
            t.s3_keys.add((str(backend.account_id), str(bucket), str(key)))

    def note_queue(queue: Any) -> None:
        t = _current()
        if t is not None:
            t.queues.add((str(queue.account_id), str(queue.region), str(queue.name)))

    def by_name(name: str) -> Any:
        original = getattr(S3Backend, name)

        def wrapper(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, bucket_name, key_name, *args, **kwargs)
            finally:
                note_key(self, bucket_name, key_name)

        return wrapper

    orig_tagging = S3Backend.put_object_tagging

    def put_object_tagging(self: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return orig_tagging(self, key, *args, **kwargs)
        finally:
            if getattr(key, "bucket_name", None):
                note_key(self, key.bucket_name, key.name)

    orig_add, orig_delete, orig_purge = Queue.add_message, Queue.delete_message, SQSBackend.purge_queue

    def add_message(self: Any, message: Any) -> None:
        orig_add(self, message)
        note_queue(self)

    def delete_message(self: Any, receipt_handle: str) -> None:
        orig_delete(self, receipt_handle)
        note_queue(self)

    def purge_queue(self: Any, queue_name: str) -> None:
        orig_purge(self, queue_name)
        note_queue(self.get_queue(queue_name))

    patches: list[tuple[Any, str, Any]] = [
        (S3Backend, n, by_name(n))
        for n in (
            "put_object",
            "delete_object",
            "delete_object_tagging",
            "put_object_acl",
            "put_object_retention",
            "put_object_legal_hold",
        )
    ]
    patches += [
        (S3Backend, "put_object_tagging", put_object_tagging),
        (Queue, "add_message", add_message),
        (Queue, "delete_message", delete_message),
        (SQSBackend, "purge_queue", purge_queue),
    ]
    for owner, name, replacement in patches:
        _installed[(owner, name)] = getattr(owner, name)
        setattr(owner, name, replacement)


def uninstall_observers() -> None:
    for (owner, name), original in _installed.items():
        setattr(owner, name, original)
    _installed.clear()


# ---- S3 ----
def _s3(account: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account][PARTITION]


def _bucket(account: str, bucket: str) -> Any:
    b = _s3(account).buckets.get(bucket)
    if b is None:
        raise MissingContainerError(f"bucket {bucket} (account {account})")
    return b


def s3_key_state(account: str, bucket: str, key: str) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Every version of ``key`` (oldest first) as JSON-able entries, and the bodies of the objects among
    them in the same order. A bucket that no longer exists has no versions."""
    from moto.s3.models import FakeDeleteMarker

    backend = _s3(account)
    b = backend.buckets.get(bucket)
    if b is None:
        return [], []
    entries: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    for v in list(b.keys.getlist(key, []) or []):
        if isinstance(v, FakeDeleteMarker):
            entries.append({"id": v.version_id, "dm": True, "lm": v.last_modified.isoformat()})
            continue
        body = v.value
        tags = backend.tagger.get_tag_dict_for_resource(v.arn)
        entries.append(
            {
                "id": v._version_id,
                "len": len(body),
                "etag": v.etag.strip('"'),
                "lm": v.last_modified.isoformat(),
                "meta": dict(v.metadata.items()),
                "sc": v.storage_class,
                "enc": v.encryption,
                "kms": v.kms_key_id,
                "bke": v.bucket_key_enabled,
                "lock": [v.lock_mode, v.lock_legal_status, v.lock_until],
                "cs": [v.checksum_algorithm, v.checksum_value],
                "redirect": v.website_redirect_location,
                "tags": tags,
                "region": v.region_name,
            }
        )
        bodies.append(body)
    return entries, bodies


def restore_s3_key(account: str, bucket: str, key: str, entries: list[dict[str, Any]], blob: bytes) -> None:
    """Make ``key`` hold exactly the versions of ``entries`` (bodies concatenated in ``blob``)."""
    from moto.s3.models import FakeDeleteMarker, FakeKey

    backend = _s3(account)
    b = _bucket(account, bucket)
    versions: list[Any] = []
    pos = 0
    for e in entries:
        if e.get("dm"):
            placeholder = versions[-1] if versions else FakeKey(key, b"", account, PARTITION_REGION, bucket_name=bucket)
            marker = FakeDeleteMarker(placeholder)
            marker._version_id = str(e["id"])
            marker.last_modified = datetime.fromisoformat(e["lm"])
            versions.append(marker)
            continue
        n = int(e["len"])
        body = blob[pos : pos + n]
        pos += n
        mode, legal, until = e.get("lock") or (None, None, None)
        algorithm, checksum = e.get("cs") or (None, None)
        fk = FakeKey(
            name=key,
            value=body,
            account_id=account,
            region_name=str(e.get("region") or PARTITION_REGION),
            storage=e.get("sc"),
            etag=str(e["etag"]),
            is_versioned=e["id"] not in (None, "null"),
            version_id=e["id"],
            bucket_name=bucket,
            encryption=e.get("enc"),
            kms_key_id=e.get("kms"),
            bucket_key_enabled=e.get("bke"),
            lock_mode=mode,
            lock_legal_status=legal,
            lock_until=until,
            checksum_value=checksum,
        )
        fk.checksum_algorithm = algorithm
        fk.website_redirect_location = e.get("redirect")
        fk._metadata.clear()
        fk.set_metadata(e.get("meta") or {})
        fk.last_modified = datetime.fromisoformat(e["lm"])
        tags = e.get("tags") or {}
        if tags:
            backend.tagger.tag_resource(fk.arn, [{"Key": k, "Value": v} for k, v in tags.items()])
        versions.append(fk)
    if versions:
        b.keys.setlist(key, versions)
    else:
        for v in b.keys.getlist(key, []) or []:
            if hasattr(v, "dispose"):
                v.dispose()
        dict.pop(b.keys, key, None)


PARTITION_REGION = "us-east-1"


def iter_s3_keys() -> Iterator[tuple[str, str, str]]:
    """(account, bucket, key) of every key (with at least one version) in every S3 backend."""
    from moto.s3.models import s3_backends

    for account in list(s3_backends.keys()):
        backend = s3_backends[account].get(PARTITION) if hasattr(s3_backends[account], "get") else None
        if backend is None:
            continue
        for name, b in list(backend.buckets.items()):
            for key in list(dict.keys(b.keys)):
                yield str(account), str(name), str(key)


# ---- DynamoDB ----
def _table(account: str, region: str, table: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    try:
        return dynamodb_backends[account][region].get_table(table)
    except Exception:  # moto raises ResourceNotFoundException
        raise MissingContainerError(f"table {table} ({account}, {region})") from None


def ddb_key(account: str, region: str, table: str, item: dict[str, Any]) -> dict[str, Any]:
    """The key attributes (DynamoDB JSON) of an item or key of ``table``."""
    t = _table(account, region, table)
    key = {t.hash_key_attr: item[t.hash_key_attr]}
    if t.range_key_attr:
        key[t.range_key_attr] = item[t.range_key_attr]
    return key


def _key_values(t: Any, key: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[t.hash_key_attr])
    range_value = DynamoType(key[t.range_key_attr]) if t.range_key_attr else None
    return hash_value, range_value


def ddb_item(account: str, region: str, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The item stored under ``key`` (DynamoDB JSON), None when there is none (or no table)."""
    try:
        t = _table(account, region, table)
    except MissingContainerError:
        return None
    hash_value, range_value = _key_values(t, key)
    try:
        item = t.get_item(hash_value, range_value)
    except Exception:  # moto raises for a key that does not fit the schema
        return None
    return None if item is None else dict(item.to_json()["Attributes"])


def restore_ddb_item(account: str, region: str, table: str, key: dict[str, Any], item: dict[str, Any] | None) -> None:
    t = _table(account, region, table)
    if item is None:
        hash_value, range_value = _key_values(t, key)
        with contextlib.suppress(KeyError):
            t.delete_item(hash_value, range_value)
    else:
        _store_items(t, [item])


def restore_ddb_items(account: str, region: str, table: str, items: list[dict[str, Any]]) -> None:
    """Store items moto itself produced: ``Table.put_item``'s validation and size accounting (most of its
    cost) already passed when they were first written, so they go straight into the table."""
    _store_items(_table(account, region, table), items)


def _store_items(t: Any, items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    for attrs in items:
        item: Any = Item.__new__(Item)  # the fields Item.__init__ sets, without its per-attribute size check
        item.hash_key = DynamoType(attrs[t.hash_key_attr])
        item.range_key = DynamoType(attrs[t.range_key_attr]) if t.range_key_attr else None
        item.attrs = LimitedSizeDict({k: DynamoType(v) for k, v in attrs.items()})  # dict.update: no size check
        if item.range_key is not None:
            t.items[item.hash_key][item.range_key] = item
        else:
            t.items[item.hash_key] = item


def iter_ddb_items() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(account, region, table, item) of every item of every table."""
    from moto.dynamodb.models import dynamodb_backends

    for account in list(dynamodb_backends.keys()):
        for region, backend in list(dynamodb_backends[account].items()):
            for name, t in list(backend.tables.items()):
                for entry in list(t.items.values()):
                    items = list(entry.values()) if isinstance(entry, dict) else [entry]
                    for item in items:
                        yield str(account), str(region), str(name), dict(item.to_json()["Attributes"])


# ---- SQS ----
def _queue(account: str, region: str, name: str) -> Any:
    from moto.sqs.models import sqs_backends

    q = sqs_backends[account][region].queues.get(name)
    if q is None:
        raise MissingContainerError(f"queue {name} ({account}, {region})")
    return q


_MESSAGE_FIELDS = (
    "sender_id",
    "sent_timestamp",
    "deduplication_id",
    "group_id",
    "sequence_number",
    "approximate_receive_count",
    "approximate_first_receive_timestamp",
    "delayed_until",
)


def sqs_queue_state(account: str, region: str, name: str) -> list[dict[str, Any]] | None:
    """The queue's pending messages (visible again after a restart), None when the queue is gone."""
    from moto.sqs.models import sqs_backends

    q = sqs_backends[account][region].queues.get(name)
    if q is None:
        return None
    out = []
    for m in list(q._messages):
        doc: dict[str, Any] = {"id": m.id, "body": m.body, "attrs": m.message_attributes, "sys": m.system_attributes}
        doc.update({f: getattr(m, f, None) for f in _MESSAGE_FIELDS})
        out.append(doc)
    return out


def restore_sqs_queue(account: str, region: str, name: str, messages: list[dict[str, Any]] | None) -> None:
    from moto.sqs.models import Message

    if messages is None:
        return
    q = _queue(account, region, name)
    restored = []
    for doc in messages:
        m = Message(str(doc["id"]), str(doc["body"]), doc.get("sys") or {})
        m.message_attributes = doc.get("attrs") or {}
        for f in _MESSAGE_FIELDS:
            if doc.get(f) is not None:
                setattr(m, f, doc[f])
        restored.append(m)
    with q._messages_lock:
        q._messages = restored


def iter_sqs_queues() -> Iterator[tuple[str, str, str]]:
    from moto.sqs.models import sqs_backends

    for account in list(sqs_backends.keys()):
        for region, backend in list(sqs_backends[account].items()):
            for name in list(backend.queues):
                yield str(account), str(region), str(name)


# ---- access keys of the emulator's IAM users and STS sessions (the local gateway's SigV4 check) ----


class MissingKeyStoreError(RuntimeError):
    """The installed moto keeps IAM/STS access keys where this module does not look: refuse, never accept."""


@dataclass(frozen=True)
class EmulatorKey:
    """An access key the emulator issued (an IAM user's key or an ``sts:AssumeRole`` session's), with what
    a verifier needs: the secret to recompute a signature and the identity API Gateway would report."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    """Set for an STS session (the request must carry it in ``X-Amz-Security-Token``); None for a user key."""
    arn: str
    user_id: str
    """API Gateway's ``identity.caller``: the user id, or ``<role id>:<session name>``."""
    account: str
    active: bool
    expires_at: datetime | None


def check_key_store() -> list[str]:
    """Names of the moto internals :func:`emulator_key` and :func:`invoke_decision` read that are missing."""
    missing: list[str] = []
    try:
        from moto.iam import access_control
        from moto.iam.models import AccessKey, IAMBackend, User
        from moto.sts.models import AssumedRole, STSBackend
    except ImportError as e:
        return [f"moto module ({e})"]
    for owner, names in (
        (access_control, ("IAMUserAccessKey", "AssumedRoleAccessKey", "IAMPolicy", "PermissionResult")),
        (IAMBackend, ("get_role_by_arn",)),
        (STSBackend, ("assume_role",)),
        (User, ("__init__",)),
        (AccessKey, ("__init__",)),
        (AssumedRole, ("user_id", "arn")),
    ):
        missing += [f"{getattr(owner, '__name__', owner)}.{n}" for n in names if not hasattr(owner, n)]
    return missing


def _key_store_guard() -> None:
    missing = check_key_store()
    if missing:
        raise MissingKeyStoreError(
            "the local gateway's SigV4 check reads the emulator's access keys from moto internals that this moto "
            f"lacks ({', '.join(missing)}); --require-auth needs moto 5.2.5"
        )


def emulator_key(account: str, access_key_id: str) -> EmulatorKey | None:
    """The emulator's access key ``access_key_id`` in ``account`` (IAM users first, then STS sessions),
    None when the emulator never issued it."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    _key_store_guard()
    iam = iam_backends[account][PARTITION]
    for user in list(getattr(iam, "users", {}).values()):
        for key in list(getattr(user, "access_keys", [])):
            if getattr(key, "access_key_id", None) == access_key_id:
                return EmulatorKey(
                    access_key_id=access_key_id,
                    secret_access_key=str(key.secret_access_key),
                    session_token=None,
                    arn=str(user.arn),
                    user_id=str(user.id),
                    account=account,
                    active=getattr(key, "status", "Active") == "Active",
                    expires_at=None,
                )
    for session in list(getattr(sts_backends[account][PARTITION], "assumed_roles", [])):
        if getattr(session, "access_key_id", None) == access_key_id:
            return EmulatorKey(
                access_key_id=access_key_id,
                secret_access_key=str(session.secret_access_key),
                session_token=str(session.session_token),
                arn=str(session.arn),
                user_id=str(session.user_id),
                account=account,
                active=True,
                expires_at=session.expiration,
            )
    return None


def invoke_decision(key: EmulatorKey, action: str, resource: str) -> str:
    """moto's own evaluation of the key owner's identity policies (inline, attached managed, and a user's
    groups'): ``"deny"`` (an explicit deny), ``"allow"``, or ``"implicit"`` (no statement allows)."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMPolicy, IAMUserAccessKey, PermissionResult

    _key_store_guard()
    owner: Any
    if key.session_token is None:
        owner = IAMUserAccessKey(key.account, PARTITION, key.access_key_id, {})
    else:
        owner = AssumedRoleAccessKey(
            key.account, PARTITION, key.access_key_id, {"X-Amz-Security-Token": key.session_token}
        )
    allowed = False
    for policy in owner.collect_policies():
        result = IAMPolicy(policy).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return "deny"
        allowed = allowed or result == PermissionResult.PERMITTED
    return "allow" if allowed else "implicit"
