"""Schedule expressions (AWS rate and six-field cron) and the scheduler's clock logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.local.schedules import ScheduledRule, ScheduleError, Scheduler, parse_schedule

THU = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("rate(1 hour)", THU + timedelta(hours=1)),
        ("rate(5 minutes)", THU + timedelta(minutes=5)),
        ("rate(2 days)", THU + timedelta(days=2)),
        ("cron(0 3 ? * MON *)", datetime(2026, 11, 30, 3, 0, tzinfo=UTC)),
        ("cron(0 3 ? * 2 *)", datetime(2026, 11, 30, 3, 0, tzinfo=UTC)),  # AWS: 1=SUN, so 2=MON
        ("cron(0 8 ? * 2-6 *)", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2026, 11, 26, 1, 15, tzinfo=UTC)),
        ("cron(0 12 L * ? *)", datetime(2026, 11, 30, 12, 0, tzinfo=UTC)),
        ("cron(15 10 ? * 6L *)", datetime(2026, 11, 27, 10, 15, tzinfo=UTC)),  # last Friday
        ("cron(0 8 ? * 2#1 *)", datetime(2026, 12, 7, 8, 0, tzinfo=UTC)),  # first Monday
        ("cron(0 0 1 1 ? 2028)", datetime(2028, 1, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_first_fire_time(expression: str, first: datetime) -> None:
    assert parse_schedule(expression).first_after(THU) == first


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 hours)", "rate(1 hour)"),
        ("rate(5 minute)", "rate(5 minutes)"),
        ("rate(0 minutes)", "positive"),
        ("rate(1 week)", "minute(s), hour(s) or day(s)"),
        ("cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 3 * * ?)", "6 fields"),
        ("cron(0 3 15W * ? *)", "nearest weekday"),
        ("cron(0 3 ? * 8 *)", "1 (SUN) to 7 (SAT)"),
        ("cron(99 3 * * ? *)", "not a valid cron"),
        ("daily", "rate(<n> <unit>)"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_schedule(expression)


def test_cron_that_never_fires_again() -> None:
    with pytest.raises(ScheduleError, match="never fires again"):
        parse_schedule("cron(0 0 1 1 ? 2020)").first_after(THU)


class FakeClock:
    def __init__(self) -> None:
        self.now = THU

    def __call__(self) -> datetime:
        return self.now


def test_scheduler_fires_on_time_and_follows_rule_changes() -> None:
    clock = FakeClock()
    rules = [ScheduledRule("r", "arn:r", "rate(5 minutes)"), ScheduledRule("bad", "arn:bad", "rate(1 hours)")]
    fired: list[tuple[str, datetime]] = []
    warnings: list[str] = []
    sched = Scheduler(lambda: list(rules), lambda r: fired.append((r.name, clock.now)), warn=warnings.append, now=clock)
    sched.tick()
    assert fired == [] and len(warnings) == 1 and "bad" in warnings[0]
    clock.now = THU + timedelta(minutes=4, seconds=59)
    sched.tick()
    assert fired == []
    clock.now = THU + timedelta(minutes=5)
    sched.tick()
    assert fired == [("r", clock.now)]
    clock.now = THU + timedelta(minutes=27)  # after a suspend: one catch-up fire, not four
    sched.tick()
    assert len(fired) == 2
    assert sched.next_fire_times()["arn:r"] == THU + timedelta(minutes=30)
    rules.pop(0)  # rule deleted or disabled
    clock.now = THU + timedelta(hours=1)
    sched.tick()
    assert len(fired) == 2 and len(warnings) == 1 and sched.next_fire_times() == {}


def test_scheduler_thread_fires_and_survives_a_failing_target() -> None:
    import threading
    import time

    start = datetime.now(UTC)
    t0 = time.monotonic()
    fired = threading.Event()
    calls: list[str] = []

    def fast_now() -> datetime:  # one real second is ten simulated minutes
        return start + timedelta(seconds=(time.monotonic() - t0) * 600)

    def fire(rule: ScheduledRule) -> None:
        calls.append(rule.name)
        if len(calls) == 1:
            raise RuntimeError("target unavailable")
        fired.set()

    sched = Scheduler(
        lambda: [ScheduledRule("r", "arn:r", "rate(1 minute)")], fire, poll_s=0.02, warn=lambda _: None, now=fast_now
    )
    sched.start()
    try:
        assert fired.wait(5.0)
    finally:
        sched.stop()
    assert len(calls) >= 2
