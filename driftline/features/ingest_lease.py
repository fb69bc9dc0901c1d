"""A short, renewed lease on an upload's idempotency record, so a crashed attempt does not block retries.

Powertools' idempotency marks an upload ``INPROGRESS`` until the invocation's *remaining time* runs
out: with the 900 s ingest timeout, an attempt killed after 5 s kept the upload locked for almost 15
minutes, Lambda's two async retries (about 1 and 3 minutes later) met ``IdempotencyAlreadyInProgress``
and the event went to the dead-letter queue. Here the lock is a lease: Powertools is shown at most
:data:`LEASE_SECONDS` of remaining time, and while the attempt is alive a heartbeat thread pushes the
record's in-progress expiry forward every third of the lease. A dead attempt stops renewing, its lease
runs out within :data:`LEASE_SECONDS`, and the next retry takes the upload over.

The heartbeat uses two Powertools internals (the persistence layer's hashed key and attribute names);
both are looked up defensively: without them the lease is simply not renewed, and the record keeps
the whole remaining time as before (never a shorter lock than the attempt needs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["LEASE_SECONDS", "LeaseContext", "can_renew", "renewed_lease"]

log = logging.getLogger(__name__)

LEASE_SECONDS = 45.0
"""How long a silent (crashed) attempt keeps an upload locked; shorter than Lambda's first async retry."""


class LeaseContext:
    """A Lambda context whose remaining time is capped at the lease (what Powertools stores as expiry)."""

    def __init__(self, context: Any, lease_s: float | None = None, renewable: bool = True) -> None:
        self._context = context
        self._lease_ms = int((LEASE_SECONDS if lease_s is None else lease_s) * 1000)
        self._renewable = renewable

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def get_remaining_time_in_millis(self) -> int:
        remaining = int(self._context.get_remaining_time_in_millis())
        return min(remaining, self._lease_ms) if self._renewable else remaining


def can_renew(persistence: Any) -> bool:
    """Whether this Powertools persistence layer exposes what the heartbeat needs."""
    return all(
        hasattr(persistence, a)
        for a in ("_get_hashed_idempotency_key", "_get_key", "table_name", "in_progress_expiry_attr", "status_attr")
    )


@contextmanager
def renewed_lease(
    persistence: Any, client: Any, record: Mapping[str, Any], context: Any, lease_s: float | None = None
) -> Iterator[None]:
    """Renew the in-progress expiry of ``record``'s idempotency item while the block runs.

    The expiry never passes the invocation's own deadline (Lambda ends the attempt there anyway).
    """
    stop = threading.Event()
    lease = LEASE_SECONDS if lease_s is None else lease_s

    def beat() -> None:
        while not stop.wait(lease / 3):
            try:
                key = persistence._get_hashed_idempotency_key(dict(record))
                remaining_ms = int(context.get_remaining_time_in_millis())
                expiry_ms = int(time.time() * 1000) + min(int(lease * 1000), remaining_ms)
                client.update_item(
                    TableName=persistence.table_name,
                    Key=persistence._get_key(key),
                    UpdateExpression="SET #expiry = :expiry",
                    ConditionExpression="#status = :in_progress",
                    ExpressionAttributeNames={
                        "#expiry": persistence.in_progress_expiry_attr,
                        "#status": persistence.status_attr,
                    },
                    ExpressionAttributeValues={":expiry": {"N": str(expiry_ms)}, ":in_progress": {"S": "INPROGRESS"}},
                )
            except Exception as e:  # a missed beat only shortens the lease; the attempt itself goes on
                log.warning("ingest lease not renewed (%s: %s)", type(e).__name__, e)

    thread = threading.Thread(target=beat, name="driftline-ingest-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
