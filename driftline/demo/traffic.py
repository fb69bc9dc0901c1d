"""Real HTTP traffic against the local API gateway: one-off batches and a steady background stream.

Standard library HTTP (``urllib``), as any client would call the endpoint; rows come from the example
generator so their distribution is known (clean or drifted).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.demo.local import DemoError


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    latency_ms: float

    @property
    def versions(self) -> list[int]:
        return [int(p["version"]) for p in self.body.get("predictions", []) if "version" in p]


def predict(api_url: str, model: str, records: Sequence[dict[str, Any]], timeout: float = 30.0) -> Answer:
    data = json.dumps({"records": list(records)}).encode()
    req = urllib.request.Request(  # noqa: S310 - the local API gateway's http URL
        f"{api_url}/v1/models/{model}/predict", data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the local API gateway
            status, raw = int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        status, raw = int(e.code), e.read()
    latency = (time.perf_counter() - t0) * 1000.0
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {"raw": raw[:200].decode(errors="replace")}
    return Answer(status, body if isinstance(body, dict) else {"body": body}, latency)


def send(api_url: str, model: str, rows: Sequence[dict[str, Any]], batch: int = 50) -> list[Answer]:
    """Send ``rows`` in batches; any non-200 answer fails the demo step with the API's message."""
    out = []
    for i in range(0, len(rows), batch):
        a = predict(api_url, model, rows[i : i + batch])
        if a.status != 200:
            raise DemoError(f"POST /v1/models/{model}/predict answered {a.status}: {json.dumps(a.body)[:300]}")
        out.append(a)
    return out


@dataclass
class BackgroundTraffic:
    """Keeps requests flowing (e.g. during a canary bake) and counts which versions answered."""

    api_url: str
    model: str
    rows: Sequence[dict[str, Any]]
    batch: int = 20
    interval_s: float = 0.2
    versions: Counter[int] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            chunk = [self.rows[(i + k) % len(self.rows)] for k in range(self.batch)]
            i += self.batch
            try:
                a = predict(self.api_url, self.model, chunk, timeout=10.0)
            except OSError:
                self.errors[0] += 1
            else:
                self.requests += 1
                if a.status == 200:
                    self.versions.update(a.versions)
                else:
                    self.errors[a.status] += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
