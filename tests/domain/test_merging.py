"""Matching a lab value to a questionnaire: nearest within the window, earlier on a tie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.merging import LabCandidate, nearest_lab

DONE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def lab(lab_id: int, days: float) -> LabCandidate:
    return LabCandidate(lab_id, DONE + timedelta(days=days))


class TestNearestLab:
    def test_nearest_before_or_after_wins(self) -> None:
        """The sample closest in time is chosen, whichever side it is on."""
        assert nearest_lab([lab(1, -3), lab(2, 2)], DONE, WEEK) == lab(2, 2)
        assert nearest_lab([lab(1, -1), lab(2, 2)], DONE, WEEK) == lab(1, -1)

    def test_tie_prefers_the_earlier_sample(self) -> None:
        """Two samples equally far away: the earlier one is used (clinical spec §4)."""
        assert nearest_lab([lab(2, 3), lab(1, -3)], DONE, WEEK) == lab(1, -3)

    def test_window_edges_are_inclusive(self) -> None:
        """Exactly seven days away is inside the window; a second more is outside."""
        assert nearest_lab([lab(1, 7)], DONE, WEEK) == lab(1, 7)
        outside = LabCandidate(1, DONE + WEEK + timedelta(seconds=1))
        assert nearest_lab([outside], DONE, WEEK) is None

    def test_nothing_in_window(self) -> None:
        """No candidate means no lab, never an imputed one."""
        assert nearest_lab([], DONE, WEEK) is None
        assert nearest_lab([lab(1, -30)], DONE, WEEK) is None
