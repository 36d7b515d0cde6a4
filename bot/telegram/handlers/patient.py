"""What a patient (or anyone not yet enrolled) experiences in Telegram.

Enrollment by `/start <code>`, consent and onboarding, the questionnaire's buttons and typed
answers, and the patient commands. Every handler parses the update, calls one service of
`bot.services.conversation` (or history), and hands the reply to `bot.telegram.handlers.presenter`.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ContextTypes,
)

from bot.present.charts import trend_chart_png
from bot.present.conversation import present as presentation_of
from bot.present.history import history_screens
from bot.present.screens import Presentation, Screen
from bot.services import conversation, history
from bot.services import redelivery as updates
from bot.services.conversation import Notice
from bot.telegram import digest_sending as digest_send
from bot.telegram.deps import UpdateContext, deps
from bot.telegram.handlers.common import call, call_brief, user_language
from bot.telegram.handlers.presenter import answer_query, present

logger = logging.getLogger(__name__)

MENU_COMMANDS = (
    "checkin", "sideeffect", "history", "status", "settings", "language", "pause", "stop", "help",
)  # fmt: skip
"""The command menu Telegram shows, in this order, described in templates/…/commands.toml."""

GUARD_GROUP = -1
MAIN_GROUP = 0
"""The handlers that answer; the fallbacks (`unknown_button`, `unknown_command`) come last in it."""
SETTLE_GROUP = 100


def message_key(update: Update) -> str | None:
    """What identifies the message or button press an update carries, whatever its update id:
    a typed "5" delivered twice must not answer two questions."""
    query = update.callback_query
    if query is not None:
        # The presser's id is part of the key so that deleting their data can find it.
        return f"q:{query.from_user.id}:{query.id}"
    message = update.message
    if message is not None:
        return f"m:{message.chat.id}:{message.message_id}"
    return None


async def claim_update(update: Update, context: UpdateContext) -> None:
    """Prepares the claim that this update is handled once and hands it to the handlers that
    follow in the update's context (`deps(context).ctx`). It commits with the first unit of
    work they open (`bot.context.UpdateClaim`), or on its own at the end (`settle_claim`); a
    redelivery (same update id, or the same message or button press under a new one) is then
    dropped silently (`bot.app`'s error handler)."""
    person = update.effective_user
    wrote = update.message is not None or update.callback_query is not None
    context.claim(
        updates.update_claim(
            deps(context).ctx,
            update_id=update.update_id,
            message_key=message_key(update),
            # A patient who had blocked the bot and writes again is reachable again.
            contact_from=person.id if wrote and person is not None and not person.is_bot else None,
        )
    )


async def settle_claim(update: Update, context: UpdateContext) -> None:
    """Commits the update's claim if no handler opened a unit of work for it."""
    ctx = deps(context).ctx
    if ctx.claim is not None and not ctx.claim.settled:
        await call_brief(updates.settle_claim, ctx)


def _who(update: Update) -> tuple[int, int, str]:
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None
    assert chat is not None
    return user.id, chat.id, user_language(update)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Joins with the code of the clinic's link, or shows where the person stands."""
    user_id, chat_id, language = _who(update)
    code = " ".join(context.args or []) or None
    replies = await call_brief(
        conversation.start,
        deps(context).ctx,
        telegram_user_id=user_id,
        chat_id=chat_id,
        code=code,
        language=language,
    )
    await present(update, context, presentation_of(deps(context).renderer, replies))


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Records an answer or a choice; a stale or forged button is refused kindly."""
    query = update.callback_query
    assert query is not None
    user_id, _chat_id, language = _who(update)
    d = deps(context)
    reply = await call_brief(
        conversation.press, d.ctx, telegram_user_id=user_id, data=query.data, language=language
    )
    replies = [reply]
    if conversation.has_follow_up(reply):
        # A confirmed weekly questionnaire is followed by the safety check-in (spec §8).
        replies += await call_brief(
            conversation.follow_up, d.ctx, telegram_user_id=user_id, reply=reply
        )
    await present(update, context, presentation_of(d.renderer, replies))
    # A confirmed questionnaire may alert the physician (only if they turned alerts on);
    # a red flag in the safety check-in always does, once.
    await digest_send.alert_if_completed(context.bot, d.ctx, d.renderer, reply)
    await digest_send.send_safety_alerts(context.bot, d.ctx, d.renderer, reply)


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Takes a typed code, setup answer or questionnaire answer; explains how to join otherwise."""
    message = update.effective_message
    assert message is not None
    assert message.text is not None
    user_id, chat_id, language = _who(update)
    replies = await call_brief(
        conversation.typed,
        deps(context).ctx,
        telegram_user_id=user_id,
        chat_id=chat_id,
        text=message.text,
        language=language,
    )
    if (
        len(replies) == 1
        and isinstance(replies[0], Notice)
        and replies[0].key == "enrollment.physician_intro"
        and handled_elsewhere(update, context)
    ):
        return
    await present(update, context, presentation_of(deps(context).renderer, replies))


async def patient_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/checkin, /status, /settings, /language, /pause, /stop or /help."""
    message = update.effective_message
    assert message is not None
    assert message.text is not None
    name = message.text.split()[0].lstrip("/").split("@")[0].lower()
    user_id, _chat_id, language = _who(update)
    replies = await call_brief(
        conversation.command,
        deps(context).ctx,
        telegram_user_id=user_id,
        name=name,
        language=language,
    )
    await present(update, context, presentation_of(deps(context).renderer, replies))


async def history_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Sends the chart of the last 12 weeks and a short table of scores."""
    user_id, chat_id, language = _who(update)
    d = deps(context)
    found = await call(history.my_history, d.ctx, telegram_user_id=user_id)
    if found is None:
        replies = await call_brief(
            conversation.command, d.ctx, telegram_user_id=user_id, name="help", language=language
        )
        await present(update, context, presentation_of(d.renderer, replies))
        return
    screens = history_screens(d.renderer, found)
    if screens.empty is not None or screens.table is None:
        await present(update, context, Presentation(primary=Screen(screens.empty or "")))
        return
    png = await call(
        trend_chart_png,
        screens.points,
        labels=screens.labels,
        lab_dates=[mark.drawn_at for mark in found.labs],
        start=found.since,
        end=found.until,
        timezone=found.timezone,
    )
    await context.bot.send_photo(chat_id, png, caption=screens.caption)
    await context.bot.send_message(chat_id, screens.table)


def handled_elsewhere(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Whether a handler of another group than the main one also matches this update, i.e.
    another part of the bot answers it. Within one group only the first matching handler runs,
    so the callers' own group, the main one, is not searched; guards (negative groups, and the
    claim settled last, which see every update) answer nothing."""
    for group, handlers in context.application.handlers.items():
        if group < 0 or group == MAIN_GROUP:
            continue
        for handler in handlers:
            if handler.callback in _OWN_CALLBACKS:
                continue
            if handler.check_update(update) not in (None, False):
                return True
    return False


async def unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answers a button nobody handles (malformed or forged data) so its spinner stops."""
    query = update.callback_query
    if query is None or handled_elsewhere(update, context):
        return
    _user_id, _chat_id, language = _who(update)
    await answer_query(query, deps(context).renderer.text("questionnaire.not_yours", language))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answers a command nobody handles with the help that fits the account."""
    if handled_elsewhere(update, context):
        return
    user_id, _chat_id, language = _who(update)
    replies = await call_brief(
        conversation.command,
        deps(context).ctx,
        telegram_user_id=user_id,
        name="help",
        language=language,
    )
    await present(update, context, presentation_of(deps(context).renderer, replies))


_OWN_CALLBACKS: set[Any] = {claim_update, settle_claim, unknown_button, unknown_command}


async def publish_commands(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Publishes the command menu in every supported language (English is the default)."""
    renderer = deps(application).renderer
    for language in renderer.languages:
        commands = [
            BotCommand(name, renderer.text(f"commands.{name}", language)) for name in MENU_COMMANDS
        ]
        await application.bot.set_my_commands(
            commands, language_code=None if language == "en" else language
        )
