"""Inline keyboards for Telegram, built from the button rows `bot.present` composes."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.present.screens import Button


def markup(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    """The button rows as an inline keyboard, or None when there are none."""
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button.label, callback_data=button.data) for button in row]
            for row in rows
        ]
    )
