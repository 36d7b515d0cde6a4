"""When scheduled messages are due: weekly slots to open, reminders, quiet hours, expiry, snooze.

Pure rules over aware UTC datetimes and the patient's IANA time zone; the weekly slot itself
and its daylight-saving rules come from `bot.domain.schedule.WeeklySlot` (a nonexistent
local time moves forward by the gap, a repeated one means its first occurrence), and every
local wall-clock instant computed here goes through `bot.domain.schedule.local_slot`, so the
two modules resolve DST transitions identically.

The weekly rhythm is what makes BASDAI and ASDAS comparable week to week (clinical spec §1:
every item refers to "the last week"), so a slot is never skipped or doubled by a DST change,
an expired slot is recorded as missed rather than asked late, and nothing reaches a patient's
phone during their quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.schedule import WeeklySlot, local_slot

# Two scheduled questionnaires are never opened less than six days apart. Weekly slots are
# 7 days ± the one-hour DST shift apart, so this only matters when a patient moves their
# weekday: moving from Monday to Thursday after answering on Monday waits for next Thursday
# instead of asking again three days later.
MIN_WEEKLY_GAP = timedelta(days=6)

# After a long outage (or a long unreachable spell) at most this many overdue weekly slots are
# recorded per patient; older ones are not back-filled.
CATCH_UP_SLOTS = 8

# A tick re-examines slots this far behind the point the previous completed tick handled, so
# a slot is not lost to clock differences between processes or to a tick that stopped halfway.
SLOT_WINDOW_OVERLAP = timedelta(minutes=15)

SNOOZE_CHOICES = ("2h", "1d")
_ONE_MICROSECOND = timedelta(microseconds=1)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class QuietHours:
    """A daily local window (start inclusive, end exclusive) in which nothing is sent.

    A window whose start is later than its end spans midnight (22:00–08:00); equal start and
    end mean no quiet hours at all.
    """

    start: time
    end: time

    def contains(self, moment_utc: datetime, tz_name: str) -> bool:
        """Whether the local wall-clock time of `moment_utc` falls inside the window."""
        _require_aware(moment_utc, "moment_utc")
        if self.start == self.end:
            return False
        local = moment_utc.astimezone(ZoneInfo(tz_name)).time().replace(tzinfo=None, fold=0)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment_utc: datetime, tz_name: str) -> datetime:
        """The first instant after `moment_utc` at which the local clock shows the window's end.

        A window end that falls in a spring-forward gap moves forward by the gap, like a slot.
        """
        _require_aware(moment_utc, "moment_utc")
        today = moment_utc.astimezone(ZoneInfo(tz_name)).date()
        for offset in range(3):
            candidate = local_slot(today + timedelta(days=offset), self.end, tz_name)
            if candidate > moment_utc:
                return candidate
        raise AssertionError("a daily time recurs within three local days")  # pragma: no cover

    def defer(self, moment_utc: datetime, tz_name: str) -> datetime:
        """`moment_utc` itself, or the end of the quiet hours it falls into."""
        if self.contains(moment_utc, tz_name):
            return self.end_after(moment_utc, tz_name)
        return moment_utc.astimezone(UTC)


@dataclass(frozen=True)
class DueSlot:
    """A weekly slot that has come and has no administration yet."""

    slot_at: datetime
    expires_at: datetime
    expired: bool


def expiry_for(slot_at: datetime, *, expiry_days: int, next_slot_at: datetime) -> datetime:
    """When the questionnaire of a slot closes: `expiry_days` after the slot, and never later
    than the next week's slot, so two weekly questionnaires are never open at once."""
    _require_aware(slot_at, "slot_at")
    return min(slot_at + timedelta(days=expiry_days), next_slot_at)


def due_slots(
    *,
    now: datetime,
    weekly: WeeklySlot,
    not_before: datetime,
    previous_slot_at: datetime | None,
    expiry_days: int,
) -> list[DueSlot]:
    """The weekly slots at or before `now` that still need an administration, oldest first.

    Candidates are slots at or after `not_before` (the later of `slot_window_start` and
    `schedule_anchor`), at least `MIN_WEEKLY_GAP` after the previous scheduled slot, and at most
    `CATCH_UP_SLOTS` of them. Every slot but the newest is necessarily expired (its successor
    has come); the newest is expired when `expiry_days` have passed. Expired slots are to be
    recorded as missed, never sent late; so after downtime each overdue slot is handled once.
    """
    _require_aware(now, "now")
    floor = max(
        _slot_floor(not_before=not_before, previous_slot_at=previous_slot_at),
        now - timedelta(weeks=CATCH_UP_SLOTS + 1),
    )
    slots: list[datetime] = []
    slot = weekly.next_after(floor - _ONE_MICROSECOND)
    while slot <= now:
        slots.append(slot)
        slot = weekly.next_after(slot)
    upcoming = slot  # the first slot after now
    slots = slots[-CATCH_UP_SLOTS:]
    due: list[DueSlot] = []
    for index, slot_at in enumerate(slots):
        following = slots[index + 1] if index + 1 < len(slots) else upcoming
        expires_at = expiry_for(slot_at, expiry_days=expiry_days, next_slot_at=following)
        due.append(DueSlot(slot_at=slot_at, expires_at=expires_at, expired=expires_at <= now))
    return due


