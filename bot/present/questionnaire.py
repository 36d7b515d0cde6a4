"""The questionnaire as a patient sees it: each question, the summary, the result."""

from __future__ import annotations

from decimal import Decimal

from bot import callbacks as cb
from bot.domain import flow, instruments
from bot.domain.scoring import asdas_category
from bot.present.render import Renderer
from bot.present.screens import (
    DURATIONS_PER_ROW,
    NRS_ROWS,
    Button,
    Presentation,
    Screen,
    fit,
    format_date,
    format_slot,
    informal_label,
    instrument_text,
    rounded,
)
from bot.services.questionnaire import Outcome, QuestionnaireReply, QuestionnaireView

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


def with_prefix(prefix: str, screen: Screen) -> Screen:
    return Screen(
        fit(f"{prefix}\n\n{screen.text}"),
        screen.buttons,
        screen.live_administration_id,
        screen.previous_message_id,
    )


def questionnaire_presentation(renderer: Renderer, reply: QuestionnaireReply) -> Presentation:
    lang = reply.language
    view = reply.view
    match reply.outcome:
        case Outcome.SHOW if view is not None:
            screen = questionnaire_screen(renderer, view)
            if reply.resumed and view.position != flow.first_position():
                screen = with_prefix(renderer.text("questionnaire.resumed", view.language), screen)
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
        basdai=rounded(result.basdai),
        active=result.active,
        trend=result.trend,
        previous=rounded(result.previous_basdai),
        previous_date=previous_date,
        asdas_high=result.asdas_high,
        asdas=rounded(result.asdas),
        asdas_kind=f"ASDAS-{result.asdas_kind}",
        asdas_state=(
            None
            if result.asdas is None
            else renderer.asdas_state_name(asdas_category(result.asdas), lang)
        ),
    )
