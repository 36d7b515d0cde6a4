"""The physician's digest settings in the chat: the menu text and its buttons."""

from __future__ import annotations

from typing import Final

from bot.callbacks import PhysicianButton, encode
from bot.present.formats import clock_text, weekday_name
from bot.present.render import Renderer
from bot.present.screens import Button
from bot.services.digest import DigestSchedule

ACTION_PREFIX: Final = "dg_"
"""Digest buttons are physician buttons whose action starts with this."""

Rows = tuple[tuple[Button, ...], ...]

TIME_CHOICES: Final = ("06:00", "07:00", "08:00", "09:00", "12:00", "17:00", "20:00")
"""Delivery times offered as buttons, in the physician's own time zone."""


def _button(renderer: Renderer, language: str, key: str, action: str, argument: str) -> Button:
    return Button(
        renderer.text(key, language), encode(PhysicianButton(f"{ACTION_PREFIX}{action}", argument))
    )


def menu_text(renderer: Renderer, schedule: DigestSchedule, notice: str | None = None) -> str:
    """The settings message: weekday, time, time zone and whether alerts are on."""
    language = schedule.language
    text = renderer.text(
        "digest.menu",
        language,
        weekday=weekday_name(schedule.weekday, language),
        time=clock_text(schedule.at, language),
        timezone=schedule.timezone,
        alerts_state=renderer.text(
            "digest.alerts_on" if schedule.alerts_enabled else "digest.alerts_off", language
        ),
    )
    return text if notice is None else f"{renderer.text(notice, language)}\n{text}"


def menu_buttons(renderer: Renderer, schedule: DigestSchedule) -> Rows:
    """Change weekday, change time, send now, and alerts on or off."""
    language = schedule.language
    alerts = "off" if schedule.alerts_enabled else "on"
    return (
        (
            _button(renderer, language, "digest.button.day", "menu", "day"),
            _button(renderer, language, "digest.button.time", "menu", "time"),
        ),
        (_button(renderer, language, "digest.button.now", "now", "go"),),
        (_button(renderer, language, f"digest.button.alerts_{alerts}", "alerts", alerts),),
    )


def day_buttons(renderer: Renderer, language: str) -> Rows:
    """The seven weekdays, then Back."""
    days = [
        Button(
            weekday_name(day, language), encode(PhysicianButton(f"{ACTION_PREFIX}day", str(day)))
        )
        for day in range(7)
    ]
    back = _button(renderer, language, "digest.button.back", "menu", "main")
    return (tuple(days[:4]), tuple(days[4:]), (back,))


def time_buttons(renderer: Renderer, language: str) -> Rows:
    """The offered delivery times, then Back."""
    buttons = [
        Button(choice, encode(PhysicianButton(f"{ACTION_PREFIX}time", choice)))
        for choice in TIME_CHOICES
    ]
    back = _button(renderer, language, "digest.button.back", "menu", "main")
    return (tuple(buttons[:4]), tuple(buttons[4:]), (back,))