def next_check_at(
    *, now: datetime, weekly: WeeklySlot, not_before: datetime, previous_slot_at: datetime | None
) -> datetime:
    """The earliest instant after `now` at which `due_slots` can return a slot again, once the
    slots due at `now` (if any) have their administrations and `previous_slot_at` is the newest.

    It is the first weekly slot after `now` that is at or after `not_before` and at least
    `MIN_WEEKLY_GAP` after `previous_slot_at`: the same floor as `due_slots`. While nothing that
    decides the slots changes (weekday, time, time zone, activation, pause, the scheduled
    administrations), that floor only rises as time passes, so no slot can fall due earlier:
    the result is a safe lower bound, and a tick need not look at the patient before it.
    Arguments as for `due_slots`.
    """
    _require_aware(now, "now")
    floor = _slot_floor(not_before=not_before, previous_slot_at=previous_slot_at)
    return weekly.next_after(max(now, floor - _ONE_MICROSECOND))


def _slot_floor(*, not_before: datetime, previous_slot_at: datetime | None) -> datetime:
    """The earliest a weekly slot may be: at or after `not_before`, and at least
    `MIN_WEEKLY_GAP` after the previous scheduled slot (shared by `due_slots` and
    `next_check_at`, so the stored next check can never be later than a due slot)."""
    _require_aware(not_before, "not_before")
    if previous_slot_at is None:
        return not_before
    return max(not_before, previous_slot_at + MIN_WEEKLY_GAP)


def next_reminder_at(
    *,
    after: datetime,
    reminder_after_hours: int,
    expires_at: datetime,
    tz_name: str,
    quiet: QuietHours,
) -> datetime | None:
    """When the next reminder goes out: `reminder_after_hours` after `after` (the invitation
    or the previous reminder), moved to the end of quiet hours if it falls inside them, and
    None if that is not before the questionnaire closes."""
    _require_aware(after, "after")
    due = quiet.defer(after + timedelta(hours=reminder_after_hours), tz_name)
    return due if due < expires_at else None


def snooze_until(choice: str, *, now: datetime, tz_name: str, quiet: QuietHours) -> datetime:
    """When a snoozed reminder comes back: "2h" is two hours from now, "1d" the same local
    wall-clock time tomorrow (DST-safe); either is moved out of quiet hours."""
    _require_aware(now, "now")
    if choice == "2h":
        wanted = now + timedelta(hours=2)
    elif choice == "1d":
        local = now.astimezone(ZoneInfo(tz_name))
        wall = local.time().replace(tzinfo=None, fold=0)
        wanted = local_slot(local.date() + timedelta(days=1), wall, tz_name)
    else:
        raise ValueError(f"snooze choice must be one of {', '.join(SNOOZE_CHOICES)}")
    return quiet.defer(wanted, tz_name)


def slot_window_start(*, handled_until: datetime | None, now: datetime) -> datetime:
    """The earliest slot a tick at `now` may still open or record as missed.

    Slots up to `handled_until` were seen by a running scheduler: one that got no
    administration then belonged to a patient who was paused, unreachable or not yet active,
    and is skipped for good. Later slots fell into downtime and are caught up. A scheduler that
    never ran has no downtime to catch up on.
    """
    _require_aware(now, "now")
    return (handled_until if handled_until is not None else now) - SLOT_WINDOW_OVERLAP


def schedule_anchor(
    *, activated_at: datetime, paused_until: datetime | None, now: datetime
) -> datetime:
    """The earliest moment from which weekly slots count for a patient: when they became
    active, or when their pause ended if that is later (paused weeks are not missed)."""
    _require_aware(activated_at, "activated_at")
    if paused_until is not None and paused_until <= now:
        return max(activated_at, paused_until)
    return activated_at


def local_label(moment_utc: datetime, tz_name: str) -> str:
    """A moment as the patient's wall clock shows it, e.g. "2026-03-05 18:00"."""
    _require_aware(moment_utc, "moment_utc")
    return moment_utc.astimezone(ZoneInfo(tz_name)).strftime("%Y-%m-%d %H:%M")
