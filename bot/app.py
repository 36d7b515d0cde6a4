"""Composition root: builds the python-telegram-bot Application from the settings it is given."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.context import AppContext, RedeliveredUpdate
from bot.present.render import Renderer, default_renderer
from bot.services.conversation import PATIENT_COMMANDS, PATIENT_PREFIXES
from bot.telegram import digest_sending, tick
from bot.telegram.deps import CONTEXT_TYPES, DEPS_KEY, Deps, deps
from bot.telegram.handlers import digest, patient, physician, reminders
from bot.telegram.ordering import PerUserUpdateProcessor

logger = logging.getLogger(__name__)

TICK_TASKS: tuple[tick.TickTask, ...] = (
    tick.resume_paused_patients,
    tick.expire_administrations,
    tick.send_invitations,
    tick.send_reminders,
    digest_sending.send_due_digests,
    digest_sending.send_lab_alerts,
)
"""The tick's work, in the order it runs (add a task here; see `bot.telegram.tick`)."""


def handlers() -> list[tuple[BaseHandler[Any, Any, Any], int]]:
    """Every handler with its group. Note: order matters within a group; the first match wins.

    The snooze buttons (`z:…`) come first in the main group, so no catch-all takes them; the
    fallbacks for unknown buttons and commands come last in it, so a press or command another
    handler answers never reaches them (a later group would see every update again).
    """
    private = filters.ChatType.PRIVATE
    patient_prefixes = "|".join(prefix.rstrip(":") for prefix in PATIENT_PREFIXES)
    return [
        (TypeHandler(Update, patient.claim_update), patient.GUARD_GROUP),
        (
            ChatMemberHandler(
                reminders.notice_contact, ChatMemberHandler.MY_CHAT_MEMBER, block=False
            ),
            reminders.CONTACT_GUARD_GROUP,
        ),
        (CallbackQueryHandler(reminders.snooze, pattern=r"^z:"), 0),
        (CommandHandler("start", patient.start, filters=private), 0),
        (CommandHandler("history", patient.history_command, filters=private), 0),
        (
            CommandHandler(list(PATIENT_COMMANDS), patient.patient_command, filters=private),
            0,
        ),
        (CallbackQueryHandler(patient.button, pattern=rf"^(?:{patient_prefixes}):"), 0),
        (MessageHandler(filters.TEXT & ~filters.COMMAND & private, patient.text), 0),
        (CommandHandler("digest", digest.digest_command, filters=private), 0),
        (CallbackQueryHandler(digest.digest_button, pattern=digest.BUTTON_PATTERN), 0),
        (CommandHandler("patients", physician.patients_command, filters=private), 0),
        (CommandHandler("patient", physician.patient_command, filters=private), 0),
        (CommandHandler("crp", physician.crp_command, filters=private), 0),
        (CommandHandler("therapy", physician.therapy_command, filters=private), 0),
        (CallbackQueryHandler(physician.physician_button, pattern=physician.BUTTON_PATTERN), 0),
        # Last in the main group: only a button or command no handler above took reaches them.
        (CallbackQueryHandler(patient.unknown_button), 0),
        (MessageHandler(filters.COMMAND & private, patient.unknown_command), 0),
        (TypeHandler(Update, patient.settle_claim), patient.SETTLE_GROUP),
    ]


MAX_CONCURRENT_UPDATES = 256
MAX_QUEUED_PER_USER = 20
"""Updates of one person waiting behind the one being handled; more are dropped (flooding)."""
POOL_TIMEOUT_S = 30.0
"""How long a Bot API request waits for a free connection before it counts as timed out."""


class MissingTokenError(RuntimeError):
    """The bot cannot start without a token from @BotFather."""


def build_application(
    ctx: AppContext,
    *,
    renderer: Renderer | None = None,
    rate_limit: bool = True,
    tick_tasks: Sequence[tick.TickTask] = TICK_TASKS,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """Builds the bot: Bot API endpoint from settings, HTML by default, handlers registered.

    Nothing global is touched: tests build as many applications as they like, each against
    its own database and its own fake Bot API server, and pass their own collaborators.
    """
    settings = ctx.settings
    if settings.telegram_bot_token is None:
        raise MissingTokenError("TELEGRAM_BOT_TOKEN is not set")
    renderer = renderer or default_renderer()

    async def ask_to_slow_down(update: Update) -> None:
        """Tells a person whose updates were dropped to send more slowly, in their language."""
        chat = update.effective_chat
        if chat is None:
            return
        user = update.effective_user
        language = (user.language_code or "en")[:2] if user else "en"
        await update.get_bot().send_message(chat.id, renderer.text("common.slow_down", language))

    processor = PerUserUpdateProcessor(
        MAX_CONCURRENT_UPDATES, max_queued_per_user=MAX_QUEUED_PER_USER, on_dropped=ask_to_slow_down
    )
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        .context_types(CONTEXT_TYPES)
        .connection_pool_size(settings.telegram_connections)
        .pool_timeout(POOL_TIMEOUT_S)
        .concurrent_updates(processor)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if rate_limit:
        limiter: Any = AIORateLimiter(overall_max_rate=settings.send_rate_per_second, max_retries=3)
        builder = builder.rate_limiter(limiter)
    application = builder.build()
    application.bot_data[DEPS_KEY] = Deps(ctx=ctx, renderer=renderer, tick_tasks=tick_tasks)
    for handler, group in handlers():
        application.add_handler(handler, group=group)
    application.add_error_handler(_on_error)
    return application


async def _post_init(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Runs once the bot is connected: announces the command list in every language and
    starts the scheduler's repeating tick (`bot.telegram.tick`)."""
    await patient.publish_commands(application)
    tick.install(application)


async def _post_shutdown(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Releases the database connections when the bot stops."""
    ctx = deps(application).ctx
    await ctx.aclose()
    ctx.close()


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Logs an unexpected error without message content and tells the person to retry.

    A redelivered update (`bot.context.RedeliveredUpdate`) is dropped without a word. Otherwise
    the person is told once, and the update goes no further: its other handlers would meet
    the same trouble (a database outage, say) and each would apologise again. An error of a
    background handler (`block=False`, such as the contact guard) is only logged, since the
    update's own handler answers the person.
    """
    error = context.error
    if isinstance(error, RedeliveredUpdate):
        fields = {"update_id": update.update_id if isinstance(update, Update) else None}
        logger.info("redelivered update skipped", extra={"fields": fields})
        raise ApplicationHandlerStop
    logger.error(
        "unhandled error while processing an update: %s",
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__) if error is not None else None,
    )
    if not isinstance(update, Update) or context.coroutine is not None:
        return
    if update.effective_chat is not None:
        user = update.effective_user
        language = (user.language_code or "en")[:2] if user else "en"
        text = deps(context).renderer.text("common.try_again", language)
        try:
            if update.callback_query is not None:
                with contextlib.suppress(TelegramError):  # already answered, or expired
                    await update.callback_query.answer()
            await context.bot.send_message(update.effective_chat.id, text)
        except Exception:
            logger.warning("could not tell the user about the error")
    raise ApplicationHandlerStop
