"""The safety check-in as a patient sees it (clinical spec §8)."""

from __future__ import annotations

from bot import callbacks as cb
from bot.domain import safety as safety_rules
from bot.present.render import Renderer
from bot.present.screens import Button, Presentation, Screen, fit
from bot.services.safety import SUMMARY as SAFETY_SUMMARY
from bot.services.safety import SafetyOutcome, SafetyReply, SafetyView

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


def checkin_presentation(renderer: Renderer, reply: SafetyReply) -> Presentation:
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
