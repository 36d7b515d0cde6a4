"""The weekly safety check-in: its questions, who is asked, and what a "yes" sets off (spec §8).

These questions are spondybot's own, not a validated instrument; their texts live in
templates/ per language, and every stored answer records `CHECKIN_VERSION`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from bot.domain.treatment import MONITORED_CLASSES, TherapyEpisode

CHECKIN_VERSION: Final = "safety-checkin-v1"
"""Version of the question set, stored with every answer (spec §8)."""

NOTE_MAX_LENGTH: Final = 500


class PatientAdvice(StrEnum):
    """What the patient is told at once after a "yes" (clinical spec §8)."""

    NONE = "none"
    CONTACT_CLINIC_TODAY = "contact_clinic_today"
    EYE_DOCTOR_TODAY = "eye_doctor_today"
    CALL_EMERGENCY = "call_emergency"


@dataclass(frozen=True)
class SafetyQuestion:
    """One row of the §8 table: the code, whether a "yes" alerts the physician now, and the
    advice the patient gets at once. A "yes" that alerts nobody now goes to the digest."""

    code: str
    alert_physician_now: bool
    advice: PatientAdvice


QUESTIONS: Final[tuple[SafetyQuestion, ...]] = (
    SafetyQuestion("fever_infection", True, PatientAdvice.CONTACT_CLINIC_TODAY),
    SafetyQuestion("hospital", True, PatientAdvice.NONE),
    SafetyQuestion("zoster", True, PatientAdvice.CONTACT_CLINIC_TODAY),
    SafetyQuestion("eye", True, PatientAdvice.EYE_DOCTOR_TODAY),
    SafetyQuestion("vte_chest", True, PatientAdvice.CALL_EMERGENCY),
    SafetyQuestion("bowel", False, PatientAdvice.NONE),
    SafetyQuestion("skin", False, PatientAdvice.NONE),
    SafetyQuestion("doses", False, PatientAdvice.NONE),
)
"""The questions of clinical spec §8, in the order they are asked."""

QUESTION_CODES: Final = tuple(question.code for question in QUESTIONS)
_BY_CODE: Final = {question.code: question for question in QUESTIONS}


def question(code: str) -> SafetyQuestion:
    """The question with this code; an unknown code is a programming error or a forged button."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise ValueError(f"unknown safety question {code!r}") from None


def next_question(code: str | None) -> str | None:
    """The question after `code` (the first one for None), or None after the last."""
    if code is None:
        return QUESTION_CODES[0]
    index = QUESTION_CODES.index(question(code).code)
    return QUESTION_CODES[index + 1] if index + 1 < len(QUESTION_CODES) else None


def previous_question(code: str) -> str | None:
    """The question before `code`, or None for the first (clinical spec §8 asks in order)."""
    index = QUESTION_CODES.index(question(code).code)
    return QUESTION_CODES[index - 1] if index > 0 else None


@dataclass(frozen=True)
class RedFlagAction:
    """What one "yes" sets off: an immediate physician alert and/or advice to the patient."""

    code: str
    alert_physician_now: bool
    advice: PatientAdvice

    @property
    def digest_only(self) -> bool:
        return not self.alert_physician_now


def action_for(code: str, answer_yes: bool) -> RedFlagAction | None:
    """The §8 action for one answer: None for "no"; for "yes" the table's row."""
    if not answer_yes:
        return None
    row = question(code)
    return RedFlagAction(
        code=row.code, alert_physician_now=row.alert_physician_now, advice=row.advice
    )


def advice_for(answers_yes: Iterable[str]) -> tuple[PatientAdvice, ...]:
    """The advice a set of "yes" answers calls for, most urgent first and each once (§8)."""
    urgency = (
        PatientAdvice.CALL_EMERGENCY,
        PatientAdvice.EYE_DOCTOR_TODAY,
        PatientAdvice.CONTACT_CLINIC_TODAY,
    )
    wanted = {question(code).advice for code in answers_yes}
    return tuple(advice for advice in urgency if advice in wanted)


def checkin_by_default(episodes: Iterable[TherapyEpisode], *, today: date) -> bool:
    """Clinical spec §8: the check-in is on by default while a TNF, IL-17 or JAK inhibitor
    episode is open; the clinic may override it per patient."""
    return any(
        episode.therapy_class in MONITORED_CLASSES and episode.open_on(today)
        for episode in episodes
    )


def checkin_applies(
    episodes: Iterable[TherapyEpisode], *, today: date, clinic_setting: bool | None
) -> bool:
    """Whether a patient is asked the check-in: the clinic's per-patient setting when it has
    made one, otherwise the §8 default."""
    if clinic_setting is not None:
        return clinic_setting
    return checkin_by_default(episodes, today=today)
