"""Per model/version metric values for one request (emitted as EMF by the handler).

One group per (model, version) that took part in the request. The request's own group (the
champion that judged it, or ``none`` when no version was resolved) carries ``Requests``, end-to-end
``LatencyMs`` and the error counts (emitted only when non-zero: each metric costs CPU on every
request), so an error rate per version is ``sum(Errors) / sum(Requests)``.
Other versions (canary challenger, shadow) get ``Requests``, ``Rows`` and their ``LatencyMs``.
Unknown models are grouped under ``model=unknown`` so random names cannot create metrics.

:class:`EmfWriter` writes the groups as CloudWatch Embedded Metric Format lines, the same documents
Powertools' ``Metrics`` writes (``tests/unit/test_serving_telemetry.py`` compares the two), from a
template cached per (model, version, metric names), instead of Powertools' path, which re-validates
names, units and dimensions on every ``add_metric`` and builds the document generically: that cost a
third of the endpoint's whole 1-row budget (docs/performance.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from driftline.serving.service import Outcome

Groups = dict[tuple[str, str], dict[str, float]]


def metric_groups(
    outcome: Outcome,
    status: int,
    latency_ms: float,
    *,
    capture_failures: Mapping[tuple[str, int], int] | None = None,
    challenger_failures: int = 0,
    cold_start: bool = False,
) -> Groups:
    """(model, version) -> {metric name: value} for this request; empty for non-model routes."""
    groups: Groups = {}
    if outcome.model is not None or status >= 500:
        model = outcome.model or "unknown"
        first = outcome.primary if outcome.primary is not None else next(iter(outcome.versions), None)
        main = groups.setdefault((model, str(first) if first is not None else "none"), {})
        main.update({"Requests": 1, "LatencyMs": latency_ms})
        if status >= 500:
            main["Errors"] = 1
        elif status >= 400:
            main["ClientErrors"] = 1
        for version, stats in outcome.versions.items():
            g = groups.setdefault((model, str(version)), {"Requests": 1, "LatencyMs": stats.latency_ms})
            g["Rows"] = stats.rows
        errors = outcome.challenger_errors + challenger_failures
        if errors:
            main["ChallengerErrors"] = errors
        if cold_start:
            main["ColdStart"] = 1
    for (m, v), n in (capture_failures or {}).items():
        groups.setdefault((m, str(v)), {})["CaptureFailures"] = n
    return groups


_UNITS = {"LatencyMs": "Milliseconds"}
"""Every other metric is a count."""
_ANSWERED = ("Requests", "LatencyMs", "Rows")
"""The metrics of a request answered by one version, in the order :func:`metric_groups` sets them."""


class EmfWriter:
    """Writes metric groups as EMF JSON lines to stdout (where Lambda's log capture picks them up)."""

    MAX_TEMPLATES = 256

    def __init__(self, namespace: str, service: str) -> None:
        self.namespace = namespace
        self.service = service
        self._templates: dict[tuple[str, str, tuple[str, ...]], str] = {}

    def _template(self, model: str, version: str, names: tuple[str, ...]) -> str:
        meta = {
            "Namespace": self.namespace,
            "Dimensions": [["service", "model", "version"]],
            "Metrics": [{"Name": n, "Unit": _UNITS.get(n, "Count")} for n in names],
        }
        head = json.dumps({"CloudWatchMetrics": [meta]}, separators=(",", ":"))[1:-1]
        dims = json.dumps({"service": self.service, "model": model, "version": version}, separators=(",", ":"))
        values = ",".join(f"{json.dumps(n)}:%r" for n in names)
        tpl = (
            '{"_aws":{"Timestamp":%d,'
            + head.replace("%", "%%")
            + "},"
            + dims[1:-1].replace("%", "%%")
            + ","
            + values
            + "}\n"
        )
        if len(self._templates) >= self.MAX_TEMPLATES:
            self._templates.clear()
        self._templates[(model, version, names)] = tpl
        return tpl

    def lines(self, groups: Groups, timestamp_ms: int | None = None) -> list[str]:
        """One EMF document (with its newline) per group."""
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        out = []
        for (model, version), values in groups.items():
            names = tuple(values)
            tpl = self._templates.get((model, version, names)) or self._template(model, version, names)
            out.append(tpl % (ts, *values.values()))
        return out

    def request_lines(
        self,
        outcome: Outcome,
        status: int,
        latency_ms: float,
        *,
        capture_failures: Mapping[tuple[str, int], int] | None = None,
        challenger_failures: int = 0,
        cold_start: bool = False,
        timestamp_ms: int | None = None,
    ) -> str:
        """This request's documents: ``lines(metric_groups(...))`` joined, "" for non-model routes.

        The common request (answered by the one version that judged it, nothing else to report) skips
        building the groups: its line comes straight from the cached ``Requests, LatencyMs, Rows``
        template (building the groups was a visible share of a single-row request);
        ``tests/unit/test_serving_telemetry.py`` checks both ways write the same text."""
        versions = outcome.versions
        if (
            status < 400
            and not cold_start
            and not capture_failures
            and not challenger_failures
            and not outcome.challenger_errors
            and outcome.model is not None
            and len(versions) == 1
        ):
            stats = versions.get(outcome.primary) if outcome.primary is not None else None
            if stats is not None:
                key = (outcome.model, str(outcome.primary), _ANSWERED)
                tpl = self._templates.get(key) or self._template(*key)
                ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
                return tpl % (ts, 1, latency_ms, stats.rows)
        groups = metric_groups(
            outcome,
            status,
            latency_ms,
            capture_failures=capture_failures,
            challenger_failures=challenger_failures,
            cold_start=cold_start,
        )
        return "".join(self.lines(groups, timestamp_ms)) if groups else ""
