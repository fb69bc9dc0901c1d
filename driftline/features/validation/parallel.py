"""When the checks and the accepted-rows filter run on threads.

Their work is in Arrow and numpy kernels, which release the GIL, so threads help on large tables;
on small ones starting them costs more than they save.
"""

from __future__ import annotations

import os

__all__ = ["PARALLEL_MIN_ROWS", "thread_count"]

PARALLEL_MIN_ROWS = 50_000
"""Tables at least this long are checked column by column on threads (below, threads cost more)."""


def thread_count(rows: int, jobs: int) -> int:
    """Threads for ``jobs`` independent jobs over ``rows`` rows: 1 (no pool) below
    :data:`PARALLEL_MIN_ROWS`, else one per CPU, at most one per job."""
    if rows < PARALLEL_MIN_ROWS:
        return 1
    return max(1, min(os.cpu_count() or 1, jobs))
