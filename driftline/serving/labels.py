"""Whose feedback label counts: labels are bound to the caller who made the prediction.

Anyone allowed to call the feedback route could otherwise label any request id of any model, and a
few forged labels are enough to force a canary rollback or fake a performance drop. So the serve
function records the caller API Gateway proved (:func:`caller_of`) in every capture record
(``caller``) and every feedback record (``by``), and the readers (canary evaluation, performance
monitoring) count a label for a capture only when

- its submitter is the capture's caller (the sessions of one IAM role are one caller: a client
  Lambda's session name changes with its sandbox), or
- its submitter is one of the model's ``labelers`` (``ModelConfig.labelers``: principals whose labels
  count for every prediction, such as a labeling team's role).

Among several labels that count for one request id, the **first** one stored wins (by the server's
``ts``, then read order): a later label cannot overwrite a label already given.

Identity is whatever ``serving.auth`` proves: the IAM principal (``iam``), or the API key id
(``api_key``: the platform creates one key, so all holders of that key are one caller and may label
each other's predictions; issue one key per client to separate them). A record without an identity
(the local platform without its principal header, captures written before this field existed) has
no ``caller``/``by``; such labels count only for such captures, i.e. feedback is then unauthenticated.
Standard library only (the serving Lambda imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CAPTURE_CALLER = "caller"
"""Capture-record field: the principal who made the prediction (absent when unauthenticated)."""
FEEDBACK_BY = "by"
"""Feedback-record field: the principal who submitted the label (absent when unauthenticated)."""


def caller_of(request_context: Any) -> str | None:
    """The caller API Gateway authenticated: the SigV4 principal (``identity.userArn``) with IAM auth, the
    API key id (``identity.apiKeyId``) with API-key auth, ``None`` when the route is unauthenticated.

    Never read from headers or the body: only API Gateway fills ``requestContext.identity``.
    """
    identity = request_context.get("identity") if type(request_context) is dict else None
    if type(identity) is not dict:
        return None
    for name in ("userArn", "apiKeyId"):
        value = identity.get(name)
        if type(value) is str and value.strip():
            return value.strip()
    return None


def principal_key(principal: str) -> str:
    """One key per IAM principal: an STS assumed-role session ARN becomes its role's ARN."""
    head, sep, rest = principal.partition(":assumed-role/")
    if not sep or not head.startswith("arn:"):
        return principal
    parts = head.split(":")
    if len(parts) < 5:
        return principal
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{rest.split('/')[0]}"


@dataclass(frozen=True)
class Label:
    value: Any
    by: str | None
    ts: str


class Labels:
    """Feedback labels by request id, and the one that counts for a given capture (see the module doc)."""

    def __init__(self, labelers: Iterable[str] = ()) -> None:
        self.labelers = frozenset(principal_key(p) for p in labelers)
        self._by_request: dict[str, list[Label]] = {}
        self._ordered = True
        self.ignored = 0
        """Captures that had labels, none of them from the caller or a labeler (forged or misdirected)."""

    def add(self, record: Mapping[str, Any]) -> bool:
        """Take one feedback record (``request_id``, ``label``, ``ts``, optional ``by``); False if malformed."""
        rid = record.get("request_id")
        if not isinstance(rid, str) or "label" not in record:
            return False
        by = record.get(FEEDBACK_BY)
        ts = record.get("ts")
        self._by_request.setdefault(rid, []).append(
            Label(record["label"], by if isinstance(by, str) and by else None, ts if isinstance(ts, str) else "")
        )
        self._ordered = False
        return True

    def __len__(self) -> int:
        return len(self._by_request)

    def request_ids(self) -> frozenset[str]:
        """The request ids that have at least one label (counting or not)."""
        return frozenset(self._by_request)

    def counts(self, label: Label, caller: str | None) -> bool:
        """Whether ``label`` may label a prediction made by ``caller``."""
        if label.by is None:
            return caller is None
        key = principal_key(label.by)
        return key in self.labelers or (caller is not None and key == principal_key(caller))

    def for_capture(self, request_id: Any, caller: Any) -> tuple[bool, Any]:
        """(found, label) for the capture of ``request_id`` made by ``caller``: the first label that counts."""
        if not isinstance(request_id, str):
            return False, None
        candidates = self._by_request.get(request_id)
        if not candidates:
            return False, None
        if not self._ordered:
            for labels in self._by_request.values():
                labels.sort(key=lambda lb: lb.ts)  # stable: same ts keeps read order
            self._ordered = True
        who = caller if isinstance(caller, str) and caller else None
        for label in candidates:
            if self.counts(label, who):
                return True, label.value
        self.ignored += 1
        return False, None
