"""A patient's own account: onboarding (language, consent, time zone, weekly slot), settings,
language, pause and stop.

The step a patient is at lives in `Patient.onboarding_step`, so a button is checked against
it: a consent button pressed when consent is not being asked, or a forged "delete my data"
confirmation, changes nothing and the current step is shown again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import Enum
from functools import cache
from typing import Final, TypeVar
from zoneinfo import available_timezones

from sqlmodel import Session

from bot.config import check_timezone
from bot.context import AppContext
from bot.services.keyed import account_hash
from storage import audit, enrollment, patients
from storage.models import Patient, PatientStatus
from storage.patients import PatientRecord

CONSENT_VERSION: Final = "2026-12-v2"
"""Version of the consent text in templates/messages/consent.toml (`version` key)."""

STEP_LANGUAGE: Final = "language"
STEP_CONSENT: Final = "consent"
STEP_TIMEZONE: Final = "timezone"
STEP_WEEKDAY: Final = "weekday"
STEP_TIME: Final = "time"
STEP_DELETE_1: Final = "delete_1"
STEP_DELETE_2: Final = "delete_2"
ONBOARDING_STEPS: Final = (STEP_LANGUAGE, STEP_CONSENT, STEP_TIMEZONE, STEP_WEEKDAY, STEP_TIME)

COMMON_TIMEZONES: Final = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "UTC",
)
TIME_CHOICES: Final = (
    time(8, 0),
    time(9, 0),
    time(12, 0),
    time(17, 0),
    time(18, 0),
    time(19, 0),
    time(20, 0),
    time(21, 0),
)
PAUSE_WEEKS: Final = (1, 2, 4)
ACTOR: Final = "patient"

AnyPatientT = TypeVar("AnyPatientT", Patient, PatientRecord)

# Statuses in which a patient is linked and may use the bot.
_LINKED: Final = {
    PatientStatus.ONBOARDING.value,
    PatientStatus.ACTIVE.value,
    PatientStatus.PAUSED.value,
    PatientStatus.WITHDRAWN.value,
}


@dataclass(frozen=True)
class PatientView:
    """What the patient's own screens show about them."""

    patient_id: int
    language: str
    status: str
    step: str | None
    timezone: str
    weekday: int
    at: time
    clinic_timezone: str
    paused_until: datetime | None
    consented: bool


class AccountScreen(Enum):
    """Which account screen a reply is; `bot.present.account` words each one."""

    ONBOARDING_LANGUAGE = "onboarding.language"
    ONBOARDING_CONSENT = "onboarding.consent"
    ONBOARDING_TIMEZONE = "onboarding.timezone"
    ONBOARDING_WEEKDAY = "onboarding.weekday"
    ONBOARDING_TIME = "onboarding.time"
    ONBOARDING_DONE = "onboarding.done"
    SETTINGS_MENU = "settings.menu"
    SETTINGS_TIMEZONE = "settings.timezone"
    SETTINGS_WEEKDAY = "settings.weekday"
    SETTINGS_TIME = "settings.time"
    LANGUAGE_MENU = "language.menu"
    LANGUAGE_CHANGED = "language.changed"
    CONSENT_DECLINED = "consent.declined"
    PAUSE_MENU = "pause.menu"
    PAUSE_PAUSED = "pause.paused"
    PAUSE_RESUMED = "pause.resumed"
    STOP_MENU = "stop.menu"
    STOP_MENU_WITHDRAWN = "stop.menu_withdrawn"
    STOP_CONFIRM_1 = "stop.confirm_1"
    STOP_CONFIRM_2 = "stop.confirm_2"
    STOP_WITHDRAWN = "stop.withdrawn"
    STOP_DELETED = "stop.deleted"
    STOP_CANCELLED = "stop.cancelled"
    ACCOUNT_STOPPED = "account.stopped"
    ACCOUNT_HOME = "account.home"
    ACCOUNT_NOT_PATIENT = "account.not_patient"


_ONBOARDING_SCREENS: Final = {
    STEP_LANGUAGE: AccountScreen.ONBOARDING_LANGUAGE,
    STEP_CONSENT: AccountScreen.ONBOARDING_CONSENT,
    STEP_TIMEZONE: AccountScreen.ONBOARDING_TIMEZONE,
    STEP_WEEKDAY: AccountScreen.ONBOARDING_WEEKDAY,
    STEP_TIME: AccountScreen.ONBOARDING_TIME,
}


