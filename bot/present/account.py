"""A patient's account in words: onboarding, settings, language, pause, stop, enrollment, status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bot import callbacks as cb
from bot.present.questionnaire import with_prefix
from bot.present.render import Renderer
from bot.present.screens import (
    Button,
    Presentation,
    Screen,
    clock_text,
    echo,
    format_slot,
    weekday_name,
)
from bot.services.enrollment import EnrollmentResult
from bot.services.enrollment import Outcome as EnrollmentOutcome
from bot.services.history import StatusView
from bot.services.patients import (
    COMMON_TIMEZONES,
    PAUSE_WEEKS,
    TIME_CHOICES,
    AccountReply,
    AccountScreen,
    PatientView,
)

# ---------------------------------------------------------------------------------------------
# Account: onboarding, settings, language, pause, stop
# ---------------------------------------------------------------------------------------------


def _language_buttons(renderer: Renderer) -> tuple[tuple[Button, ...], ...]:
    return (
        tuple(
            Button(
                renderer.text("account.language_name", code),
                cb.encode(cb.OptionButton("lang", code)),
            )
            for code in renderer.languages
        ),
    )


def _zone_buttons(renderer: Renderer, lang: str, clinic_zone: str) -> list[tuple[Button, ...]]:
    zones = [clinic_zone, *(zone for zone in COMMON_TIMEZONES if zone != clinic_zone)]
    buttons = [
        Button(
            renderer.text("onboarding.clinic_zone", lang, zone=zone.replace("_", " "))
            if zone == clinic_zone
            else zone.replace("_", " "),
            cb.encode(cb.OptionButton("tz", zone)),
        )
        for zone in zones
    ]
    return [(buttons[0],), *(tuple(buttons[i : i + 2]) for i in range(1, len(buttons), 2))]


def _weekday_buttons(renderer: Renderer, lang: str) -> list[tuple[Button, ...]]:
    buttons = [
        Button(weekday_name(renderer, lang, day), cb.encode(cb.OptionButton("day", str(day))))
        for day in range(7)
    ]
    return [tuple(buttons[:4]), tuple(buttons[4:])]


def _time_buttons() -> list[tuple[Button, ...]]:
    buttons = [
        Button(clock_text(choice), cb.encode(cb.OptionButton("time", clock_text(choice))))
        for choice in TIME_CHOICES
    ]
    return [tuple(buttons[:4]), tuple(buttons[4:])]


def _option(renderer: Renderer, lang: str, key: str, step: str, value: str) -> Button:
    return Button(renderer.text(key, lang), cb.encode(cb.OptionButton(step, value)))


_FROM_SETTINGS: Final = frozenset(
    {AccountScreen.SETTINGS_TIMEZONE, AccountScreen.SETTINGS_WEEKDAY, AccountScreen.SETTINGS_TIME}
)
"""Steps reached from /settings rather than onboarding: they offer Cancel."""


@dataclass(frozen=True)
class _Asked:
    """One account screen to word: the reply, its patient and their language."""

    renderer: Renderer
    reply: AccountReply
    patient: PatientView
    lang: str

    def text(self, key: str, **variables: Any) -> str:
        return self.renderer.text(key, self.lang, **variables)

    def option(self, key: str, step: str, value: str) -> Button:
        return _option(self.renderer, self.lang, key, step, value)

    def in_settings(self, rows: list[tuple[Button, ...]]) -> tuple[tuple[Button, ...], ...]:
        """The rows, with Cancel under them when the step is reached from the settings."""
        if self.reply.screen in _FROM_SETTINGS:
            rows = [*rows, (self.option("account.cancel", "set", "menu"),)]
        return tuple(rows)

    @property
    def zone(self) -> str:
        return self.patient.timezone.replace("_", " ")

    @property
    def weekday(self) -> str:
        return weekday_name(self.renderer, self.lang, self.patient.weekday)


def _consent(a: _Asked) -> Screen:
    agree = a.option("consent.agree", "consent", "yes")
    return Screen(a.text("consent.text"), ((agree, a.option("consent.not_now", "consent", "no")),))


def _timezone(a: _Asked) -> Screen:
    invalid = a.reply.notice == "invalid_timezone"
    text = a.text(
        "onboarding.timezone_invalid" if invalid else "onboarding.timezone",
        clinic_zone=a.patient.clinic_timezone.replace("_", " "),
        typed=echo(a.reply.echo),
    )
    return Screen(text, a.in_settings(_zone_buttons(a.renderer, a.lang, a.patient.clinic_timezone)))


def _weekday(a: _Asked) -> Screen:
    return Screen(a.text("onboarding.weekday"), a.in_settings(_weekday_buttons(a.renderer, a.lang)))


def _time(a: _Asked) -> Screen:
    key = "onboarding.time_invalid" if a.reply.notice == "invalid_time" else "onboarding.time"
    return Screen(a.text(key), a.in_settings(_time_buttons()))


def _onboarded(a: _Asked) -> Screen:
    at = clock_text(a.patient.at)
    return Screen(
        a.text("onboarding.done", weekday=a.weekday, at=at, zone=a.zone),
        ((a.option("onboarding.answer_now", "first", "now"),),),
    )


def _settings(a: _Asked) -> Screen:
    language_name = a.text("account.language_name")
    at = clock_text(a.patient.at)
    return Screen(
        a.text(
            "account.settings", language_name=language_name, zone=a.zone, weekday=a.weekday, at=at
        ),
        (
            (
                a.option("account.change_day", "set", "day"),
                a.option("account.change_time", "set", "time"),
            ),
            (
                a.option("account.change_timezone", "set", "tz"),
                a.option("account.change_language", "set", "lang"),
            ),
        ),
    )


def _paused_until(a: _Asked) -> str | None:
    until = a.patient.paused_until
    return None if until is None else format_slot(a.renderer, a.lang, until, a.patient.timezone)


def _pause_menu(a: _Asked) -> Screen:
    paused = _paused_until(a)
    rows = [
        tuple(
            Button(
                a.text("account.pause_weeks", weeks=weeks),
                cb.encode(cb.OptionButton("pause", str(weeks))),
            )
            for weeks in PAUSE_WEEKS
        )
    ]
    if paused is not None:
        rows.append((a.option("account.resume_now", "pause", "0"),))
    return Screen(a.text("account.pause_menu", paused_until=paused), tuple(rows))


def _paused(a: _Asked) -> Screen:
    until = _paused_until(a)
    assert until is not None
    return Screen(a.text("account.paused", paused_until=until))


def _stop_menu(a: _Asked) -> Screen:
    withdrawn = a.reply.screen is AccountScreen.STOP_MENU_WITHDRAWN
    rows = [] if withdrawn else [(a.option("account.stop_keep", "stop", "keep"),)]
    rows.append((a.option("account.stop_delete", "stop", "delete"),))
    rows.append((a.option("account.cancel", "stop", "cancel"),))
    key = "account.stop_menu_withdrawn" if withdrawn else "account.stop_menu"
    return Screen(a.text(key), tuple(rows))


def _confirm(key: str, button: str, value: str) -> Callable[[_Asked], Screen]:
    """One of the two confirmations before a patient's data is deleted."""

    def screen(a: _Asked) -> Screen:
        return Screen(
            a.text(key),
            (
                (a.option(button, "stop", value),),
                (a.option("account.cancel", "stop", "cancel"),),
            ),
        )

    return screen


