"""The new-feedback-labels trigger: retrain once ``training.feedback.retrain_after_labels`` labels arrived
since the champion was trained.

An hourly schedule (one rule per model that sets it) sends ``{"model": M, "trigger": "feedback"}`` to the
``retrain-trigger`` function, which counts the labels stored since the champion's registration
(:class:`LabelCounter`: request ids with a label, read through the one captures reader) and asks for a
run when the count reaches the threshold. Counting is by stored hour, so labels of the champion's own
registration hour count too (at most an hour's worth early).

De-duplication: the run's ``trigger_id`` is ``v<champion>-x<count // threshold>``, and a ``feedback``
run is named from its trigger id (it is not a cooldown-collapsed trigger), so each crossing of a multiple
of the threshold for one champion starts at most one run: the hourly checks after it collapse into the
same execution name (``ExecutionAlreadyExists``), a run that ends without a new champion is not retried
every hour, and the next run comes after ``retrain_after_labels`` more labels, or after a new champion.
The lock still allows one run per model at a time.

Standard library and the platform's own modules only: this runs in the small ``retrain-trigger`` Lambda.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.captures_store import DEFAULT_MAX_FEEDBACK_OBJECTS, CapturesStore, ReadStats
from driftline.config import PlatformConfig
from driftline.retraining.control import Decision

__all__ = ["FEEDBACK_CHECK_SCHEDULE", "FEEDBACK_TRIGGER", "LabelCount", "LabelCounter", "feedback_requests"]

FEEDBACK_TRIGGER = "feedback"
"""The trigger name (schedule input ``{"model": M, "trigger": "feedback"}``, decisions, registry lineage)."""
FEEDBACK_CHECK_SCHEDULE = "rate(1 hour)"
"""How often the label count is checked for a model with ``training.feedback.retrain_after_labels``."""


@dataclass(frozen=True)
class LabelCount:
    labels: int
    champion: int | None
    since: datetime
    truncated: bool


Counter = Callable[[str, datetime, int], LabelCount]
"""(model, now, max_age_days) -> the labels stored since the champion was trained (within max_age_days)."""


@dataclass
class LabelCounter:
    """Counts a model's feedback labels since its champion's registration, from the registry and the
    captures bucket (both injected)."""

    registry: Any
    store: CapturesStore
    max_objects: int = DEFAULT_MAX_FEEDBACK_OBJECTS

    def __call__(self, model: str, now: datetime, max_age_days: int) -> LabelCount:
        since = now - timedelta(days=max_age_days)
        champion = self.registry.aliases(model).champion
        if champion is not None:
            created = datetime.fromisoformat(self.registry.get_version(model, champion).created_at)
            since = max(since, created if created.tzinfo else created.replace(tzinfo=UTC))
        stats = ReadStats()
        labels = self.store.labels(model, since, now, max_objects=self.max_objects, stats=stats)
        return LabelCount(len(labels), champion, since, stats.truncated)


def feedback_requests(
    event: Mapping[str, Any], config: PlatformConfig, count: Counter, now: datetime, request: Callable[..., Any]
) -> tuple[list[Any], list[Decision]]:
    """The retrain request (built with ``request``, the trigger's request type) when enough labels arrived,
    else the recorded reason why not. ``event`` is a validated schedule input naming a configured model."""
    model = str(event["model"])
    fb = config.model(model).training.feedback
    threshold = fb.retrain_after_labels
    if not fb.enabled or threshold is None:
        skip = Decision(
            model=model,
            decision="skipped",
            reason="training.feedback.retrain_after_labels is not set for this model (or feedback is off)",
            trigger=FEEDBACK_TRIGGER,
            trigger_id=f"{now:%Y%m%dT%H%M}",
        )
        return [], [skip]
    c = count(model, now, fb.max_age_days)
    details = {
        "new_labels": c.labels,
        "since": c.since.isoformat(),
        "champion_version": c.champion,
        "retrain_after_labels": threshold,
        "count_truncated": c.truncated,
    }
    champion = f"champion v{c.champion}" if c.champion is not None else "no champion"
    if c.labels < threshold:
        skip = Decision(
            model=model,
            decision="skipped",
            reason=f"{c.labels} feedback label(s) since {c.since:%Y-%m-%dT%H:%MZ} ({champion}); "
            f"a run starts at training.feedback.retrain_after_labels={threshold}",
            trigger=FEEDBACK_TRIGGER,
            trigger_id=f"{now:%Y%m%dT%H%M}",
            details=details,
        )
        return [], [skip]
    trigger_id = f"v{c.champion or 0}-x{c.labels // threshold}"
    reason = f"{c.labels} new feedback labels since {champion} was trained (retrain_after_labels {threshold})"
    return [request(model, FEEDBACK_TRIGGER, trigger_id, reason, FEEDBACK_TRIGGER, details)], []
