"""The questionnaire state machine: forward, back, summary, correction, confirmation."""

from __future__ import annotations

import pytest

from bot.domain.flow import (
    SUMMARY,
    Answer,
    Back,
    Change,
    Completed,
    Confirm,
    Start,
    State,
    can_go_back,
    complete,
    first_position,
    progress,
    step,
)
from bot.domain.instruments import ITEM_CODES

ALL = set(ITEM_CODES)


class TestStart:
    def test_start_asks_the_first_item(self) -> None:
        """A fresh questionnaire starts at BASDAI question 1."""
        assert step(State(None), Start(), set()) == State("q1")
        assert first_position() == "q1"

    def test_start_resumes_where_it_stands(self) -> None:
        """Starting again never moves a questionnaire under way."""
        assert step(State("q4"), Start(), {"q1", "q2", "q3"}) == State("q4")
        assert step(State(SUMMARY), Start(), ALL) == State(SUMMARY)


class TestAnswer:
    def test_items_in_order_then_summary(self) -> None:
        """Answers move through q1–q6 and the patient global, then to the summary."""
        state = step(State(None), Start(), set())
        seen = []
        answered: set[str] = set()
        while isinstance(state, State) and state.position != SUMMARY:
            assert state.position is not None
            seen.append(state.position)
            answered.add(state.position)
            state = step(state, Answer(state.position), answered)
        assert seen == list(ITEM_CODES)
        assert state == State(SUMMARY)

    def test_answer_for_another_item_is_refused(self) -> None:
        """A stale or forged answer for an item that is not current changes nothing."""
        assert step(State("q3"), Answer("q2"), {"q1", "q2"}) is None
        assert step(State(None), Answer("q1"), set()) is None
        assert step(State(SUMMARY), Answer("q1"), ALL) is None
        assert step(State("q3"), Answer("q9"), set()) is None


class TestBack:
    def test_back_goes_to_the_previous_item(self) -> None:
        """Back from question 3 shows question 2 again."""
        assert step(State("q3"), Back("q3"), {"q1", "q2"}) == State("q2")

    def test_no_back_from_the_first_item(self) -> None:
        """The first question has no Back button, so a forged one is refused."""
        assert step(State("q1"), Back("q1"), set()) is None
        assert not can_go_back(State("q1"))
        assert can_go_back(State("q2"))
        assert not can_go_back(State(SUMMARY))

    def test_stale_back_is_refused(self) -> None:
        """A Back button from an earlier question does nothing."""
        assert step(State("q4"), Back("q2"), {"q1", "q2", "q3"}) is None

    def test_back_during_a_correction_returns_to_the_summary(self) -> None:
        """Correcting one answer, Back abandons the correction."""
        state = State("q5", return_to_summary=True)
        assert can_go_back(state)
        assert step(state, Back("q5"), ALL) == State(SUMMARY)


class TestSummary:
    def test_change_then_back_to_summary(self) -> None:
        """Changing an answer asks that item and returns to the summary after it."""
        state = step(State(SUMMARY), Change("q2"), ALL)
        assert state == State("q2", return_to_summary=True)
        assert step(state, Answer("q2"), ALL) == State(SUMMARY)

    def test_change_only_from_the_summary(self) -> None:
        """An item picker button pressed mid-questionnaire is refused."""
        assert step(State("q3"), Change("q1"), {"q1", "q2"}) is None
        assert step(State(SUMMARY), Change("q8"), ALL) is None

    def test_confirm_completes(self) -> None:
        """Confirming a summary with every answer completes the questionnaire."""
        assert step(State(SUMMARY), Confirm(), ALL) == Completed()

    def test_confirm_needs_every_answer_and_the_summary(self) -> None:
        """Confirm is refused away from the summary or with an answer missing."""
        assert step(State("patient_global"), Confirm(), ALL) is None
        assert step(State(SUMMARY), Confirm(), ALL - {"q4"}) is None
        assert complete(ALL)
        assert not complete(ALL - {"patient_global"})


class TestProgress:
    @pytest.mark.parametrize(("item", "number"), [("q1", 1), ("q6", 6), ("patient_global", 7)])
    def test_progress(self, item: str, number: int) -> None:
        """Questions are numbered from 1 of 7."""
        assert progress(item) == (number, 7)
