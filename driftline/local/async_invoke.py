"""Asynchronous Lambda invocations (S3 notifications, EventBridge targets, ``InvocationType=Event``).

As in AWS, the caller gets its answer at once and the event is queued; a failed invocation is
retried twice, then the event goes to the function's dead-letter queue (every platform function
has one in the CDK app). AWS waits about 1 and 2 minutes between attempts; locally the delays are
short so that a failing upload shows its DLQ message within seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from driftline.local.executor import InvocationResult

RunFn = Callable[[str, str], InvocationResult | None]
"""(function name or ARN, event JSON) -> result, or None when the function does not exist."""
DeadLetterFn = Callable[[str, str, InvocationResult], bool]
"""(function, event JSON, last result) -> True when the event was sent to a dead-letter queue."""


@dataclass
class AsyncOutcome:
    function: str
    attempts: int
    result: InvocationResult | None
    dead_lettered: bool

    @property
    def succeeded(self) -> bool:
        return self.result is not None and not self.result.error


class AsyncInvoker:
    def __init__(
        self,
        run: RunFn,
        dead_letter: DeadLetterFn,
        *,
        retries: int = 2,
        retry_delays_s: Sequence[float] = (1.0, 2.0),
        max_concurrency: int = 16,
        warn: Callable[[str], None] = print,
    ) -> None:
        self._run = run
        self._dead_letter = dead_letter
        self._retries = retries
        self._delays = tuple(retry_delays_s) or (0.0,)
        self._warn = warn
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="driftline-async")

    def submit(self, function: str, event_json: str) -> Future[AsyncOutcome]:
        """Queue one event for ``function``; the future resolves after the last attempt."""
        return self._pool.submit(self._deliver, function, event_json)

    def _deliver(self, function: str, event_json: str) -> AsyncOutcome:
        result: InvocationResult | None = None
        attempts = 0
        for attempt in range(self._retries + 1):
            if attempt:
                delay = self._delays[min(attempt - 1, len(self._delays) - 1)]
                if self._stop.wait(delay):
                    break
            attempts += 1
            try:
                result = self._run(function, event_json)
            except Exception as e:  # the platform may be stopping; report, never raise into a pool thread
                self._warn(f"async invocation of {function} failed to run: {e}")
                return AsyncOutcome(function, attempts, None, False)
            if result is None:
                self._warn(f"async invocation dropped: function {function} does not exist")
                return AsyncOutcome(function, attempts, None, False)
            if not result.error:
                return AsyncOutcome(function, attempts, result, False)
            self._warn(
                f"async invocation of {function} failed (attempt {attempts} of {self._retries + 1}): "
                f"{result.error_type}"
            )
        if result is None or self._stop.is_set():
            return AsyncOutcome(function, attempts, result, False)
        try:
            sent = self._dead_letter(function, event_json, result)
        except Exception as e:
            self._warn(f"could not send the failed event of {function} to its dead-letter queue: {e}")
            sent = False
        return AsyncOutcome(function, attempts, result, sent)

    def shutdown(self) -> None:
        """Stop retrying and drop queued events (the platform is going away)."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
