"""What a service reply looks like to a person: message texts from `templates/` and buttons.

Telegram-free on purpose, so the bot's handlers and the terminal demo present exactly the same
screens; `bot.keyboards` turns the button rows into Telegram inline keyboards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot import callbacks as cb
from bot import formats
from bot.charts import ChartLabels, TrendPoint, can_render
from bot.domain import flow, instruments
from bot.domain import safety as safety_rules
from bot.domain.scoring import asdas_category, display_round
from bot.render import TELEGRAM_TEXT_LIMIT, Renderer
from bot.services.conversation import SIDE_EFFECT_BUTTON, Notice, Reply
from bot.services.enrollment import EnrollmentResult
from bot.services.enrollment import Outcome as EnrollmentOutcome
from bot.services.history import History, StatusView
from bot.services.patients import COMMON_TIMEZONES, PAUSE_WEEKS, TIME_CHOICES, AccountReply
from bot.services.questionnaire import Outcome, QuestionnaireReply, QuestionnaireView
from bot.services.safety import SUMMARY as SAFETY_SUMMARY
from bot.services.safety import SafetyOutcome, SafetyReply, SafetyView

NRS_ROWS: Final = ((0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10))
DURATIONS_PER_ROW: Final = 3
TRUNCATION_MARK: Final = "…"
ECHO_LIMIT: Final = 64


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class Screen:
    """One message: HTML text and rows of buttons.

    `live_administration_id` marks the message that shows that administration's current step
    (its id is remembered, so the next step can edit it); `previous_message_id` is the message
    that showed it before, whose keyboard is removed when the step moves to another message.
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    live_administration_id: int | None = None
    previous_message_id: int | None = None


@dataclass(frozen=True)
class Presentation:
    """How to answer one update.

    For a button press, `primary` replaces the pressed message when `edit_pressed`, otherwise it
    is sent as a new message and the pressed message loses its keyboard; `toast` answers the
    press. Without a press, `primary` is sent, and a lone `toast` is sent as a message. `follow`
    are further messages sent afterwards.
    """

    primary: Screen | None = None
    follow: tuple[Screen, ...] = ()
    toast: str | None = None
    edit_pressed: bool = True


_instrument_cache: dict[tuple[Path, str, str], dict[str, Any]] = {}


def instrument_text(renderer: Renderer, version: str, language: str) -> dict[str, Any]:
    """The wording of an instrument version in a language (templates/instruments/…)."""
    key = (renderer.templates_dir, version, language)
    if key not in _instrument_cache:
        path = renderer.templates_dir / "instruments" / version / f"{language}.toml"
        if not path.exists():
            path = (
                renderer.templates_dir
                / "instruments"
                / instruments.INSTRUMENT_VERSION
                / f"{language if language in renderer.languages else 'en'}.toml"
            )
        _instrument_cache[key] = renderer.read_data(str(path.relative_to(renderer.templates_dir)))
    return _instrument_cache[key]


def informal_label(renderer: Renderer, wording: dict[str, Any], language: str) -> str:
    """The label under an unlicensed rendering, read from the version's `licensed_translation`
    flag: a licensed text goes unlabelled, any other is labelled informal even if its file
    forgot its `note` (clinical spec §1)."""
    if wording.get("licensed_translation") is True:
        return ""
    return str(wording.get("note") or renderer.text("questionnaire.informal_rendering", language))


