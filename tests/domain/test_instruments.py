"""Specification of the item catalogue and of how typed and button answers are read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.instruments import (
    INSTRUMENT_VERSION,
    ITEM_CODES,
    STIFFNESS_CHOICES_MINUTES,
    Item,
    ItemKind,
    ParsedAnswer,
    button_answer,
    item,
    next_item,
    parse_typed_answer,
    previous_item,
)
from bot.domain.scoring import stiffness_minutes_to_score

# Modest example counts keep the whole suite fast.
properties = settings(max_examples=150, deadline=None)

D = Decimal
NRS_CODES = ("q1", "q2", "q3", "q4", "q5", "patient_global")


def duration(minutes: str, score: str) -> ParsedAnswer:
    """The answer expected for a stiffness duration."""
    return ParsedAnswer(raw_value=D(minutes), score=D(score))


class TestItemCatalogue:
    """The items, their order and their kinds (clinical spec §1)."""

    def test_asks_basdai_items_then_the_patient_global(self) -> None:
        """The order is BASDAI 1-6, then the ASDAS patient global."""
        assert ITEM_CODES == ("q1", "q2", "q3", "q4", "q5", "q6", "patient_global")

    @pytest.mark.parametrize("code", NRS_CODES)
    def test_rating_items_are_numeric_rating_scales(self, code: str) -> None:
        """Items 1-5 and the patient global are 0-10 ratings."""
        assert item(code) == Item(code=code, kind=ItemKind.NRS)

    def test_item_six_is_a_duration(self) -> None:
        """Item 6 is answered as a duration, not a rating."""
        assert item("q6") == Item(code="q6", kind=ItemKind.DURATION)

    def test_items_are_immutable(self) -> None:
        """An item from the catalogue cannot be changed by a caller."""
        with pytest.raises(AttributeError):
            item("q1").kind = ItemKind.DURATION  # type: ignore[misc]

    @pytest.mark.parametrize("code", ["q7", "Q1", "", "patient-global"])
    def test_rejects_an_unknown_code(self, code: str) -> None:
        """An unknown item code is a programming error, named in the message."""
        with pytest.raises(ValueError, match=f"unknown item code '{code}'"):
            item(code)

    def test_walks_forward_through_the_items(self) -> None:
        """next_item visits every item once and ends with None."""
        visited = ["q1"]
        while (following := next_item(visited[-1])) is not None:
            visited.append(following)
        assert tuple(visited) == ITEM_CODES

    def test_walks_backward_through_the_items(self) -> None:
        """previous_item goes back from the patient global to q1, then None."""
        visited = ["patient_global"]
        while (earlier := previous_item(visited[-1])) is not None:
            visited.append(earlier)
        assert tuple(reversed(visited)) == ITEM_CODES

    def test_neighbours_of_an_unknown_code_are_an_error(self) -> None:
        """Navigation from an unknown item fails loudly rather than restarting."""
        with pytest.raises(ValueError, match="unknown item code"):
            next_item("q9")
        with pytest.raises(ValueError, match="unknown item code"):
            previous_item("q9")

    def test_records_the_instrument_version(self) -> None:
        """Every answer can be traced to the instrument version it was asked in."""
        assert INSTRUMENT_VERSION == "basdai-1994+asdas-pg-v1"

    def test_offers_quarter_hour_duration_buttons_up_to_two_hours(self) -> None:
        """Buttons run 0-120 minutes in 15-minute steps; 120 means 2 h or more."""
        assert STIFFNESS_CHOICES_MINUTES == (0, 15, 30, 45, 60, 75, 90, 105, 120)


class TestTypedRating:
    """A typed rating is a whole number 0-10 (clinical spec §1)."""

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("7", 7),
            (" 7 ", 7),
            ("７", 7),
            ("１０", 10),
            ("0", 0),
            ("10", 10),
            ("07", 7),
            ("7/10", 7),
            ("7 / 10", 7),
        ],
    )
    def test_accepts_whole_numbers_from_zero_to_ten(self, text: str, value: int) -> None:
        """Spaces, full-width digits and an "/10" suffix are tolerated."""
        assert parse_typed_answer("q1", text) == ParsedAnswer(D(value), D(value))

    @pytest.mark.parametrize(
        "text",
        ["7.5", "7,5", "11", "-1", "seven", "七", "", "   ", "7 8", "+7", "٧", "10/10/10", "1e1"],
    )
    def test_rejects_anything_else(self, text: str) -> None:
        """Fractions, out-of-range numbers and words are refused so the patient is re-asked."""
        assert parse_typed_answer("q2", text) is None

    def test_rejects_very_long_text(self) -> None:
        """A pasted paragraph is not an answer."""
        assert parse_typed_answer("q1", " " * 100 + "7") is None

    @properties
    @given(value=st.integers(min_value=0, max_value=10), code=st.sampled_from(NRS_CODES))
    def test_every_rating_round_trips(self, value: int, code: str) -> None:
        """Each of 0-10 typed as digits is read back as itself, raw and score alike."""
        assert parse_typed_answer(code, str(value)) == ParsedAnswer(D(value), D(value))

    def test_rejects_an_unknown_item(self) -> None:
        """The item comes from our own state, so an unknown one is an error, not a re-prompt."""
        with pytest.raises(ValueError, match="unknown item code"):
            parse_typed_answer("q0", "5")


class TestTypedDuration:
    """Item 6 accepts a typed duration, stores the minutes and scores minutes / 12 (spec §1)."""

    @pytest.mark.parametrize(
        ("text", "minutes"),
        [
            ("90", "90"),
            ("0", "0"),
            ("45 min", "45"),
            ("45 minutes", "45"),
            ("45m", "45"),
            ("45 MIN", "45"),
            ("1.5 h", "90"),
            ("1,5 h", "90"),
            ("1.5 hours", "90"),
            ("1 hour", "60"),
            ("2h", "120"),
            ("1h 30", "90"),
            ("1h30", "90"),
            ("1 h 30 min", "90"),
            ("1 hour and 30 minutes", "90"),
            ("1:30", "90"),
            ("0:45", "45"),
            ("about 30 min", "30"),
            ("30 min.", "30"),
            ("１：３０", "90"),
            ("1.25 h", "75"),
            ("0.1 h", "6"),
        ],
    )
    def test_reads_english_and_numeric_durations(self, text: str, minutes: str) -> None:
        """Minutes, decimal hours (point or comma), hours and minutes, and h:mm are understood."""
        answer = parse_typed_answer("q6", text)
        assert answer is not None
        assert answer.raw_value == D(minutes)

    @pytest.mark.parametrize(
        ("text", "minutes"),
        [
            ("30分钟", "30"),
            ("30分", "30"),
            ("1.5小时", "90"),
            ("1小时30分钟", "90"),
            ("1 小时 30 分钟", "90"),
            ("两小时", "120"),
            ("一小时", "60"),
            ("十五分钟", "15"),
            ("四十五分钟", "45"),
            ("半小时", "30"),
            ("半个小时", "30"),
            ("一个半小时", "90"),
            ("1小时半", "90"),
            ("一小时三十分钟", "90"),
            ("2小時", "120"),
            ("30分钟左右", "30"),
            ("大约1小时", "60"),
        ],
    )
    def test_reads_chinese_durations(self, text: str, minutes: str) -> None:
        """Chinese units, numerals and "half" (半) are understood."""
        answer = parse_typed_answer("q6", text)
        assert answer is not None
        assert answer.raw_value == D(minutes)

    @pytest.mark.parametrize(
        ("text", "minutes"),
        [
            ("45 Minuten", "45"),
            ("45 Min.", "45"),
            ("1 Std.", "60"),
            ("1,5 Std.", "90"),
            ("1 Stunde", "60"),
            ("2 Stunden", "120"),
            ("1 Stunde 30 Minuten", "90"),
            ("1 Std. und 15 Min.", "75"),
            ("etwa 30 Minuten", "30"),
            ("ca. 1 Std.", "60"),
            ("ungefähr 1,5 Stunden", "90"),
        ],
    )
    def test_reads_german_durations(self, text: str, minutes: str) -> None:
        """German units (Minuten, Min., Stunde(n), Std.), the decimal comma and hedges
        (etwa, ca., ungefähr) are understood, as the German hint invites."""
        answer = parse_typed_answer("q6", text)
        assert answer is not None
        assert answer.raw_value == D(minutes)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("30 min", duration("30", "2.5")),
            ("1 h", duration("60", "5")),
            ("1.5 h", duration("90", "7.5")),
            ("2 h", duration("120", "10")),
            ("3 h", duration("180", "10")),
        ],
    )
    def test_stores_the_minutes_given_and_the_capped_score(
        self, text: str, expected: ParsedAnswer
    ) -> None:
        """Both values are kept; three hours is stored as 180 minutes but scores 10."""
        assert parse_typed_answer("q6", text) == expected

    def test_stores_whole_minutes_without_a_trailing_decimal(self) -> None:
        """1.5 h is stored as 90, not 90.0."""
        answer = parse_typed_answer("q6", "1.5 h")
        assert answer is not None
        assert str(answer.raw_value) == "90"

    def test_accepts_a_full_day(self) -> None:
        """24 hours is the longest duration accepted."""
        assert parse_typed_answer("q6", "24 h") == duration("1440", "10")
        assert parse_typed_answer("q6", "1440") == duration("1440", "10")

    @pytest.mark.parametrize(
        "text",
        [
            "1441",
            "25 h",
            "24:01",
            "-5",
            "-1 h",
            "",
            "  ",
            "abc",
            "all morning",
            "1.5",
            "1h 75",
            "1:75",
            "1.5h 30",
            "一百分钟",
            "二二分钟",
            "30 sec",
        ],
    )
    def test_rejects_impossible_or_unreadable_durations(self, text: str) -> None:
        """Negative, longer than a day, ambiguous or unreadable answers are re-asked."""
        assert parse_typed_answer("q6", text) is None

    def test_reads_a_bare_number_as_minutes(self) -> None:
        """A bare whole number is minutes, as the question asks for minutes."""
        assert parse_typed_answer("q6", "7") == ParsedAnswer(D(7), stiffness_minutes_to_score(7))

    def test_rejects_a_bare_decimal_as_ambiguous(self) -> None:
        """A lone 1.5 could mean hours or minutes, so the patient is asked again."""
        assert parse_typed_answer("q6", "1.5") is None

    @properties
    @given(minutes=st.integers(min_value=0, max_value=1440))
    def test_any_whole_minutes_with_a_unit_round_trip(self, minutes: int) -> None:
        """Any whole number of minutes up to a day, typed with "min", is stored and scored."""
        answer = parse_typed_answer("q6", f"{minutes} min")
        assert answer is not None
        assert answer.raw_value == minutes
        assert answer.score == stiffness_minutes_to_score(minutes)

    @properties
    @given(text=st.text(max_size=40), code=st.sampled_from(ITEM_CODES))
    def test_never_raises_on_arbitrary_text(self, text: str, code: str) -> None:
        """Whatever a patient types, the answer is accepted or refused, never a crash."""
        answer = parse_typed_answer(code, text)
        assert answer is None or 0 <= answer.score <= 10


class TestButtonAnswer:
    """Button values are checked against what the item offers, so forged taps change nothing."""

    @pytest.mark.parametrize("code", NRS_CODES)
    def test_accepts_every_rating_button(self, code: str) -> None:
        """Each of 0-10 is a valid rating button, raw value and score alike."""
        for value in range(11):
            assert button_answer(code, value) == ParsedAnswer(D(value), D(value))

    @pytest.mark.parametrize("value", [-1, 11, 100])
    def test_refuses_a_rating_outside_the_scale(self, value: int) -> None:
        """A forged rating outside 0-10 is refused."""
        assert button_answer("q1", value) is None

    @pytest.mark.parametrize(
        ("minutes", "score"),
        [
            (0, "0"),
            (15, "1.25"),
            (30, "2.5"),
            (45, "3.75"),
            (60, "5"),
            (75, "6.25"),
            (90, "7.5"),
            (105, "8.75"),
            (120, "10"),
        ],
    )
    def test_accepts_every_duration_button(self, minutes: int, score: str) -> None:
        """Each duration button stores its minutes and an exact 0-10 value."""
        assert button_answer("q6", minutes) == duration(str(minutes), score)

    @pytest.mark.parametrize("minutes", [5, 20, 121, 180, -15, 10])
    def test_refuses_a_duration_no_button_offers(self, minutes: int) -> None:
        """Only the offered durations are valid button values for item 6."""
        assert button_answer("q6", minutes) is None

    @pytest.mark.parametrize("code", ["q7", "", "Q1"])
    def test_refuses_an_unknown_item(self, code: str) -> None:
        """A forged item code is refused rather than raising."""
        assert button_answer(code, 5) is None

    @pytest.mark.parametrize("value", [True, False, 5.0, "5", None])
    def test_refuses_a_value_that_is_not_an_integer(self, value: Any) -> None:
        """Booleans, floats and strings are not button values."""
        assert button_answer("q1", value) is None
