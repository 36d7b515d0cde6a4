"""Pure timing rules: quiet hours, weekly slots due, reminders, expiry and snooze, across DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain import timing
from bot.domain.schedule import WeeklySlot
from bot.domain.timing import QuietHours

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
QUIET = QuietHours(time(22, 0), time(8, 0))
MONDAY_18_BERLIN = WeeklySlot(0, time(18, 0), BERLIN)
THURSDAY_18_BERLIN = WeeklySlot(3, time(18, 0), BERLIN)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


class TestQuietHours:
    def test_window_spanning_midnight(self) -> None:
        """22:00–08:00 covers late evening and early morning, local time, end exclusive."""
        assert QUIET.contains(utc(2026, 3, 2, 21, 0), BERLIN)  # 22:00 CET
        assert QUIET.contains(utc(2026, 3, 2, 2, 0), BERLIN)  # 03:00
        assert not QUIET.contains(utc(2026, 3, 2, 7, 0), BERLIN)  # 08:00
        assert not QUIET.contains(utc(2026, 3, 2, 20, 59), BERLIN)  # 21:59

    def test_window_within_one_day(self) -> None:
        """A window such as 13:00–15:00 that does not cross midnight works too."""
        siesta = QuietHours(time(13, 0), time(15, 0))
        assert siesta.contains(utc(2026, 3, 2, 12, 30), BERLIN)
        assert not siesta.contains(utc(2026, 3, 2, 14, 0), BERLIN)

    def test_equal_start_and_end_means_none(self) -> None:
        """A window that starts when it ends never holds anything back."""
        assert not QuietHours(time(0, 0), time(0, 0)).contains(utc(2026, 3, 2, 3), BERLIN)

    def test_defer_moves_to_the_end_of_the_night(self) -> None:
        """A moment at 23:30 local is deferred to 08:00 the next local morning."""
        deferred = QUIET.defer(utc(2026, 3, 2, 22, 30), BERLIN)
        assert local(deferred, BERLIN) == "2026-03-03 08:00 CET"

    def test_defer_after_midnight_stays_on_the_same_date(self) -> None:
        """A moment at 02:00 local is deferred to 08:00 that same morning."""
        deferred = QUIET.defer(utc(2026, 3, 3, 1, 0), BERLIN)
        assert local(deferred, BERLIN) == "2026-03-03 08:00 CET"

    def test_defer_outside_quiet_hours_is_unchanged(self) -> None:
        """A daytime moment is not moved."""
        assert QUIET.defer(utc(2026, 3, 3, 12, 0), BERLIN) == utc(2026, 3, 3, 12, 0)

    def test_quiet_hours_follow_local_time_across_spring_forward(self) -> None:
        """The night the clocks go forward in Berlin, quiet hours still end at 08:00 CEST."""
        deferred = QUIET.defer(utc(2026, 3, 28, 23, 0), BERLIN)  # 00:00 CET, Sunday
        assert deferred == utc(2026, 3, 29, 6, 0)
        assert local(deferred, BERLIN) == "2026-03-29 08:00 CEST"

    def test_quiet_hours_follow_local_time_across_fall_back(self) -> None:
        """The night the clocks go back in New York, quiet hours end at 08:00 EST."""
        deferred = QUIET.defer(utc(2026, 11, 1, 5, 30), NEW_YORK)  # 01:30 EDT
        assert deferred == utc(2026, 11, 1, 13, 0)
        assert local(deferred, NEW_YORK) == "2026-11-01 08:00 EST"

    def test_end_in_a_dst_gap_moves_forward_by_the_gap(self) -> None:
        """A window ending at 02:30 on the spring-forward night ends at 03:30 CEST."""
        night = QuietHours(time(23, 0), time(2, 30))
        deferred = night.defer(utc(2026, 3, 28, 23, 30), BERLIN)
        assert local(deferred, BERLIN) == "2026-03-29 03:30 CEST"


class TestDueSlots:
    def due(self, now: datetime, **overrides: object) -> list[timing.DueSlot]:
        values: dict[str, object] = {
            "now": now,
            "weekly": MONDAY_18_BERLIN,
            "not_before": utc(2026, 3, 1),
            "previous_slot_at": None,
            "expiry_days": 3,
        }
        values.update(overrides)
        return timing.due_slots(**values)  # type: ignore[arg-type]

    def test_nothing_before_the_slot(self) -> None:
        """One minute before Monday 18:00 local, no slot is due."""
        assert self.due(utc(2026, 3, 2, 16, 59)) == []

    def test_the_slot_is_due_at_its_instant(self) -> None:
        """At Monday 18:00 CET the slot is due, open for three days."""
        (slot,) = self.due(utc(2026, 3, 2, 17, 0))
        assert slot == timing.DueSlot(utc(2026, 3, 2, 17), utc(2026, 3, 5, 17), expired=False)

    def test_a_slot_already_opened_is_not_due_again(self) -> None:
        """Once the slot has an administration, the same instant yields nothing."""
        assert self.due(utc(2026, 3, 2, 17), previous_slot_at=utc(2026, 3, 2, 17)) == []

    def test_slot_before_not_before_is_skipped(self) -> None:
        """A slot before the patient became active (or came back from a pause) is not due."""
        assert self.due(utc(2026, 3, 2, 18), not_before=utc(2026, 3, 2, 17, 30)) == []

    def test_expired_slot_is_marked_expired(self) -> None:
        """Found four days late, a three-day slot is expired (to be recorded missed)."""
        (slot,) = self.due(utc(2026, 3, 6, 17, 0))
        assert slot.expired

    def test_downtime_catch_up_yields_each_overdue_slot_once(self) -> None:
        """After two weeks away, the two older slots are expired and the newest is still open."""
        slots = self.due(utc(2026, 3, 17, 12), not_before=utc(2026, 3, 1))
        assert [s.slot_at for s in slots] == [
            utc(2026, 3, 2, 17),
            utc(2026, 3, 9, 17),
            utc(2026, 3, 16, 17),
        ]
        assert [s.expired for s in slots] == [True, True, False]
        later = self.due(utc(2026, 3, 20, 12), not_before=utc(2026, 3, 1))
        assert [s.expired for s in later] == [True, True, True]

    def test_catch_up_is_bounded(self) -> None:
        """A very long outage records at most CATCH_UP_SLOTS slots, the newest ones."""
        slots = self.due(utc(2027, 1, 1), not_before=utc(2026, 1, 1))
        assert len(slots) == timing.CATCH_UP_SLOTS
        assert slots[-1].slot_at == utc(2026, 12, 28, 17)

    def test_moving_the_weekday_never_asks_twice_within_six_days(self) -> None:
        """Answered Monday, moved to Thursday: this Thursday is skipped, next Thursday is due."""
        monday = utc(2026, 3, 2, 17)
        assert (
            self.due(utc(2026, 3, 5, 18), weekly=THURSDAY_18_BERLIN, previous_slot_at=monday) == []
        )
        (slot,) = self.due(utc(2026, 3, 12, 18), weekly=THURSDAY_18_BERLIN, previous_slot_at=monday)
        assert slot.slot_at == utc(2026, 3, 12, 17)

    def test_expiry_never_outlives_the_next_slot(self) -> None:
        """With a ten-day expiry, a week's questionnaire closes when the next week's opens."""
        (slot,) = self.due(utc(2026, 3, 2, 17), expiry_days=10)
        assert slot.expires_at == utc(2026, 3, 9, 17)

    @pytest.mark.parametrize(
        ("zone", "start", "weeks_local"),
        [
            (BERLIN, utc(2026, 3, 16), "2026-03-29"),  # spring forward, last Sunday of March
            (BERLIN, utc(2026, 10, 12), "2026-10-25"),  # fall back, last Sunday of October
            (NEW_YORK, utc(2026, 2, 23), "2026-03-08"),  # spring forward, 2nd Sunday of March
            (NEW_YORK, utc(2026, 10, 19), "2026-11-01"),  # fall back, 1st Sunday of November
        ],
    )
    def test_weekly_slot_keeps_local_time_across_dst(
        self, zone: str, start: datetime, weeks_local: str
    ) -> None:
        """Ticking hourly through a DST change opens one slot a week, each at 18:00 local."""
        opened: list[datetime] = []
        now = start
        while now < start + timedelta(weeks=3):
            for slot in timing.due_slots(
                now=now,
                weekly=WeeklySlot(6, time(18, 0), zone),
                not_before=start,
                previous_slot_at=opened[-1] if opened else None,
                expiry_days=3,
            ):
                opened.append(slot.slot_at)
            now += timedelta(hours=1)
        assert [local(s, zone)[11:16] for s in opened] == ["18:00"] * 3
        assert weeks_local in [local(s, zone)[:10] for s in opened]
        gaps = {opened[i + 1] - opened[i] for i in range(2)}
        assert gaps <= {timedelta(days=7), timedelta(days=7, hours=1), timedelta(days=6, hours=23)}

    def test_nonexistent_slot_time_moves_forward_by_the_gap(self) -> None:
        """A Sunday 02:30 slot in Berlin on the spring-forward night is opened at 03:30 CEST."""
        (slot,) = timing.due_slots(
            now=utc(2026, 3, 29, 1, 30),
            weekly=WeeklySlot(6, time(2, 30), BERLIN),
            not_before=utc(2026, 3, 28),
            previous_slot_at=None,
            expiry_days=3,
        )
        assert local(slot.slot_at, BERLIN) == "2026-03-29 03:30 CEST"

    def test_repeated_slot_time_is_opened_once_at_its_first_occurrence(self) -> None:
        """A Sunday 02:30 slot on the fall-back night is due at the first 02:30 and not again."""
        common = {
            "weekly": WeeklySlot(6, time(2, 30), BERLIN),
            "not_before": utc(2026, 10, 24),
            "expiry_days": 3,
        }
        (slot,) = timing.due_slots(now=utc(2026, 10, 25, 0, 30), previous_slot_at=None, **common)  # type: ignore[arg-type]
        assert local(slot.slot_at, BERLIN) == "2026-10-25 02:30 CEST"
        again = timing.due_slots(
            now=utc(2026, 10, 25, 1, 30), previous_slot_at=slot.slot_at, **common
        )  # type: ignore[arg-type]
        assert again == []


class TestNextCheck:
    """`next_check_at` is when a tick must look at a patient again: never after a slot falls due."""

    def check(self, now: datetime, **overrides: object) -> datetime:
        values: dict[str, object] = {
            "now": now,
            "weekly": MONDAY_18_BERLIN,
            "not_before": utc(2026, 3, 1),
            "previous_slot_at": None,
        }
        values.update(overrides)
        return timing.next_check_at(**values)  # type: ignore[arg-type]

    def test_nothing_due_waits_for_the_coming_slot(self) -> None:
        """On Monday morning the next check is that evening's 18:00 Berlin slot."""
        assert self.check(utc(2026, 3, 2, 9)) == utc(2026, 3, 2, 17)

    def test_after_opening_a_slot_the_following_one(self) -> None:
        """Once this week's slot has its administration, the next check is next week's slot."""
        monday = utc(2026, 3, 2, 17)
        assert self.check(monday, previous_slot_at=monday) == utc(2026, 3, 9, 17)

    def test_the_slot_instant_itself_is_not_waited_for_again(self) -> None:
        """A check at the very slot instant, with no administration yet, points past it only
        when the slot is not due (here: before the patient became active)."""
        monday = utc(2026, 3, 2, 17)
        assert self.check(monday, not_before=monday + timedelta(minutes=1)) == utc(2026, 3, 9, 17)

    def test_moving_the_weekday_waits_six_days_after_the_last_slot(self) -> None:
        """Answered Monday, moved to Thursday: the check is next Thursday, not this one."""
        check = self.check(
            utc(2026, 3, 3, 9), weekly=THURSDAY_18_BERLIN, previous_slot_at=utc(2026, 3, 2, 17)
        )
        assert check == utc(2026, 3, 12, 17)

    def test_across_spring_forward_the_slot_keeps_its_local_time(self) -> None:
        """A Sunday 18:00 slot checked the week before the clocks change is 18:00 CEST."""
        check = self.check(
            utc(2026, 3, 22, 18),
            weekly=WeeklySlot(6, time(18, 0), BERLIN),
            previous_slot_at=utc(2026, 3, 22, 17),
        )
        assert local(check, BERLIN) == "2026-03-29 18:00 CEST"
        assert check == utc(2026, 3, 29, 16)

    def test_across_fall_back_the_slot_keeps_its_local_time(self) -> None:
        """In New York, a Sunday 18:00 slot the week the clocks go back is 18:00 EST."""
        check = self.check(
            utc(2026, 10, 25, 23),
            weekly=WeeklySlot(6, time(18, 0), NEW_YORK),
            not_before=utc(2026, 10, 1),
        )
        assert local(check, NEW_YORK) == "2026-11-01 18:00 EST"

    def test_a_finished_pause_waits_for_the_first_slot_after_it(self) -> None:
        """A pause that ended just after Monday's slot: that slot is not due, the next one is."""
        paused_until = utc(2026, 3, 16, 18)
        now = utc(2026, 3, 16, 18, 30)
        anchor = timing.schedule_anchor(
            activated_at=utc(2026, 1, 1), paused_until=paused_until, now=now
        )
        assert self.due_slots(now, anchor, utc(2026, 3, 2, 17)) == []
        check = self.check(now, not_before=anchor, previous_slot_at=utc(2026, 3, 2, 17))
        assert check == utc(2026, 3, 23, 17)

    def test_a_pause_still_running_gives_an_earlier_check_never_a_later_one(self) -> None:
        """While the pause runs its end is not yet the anchor: the check is the coming slot,
        earlier than needed (the tick just looks again), never past the first slot after it."""
        now = utc(2026, 3, 3, 9)
        anchor = timing.schedule_anchor(
            activated_at=utc(2026, 1, 1), paused_until=utc(2026, 3, 30), now=now
        )
        assert self.check(now, not_before=anchor) == utc(2026, 3, 9, 17)

    @staticmethod
    def due_slots(now: datetime, not_before: datetime, previous: datetime | None) -> list[datetime]:
        slots = timing.due_slots(
            now=now,
            weekly=MONDAY_18_BERLIN,
            not_before=not_before,
            previous_slot_at=previous,
            expiry_days=3,
        )
        return [slot.slot_at for slot in slots]

    @pytest.mark.parametrize(
        ("zone", "weekday", "at", "start"),
        [
            (BERLIN, 6, time(2, 30), utc(2026, 3, 9)),  # a slot in the spring-forward gap
            (BERLIN, 6, time(2, 30), utc(2026, 10, 5)),  # a slot in the repeated hour
            (NEW_YORK, 6, time(18, 0), utc(2026, 2, 20)),
            ("Australia/Lord_Howe", 0, time(9, 0), utc(2026, 3, 20)),  # a half-hour shift
        ],
    )
    def test_never_later_than_the_next_due_slot_across_dst(
        self, zone: str, weekday: int, at: time, start: datetime
    ) -> None:
        """Ticking every 10 minutes for five weeks across a DST change, opening what is due:
        each check computed when nothing was due is exactly the next instant a slot is due."""
        weekly = WeeklySlot(weekday, at, zone)
        previous: datetime | None = None
        check: datetime | None = None
        now = start
        while now < start + timedelta(weeks=5):
            due = timing.due_slots(
                now=now, weekly=weekly, not_before=start, previous_slot_at=previous, expiry_days=3
            )
            if due:
                assert check is None or check == due[0].slot_at <= now
                previous = due[-1].slot_at
            elif check is not None:
                assert now < check
            check = timing.next_check_at(
                now=now, weekly=weekly, not_before=start, previous_slot_at=previous
            )
            now += timedelta(minutes=10)
        assert previous is not None


