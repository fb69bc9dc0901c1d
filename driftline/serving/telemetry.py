"""Per model/version metric values for one request (emitted as EMF by the handler).

One group per (model, version) that took part in the request. The request's own group (the
champion that judged it, or ``none`` when no version was resolved) carries ``Requests``, end-to-end
``LatencyMs`` and the error counts (emitted only when non-zero: each metric costs CPU on every
request), so an error rate per version is ``sum(Errors) / sum(Requests)``.
Other versions (canary challenger, shadow) get ``Requests``, ``Rows`` and their ``LatencyMs``.
Unknown models are grouped under ``model=unknown`` so random names cannot create metrics.
"""

from __future__ import annotations

from collections.abc import Mapping

from driftline.serving.service import Outcome

Groups = dict[tuple[str, str], dict[str, float]]


def metric_groups(outcome: Outcome, status: int, latency_ms: float, *,
                  capture_failures: Mapping[tuple[str, int], int] | None = None,
                  challenger_failures: int = 0, cold_start: bool = False) -> Groups:
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
