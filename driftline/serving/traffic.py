"""Traffic policies: which rows the challenger answers (canary) or also scores (shadow).

Routing is a pure function of the row's request id, so it is sticky: the same id always lands on
the same side, across retries and across Lambda instances. The hash is keyed BLAKE2b (not Python's
salted ``hash``), and a separate key from capture sampling so the two decisions are independent.

- ``none``: the champion answers every row.
- ``shadow``: the champion answers every row; the challenger scores every row too, and its
  predictions are only captured (role ``shadow``). ``percent`` does not apply.
- ``canary``: rows whose bucket (0-9999) is below ``percent * 100`` are answered by the challenger
  (role ``challenger``); the others by the champion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket(request_id: str, key: bytes = b"canary") -> int:
    """A stable bucket in [0, 10000) for a request id."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def canary_rows(row_ids: Sequence[str], percent: int) -> list[bool]:
    """True for each row the challenger answers."""
    if percent <= 0:
        return [False] * len(row_ids)
    if percent >= 100:
        return [True] * len(row_ids)
    cut = percent * (BUCKETS // 100)
    return [bucket(r) < cut for r in row_ids]


def sampled(row_ids: Sequence[str], rate: float) -> list[bool]:
    """Which rows are captured at sampling ``rate`` (independent of canary routing, also sticky)."""
    if rate >= 1.0:
        return [True] * len(row_ids)
    if rate <= 0.0:
        return [False] * len(row_ids)
    cut = rate * BUCKETS
    return [bucket(r, b"capture") < cut for r in row_ids]