def _languages(key: str) -> Callable[[_Asked], Screen]:
    """The language buttons under `key` (first contact, or the /language menu)."""

    def screen(a: _Asked) -> Screen:
        return Screen(a.text(key), _language_buttons(a.renderer))

    return screen


_SCREENS: Final[dict[AccountScreen, Callable[[_Asked], Screen]]] = {
    AccountScreen.ONBOARDING_LANGUAGE: _languages("onboarding.language"),
    AccountScreen.ONBOARDING_CONSENT: _consent,
    AccountScreen.ONBOARDING_TIMEZONE: _timezone,
    AccountScreen.SETTINGS_TIMEZONE: _timezone,
    AccountScreen.ONBOARDING_WEEKDAY: _weekday,
    AccountScreen.SETTINGS_WEEKDAY: _weekday,
    AccountScreen.ONBOARDING_TIME: _time,
    AccountScreen.SETTINGS_TIME: _time,
    AccountScreen.ONBOARDING_DONE: _onboarded,
    AccountScreen.SETTINGS_MENU: _settings,
    AccountScreen.LANGUAGE_MENU: _languages("account.language_menu"),
    AccountScreen.PAUSE_MENU: _pause_menu,
    AccountScreen.PAUSE_PAUSED: _paused,
    AccountScreen.STOP_MENU: _stop_menu,
    AccountScreen.STOP_MENU_WITHDRAWN: _stop_menu,
    AccountScreen.STOP_CONFIRM_1: _confirm("account.confirm_1", "account.yes_delete", "delete2"),
    AccountScreen.STOP_CONFIRM_2: _confirm(
        "account.confirm_2", "account.delete_everything", "delete3"
    ),
}
"""Screens with buttons or values, by the name the account service gives them."""