@dataclass(frozen=True)
class AccountReply:
    """Which account screen to show and for whom."""

    screen: AccountScreen
    patient: PatientView | None
    notice: str | None = None
    echo: str | None = None  # what the patient typed, when the screen quotes it back
    language: str | None = None  # for accounts without a patient record


def view_of(ctx: AppContext, patient: Patient) -> PatientView:
    """The patient as their own screens show them."""
    assert patient.id is not None
    return PatientView(
        patient_id=patient.id,
        language=patient.language,
        status=patient.status,
        step=patient.onboarding_step,
        timezone=patient.timezone,
        weekday=patient.schedule_weekday,
        at=patient.schedule_time,
        clinic_timezone=ctx.settings.clinic_timezone,
        paused_until=patient.paused_until,
        consented=patient.consent_at is not None,
    )


def linked_patient(session: Session, *, telegram_user_id: int, now: datetime) -> Patient | None:
    """The patient linked to a Telegram account, or None (in-transaction helper).

    A pause whose end has passed is lifted here, so the patient never has to resume by hand.
    """
    patient = patients.get_linked_patient_for_update(
        session=session, telegram_user_id=telegram_user_id
    )
    return lift_ended_pause(session, patient, now)


def lift_ended_pause(
    session: Session, patient: AnyPatientT | None, now: datetime
) -> AnyPatientT | None:
    """`patient` if it is a linked patient (None otherwise), with a pause whose end has passed
    lifted (see `linked_patient`), for a patient the caller has just read (the stored row, or
    the record a button press reads: then the lifted record is returned)."""
    if patient is None or patient.status not in _LINKED:
        return None
    if (
        patient.status != PatientStatus.PAUSED.value
        or patient.paused_until is None
        or patient.paused_until > now
    ):
        return patient
    if isinstance(patient, PatientRecord):
        stored = patients.get_patient(session=session, patient_id=patient.id)
        assert stored is not None
        lift_ended_pause(session, stored, now)
        return replace(patient, status=PatientStatus.ACTIVE.value, paused_until=None)
    patient.status = PatientStatus.ACTIVE.value
    patient.paused_until = None
    patients.save_patient(session=session, patient=patient)
    return patient


def not_a_patient(
    ctx: AppContext, session: Session, *, telegram_user_id: int, language: str = "en"
) -> AccountReply:
    """The reply for an account that is no (linked, not deleted) patient: the physician's
    introduction for a physician, the how-to-join text for anyone else."""
    link = enrollment.get_link_by_user(session=session, telegram_user_id=telegram_user_id)
    kind = "physician" if link is not None and link.physician_id is not None else "unknown"
    return AccountReply(AccountScreen.ACCOUNT_NOT_PATIENT, None, notice=kind, language=language)


def onboarding_screen(patient: Patient) -> AccountScreen:
    """The screen of the onboarding step a patient is at."""
    return _ONBOARDING_SCREENS.get(patient.onboarding_step or "", AccountScreen.ONBOARDING_LANGUAGE)


def current_screen(ctx: AppContext, *, telegram_user_id: int) -> AccountReply | None:
    """Where a linked patient stands (the onboarding step, or home); None if not a patient."""
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=ctx.clock.now())
        if patient is None:
            return None
        return _where(ctx, patient)


def _where(ctx: AppContext, patient: Patient, notice: str | None = None) -> AccountReply:
    if patient.status == PatientStatus.ONBOARDING.value:
        return AccountReply(onboarding_screen(patient), view_of(ctx, patient), notice)
    if patient.status == PatientStatus.WITHDRAWN.value:
        return AccountReply(AccountScreen.ACCOUNT_STOPPED, view_of(ctx, patient), notice)
    return AccountReply(AccountScreen.ACCOUNT_HOME, view_of(ctx, patient), notice)


def _next_onboarding_step(patient: Patient) -> None:
    step = patient.onboarding_step
    index = ONBOARDING_STEPS.index(step) if step in ONBOARDING_STEPS else 0
    if index + 1 < len(ONBOARDING_STEPS):
        patient.onboarding_step = ONBOARDING_STEPS[index + 1]
        return
    patient.onboarding_step = None
    patient.status = PatientStatus.ACTIVE.value


def _onboarding(patient: Patient) -> bool:
    return patient.status == PatientStatus.ONBOARDING.value


def _in_settings(patient: Patient) -> bool:
    return patient.status in {PatientStatus.ACTIVE.value, PatientStatus.PAUSED.value}


@cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def resolve_timezone(text: str) -> str | None:
    """The IANA zone a person typed ("europe/berlin", "Asia/Shanghai "), or None if unknown."""
    candidate = text.strip().replace(" ", "_")
    if not candidate or len(candidate) > 64:
        return None
    name = _zones_by_folded_name().get(candidate.casefold(), candidate)
    try:
        return check_timezone(name)
    except ValueError:
        return None


_TIME = re.compile(r"(?P<hour>[01]?[0-9]|2[0-3])(?:[:.h](?P<minute>[0-5][0-9]))?")


def parse_time(text: str) -> time | None:
    """A typed wall-clock time such as "19:30", "7.15" or "18", or None."""
    match = _TIME.fullmatch(text.strip().lower())
    if match is None:
        return None
    return time(int(match["hour"]), int(match["minute"] or 0))


def choose(ctx: AppContext, *, telegram_user_id: int, step: str, value: str) -> AccountReply:
    """Applies an account button (`o:<step>:<value>`): language, consent, time zone, weekday,
    time, settings, pause or stop; a button that does not fit the current step changes
    nothing and the current screen is shown again."""
    now = ctx.clock.now()
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=now)
        if patient is None:
            return not_a_patient(ctx, session, telegram_user_id=telegram_user_id)
        handler = _CHOICES.get(step)
        reply = None if handler is None else handler(ctx, session, patient, value, now)
        if reply is None:
            return _where(ctx, patient, notice="stale")
        return reply


def _save(session: Session, patient: Patient) -> None:
    patients.save_patient(session=session, patient=patient)


def _choose_language(
    ctx: AppContext, session: Session, patient: Patient, value: str, now: datetime
) -> AccountReply | None:
    if value not in ctx.settings.languages or patient.status == PatientStatus.WITHDRAWN.value:
        return None
    patient.language = value
    if _onboarding(patient) and patient.onboarding_step in (None, STEP_LANGUAGE):
        patient.onboarding_step = STEP_LANGUAGE
        _next_onboarding_step(patient)
        _save(session, patient)
        return AccountReply(onboarding_screen(patient), view_of(ctx, patient))
    _save(session, patient)
    if _onboarding(patient):
        return AccountReply(onboarding_screen(patient), view_of(ctx, patient), "language_changed")
    return AccountReply(AccountScreen.LANGUAGE_CHANGED, view_of(ctx, patient))


def _choose_consent(
    ctx: AppContext, session: Session, patient: Patient, value: str, now: datetime
) -> AccountReply | None:
    if not _onboarding(patient) or patient.onboarding_step != STEP_CONSENT:
        return None
    if value == "no":
        return AccountReply(AccountScreen.CONSENT_DECLINED, view_of(ctx, patient))
    if value != "yes":
        return None
    patient.consent_version = CONSENT_VERSION
    patient.consent_at = now
    _next_onboarding_step(patient)
    _save(session, patient)
    _audit(session, patient, now, "consent", {"consent_version": CONSENT_VERSION})
    return AccountReply(onboarding_screen(patient), view_of(ctx, patient))


_Value = TypeVar("_Value")


def _apply_preference(
    ctx: AppContext,
    session: Session,
    patient: Patient,
    step: str,
    assign: Callable[[Patient, _Value], None],
    value: _Value,
) -> AccountReply | None:
    """One schedule choice: during onboarding it must be the current step and moves on to the
    next; once active (from /settings) it is saved and the settings menu shown again. None
    when the patient is in neither state (a stale button)."""
    if _onboarding(patient) and patient.onboarding_step == step:
        assign(patient, value)
        _next_onboarding_step(patient)
        _save(session, patient)
        screen = (
            AccountScreen.ONBOARDING_DONE if _in_settings(patient) else onboarding_screen(patient)
        )
        return AccountReply(screen, view_of(ctx, patient))
    if not _in_settings(patient):
        return None
    assign(patient, value)
    _save(session, patient)
    return AccountReply(AccountScreen.SETTINGS_MENU, view_of(ctx, patient), "saved")


def _set_timezone(patient: Patient, zone: str) -> None:
    patient.timezone = zone
    if not _onboarding(patient):
        patient.onboarding_step = None  # a typed zone name is no longer awaited


def _set_weekday(patient: Patient, weekday: int) -> None:
    patient.schedule_weekday = weekday


def _set_time(patient: Patient, chosen: time) -> None:
    patient.schedule_time = chosen


