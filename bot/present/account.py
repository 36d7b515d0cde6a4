"""A patient's account in words: onboarding, settings, language, pause, stop, enrollment, status."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from bot import callbacks as cb
from bot.config import SUPPORTED_LANGUAGES
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
from bot.services.patients import COMMON_TIMEZONES, PAUSE_WEEKS, TIME_CHOICES, AccountReply

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
            for code in SUPPORTED_LANGUAGES
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


def _account_screen(renderer: Renderer, reply: AccountReply) -> Screen:
    patient = reply.patient
    lang = patient.language if patient else (reply.language or "en")
    name = reply.screen
    if patient is None:
        key = (
            "enrollment.physician_intro"
            if reply.notice == "physician"
            else "enrollment.how_to_join"
        )
        return Screen(renderer.text(key, lang))
    cancel_settings = (_option(renderer, lang, "account.cancel", "set", "menu"),)
    zone = patient.timezone.replace("_", " ")
    if name == "onboarding.language":
        return Screen(renderer.text("onboarding.language", lang), _language_buttons(renderer))
    if name == "onboarding.consent":
        return Screen(
            renderer.text("consent.text", lang),
            (
                (
                    _option(renderer, lang, "consent.agree", "consent", "yes"),
                    _option(renderer, lang, "consent.not_now", "consent", "no"),
                ),
            ),
        )
    if name in ("onboarding.timezone", "settings.timezone"):
        key = (
            "onboarding.timezone_invalid"
            if reply.notice == "invalid_timezone"
            else "onboarding.timezone"
        )
        text = renderer.text(
            key,
            lang,
            clinic_zone=patient.clinic_timezone.replace("_", " "),
            typed=echo(reply.echo),
        )
        rows = _zone_buttons(renderer, lang, patient.clinic_timezone)
        if name == "settings.timezone":
            rows.append(cancel_settings)
        return Screen(text, tuple(rows))
    if name in ("onboarding.weekday", "settings.weekday"):
        rows = _weekday_buttons(renderer, lang)
        if name == "settings.weekday":
            rows.append(cancel_settings)
        return Screen(renderer.text("onboarding.weekday", lang), tuple(rows))
    if name in ("onboarding.time", "settings.time"):
        key = "onboarding.time_invalid" if reply.notice == "invalid_time" else "onboarding.time"
        rows = _time_buttons()
        if name == "settings.time":
            rows.append(cancel_settings)
        return Screen(renderer.text(key, lang), tuple(rows))
    if name == "onboarding.done":
        return Screen(
            renderer.text(
                "onboarding.done",
                lang,
                weekday=weekday_name(renderer, lang, patient.weekday),
                at=clock_text(patient.at),
                zone=zone,
            ),
            ((_option(renderer, lang, "onboarding.answer_now", "first", "now"),),),
        )
    if name == "settings.menu":
        return Screen(
            renderer.text(
                "account.settings",
                lang,
                language_name=renderer.text("account.language_name", lang),
                zone=zone,
                weekday=weekday_name(renderer, lang, patient.weekday),
                at=clock_text(patient.at),
            ),
            (
                (
                    _option(renderer, lang, "account.change_day", "set", "day"),
                    _option(renderer, lang, "account.change_time", "set", "time"),
                ),
                (
                    _option(renderer, lang, "account.change_timezone", "set", "tz"),
                    _option(renderer, lang, "account.change_language", "set", "lang"),
                ),
            ),
        )
    if name == "language.menu":
        return Screen(renderer.text("account.language_menu", lang), _language_buttons(renderer))
    if name == "pause.menu":
        paused = (
            None
            if patient.paused_until is None
            else format_slot(renderer, lang, patient.paused_until, patient.timezone)
        )
        rows = [
            tuple(
                Button(
                    renderer.text("account.pause_weeks", lang, weeks=weeks),
                    cb.encode(cb.OptionButton("pause", str(weeks))),
                )
                for weeks in PAUSE_WEEKS
            )
        ]
        if paused is not None:
            rows.append((_option(renderer, lang, "account.resume_now", "pause", "0"),))
        return Screen(renderer.text("account.pause_menu", lang, paused_until=paused), tuple(rows))
    if name == "pause.paused":
        assert patient.paused_until is not None
        until = format_slot(renderer, lang, patient.paused_until, patient.timezone)
        return Screen(renderer.text("account.paused", lang, paused_until=until))
    if name in ("stop.menu", "stop.menu_withdrawn"):
        rows = []
        if name == "stop.menu":
            rows.append((_option(renderer, lang, "account.stop_keep", "stop", "keep"),))
        rows.append((_option(renderer, lang, "account.stop_delete", "stop", "delete"),))
        rows.append((_option(renderer, lang, "account.cancel", "stop", "cancel"),))
        key = "account.stop_menu" if name == "stop.menu" else "account.stop_menu_withdrawn"
        return Screen(renderer.text(key, lang), tuple(rows))
    if name == "stop.confirm_1":
        return Screen(
            renderer.text("account.confirm_1", lang),
            (
                (_option(renderer, lang, "account.yes_delete", "stop", "delete2"),),
                (_option(renderer, lang, "account.cancel", "stop", "cancel"),),
            ),
        )
    if name == "stop.confirm_2":
        return Screen(
            renderer.text("account.confirm_2", lang),
            (
                (_option(renderer, lang, "account.delete_everything", "stop", "delete3"),),
                (_option(renderer, lang, "account.cancel", "stop", "cancel"),),
            ),
        )
    simple = {
        "consent.declined": "consent.declined",
        "language.changed": "account.language_changed",
        "pause.resumed": "account.resumed",
        "stop.withdrawn": "account.withdrawn",
        "stop.deleted": "account.deleted",
        "stop.cancelled": "account.cancelled",
        "account.stopped": "account.stopped",
        "account.home": "help.patient",
    }
    return Screen(renderer.text(simple.get(name, "account.unknown"), lang))


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
