"""`/digest` for physicians: when the weekly digest arrives, immediate alerts, and "send now".

Everyone else gets "not available". Buttons carry what they do (`p:dg_day:3`,
`p:dg_time:08:00`, `p:dg_alerts:on`, `p:dg_now:go`, `p:dg_menu:day`) and each press is checked
again against the pressing account, so an old button in a forwarded chat changes nothing.
"""

from __future__ import annotations

import logging
from datetime import time
from typing import Any, Final

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot import digest_send
from bot.app import deps
from bot.callbacks import PhysicianButton, decode, encode
from bot.formats import clock_text, weekday_name
from bot.handlers.common import call, user_language
from bot.render import Renderer
from bot.services import digest
from bot.services.digest import DigestSchedule

logger = logging.getLogger(__name__)

ACTION_PREFIX: Final = "dg_"
TIME_CHOICES: Final = ("06:00", "07:00", "08:00", "09:00", "12:00", "17:00", "20:00")
"""Delivery times offered as buttons, in the physician's own time zone."""


def _button(
    renderer: Renderer, language: str, key: str, action: str, argument: str
) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        renderer.text(key, language),
        callback_data=encode(PhysicianButton(f"{ACTION_PREFIX}{action}", argument)),
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


def menu_keyboard(renderer: Renderer, schedule: DigestSchedule) -> InlineKeyboardMarkup:
    """Change weekday, change time, send now, and alerts on or off."""
    language = schedule.language
    alerts = "off" if schedule.alerts_enabled else "on"
    return InlineKeyboardMarkup(
        [
            [
                _button(renderer, language, "digest.button.day", "menu", "day"),
                _button(renderer, language, "digest.button.time", "menu", "time"),
            ],
            [_button(renderer, language, "digest.button.now", "now", "go")],
            [_button(renderer, language, f"digest.button.alerts_{alerts}", "alerts", alerts)],
        ]
    )


def _day_keyboard(renderer: Renderer, language: str) -> InlineKeyboardMarkup:
    days = [
        InlineKeyboardButton(
            weekday_name(day, language),
            callback_data=encode(PhysicianButton(f"{ACTION_PREFIX}day", str(day))),
        )
        for day in range(7)
    ]
    back = _button(renderer, language, "digest.button.back", "menu", "main")
    return InlineKeyboardMarkup([days[:4], days[4:], [back]])


def _time_keyboard(renderer: Renderer, language: str) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(
            choice, callback_data=encode(PhysicianButton(f"{ACTION_PREFIX}time", choice))
        )
        for choice in TIME_CHOICES
    ]
    back = _button(renderer, language, "digest.button.back", "menu", "main")
    return InlineKeyboardMarkup([buttons[:4], buttons[4:], [back]])


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
        chat.id, menu_text(d.renderer, schedule), reply_markup=menu_keyboard(d.renderer, schedule)
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
            _day_keyboard(d.renderer, language),
        )
        return
    if action == "menu" and argument == "time":
        await query.answer()
        await _show(
            update,
            d.renderer.text("digest.pick_time", language, timezone=schedule.timezone),
            _time_keyboard(d.renderer, language),
        )
        return
    if action == "now":
        await query.answer(d.renderer.text("digest.sending", language))
        results = await digest_send.send_now(
            context.bot, d.ctx, d.renderer, physician_id=schedule.physician_id, chat_id=chat.id
        )
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
            update, menu_text(d.renderer, schedule, notice), menu_keyboard(d.renderer, schedule)
        )
        return
    logger.info(
        "digest settings changed",
        extra={"fields": {"physician_id": changed.physician_id, "setting": action}},
    )
    await _show(
        update, menu_text(d.renderer, changed, "digest.saved"), menu_keyboard(d.renderer, changed)
    )


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Registers `/digest` and its buttons (callback data `p:dg_…`)."""
    application.add_handler(
        CommandHandler("digest", digest_command, filters=filters.ChatType.PRIVATE)
    )
    application.add_handler(
        CallbackQueryHandler(digest_button, pattern=rf"^p:{ACTION_PREFIX}[a-z]+:")
    )
