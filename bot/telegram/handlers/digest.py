"""`/digest` for physicians: when the weekly digest arrives, immediate alerts, and "send now".

Everyone else gets "not available". Buttons carry what they do (`p:dg_day:3`,
`p:dg_time:08:00`, `p:dg_alerts:on`, `p:dg_now:go`, `p:dg_menu:day`) and each press is checked
again against the pressing account, so an old button in a forwarded chat changes nothing.
"""

from __future__ import annotations

import logging
from datetime import time
from typing import Final

from telegram import InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.callbacks import PhysicianButton, decode
from bot.present.digest.menu import (
    ACTION_PREFIX,
    TIME_CHOICES,
    day_buttons,
    menu_buttons,
    menu_text,
    time_buttons,
)
from bot.services import digest
from bot.services.digest import DigestSchedule, Recipients
from bot.telegram import digest_sending as digest_send
from bot.telegram.deps import deps
from bot.telegram.handlers.common import call, user_language
from bot.telegram.keyboards import markup

logger = logging.getLogger(__name__)

BUTTON_PATTERN: Final = rf"^p:{ACTION_PREFIX}[a-z]+:"
"""The callback data of the digest settings' buttons."""


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows a physician when their digest arrives, with buttons to change it or get it now."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None
    assert chat is not None
    d = deps(context)
    schedule = await call(digest.schedule_for_account, d.ctx, telegram_user_id=user.id)
    if schedule is None:
        await context.bot.send_message(
            chat.id, d.renderer.text("common.not_available", user_language(update))
        )
        return
    await context.bot.send_message(
        chat.id,
        menu_text(d.renderer, schedule),
        reply_markup=markup(menu_buttons(d.renderer, schedule)),
    )


async def _show(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replaces the pressed message's text and buttons (an unchanged message is fine)."""
    query = update.callback_query
    assert query is not None
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as error:
        if "not modified" in str(error).lower():
            return
        # The menu can no longer be edited (deleted, or inaccessible): show it anew.
        chat = update.effective_chat
        if chat is None:
            raise
        await chat.send_message(text, reply_markup=markup)


async def digest_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Changes the weekday, time or alerts, or sends this week's digest now."""
    query = update.callback_query
    user, chat = update.effective_user, update.effective_chat
    assert query is not None
    assert user is not None
    assert chat is not None
    d = deps(context)
    button = decode(query.data)
    schedule = await call(digest.schedule_for_account, d.ctx, telegram_user_id=user.id)
    if schedule is None or not isinstance(button, PhysicianButton):
        await query.answer(d.renderer.text("common.not_available", user_language(update)))
        return
    action, argument = button.action.removeprefix(ACTION_PREFIX), button.argument
    language = schedule.language
    changed: DigestSchedule | None = None
    if action == "menu" and argument == "day":
        await query.answer()
        await _show(
            update,
            d.renderer.text("digest.pick_day", language),
            markup(day_buttons(d.renderer, language)),
        )
        return
    if action == "menu" and argument == "time":
        await query.answer()
        await _show(
            update,
            d.renderer.text("digest.pick_time", language, timezone=schedule.timezone),
            markup(time_buttons(d.renderer, language)),
        )
        return
    if action == "now":
        await query.answer(d.renderer.text("digest.sending", language))
        to = Recipients(physician_id=schedule.physician_id, chat_id=chat.id, email=None)
        results = await digest_send.send_now(context.bot, d.ctx, d.renderer, to)
        if results is None:
            await context.bot.send_message(chat.id, d.renderer.text("digest.no_patients", language))
        return
    if action == "day" and argument.isdigit() and 0 <= int(argument) <= 6:
        changed = await call(
            digest.change_schedule, d.ctx, telegram_user_id=user.id, weekday=int(argument)
        )
    elif action == "time" and argument in TIME_CHOICES:
        hours, minutes = argument.split(":")
        changed = await call(
            digest.change_schedule,
            d.ctx,
            telegram_user_id=user.id,
            at=time(int(hours), int(minutes)),
        )
    elif action == "alerts" and argument in ("on", "off"):
        changed = await call(
            digest.change_schedule, d.ctx, telegram_user_id=user.id, alerts_enabled=argument == "on"
        )
    await query.answer()
    if changed is None:
        notice = None if action == "menu" else "digest.unknown_button"
        await _show(
            update,
            menu_text(d.renderer, schedule, notice),
            markup(menu_buttons(d.renderer, schedule)),
        )
        return
    logger.info(
        "digest settings changed",
        extra={"fields": {"physician_id": changed.physician_id, "setting": action}},
    )
    await _show(
        update,
        menu_text(d.renderer, changed, "digest.saved"),
        markup(menu_buttons(d.renderer, changed)),
    )
