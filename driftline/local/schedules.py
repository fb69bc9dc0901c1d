"""EventBridge schedule expressions and the thread that fires them (moto never does).

``rate(N unit)`` fires every period starting one period after the rule is first seen, as in AWS.
``cron(min hour day-of-month month day-of-week year)`` uses AWS's six fields (``?`` in one of the
day fields, days of week numbered 1=SUN..7=SAT, all times UTC); it is converted to the five-field
form croniter evaluates, with the year checked separately.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter


class ScheduleError(ValueError):
    """A schedule expression EventBridge would reject, or one the local scheduler cannot evaluate."""


_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class RateSchedule:
    period: timedelta

    def first_after(self, seen_at: datetime) -> datetime:
        return seen_at + self.period

    def next_after(self, last: datetime) -> datetime:
        return last + self.period


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    """The five-field croniter expression."""
    years: frozenset[int] | None

    def first_after(self, seen_at: datetime) -> datetime:
        return self.next_after(seen_at)

    def next_after(self, last: datetime) -> datetime:
        it = croniter(self.expression, last.astimezone(UTC))
        for _ in range(100_000):
            candidate: datetime = it.get_next(datetime)
            if self.years is None or candidate.year in self.years:
                return candidate
            if candidate.year > max(self.years):
                break
        raise ScheduleError(f"cron schedule {self.expression!r} never fires again in years {sorted(self.years or [])}")


Schedule = RateSchedule | CronSchedule


def parse_schedule(expression: str) -> Schedule:
    expression = expression.strip()
    m = _RATE.match(expression)
    if m:
        value, unit = int(m.group(1)), m.group(2)
        singular = unit.removesuffix("s")
        if singular not in _UNITS:
            raise ScheduleError(f"{expression!r}: unit must be minute(s), hour(s) or day(s)")
        if value < 1:
            raise ScheduleError(f"{expression!r}: the rate must be a positive whole number")
        expected = singular if value == 1 else singular + "s"
        if unit != expected:
            raise ScheduleError(
                f"{expression!r}: EventBridge requires 'rate({value} {expected})' "
                "(singular unit for 1, plural otherwise)"
            )
        return RateSchedule(timedelta(seconds=value * _UNITS[singular]))
    m = _CRON.match(expression)
    if m:
        return _parse_cron(expression, m.group(1).split())
    raise ScheduleError(f"{expression!r}: a schedule is 'rate(<n> <unit>)' or 'cron(<6 fields>)'")


def _convert_dow(field: str, expression: str) -> str:
    """AWS numbers days 1=SUN..7=SAT; croniter 0=SUN..6=SAT. Names are the same in both."""
    if field in ("?", "*"):
        return "*"

    def number(n: int) -> str:
        if not 1 <= n <= 7:
            raise ScheduleError(f"{expression!r}: day-of-week numbers run from 1 (SUN) to 7 (SAT), got {n}")
        return str(n - 1)

    out = []
    for token in field.split(","):
        last = re.fullmatch(r"(\d|[A-Za-z]{3})L", token)
        if last:  # AWS '6L' (last Friday of the month) is croniter's 'L5'
            day = last.group(1)
            if not day.isdigit() and day.upper() not in _DAYS:
                raise ScheduleError(f"{expression!r}: unknown day {day!r}")
            out.append("L" + (number(int(day)) if day.isdigit() else str(_DAYS.index(day.upper()))))
            continue
        base, sep, rest = token.partition("#")
        step = ""
        if "/" in base:
            base, step = base.split("/", 1)
            step = "/" + step
        out.append(re.sub(r"\d+", lambda m: number(int(m.group(0))), base) + step + sep + rest)
    return ",".join(out)


def _parse_years(field: str, expression: str) -> frozenset[int] | None:
    if field == "*":
        return None
    years: set[int] = set()
    for item in field.split(","):
        step, token = 1, item
        if "/" in item:
            token, step_s = item.split("/", 1)
            step = int(step_s) if step_s.isdigit() and int(step_s) > 0 else 0
            if not step:
                raise ScheduleError(f"{expression!r}: bad year step in {field!r}")
        lo_s, _, hi_s = token.partition("-")
        if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
            raise ScheduleError(f"{expression!r}: the year field must be *, YYYY, YYYY-YYYY or a list, got {field!r}")
        lo = int(lo_s)
        hi = int(hi_s) if hi_s else (2199 if step > 1 else lo)
        if not 1970 <= lo <= hi <= 2199:
            raise ScheduleError(f"{expression!r}: years must be within 1970-2199")
        years.update(range(lo, hi + 1, step))
    return frozenset(years)


def _parse_cron(expression: str, fields: list[str]) -> CronSchedule:
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression!r}: AWS cron has 6 fields (minutes hours day-of-month month "
            f"day-of-week year), got {len(fields)}"
        )
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
    if "W" in dom.upper():
        raise ScheduleError(f"{expression!r}: 'W' (nearest weekday) is not supported by the local scheduler")
    five = f"{minute} {hour} {'*' if dom == '?' else dom} {month} {_convert_dow(dow, expression)}"
    if not croniter.is_valid(five):
        raise ScheduleError(f"{expression!r}: not a valid cron expression")
    return CronSchedule(five, _parse_years(year, expression))


@dataclass(frozen=True)
class ScheduledRule:
    name: str
    arn: str
    expression: str


class Scheduler:
    """Fires enabled schedule rules on time. Rules are re-read every ``poll_s`` seconds, so rules
    created, changed, disabled or deleted through the EventBridge API take effect without a restart.
    """

    def __init__(
        self,
        list_rules: Callable[[], list[ScheduledRule]],
        fire: Callable[[ScheduledRule], None],
        *,
        poll_s: float = 1.0,
        warn: Callable[[str], None] = print,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._list_rules = list_rules
        self._fire = fire
        self._poll_s = poll_s
        self._warn = warn
        self._now = now
        self._next: dict[tuple[str, str], datetime] = {}
        self._schedules: dict[tuple[str, str], Schedule] = {}
        self._bad: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def next_fire_times(self) -> dict[str, datetime]:
        return {arn: t for (arn, _), t in dict(self._next).items()}

    def tick(self) -> float:
        """Fire what is due; returns seconds until the next rule is due (capped by the poll interval)."""
        now = self._now()
        rules = {(r.arn, r.expression): r for r in self._list_rules()}
        for key in list(self._next):
            if key not in rules:
                del self._next[key]
                self._schedules.pop(key, None)
        for key, rule in rules.items():
            if key in self._next or key in self._bad:
                continue
            try:
                sched = parse_schedule(rule.expression)
                self._next[key] = sched.first_after(now)
                self._schedules[key] = sched
            except ScheduleError as e:
                self._bad.add(key)
                self._warn(f"schedule rule {rule.name} will not fire: {e}")
        for key, due in list(self._next.items()):
            if due <= now:
                try:
                    self._fire(rules[key])
                except Exception as e:  # one failing target must not stop the clock for the others
                    self._warn(f"schedule rule {rules[key].name} failed to fire: {e}")
                try:
                    nxt = self._schedules[key].next_after(due)
                    while nxt <= now:  # after a suspend, fire once and skip the missed periods
                        nxt = self._schedules[key].next_after(nxt)
                    self._next[key] = nxt
                except ScheduleError as e:
                    self._warn(f"schedule rule {rules[key].name} stops: {e}")
                    del self._next[key]
        if not self._next:
            return self._poll_s
        soonest = min(self._next.values())
        return max(min((soonest - self._now()).total_seconds(), self._poll_s), 0.01)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.tick()
            except Exception as e:  # the emulator may be mid-shutdown
                self._warn(f"scheduler: {e}")
                wait = self._poll_s
            self._stop.wait(wait)