class TestReminderTimes:
    def test_reminder_after_the_configured_hours(self) -> None:
        """An invitation at 18:00 gets its reminder 24 hours later, at 18:00 the next day."""
        at = timing.next_reminder_at(
            after=utc(2026, 3, 2, 17),
            reminder_after_hours=24,
            expires_at=utc(2026, 3, 5, 17),
            tz_name=BERLIN,
            quiet=QUIET,
        )
        assert at == utc(2026, 3, 3, 17)

    def test_reminder_due_in_quiet_hours_moves_to_their_end(self) -> None:
        """An invitation at 23:00 would be reminded at 23:00; it waits until 08:00 instead."""
        at = timing.next_reminder_at(
            after=utc(2026, 3, 2, 22),
            reminder_after_hours=24,
            expires_at=utc(2026, 3, 6),
            tz_name=BERLIN,
            quiet=QUIET,
        )
        assert at is not None
        assert local(at, BERLIN) == "2026-03-04 08:00 CET"

    def test_no_reminder_at_or_after_expiry(self) -> None:
        """A reminder that would come when the questionnaire closes is not scheduled."""
        assert (
            timing.next_reminder_at(
                after=utc(2026, 3, 2, 17),
                reminder_after_hours=72,
                expires_at=utc(2026, 3, 5, 17),
                tz_name=BERLIN,
                quiet=QUIET,
            )
            is None
        )


