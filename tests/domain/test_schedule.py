"""Weekly slots in the patient's own time zone, across daylight-saving transitions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.schedule import local_day_bounds, local_slot, next_slot_after

BERLIN = "Europe/Berlin"
SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


class TestNextSlotAfter:
    def test_later_the_same_day(self) -> None:
        """A Monday-morning moment gives that Monday's evening slot."""
        # 2026-03-02 is a Monday; 18:00 in Berlin (CET, +1) is 17:00 UTC.
        assert next_slot_after(utc(2026, 3, 2, 9), 0, time(18, 0), BERLIN) == utc(2026, 3, 2, 17)

    def test_strictly_after_the_moment(self) -> None:
        """A moment exactly on the slot gives the next week's slot."""
        slot = utc(2026, 3, 2, 17)
        assert next_slot_after(slot, 0, time(18, 0), BERLIN) == slot + timedelta(days=7)
        assert next_slot_after(slot - timedelta(microseconds=1), 0, time(18, 0), BERLIN) == slot

    def test_later_in_the_week(self) -> None:
        """A Thursday slot seen on Monday falls on that week's Thursday."""
        assert next_slot_after(utc(2026, 3, 2, 9), 3, time(8, 30), BERLIN) == utc(2026, 3, 5, 7, 30)

    def test_local_date_differs_from_utc_date(self) -> None:
        """Sunday 23:00 UTC is already Monday in Shanghai, so Monday 07:00 there is hours away."""
        moment = utc(2026, 3, 1, 23)  # Monday 07:00 in Shanghai (+8)
        assert next_slot_after(moment, 0, time(8, 0), SHANGHAI) == utc(2026, 3, 2, 0)
        assert next_slot_after(moment, 6, time(20, 0), SHANGHAI) == utc(2026, 3, 8, 12)

    def test_nonexistent_local_time_moves_forward_by_the_gap(self) -> None:
        """02:30 on the spring-forward Sunday does not exist in Berlin and becomes 03:30 CEST."""
        slot = next_slot_after(utc(2026, 3, 28, 12), 6, time(2, 30), BERLIN)
        assert slot == utc(2026, 3, 29, 1, 30)
        assert slot.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") == "03:30 CEST"

    def test_repeated_local_time_takes_the_first_occurrence(self) -> None:
        """02:30 on the fall-back Sunday happens twice in Berlin; the CEST one is meant."""
        slot = next_slot_after(utc(2026, 10, 24, 12), 6, time(2, 30), BERLIN)
        assert slot == utc(2026, 10, 25, 0, 30)
        assert slot.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") == "02:30 CEST"

    def test_wall_clock_time_is_kept_across_a_transition(self) -> None:
        """After the clocks change the slot stays 18:00 local, one hour earlier in UTC."""
        before = next_slot_after(utc(2026, 3, 2, 9), 0, time(18, 0), NEW_YORK)
        assert before == utc(2026, 3, 2, 23)  # EST, -5
        after = next_slot_after(utc(2026, 3, 9, 9), 0, time(18, 0), NEW_YORK)
        assert after == utc(2026, 3, 9, 22)  # EDT, -4

    def test_refuses_naive_moments_and_bad_weekdays(self) -> None:
        """A naive moment or a weekday outside 0–6 is a programming error."""
        with pytest.raises(ValueError, match="aware"):
            next_slot_after(datetime(2026, 3, 2, 9), 0, time(18), BERLIN)
        with pytest.raises(ValueError, match="weekday"):
            next_slot_after(utc(2026, 3, 2, 9), 7, time(18), BERLIN)

    @given(
        moment=st.datetimes(
            min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
        ),
        weekday=st.integers(0, 6),
        hour=st.integers(0, 23),
        minute=st.sampled_from([0, 15, 30, 45]),
        zone=st.sampled_from([BERLIN, SHANGHAI, NEW_YORK, "Australia/Lord_Howe", "UTC"]),
    )
    def test_within_a_week_on_the_right_weekday(
        self, moment: datetime, weekday: int, hour: int, minute: int, zone: str
    ) -> None:
        """The slot is after the moment, at most a week (plus a DST hour) away, on its weekday."""
        slot = next_slot_after(moment, weekday, time(hour, minute), zone)
        assert moment < slot <= moment + timedelta(days=7, hours=1)
        local = slot.astimezone(ZoneInfo(zone))
        assert local.weekday() == weekday
        assert slot.tzinfo is UTC


class TestLocalHelpers:
    def test_local_slot_is_utc(self) -> None:
        """A local wall-clock time is turned into its UTC instant."""
        assert local_slot(datetime(2026, 7, 1).date(), time(9), BERLIN) == utc(2026, 7, 1, 7)

    def test_local_day_bounds(self) -> None:
        """The local day of a Berlin evening runs from 23:00 UTC the day before to 23:00 UTC."""
        start, end = local_day_bounds(utc(2026, 3, 2, 20), BERLIN)
        assert (start, end) == (utc(2026, 3, 1, 23), utc(2026, 3, 2, 23))
