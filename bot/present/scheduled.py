"""What a patient reads in a scheduled message: invitations, reminders and snooze replies."""

from __future__ import annotations

from bot.callbacks import SnoozeButton, StartButton, encode
from bot.present.render import Renderer
from bot.present.screens import Button, Screen
from bot.services import scheduling
from bot.services.scheduling import ScheduledMessage, SnoozeResult, SnoozeStatus


def start_buttons(
    renderer: Renderer, language: str, administration_id: int, *, label: str
) -> tuple[tuple[Button, ...], ...]:
    """One "Start" button that opens (or resumes) the questionnaire."""
    return ((Button(renderer.text(label, language), encode(StartButton(administration_id))),),)


def reminder_buttons(
    renderer: Renderer, language: str, administration_id: int, *, started: bool
) -> tuple[tuple[Button, ...], ...]:
    """ "Start now" (or "Continue") and the two snooze buttons."""
    start = "schedule.button_continue" if started else "schedule.button_start_now"
    snoozes = tuple(
        Button(
            renderer.text(f"schedule.button_snooze_{choice}", language),
            encode(SnoozeButton(administration_id, choice)),
        )
        for choice in ("2h", "1d")
    )
    return (
        (Button(renderer.text(start, language), encode(StartButton(administration_id))),),
        snoozes,
    )


def scheduled_screen(renderer: Renderer, message: ScheduledMessage) -> Screen:
    """The text and buttons of a claimed invitation or reminder, in the patient's language."""
    language = message.language
    if message.kind == scheduling.INVITATION:
        text = renderer.text("schedule.invitation", language, until=message.closes_at)
        buttons = start_buttons(
            renderer, language, message.administration_id, label="schedule.button_start"
        )
    else:
        key = "schedule.reminder_started" if message.started else "schedule.reminder"
        text = renderer.text(key, language, until=message.closes_at)
        buttons = reminder_buttons(
            renderer, language, message.administration_id, started=message.started
        )
    return Screen(text=text, buttons=buttons)


def snooze_screen(
    renderer: Renderer, language: str, administration_id: int, result: SnoozeResult
) -> Screen:
    """The reminder after a snooze button: when it comes back, or why it cannot."""
    start = start_buttons(renderer, language, administration_id, label="schedule.button_start_now")
    if result.status is SnoozeStatus.SNOOZED:
        text = renderer.text("schedule.snoozed", language, remind_at=result.remind_at)
        return Screen(text=text, buttons=start)
    if result.status is SnoozeStatus.CLOSES_FIRST:
        text = renderer.text("schedule.snooze_too_late", language, until=result.closes_at)
        return Screen(text=text, buttons=start)
    return Screen(text=renderer.text("schedule.closed", language))
