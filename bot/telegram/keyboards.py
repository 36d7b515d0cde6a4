"""Inline keyboards for Telegram, built from the button rows of a `bot.present.screens.Screen`."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.present.screens import Screen


def markup(screen: Screen) -> InlineKeyboardMarkup | None:
    """The screen's buttons as an inline keyboard, or None when it has none."""
    if not screen.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button.label, callback_data=button.data) for button in row]
            for row in screen.buttons
        ]
    )
