"""Reminder buttons (snooze), and the guard that notices a patient who blocked the bot is back."""

from __future__ import annotations

import logging

from telegram import ChatMember, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.callbacks import SnoozeButton, decode
from bot.present.scheduled import snooze_screen
from bot.services import scheduling
from bot.services.scheduling import SnoozeStatus
from bot.telegram import keyboards
from bot.telegram.deps import deps
from bot.telegram.handlers.common import call_brief, user_language

logger = logging.getLogger(__name__)

# The contact guard gets a group of its own: within one group only the first matching handler
# runs, so a catch-all guard sharing group -1 would hide the other guards there (or be hidden).
CONTACT_GUARD_GROUP = -2


async def notice_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Telegram's notice that a patient blocked the bot marks them unreachable at once; one
    who unblocks and writes again is restored by the update claim (`updates.update_claim`)."""
    user = update.effective_user
    if user is None or user.is_bot:
        return
    ctx = deps(context).ctx
    member = update.my_chat_member
    if member is None:
        return
    if member.new_chat_member.status == ChatMember.BANNED:
        await call_brief(scheduling.note_blocked, ctx, telegram_user_id=user.id)
    else:
        await call_brief(scheduling.restore_contact, ctx, telegram_user_id=user.id)


async def snooze(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The patient taps "Remind me in 2 hours" or "Tomorrow" and is told when it comes back."""
    query = update.callback_query
    user = update.effective_user
    if query is None or user is None:
        return
    button = decode(query.data)
    dependencies = deps(context)
    renderer = dependencies.renderer
    if not isinstance(button, SnoozeButton):
        await query.answer(renderer.text("schedule.not_available", user_language(update)))
        return
    result = await call_brief(
        scheduling.snooze_reminder,
        dependencies.ctx,
        telegram_user_id=user.id,
        administration_id=button.administration_id,
        choice=button.choice,
    )
    language = result.language or user_language(update)
    if result.status is SnoozeStatus.UNKNOWN:
        await query.answer(renderer.text("schedule.not_available", language))
        return
    await query.answer()
    screen = snooze_screen(renderer, language, button.administration_id, result)
    text, markup = screen.text, keyboards.markup(screen.buttons)
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as error:
        # A double tap edits to the same text; Telegram refuses that and nothing is lost.
        if "not modified" in str(error):
            return
        # The reminder can no longer be edited (deleted, or inaccessible): answer anew.
        chat = update.effective_chat
        if chat is None:
            raise
        await context.bot.send_message(chat.id, text, reply_markup=markup)