def _weekday(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 <= int(value) <= 6 else None


Chooser = Callable[[AppContext, Session, Patient, str, datetime], "AccountReply | None"]


def _chooser(
    parse: Callable[[str], _Value | None],
    step: str,
    assign: Callable[[Patient, _Value], None],
) -> Chooser:
    """A button choice that reads its value and applies it; None (a stale or forged button)
    when the value does not parse."""

    def choose(
        ctx: AppContext, session: Session, patient: Patient, value: str, now: datetime
    ) -> AccountReply | None:
        parsed = parse(value)
        if parsed is None:
            return None
        return _apply_preference(ctx, session, patient, step, assign, parsed)

    return choose


_choose_timezone = _chooser(resolve_timezone, STEP_TIMEZONE, _set_timezone)
_choose_weekday = _chooser(_weekday, STEP_WEEKDAY, _set_weekday)
_choose_time = _chooser(parse_time, STEP_TIME, _set_time)


def _choose_setting(
    ctx: AppContext, session: Session, patient: Patient, value: str, now: datetime
) -> AccountReply | None:
    if not _in_settings(patient):
        return None
    if value == "tz":
        # Remember that a typed zone name is expected next.
        patient.onboarding_step = STEP_TIMEZONE
        _save(session, patient)
        return AccountReply(AccountScreen.SETTINGS_TIMEZONE, view_of(ctx, patient))
    if value in ("day", "time"):
        screen = AccountScreen.SETTINGS_WEEKDAY if value == "day" else AccountScreen.SETTINGS_TIME
        return AccountReply(screen, view_of(ctx, patient))
    if value == "lang":
        return AccountReply(AccountScreen.LANGUAGE_MENU, view_of(ctx, patient))
    if value in ("menu", "cancel"):
        patient.onboarding_step = None
        _save(session, patient)
        return AccountReply(AccountScreen.SETTINGS_MENU, view_of(ctx, patient))
    return None


def _choose_pause(
    ctx: AppContext, session: Session, patient: Patient, value: str, now: datetime
) -> AccountReply | None:
    if not _in_settings(patient) or not value.isdigit():
        return None
    weeks = int(value)
    assert patient.id is not None
    if weeks == 0:
        if patient.status != PatientStatus.PAUSED.value:
            return None
        patient.status = PatientStatus.ACTIVE.value
        patient.paused_until = None
        _save(session, patient)
        _audit(session, patient, now, "resume")
        return AccountReply(AccountScreen.PAUSE_RESUMED, view_of(ctx, patient))
    if weeks not in PAUSE_WEEKS:
        return None
    patient.status = PatientStatus.PAUSED.value
    patient.paused_until = now + timedelta(weeks=weeks)
    _save(session, patient)
    _audit(session, patient, now, "pause", {"weeks": weeks})
    return AccountReply(AccountScreen.PAUSE_PAUSED, view_of(ctx, patient))


def _choose_stop(
    ctx: AppContext, session: Session, patient: Patient, value: str, now: datetime
) -> AccountReply | None:
    if value == "keep":
        if patient.status == PatientStatus.WITHDRAWN.value:
            return None
        patient.status = PatientStatus.WITHDRAWN.value
        patient.withdrawn_at = now
        patient.paused_until = None
        patient.onboarding_step = None
        _save(session, patient)
        _audit(session, patient, now, "withdraw")
        return AccountReply(AccountScreen.STOP_WITHDRAWN, view_of(ctx, patient))
    if value == "delete":
        patient.onboarding_step = STEP_DELETE_1
        _save(session, patient)
        return AccountReply(AccountScreen.STOP_CONFIRM_1, view_of(ctx, patient))
    if value == "delete2" and patient.onboarding_step == STEP_DELETE_1:
        patient.onboarding_step = STEP_DELETE_2
        _save(session, patient)
        return AccountReply(AccountScreen.STOP_CONFIRM_2, view_of(ctx, patient))
    if value == "delete3" and patient.onboarding_step == STEP_DELETE_2:
        view = view_of(ctx, patient)
        assert patient.id is not None
        link = enrollment.get_link_for_patient(session=session, patient_id=patient.id)
        if link is not None and ctx.settings.pseudonym_key is not None:
            enrollment.forget_failed_attempts(
                session=session,
                account_hash=account_hash(ctx, link.telegram_user_id),
            )
        patients.delete_patient_data(session=session, patient_id=patient.id, now=now)
        _audit(session, patient, now, "delete_data")
        return AccountReply(AccountScreen.STOP_DELETED, view)
    if value == "cancel":
        if patient.onboarding_step in (STEP_DELETE_1, STEP_DELETE_2):
            patient.onboarding_step = _resumed_step(patient)
            _save(session, patient)
        return AccountReply(AccountScreen.STOP_CANCELLED, view_of(ctx, patient))
    return None


def _resumed_step(patient: Patient) -> str | None:
    """The step to return to after a cancelled deletion (onboarding resumes sensibly)."""
    if not _onboarding(patient):
        return None
    return STEP_TIMEZONE if patient.consent_at is not None else STEP_CONSENT


def _audit(
    session: Session,
    patient: Patient,
    now: datetime,
    action: str,
    after: dict[str, object] | None = None,
) -> None:
    assert patient.id is not None
    audit.record_event(
        session=session,
        at=now,
        actor=ACTOR,
        entity="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        action=action,
        after=after,
    )


_CHOICES = {
    "lang": _choose_language,
    "consent": _choose_consent,
    "tz": _choose_timezone,
    "day": _choose_weekday,
    "time": _choose_time,
    "set": _choose_setting,
    "pause": _choose_pause,
    "stop": _choose_stop,
}


def typed_during_setup(ctx: AppContext, *, telegram_user_id: int, text: str) -> AccountReply | None:
    """Handles text typed while onboarding or while the time-zone setting waits for a name.

    Returns None when the patient is not in such a step (the text is then a questionnaire
    answer). A typed zone or time is validated; anything else re-shows the step with a hint.
    """
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=ctx.clock.now())
        if patient is None:
            return None
        step = patient.onboarding_step
        if patient.status == PatientStatus.WITHDRAWN.value:
            return AccountReply(AccountScreen.ACCOUNT_STOPPED, view_of(ctx, patient))
        if _in_settings(patient) and step == STEP_TIMEZONE:
            zone = resolve_timezone(text)
            if zone is None:
                return AccountReply(
                    AccountScreen.SETTINGS_TIMEZONE,
                    view_of(ctx, patient),
                    "invalid_timezone",
                    echo=text,
                )
            return _apply_preference(ctx, session, patient, STEP_TIMEZONE, _set_timezone, zone)
        if not _onboarding(patient):
            return None
        if step == STEP_TIMEZONE:
            zone = resolve_timezone(text)
            if zone is None:
                return AccountReply(
                    onboarding_screen(patient), view_of(ctx, patient), "invalid_timezone", echo=text
                )
            return _apply_preference(ctx, session, patient, STEP_TIMEZONE, _set_timezone, zone)
        if step == STEP_TIME:
            chosen = parse_time(text)
            if chosen is None:
                return AccountReply(
                    onboarding_screen(patient), view_of(ctx, patient), "invalid_time"
                )
            return _apply_preference(ctx, session, patient, STEP_TIME, _set_time, chosen)
        return AccountReply(onboarding_screen(patient), view_of(ctx, patient), "use_buttons")