class TestSnooze:
    def test_two_hours(self) -> None:
        """ "In 2 hours" at 14:00 is 16:00."""
        assert timing.snooze_until(
            "2h", now=utc(2026, 3, 3, 13), tz_name=BERLIN, quiet=QUIET
        ) == utc(2026, 3, 3, 15)

    def test_two_hours_into_the_night_waits_for_morning(self) -> None:
        """ "In 2 hours" at 21:00 would be 23:00, so it comes at 08:00."""
        at = timing.snooze_until("2h", now=utc(2026, 3, 3, 20), tz_name=BERLIN, quiet=QUIET)
        assert local(at, BERLIN) == "2026-03-04 08:00 CET"

    def test_tomorrow_keeps_the_wall_clock_across_dst(self) -> None:
        """ "Tomorrow" on the Saturday before spring-forward keeps 18:00 local, 23 hours later."""
        now = utc(2026, 3, 28, 17)  # Saturday 18:00 CET
        at = timing.snooze_until("1d", now=now, tz_name=BERLIN, quiet=QUIET)
        assert local(at, BERLIN) == "2026-03-29 18:00 CEST"
        assert at - now == timedelta(hours=23)

    def test_unknown_choice_is_refused(self) -> None:
        """Only the two offered snooze choices exist."""
        with pytest.raises(ValueError, match="snooze"):
            timing.snooze_until("3w", now=utc(2026, 3, 3), tz_name=BERLIN, quiet=QUIET)


