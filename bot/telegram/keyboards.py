"""Inline keyboards for Telegram, built from the button rows `bot.present` composes."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.present.screens import Button


def markup(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    """The button rows as an inline keyboard, or None when there are none.

    Keyboards are immutable once built, so one is built once per distinct set of rows and
    reused (a questionnaire's answer buttons differ only by item and administration).
    """
    if not rows:
        return None
    return _keyboard(tuple(tuple(row) for row in rows))


@lru_cache(maxsize=1024)
def _keyboard(rows: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button.label, callback_data=button.data) for button in row]
            for row in rows
        ]
    )
