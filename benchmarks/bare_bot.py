"""The framework's floor: a bare python-telegram-bot bot that does nothing but answer buttons.

Each button press gets one `answerCallbackQuery` and one `editMessageText`; a text message gets
one keyboard. Run as `python -m benchmarks.bare_bot` with TELEGRAM_BOT_TOKEN and
TELEGRAM_API_BASE_URL set, exactly like `spondybot run`.
"""

from __future__ import annotations

import os

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton(str(value), callback_data=f"a:{value}") for value in range(6)],
        [InlineKeyboardButton(str(value), callback_data=f"a:{value}") for value in range(6, 11)],
    ]
)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Sends the first question with its keyboard."""
    assert update.effective_chat is not None
    await context.bot.send_message(update.effective_chat.id, "Question 1", reply_markup=KEYBOARD)


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Acknowledges the press and edits the question in place."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    await query.edit_message_text(
        f"Answered {query.data} (#{update.update_id})", reply_markup=KEYBOARD
    )


def main() -> None:
    application = (
        ApplicationBuilder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(os.environ["TELEGRAM_API_BASE_URL"])
        .concurrent_updates(True)
        .build()
    )
    application.add_handler(CallbackQueryHandler(on_press))
    application.add_handler(MessageHandler(filters.TEXT, on_text))
    application.run_polling(allowed_updates=["message", "callback_query"])


if __name__ == "__main__":
    main()