_PLAIN: Final[dict[AccountScreen, str]] = {
    AccountScreen.CONSENT_DECLINED: "consent.declined",
    AccountScreen.LANGUAGE_CHANGED: "account.language_changed",
    AccountScreen.PAUSE_RESUMED: "account.resumed",
    AccountScreen.STOP_WITHDRAWN: "account.withdrawn",
    AccountScreen.STOP_DELETED: "account.deleted",
    AccountScreen.STOP_CANCELLED: "account.cancelled",
    AccountScreen.ACCOUNT_STOPPED: "account.stopped",
    AccountScreen.ACCOUNT_HOME: "help.patient",
}
"""Screens that are one message, by name."""


def _account_screen(renderer: Renderer, reply: AccountReply) -> Screen:
    patient = reply.patient
    lang = patient.language if patient else (reply.language or "en")
    if patient is None:
        key = (
            "enrollment.physician_intro"
            if reply.notice == "physician"
            else "enrollment.how_to_join"
        )
        return Screen(renderer.text(key, lang))
    screen = _SCREENS.get(reply.screen)
    if screen is not None:
        return screen(_Asked(renderer, reply, patient, lang))
    return Screen(renderer.text(_PLAIN.get(reply.screen, "account.unknown"), lang))


_NOTICE_PREFIX: Final = {
    "saved": "account.saved",
    "language_changed": "onboarding.language_changed",
    "use_buttons": "onboarding.use_buttons",
}


def account_presentation(renderer: Renderer, reply: AccountReply) -> Presentation:
    screen = _account_screen(renderer, reply)
    lang = reply.patient.language if reply.patient else (reply.language or "en")
    prefix_key = _NOTICE_PREFIX.get(reply.notice or "")
    if prefix_key is not None:
        screen = with_prefix(renderer.text(prefix_key, lang), screen)
    toast = renderer.text("onboarding.stale", lang) if reply.notice == "stale" else None
    return Presentation(primary=screen, toast=toast, edit_pressed=False)


# ---------------------------------------------------------------------------------------------
# Enrollment, status, notices
# ---------------------------------------------------------------------------------------------


def enrollment_presentation(renderer: Renderer, result: EnrollmentResult) -> Presentation:
    key = {
        EnrollmentOutcome.PATIENT_LINKED: "enrollment.welcome_patient",
        EnrollmentOutcome.PHYSICIAN_LINKED: "enrollment.physician_intro",
        EnrollmentOutcome.ALREADY_LINKED: "enrollment.already_linked",
        EnrollmentOutcome.INVALID: "enrollment.invalid",
        EnrollmentOutcome.RATE_LIMITED: "enrollment.rate_limited",
    }[result.outcome]
    return Presentation(primary=Screen(renderer.text(key, result.language)), edit_pressed=False)


def status_screen(renderer: Renderer, status: StatusView) -> Screen:
    """`/status`: the weekly slot, the next questionnaire, and a Continue button if one is open."""
    lang = status.language
    if status.status == "onboarding":
        return Screen(renderer.text("account.status_onboarding", lang))
    if status.status == "withdrawn":
        return Screen(renderer.text("account.stopped", lang))

    def slot(moment: datetime | None) -> str | None:
        return None if moment is None else format_slot(renderer, lang, moment, status.timezone)

    text = renderer.text(
        "account.status",
        lang,
        weekday=weekday_name(renderer, lang, status.weekday),
        at=clock_text(status.at),
        zone=status.timezone.replace("_", " "),
        paused_until=slot(status.paused_until),
        next_slot=slot(status.next_slot),
        open_expires=slot(status.open_expires_at),
    )
    buttons: tuple[tuple[Button, ...], ...] = ()
    if status.open_administration_id is not None:
        label = "questionnaire.continue" if status.open_started else "questionnaire.start"
        buttons = (
            (
                Button(
                    renderer.text(label, lang),
                    cb.encode(cb.StartButton(status.open_administration_id)),
                ),
            ),
        )
    return Screen(text, buttons)