class TestWindowAndAnchor:
    def test_window_starts_a_little_before_the_last_handled_instant(self) -> None:
        """Slots up to the previous tick were seen; a small overlap guards clock differences."""
        start = timing.slot_window_start(handled_until=utc(2026, 3, 2, 17), now=utc(2026, 3, 9))
        assert start == utc(2026, 3, 2, 17) - timing.SLOT_WINDOW_OVERLAP

    def test_a_scheduler_that_never_ran_has_no_downtime(self) -> None:
        """Without any earlier tick, only slots of the last few minutes count."""
        now = utc(2026, 3, 2, 17)
        assert timing.slot_window_start(handled_until=None, now=now) == (
            now - timing.SLOT_WINDOW_OVERLAP
        )

    def test_a_finished_pause_anchors_the_schedule(self) -> None:
        """Weeks spent paused are not due: the anchor is the end of the pause."""
        anchor = timing.schedule_anchor(
            activated_at=utc(2026, 1, 1), paused_until=utc(2026, 3, 1), now=utc(2026, 3, 2)
        )
        assert anchor == utc(2026, 3, 1)

    def test_naive_datetimes_are_refused(self) -> None:
        """A datetime without a zone is a bug, caught at once."""
        with pytest.raises(ValueError, match="aware"):
            QUIET.contains(datetime(2026, 3, 2, 12), BERLIN)
