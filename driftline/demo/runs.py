"""Follow a retraining run through its Step Functions history: wait for a state to finish, read its
output, time every state (the benchmark uses the same timings)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from driftline import aws
from driftline.demo.local import DemoError

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class RunFollower:
    def __init__(self, execution_arn: str) -> None:
        self.arn = execution_arn
        self.name = execution_arn.rsplit(":", 1)[-1]
        self.events: list[dict[str, Any]] = []
        self.description: dict[str, Any] = {}

    def refresh(self) -> None:
        sfn = aws.client("stepfunctions")
        # describe first: when it says the run ended, the history read after it is complete
        self.description = dict(sfn.describe_execution(executionArn=self.arn))
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": self.arn, "maxResults": 1000}
        while True:
            resp = sfn.get_execution_history(**kwargs)
            events += resp["events"]
            if not resp.get("nextToken"):
                break
            kwargs["nextToken"] = resp["nextToken"]
        self.events = events

    @property
    def status(self) -> str:
        return str(self.description.get("status", "RUNNING"))

    def entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def exited_output(self, state: str) -> dict[str, Any] | None:
        """The execution state right after ``state`` finished (its last exit), or None."""
        for e in reversed(self.events):
            d = e.get("stateExitedEventDetails")
            if d and d.get("name") == state:
                out = json.loads(d.get("output") or "{}")
                return out if isinstance(out, dict) else {}
        return None

    def durations(self) -> dict[str, float]:
        """Seconds spent in each state (entered → exited), in order of entry."""
        start: dict[str, Any] = {}
        out: dict[str, float] = {}
        for e in self.events:
            if "stateEnteredEventDetails" in e:
                start[e["stateEnteredEventDetails"]["name"]] = e["timestamp"]
            elif "stateExitedEventDetails" in e:
                name = e["stateExitedEventDetails"]["name"]
                if name in start:
                    out[name] = out.get(name, 0.0) + (e["timestamp"] - start.pop(name)).total_seconds()
        return out

    def _ended_without(self, state: str) -> DemoError:
        cause = self.description.get("cause") or self.description.get("error") or ""
        failure = self.exited_output("RecordFailure") or {}
        err = failure.get("error")
        detail = (err.get("Cause") if isinstance(err, dict) else None) or cause
        return DemoError(
            f"run {self.name} ended {self.status} before {state} finished "
            f"(states: {' → '.join(self.entered())}){': ' + str(detail)[:400] if detail else ''}"
        )

    def wait_for(self, state: str, timeout_s: float, tick: Callable[[], None] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            out = self.exited_output(state)
            if out is not None:
                return out
            if self.status in TERMINAL:
                raise self._ended_without(state)
            if time.monotonic() > deadline:
                raise DemoError(
                    f"run {self.name}: {state} did not finish within {timeout_s:.0f} s "
                    f"(states so far: {' → '.join(self.entered())})"
                )
            if tick is not None:
                tick()
            time.sleep(0.25)

    def wait_end(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            if self.status in TERMINAL:
                return self.status
            if time.monotonic() > deadline:
                raise DemoError(
                    f"run {self.name} still {self.status} after {timeout_s:.0f} s "
                    f"(states so far: {' → '.join(self.entered())})"
                )
            time.sleep(0.25)