def fit(text: str) -> str:
    """Text cut to Telegram's 4096-character limit (a safety net; templates stay far below)."""
    if len(text) <= TELEGRAM_TEXT_LIMIT:
        return text
    return text[: TELEGRAM_TEXT_LIMIT - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def _echo(text: str | None) -> str:
    """A patient's typed text shortened for quoting back (the template escapes it)."""
    value = (text or "").strip()
    return value if len(value) <= ECHO_LIMIT else value[: ECHO_LIMIT - 1] + TRUNCATION_MARK


def _local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def format_date(renderer: Renderer, language: str, moment: datetime, zone: str) -> str:
    """A date in the person's zone and language."""
    return formats.day_text(
        _local(moment, zone), renderer.text("history.date_format", language), language
    )


def format_slot(renderer: Renderer, language: str, moment: datetime, zone: str) -> str:
    """A moment as weekday, date and time in the person's zone and language."""
    local = _local(moment, zone)
    return renderer.text(
        "account.slot",
        language,
        weekday=weekday_name(renderer, language, local.weekday()),
        date=formats.day_text(local, renderer.text("history.date_format", language), language),
        clock=formats.clock_text(local, language),
    )


def weekday_name(renderer: Renderer, language: str, weekday: int) -> str:
    """A weekday (0 = Monday) named by CLDR in the language."""
    del renderer  # kept in the signature: every screen helper takes the renderer first
    return formats.weekday_name(weekday, language)


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


# ---------------------------------------------------------------------------------------------
# The questionnaire
# ---------------------------------------------------------------------------------------------


def answer_label(renderer: Renderer, view: QuestionnaireView, item: str, raw: Decimal) -> str:
    """An answer as the patient gave it: "7", or a duration such as "1½ h"."""
    if instruments.item(item).kind is instruments.ItemKind.NRS:
        return str(int(raw))
    wording = instrument_text(renderer, view.instrument_version, view.language)
    minutes = int(raw) if raw == raw.to_integral_value() else raw.normalize()
    label = wording["durations"].get(str(minutes))
    if label is not None:
        return str(label)
    return renderer.text("questionnaire.minutes", view.language, minutes=str(minutes))


def _question(renderer: Renderer, view: QuestionnaireView, item: str) -> Screen:
    wording = instrument_text(renderer, view.instrument_version, view.language)
    words = wording["items"][item]
    number, total = flow.progress(item)
    current = view.answers.get(item)
    shown = None if current is None else answer_label(renderer, view, item, current)
    common = {
        "number": number,
        "total": total,
        "period": wording["period"],
        "question": words["text"],
        "current": shown,
        "note": informal_label(renderer, wording, view.language),
    }
    rows: list[tuple[Button, ...]] = []
    if instruments.item(item).kind is instruments.ItemKind.NRS:
        text = renderer.text(
            "questionnaire.question", view.language, low=words["low"], high=words["high"], **common
        )
        chosen = None if current is None else int(current)
        for row in NRS_ROWS:
            rows.append(
                tuple(
                    Button(
                        f"·{value}·" if value == chosen else str(value),
                        cb.encode(cb.AnswerButton(view.administration_id, item, value)),
                    )
                    for value in row
                )
            )
    else:
        text = renderer.text("questionnaire.question_duration", view.language, **common)
        buttons = [
            Button(
                f"·{wording['durations'][str(minutes)]}·"
                if current is not None and Decimal(minutes) == current
                else str(wording["durations"][str(minutes)]),
                cb.encode(cb.AnswerButton(view.administration_id, item, minutes)),
            )
            for minutes in instruments.STIFFNESS_CHOICES_MINUTES
        ]
        rows.extend(
            tuple(buttons[i : i + DURATIONS_PER_ROW])
            for i in range(0, len(buttons), DURATIONS_PER_ROW)
        )
    if view.can_go_back:
        label = "questionnaire.back_to_summary" if view.return_to_summary else "questionnaire.back"
        rows.append(
            (
                Button(
                    renderer.text(label, view.language),
                    cb.encode(cb.BackButton(view.administration_id, item)),
                ),
            )
        )
    return Screen(
        fit(text),
        tuple(rows),
        live_administration_id=view.administration_id,
        previous_message_id=view.question_message_id,
    )


def _rows(renderer: Renderer, view: QuestionnaireView) -> list[dict[str, object]]:
    wording = instrument_text(renderer, view.instrument_version, view.language)
    return [
        {
            "number": number,
            "label": wording["items"][item]["short"],
            "value": answer_label(renderer, view, item, view.answers[item]),
        }
        for number, item in enumerate(instruments.ITEM_CODES, start=1)
        if item in view.answers
    ]


def _summary(renderer: Renderer, view: QuestionnaireView) -> Screen:
    text = renderer.text("questionnaire.summary", view.language, rows=_rows(renderer, view))
    adm = view.administration_id
    buttons = (
        (
            Button(
                renderer.text("questionnaire.confirm", view.language),
                cb.encode(cb.ConfirmButton(adm)),
            ),
        ),
        (
            Button(
                renderer.text("questionnaire.change", view.language),
                cb.encode(cb.ChangeButton(adm, None)),
            ),
        ),
    )
    return Screen(
        fit(text), buttons, live_administration_id=adm, previous_message_id=view.question_message_id
    )


def _picker(renderer: Renderer, view: QuestionnaireView) -> Screen:
    wording = instrument_text(renderer, view.instrument_version, view.language)
    adm = view.administration_id
    items = [
        Button(
            f"{number}. {wording['items'][item]['short']}",
            cb.encode(cb.ChangeButton(adm, item)),
        )
        for number, item in enumerate(instruments.ITEM_CODES, start=1)
    ]
    rows = [tuple(items[i : i + 2]) for i in range(0, len(items), 2)]
    rows.append(
        (
            Button(
                renderer.text("questionnaire.back_to_summary", view.language),
                cb.encode(cb.StartButton(adm)),
            ),
        )
    )
    return Screen(
        renderer.text("questionnaire.picker", view.language),
        tuple(rows),
        live_administration_id=adm,
        previous_message_id=view.question_message_id,
    )


def questionnaire_screen(renderer: Renderer, view: QuestionnaireView) -> Screen:
    """The current step of an administration: a question or the summary."""
    if view.position == flow.SUMMARY:
        return _summary(renderer, view)
    return _question(renderer, view, view.position or flow.first_position())


def _hint(renderer: Renderer, view: QuestionnaireView) -> str:
    if view.position == flow.SUMMARY:
        return renderer.text("questionnaire.hint_summary", view.language)
    if view.position and instruments.item(view.position).kind is instruments.ItemKind.DURATION:
        return renderer.text("questionnaire.hint_duration", view.language)
    return renderer.text("questionnaire.hint_rating", view.language)


def _with_prefix(prefix: str, screen: Screen) -> Screen:
    return Screen(
        fit(f"{prefix}\n\n{screen.text}"),
        screen.buttons,
        screen.live_administration_id,
        screen.previous_message_id,
    )


def _questionnaire(renderer: Renderer, reply: QuestionnaireReply) -> Presentation:
    lang = reply.language
    view = reply.view
    match reply.outcome:
        case Outcome.SHOW if view is not None:
            screen = questionnaire_screen(renderer, view)
            if reply.resumed and view.position != flow.first_position():
                screen = _with_prefix(renderer.text("questionnaire.resumed", view.language), screen)
            return Presentation(primary=screen, edit_pressed=not reply.new_message)
        case Outcome.STALE if view is not None:
            return Presentation(
                primary=questionnaire_screen(renderer, view),
                toast=renderer.text("questionnaire.stale", view.language),
            )
        case Outcome.PICKER if view is not None:
            return Presentation(primary=_picker(renderer, view))
        case Outcome.HINT if view is not None:
            return Presentation(follow=(Screen(_hint(renderer, view)),))
        case Outcome.COMPLETED if view is not None and reply.result is not None:
            confirmed = Screen(
                fit(
                    renderer.text(
                        "questionnaire.confirmed", view.language, rows=_rows(renderer, view)
                    )
                )
            )
            return Presentation(primary=confirmed, follow=(Screen(result_text(renderer, reply)),))
        case Outcome.NO_OPEN | Outcome.CHECKIN_LIMIT:
            key = "no_open" if reply.outcome is Outcome.NO_OPEN else "checkin_limit"
            slot = (
                None
                if reply.next_slot is None
                else format_slot(renderer, lang, reply.next_slot, reply.timezone)
            )
            return Presentation(
                primary=Screen(renderer.text(f"questionnaire.{key}", lang, next_slot=slot)),
                edit_pressed=False,
            )
        case Outcome.NOT_ACTIVE:
            return Presentation(
                primary=Screen(renderer.text("questionnaire.not_active", lang)), edit_pressed=False
            )
    key = {
        Outcome.CLOSED: "closed",
        Outcome.ALREADY_COMPLETED: "already_completed",
    }.get(reply.outcome, "not_yours")
    return Presentation(toast=renderer.text(f"questionnaire.{key}", lang), edit_pressed=False)


def result_text(renderer: Renderer, reply: QuestionnaireReply) -> str:
    """The thank-you with the BASDAI, its meaning and the comparison with last time."""
    result = reply.result
    assert result is not None
    assert reply.view is not None
    lang = reply.view.language
    previous_date = (
        None
        if result.previous_completed_at is None
        else format_date(renderer, lang, result.previous_completed_at, reply.timezone)
    )
    return renderer.text(
        "questionnaire.result",
        lang,
        basdai=_number(result.basdai_display, lang),
        active=result.active,
        trend=result.trend,
        previous=_number(result.previous_display, lang),
        previous_date=previous_date,
        asdas_high=result.asdas_high,
        asdas=None if result.asdas is None else display(result.asdas, lang),
        asdas_kind=f"ASDAS-{result.asdas_kind}",
        asdas_state=(
            None
            if result.asdas is None
            else renderer.asdas_state_name(asdas_category(result.asdas), lang)
        ),
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
        Button(_clock(choice), cb.encode(cb.OptionButton("time", _clock(choice))))
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
            typed=_echo(reply.echo),
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
                at=_clock(patient.at),
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
                at=_clock(patient.at),
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


def _account(renderer: Renderer, reply: AccountReply) -> Presentation:
    screen = _account_screen(renderer, reply)
    lang = reply.patient.language if reply.patient else (reply.language or "en")
    prefix_key = _NOTICE_PREFIX.get(reply.notice or "")
    if prefix_key is not None:
        screen = _with_prefix(renderer.text(prefix_key, lang), screen)
    toast = renderer.text("onboarding.stale", lang) if reply.notice == "stale" else None
    return Presentation(primary=screen, toast=toast, edit_pressed=False)


# ---------------------------------------------------------------------------------------------
# Enrollment, status, notices
# ---------------------------------------------------------------------------------------------


def _enrollment(renderer: Renderer, result: EnrollmentResult) -> Presentation:
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
        at=_clock(status.at),
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


def present(renderer: Renderer, replies: Reply | Sequence[Reply]) -> Presentation:
    """How to answer an update whose service replies are `replies` (in order)."""
    if not isinstance(replies, Sequence):
        return _present_one(renderer, replies)
    parts = [_present_one(renderer, reply) for reply in replies]
    if not parts:
        return Presentation()
    first, rest = parts[0], parts[1:]
    follow = list(first.follow)
    for part in rest:
        if part.primary is not None:
            follow.append(part.primary)
        follow.extend(part.follow)
    return Presentation(
        primary=first.primary,
        follow=tuple(follow),
        toast=first.toast,
        edit_pressed=first.edit_pressed,
    )


def _present_one(renderer: Renderer, reply: Reply) -> Presentation:
    if isinstance(reply, QuestionnaireReply):
        return _questionnaire(renderer, reply)
    if isinstance(reply, SafetyReply):
        return _safety(renderer, reply)
    if isinstance(reply, AccountReply):
        return _account(renderer, reply)
    if isinstance(reply, EnrollmentResult):
        return _enrollment(renderer, reply)
    if isinstance(reply, StatusView):
        return Presentation(primary=status_screen(renderer, reply), edit_pressed=False)
    assert isinstance(reply, Notice)
    buttons: tuple[tuple[Button, ...], ...] = ()
    if reply.offers_side_effect:
        label = renderer.text("safety.report_button", reply.language)
        buttons = ((Button(label, cb.encode(SIDE_EFFECT_BUTTON)),),)
    return Presentation(
        primary=Screen(renderer.text(reply.key, reply.language), buttons), edit_pressed=False
    )


# ---------------------------------------------------------------------------------------------
# Safety check-in (clinical spec §8)
# ---------------------------------------------------------------------------------------------


def _safety_button(renderer: Renderer, lang: str, key: str, view: SafetyView, action: str,
                   question: str) -> Button:  # fmt: skip
    return Button(
        renderer.text(key, lang), cb.encode(cb.SafetyButton(view.checkin_id, action, question))
    )


def _safety_question(renderer: Renderer, lang: str, view: SafetyView, number: str | None) -> Screen:
    """One question with Yes/No (the current answer marked) and Back; every screen says that
    messages are not watched in real time (§8)."""
    code = view.current
    position = safety_rules.QUESTION_CODES.index(code) + 1
    current = view.answer(code)
    answer = None
    if current is not None:
        answer = renderer.text("safety.yes" if current.yes else "safety.no", lang)
    parts = [
        renderer.text("safety.intro", lang),
        renderer.text(
            "safety.progress", lang, number=position, total=len(safety_rules.QUESTION_CODES)
        ),
        f"<b>{renderer.text(f'safety.question.{code}', lang)}</b>",
    ]
    if answer is not None:
        parts.append(renderer.text("safety.current", lang, answer=answer))
    parts.append(renderer.text("safety.not_watched", lang, number=number or ""))
    yes = renderer.text("safety.yes", lang)
    no = renderer.text("safety.no", lang)
    rows: list[tuple[Button, ...]] = [
        (
            Button(f"·{yes}·" if current is not None and current.yes else yes,
                   cb.encode(cb.SafetyButton(view.checkin_id, "y", code))),
            Button(f"·{no}·" if current is not None and not current.yes else no,
                   cb.encode(cb.SafetyButton(view.checkin_id, "n", code))),
        )
    ]  # fmt: skip
    if position > 1:
        rows.append((_safety_button(renderer, lang, "safety.back", view, "b", code),))
    return Screen(fit("\n\n".join(parts)), tuple(rows))


def _safety_summary(renderer: Renderer, lang: str, view: SafetyView, number: str | None) -> Screen:
    """Every answer (with its note), a button per question to change it, Back and Confirm."""
    lines = [renderer.text("safety.summary_title", lang)]
    for answer in view.answers:
        mark = renderer.text("safety.yes" if answer.yes else "safety.no", lang)
        line = f"• {renderer.text(f'safety.short.{answer.code}', lang)}: <b>{mark}</b>"
        if answer.note:
            line += f" ({renderer.text('safety.note', lang, note=answer.note)})"
        lines.append(line)
    lines.append("")
    lines.append(renderer.text("safety.summary_change", lang))
    lines.append(renderer.text("safety.not_watched", lang, number=number or ""))
    changes = [
        Button(
            renderer.text(f"safety.short.{code}", lang),
            cb.encode(cb.SafetyButton(view.checkin_id, "e", code)),
        )
        for code in safety_rules.QUESTION_CODES
    ]
    rows = [tuple(changes[i : i + 2]) for i in range(0, len(changes), 2)]
    rows.append(
        (
            _safety_button(renderer, lang, "safety.back", view, "b", SAFETY_SUMMARY),
            _safety_button(renderer, lang, "safety.confirm", view, "c", SAFETY_SUMMARY),
        )
    )
    return Screen(fit("\n".join(lines)), tuple(rows))


def safety_screen(renderer: Renderer, lang: str, view: SafetyView, number: str | None) -> Screen:
    """Where a safety check-in stands: a question, or the summary."""
    if view.current == SAFETY_SUMMARY:
        return _safety_summary(renderer, lang, view, number)
    return _safety_question(renderer, lang, view, number)


def _safety(renderer: Renderer, reply: SafetyReply) -> Presentation:
    lang = reply.language
    view = reply.view
    number = reply.emergency_number
    advice = tuple(
        Screen(renderer.text(f"safety.advice.{item.value}", lang, number=number or ""))
        for item in reply.advice
    )
    match reply.outcome:
        case SafetyOutcome.SHOW if view is not None:
            return Presentation(primary=safety_screen(renderer, lang, view, number), follow=advice)
        case SafetyOutcome.STALE if view is not None:
            return Presentation(
                primary=safety_screen(renderer, lang, view, number),
                toast=renderer.text("safety.stale", lang),
            )
        case SafetyOutcome.CONFIRMED:
            text = "\n\n".join(
                (
                    renderer.text("safety.confirmed", lang),
                    renderer.text("safety.not_watched", lang, number=number or ""),
                )
            )
            return Presentation(primary=Screen(text))
        case SafetyOutcome.NOTE_SAVED if view is not None:
            noted = next((a for a in reversed(view.answers) if a.yes and a.note), None)
            question = "" if noted is None else renderer.text(f"safety.short.{noted.code}", lang)
            return Presentation(
                primary=Screen(renderer.text("safety.note_saved", lang, question=question)),
                edit_pressed=False,
            )
    key = {
        SafetyOutcome.ALREADY_CONFIRMED: "already_confirmed",
        SafetyOutcome.NOT_ACTIVE: "not_active",
    }.get(reply.outcome, "not_yours")
    return Presentation(toast=renderer.text(f"safety.{key}", lang), edit_pressed=False)


# ---------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryScreens:
    """`/history`: the chart's caption and labels and the table, or the text for no data."""

    language: str
    caption: str
    table: str | None
    labels: ChartLabels
    points: list[TrendPoint] = field(default_factory=list)
    empty: str | None = None


def chart_labels(
    renderer: Renderer,
    language: str,
    weeks: int,
    title: Callable[[str], str] | None = None,
) -> ChartLabels:
    """Every text on a trend chart (the patient's `/history` and the physician's `/patient`),
    in `language`; English when no installed font can draw that language (a server without
    CJK fonts would otherwise draw empty boxes). `title(language)` replaces the patient's
    title, e.g. with the physician's one naming the patient."""
    labels = ChartLabels(
        title=(
            title(language)
            if title is not None
            else renderer.text("history.title", language, weeks=weeks)
        ),
        basdai=renderer.text("history.basdai", language),
        asdas=renderer.text("history.asdas", language),
        lab=renderer.text("history.lab", language),
        active_line=renderer.text("history.active_line", language),
        inactive=renderer.asdas_state_name("inactive", language),
        low=renderer.asdas_state_name("low", language),
        high=renderer.asdas_state_name("high", language),
        very_high=renderer.asdas_state_name("very_high", language),
        date_pattern=renderer.text("history.chart_date_format", language),
        language=language,
    )
    if language != "en" and not can_render(labels.texts()):
        return chart_labels(renderer, "en", weeks, title)
    return labels


def history_screens(renderer: Renderer, history: History) -> HistoryScreens:
    """The caption, table, chart labels and chart points of a patient's history."""
    lang = history.language
    weeks = round((history.until - history.since).days / 7)
    labels = chart_labels(renderer, lang, weeks)
    if not history.entries:
        return HistoryScreens(
            lang, "", None, labels, empty=renderer.text("history.empty", lang, weeks=weeks)
        )
    has_asdas = any(entry.asdas is not None for entry in history.entries)
    date_pattern = renderer.text("history.date_format", lang)
    lines = []
    for entry in history.entries:
        day = formats.day_text(_local(entry.completed_at, history.timezone), date_pattern, lang)
        basdai = "–" if entry.basdai is None else display(entry.basdai, lang)
        asdas = "–"
        if entry.asdas is not None and entry.asdas_state is not None:
            state = renderer.asdas_state_name(entry.asdas_state, lang)
            asdas = f"{display(entry.asdas, lang)} {entry.asdas_kind} ({state})"
        lines.append(f"{day:<11} {basdai:>6}  {asdas}")
    header = renderer.text("history.header", lang)
    table = renderer.text("history.table", lang, header=header, rows=lines)
    # The newest rows are kept if the table would exceed Telegram's limit.
    while len(table) > TELEGRAM_TEXT_LIMIT and len(lines) > 1:
        lines = lines[1:]
        table = renderer.text("history.table", lang, header=header, rows=lines)
    points = [
        TrendPoint(at=entry.completed_at, basdai=entry.basdai, asdas=entry.asdas)
        for entry in history.entries
    ]
    return HistoryScreens(
        language=lang,
        caption=renderer.text("history.caption", lang, weeks=weeks, has_asdas=has_asdas),
        table=table,
        labels=labels,
        points=points,
    )


def display(value: Decimal, language: str = "en") -> str:
    """A score with one decimal, half away from zero (clinical spec §3), written with the
    language's decimal separator."""
    return formats.number_text(display_round(value), language)


def _number(value: str | None, language: str) -> str | None:
    return None if value is None else formats.number_text(value, language)
