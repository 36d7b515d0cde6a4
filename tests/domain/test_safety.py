"""Specification of the safety check-in's questions and red-flag actions (clinical spec §8)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.safety import (
    QUESTION_CODES,
    PatientAdvice,
    action_for,
    advice_for,
    checkin_applies,
    checkin_by_default,
    next_question,
    previous_question,
)
from bot.domain.treatment import StopReason, TherapyClass, TherapyEpisode

TODAY = date(2026, 3, 2)


def on(therapy_class: TherapyClass, stop: date | None = None) -> TherapyEpisode:
    return TherapyEpisode(
        drug="x",
        therapy_class=therapy_class,
        start=date(2026, 1, 5),
        stop=stop,
        stop_reason=None if stop is None else StopReason.OTHER,
    )


class TestQuestions:
    def test_the_eight_questions_in_the_spec_order(self) -> None:
        assert QUESTION_CODES == (
            "fever_infection", "hospital", "zoster", "eye", "vte_chest", "bowel", "skin", "doses",
        )  # fmt: skip

    def test_next_and_previous_walk_the_list(self) -> None:
        assert next_question(None) == "fever_infection"
        assert next_question("vte_chest") == "bowel"
        assert next_question("doses") is None
        assert previous_question("fever_infection") is None
        assert previous_question("hospital") == "fever_infection"

    def test_unknown_code_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown safety question"):
            action_for("headache", True)


class TestRedFlags:
    @pytest.mark.parametrize(
        ("code", "alert", "advice"),
        [
            ("fever_infection", True, PatientAdvice.CONTACT_CLINIC_TODAY),
            ("hospital", True, PatientAdvice.NONE),
            ("zoster", True, PatientAdvice.CONTACT_CLINIC_TODAY),
            ("eye", True, PatientAdvice.EYE_DOCTOR_TODAY),
            ("vte_chest", True, PatientAdvice.CALL_EMERGENCY),
            ("bowel", False, PatientAdvice.NONE),
            ("skin", False, PatientAdvice.NONE),
            ("doses", False, PatientAdvice.NONE),
        ],
    )
    def test_yes_acts_as_the_table_says(
        self, code: str, alert: bool, advice: PatientAdvice
    ) -> None:
        """Each "yes" alerts the physician now or goes to the digest, with the §8 advice."""
        action = action_for(code, True)
        assert action is not None
        assert (action.alert_physician_now, action.advice, action.digest_only) == (
            alert, advice, not alert,
        )  # fmt: skip

    def test_no_sets_off_nothing(self) -> None:
        assert all(action_for(code, False) is None for code in QUESTION_CODES)

    def test_most_urgent_advice_first_once_each(self) -> None:
        """Chest pain and fever together: emergency services first, then the clinic today."""
        assert advice_for(["fever_infection", "vte_chest", "zoster", "skin"]) == (
            PatientAdvice.CALL_EMERGENCY,
            PatientAdvice.CONTACT_CLINIC_TODAY,
        )


class TestWhoIsAsked:
    @pytest.mark.parametrize(
        ("therapy_class", "asked"),
        [
            (TherapyClass.TNF_INHIBITOR, True),
            (TherapyClass.IL17_INHIBITOR, True),
            (TherapyClass.JAK_INHIBITOR, True),
            (TherapyClass.NSAID, False),
            (TherapyClass.CSDMARD, False),
            (TherapyClass.GLUCOCORTICOID, False),
        ],
    )
    def test_on_by_default_for_open_tnf_il17_jak(
        self, therapy_class: TherapyClass, asked: bool
    ) -> None:
        assert checkin_by_default([on(therapy_class)], today=TODAY) is asked

    def test_a_stopped_episode_does_not_count(self) -> None:
        stopped = on(TherapyClass.JAK_INHIBITOR, stop=date(2026, 3, 1))
        assert not checkin_by_default([stopped], today=TODAY)

    def test_clinic_setting_overrides_the_default(self) -> None:
        jak = [on(TherapyClass.JAK_INHIBITOR)]
        assert not checkin_applies(jak, today=TODAY, clinic_setting=False)
        assert checkin_applies([], today=TODAY, clinic_setting=True)
        assert checkin_applies(jak, today=TODAY, clinic_setting=None)