def open_menu(
    ctx: AppContext, *, telegram_user_id: int, menu: str, language: str = "en"
) -> AccountReply:
    """The screen of `/settings`, `/language`, `/pause` or `/stop` ("settings", "language",
    "pause", "stop"); during onboarding the current step is shown instead of settings."""
    with ctx.session() as session:
        patient = linked_patient(session, telegram_user_id=telegram_user_id, now=ctx.clock.now())
        if patient is None:
            return not_a_patient(ctx, session, telegram_user_id=telegram_user_id, language=language)
        if menu == "language" and patient.status != PatientStatus.WITHDRAWN.value:
            return AccountReply(AccountScreen.LANGUAGE_MENU, view_of(ctx, patient))
        if menu == "stop" and patient.status != PatientStatus.WITHDRAWN.value:
            return AccountReply(AccountScreen.STOP_MENU, view_of(ctx, patient))
        if menu == "stop":
            return AccountReply(AccountScreen.STOP_MENU_WITHDRAWN, view_of(ctx, patient))
        if not _in_settings(patient):
            return _where(ctx, patient)
        if menu == "pause":
            return AccountReply(AccountScreen.PAUSE_MENU, view_of(ctx, patient))
        if patient.onboarding_step == STEP_TIMEZONE:
            patient.onboarding_step = None
            _save(session, patient)
        return AccountReply(AccountScreen.SETTINGS_MENU, view_of(ctx, patient))
