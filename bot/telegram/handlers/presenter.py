"""Puts a `bot.present.screens.Presentation` on Telegram: edit in place, send, strip old keyboards.

Telegram refuses an edit that changes nothing ("message is not modified"); that is the normal
outcome of a double tap and is ignored. An edit of a message that is gone or too old falls back
to sending a new message.
"""

from __future__ import annotations

import contextlib
import logging

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

from bot.present.screens import Presentation, Screen, fit
from bot.services import questionnaire
from bot.telegram.deps import deps
from bot.telegram.handlers.common import call_brief
from bot.telegram.keyboards import markup

logger = logging.getLogger(__name__)


def not_modified(error: BadRequest) -> bool:
    """Whether Telegram refused an edit only because nothing would change."""
    return "message is not modified" in error.message.lower()


async def answer_query(query: CallbackQuery, text: str | None = None) -> None:
    """Stops the button's spinner (with a short notice); an expired query is not an error."""
    try:
        await query.answer(text=text)
    except BadRequest:
        logger.info("callback query could not be answered (expired)")


async def strip_keyboard(context: ContextTypes.DEFAULT_TYPE, chat_id: int, message_id: int) -> None:
    """Removes the buttons under a message (already gone or unchanged is fine)."""
    with contextlib.suppress(BadRequest):
        await context.bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)


async def edit_or_send(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, message_id: int | None, screen: Screen
) -> int:
    """Shows `screen` in message `message_id` if possible, else as a new message; returns the
    id of the message that shows it."""
    keyboard: InlineKeyboardMarkup | None = markup(screen.buttons)
    text = fit(screen.text)
    if message_id is not None:
        try:
            await context.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard
            )
            return message_id
        except BadRequest as error:
            if not_modified(error):
                return message_id
            logger.info("edit refused, sending a new message instead")
    sent = await context.bot.send_message(chat_id, text, reply_markup=keyboard)
    return sent.message_id


async def _show(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, target: int | None, screen: Screen
) -> None:
    message_id = await edit_or_send(context, chat_id, target, screen)
    if screen.live_administration_id is None:
        return
    previous = screen.previous_message_id
    if previous is not None and previous != message_id:
        await strip_keyboard(context, chat_id, previous)
    if previous != message_id:
        await call_brief(
            questionnaire.remember_question_message,
            deps(context).ctx,
            administration_id=screen.live_administration_id,
            message_id=message_id,
        )


def pressed_message_id(update: Update) -> int | None:
    """The message whose button was pressed, if it can still be edited."""
    query = update.callback_query
    if query is None or not isinstance(query.message, Message):
        return None
    return query.message.message_id


async def present(
    update: Update, context: ContextTypes.DEFAULT_TYPE, presentation: Presentation
) -> None:
    """Answers an update as `presentation` says (see its docstring)."""
    chat = update.effective_chat
    if chat is None:
        return
    query = update.callback_query
    pressed = pressed_message_id(update)
    if query is not None:
        await answer_query(query, presentation.toast)
    try:
        if presentation.primary is not None:
            target = pressed if presentation.edit_pressed else None
            if pressed is not None and not presentation.edit_pressed:
                await strip_keyboard(context, chat.id, pressed)
            await _show(context, chat.id, target, presentation.primary)
        elif pressed is not None and presentation.toast is not None:
            await strip_keyboard(context, chat.id, pressed)
        elif query is None and presentation.toast is not None and not presentation.follow:
            await context.bot.send_message(chat.id, fit(presentation.toast))
        for screen in presentation.follow:
            await _show(context, chat.id, None, screen)
    except Forbidden:
        logger.info("chat refuses messages (bot blocked)")
