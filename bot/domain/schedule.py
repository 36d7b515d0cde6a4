"""When a patient's weekly questionnaire falls: local weekday and time in their own time zone.

A weekly slot is a wall-clock promise ("Mondays at 18:00 where I live"), so it is computed in
the patient's IANA time zone and only then converted to UTC. Daylight-saving transitions are
resolved the way `zoneinfo` resolves `fold=0`, made explicit here:

* a local time that does not exist (the spring-forward gap, e.g. 02:30 on the last Sunday of
  March in Europe/Berlin) is shifted forward by the length of the gap (02:30 → 03:30 CEST);
* a local time that occurs twice (the autumn fall-back hour) means its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = 7


def local_slot(day: date, local_time: time, tz_name: str) -> datetime:
    """The UTC instant of `local_time` on `day` in `tz_name`, with the DST rules above.

    `datetime(..., tzinfo=zone)` with fold=0 gives a gap time the offset in force before the
    transition, which, converted to UTC and back, is exactly "shifted forward by the gap";
    for a repeated time fold=0 is the first occurrence.
    """
    zone = ZoneInfo(tz_name)
    wall = datetime.combine(day, local_time.replace(tzinfo=None, fold=0), tzinfo=zone)
    return wall.astimezone(UTC)


def next_slot_after(moment_utc: datetime, weekday: int, local_time: time, tz_name: str) -> datetime:
    """The first weekly slot strictly after `moment_utc`, as an aware UTC datetime.

    `weekday` follows Python's convention (0 = Monday … 6 = Sunday); `local_time` is wall-clock
    time in the IANA zone `tz_name`. A slot exactly at `moment_utc` is not "after" it, so the
    result is a week later; callers that want "at or after" pass a moment one microsecond
    earlier. Nonexistent local times move forward by the DST gap; repeated ones take their first
    occurrence (see the module docstring).

    Raises ValueError for a naive `moment_utc` or a weekday outside 0–6, and
    `zoneinfo.ZoneInfoNotFoundError` for an unknown zone.
    """
    if moment_utc.tzinfo is None:
        raise ValueError("moment_utc must be timezone-aware")
    if not 0 <= weekday < WEEKDAYS:
        raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday}")
    zone = ZoneInfo(tz_name)
    local_today = moment_utc.astimezone(zone).date()
    # Start one day early: a slot on the previous local date can never be after the moment,
    # but starting there keeps the loop honest for every offset and transition.
    day = local_today - timedelta(days=1)
    day += timedelta(days=(weekday - day.weekday()) % WEEKDAYS)
    while True:
        slot = local_slot(day, local_time, tz_name)
        if slot > moment_utc:
            return slot
        day += timedelta(days=WEEKDAYS)


@dataclass(frozen=True)
class WeeklySlot:
    """A patient's weekly promise: `weekday` (0 = Monday) at `local_time` in the IANA zone
    `tz_name`, the three stored schedule fields that always travel together."""

    weekday: int
    local_time: time
    tz_name: str

    def next_after(self, moment_utc: datetime) -> datetime:
        """The first slot strictly after `moment_utc` (see `next_slot_after`)."""
        return next_slot_after(moment_utc, self.weekday, self.local_time, self.tz_name)


def local_day_bounds(moment_utc: datetime, tz_name: str) -> tuple[datetime, datetime]:
    """The UTC start (inclusive) and end (exclusive) of the local calendar day of a moment."""
    zone = ZoneInfo(tz_name)
    today = moment_utc.astimezone(zone).date()
    start = datetime.combine(today, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end
