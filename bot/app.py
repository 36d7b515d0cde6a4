"""Composition root: builds the python-telegram-bot Application from the settings it is given."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    ContextTypes,
    Defaults,
)

from bot.context import AppContext, RedeliveredUpdate
from bot.present.render import Renderer, default_renderer
from bot.telegram.ordering import PerUserUpdateProcessor

logger = logging.getLogger(__name__)


@dataclass
class Deps:
    """What handlers and jobs need, stored once in `application.bot_data`."""

    ctx: AppContext
    renderer: Renderer


DEPS_KEY = "spondybot.deps"
MAX_CONCURRENT_UPDATES = 256
MAX_QUEUED_PER_USER = 20
"""Updates of one person waiting behind the one being handled; more are dropped (flooding)."""
POOL_TIMEOUT_S = 30.0
"""How long a Bot API request waits for a free connection before it counts as timed out."""


def deps(context: ContextTypes.DEFAULT_TYPE | Application[Any, Any, Any, Any, Any, Any]) -> Deps:
    """The dependencies of a running application, from a handler's context or the app."""
    value = context.bot_data[DEPS_KEY]
    assert isinstance(value, Deps)
    return value


class MissingTokenError(RuntimeError):
    """The bot cannot start without a token from @BotFather."""


def build_application(
    ctx: AppContext, *, renderer: Renderer | None = None, rate_limit: bool = True
) -> Application[Any, Any, Any, Any, Any, Any]:
    """Builds the bot: Bot API endpoint from settings, HTML by default, handlers registered.

    Nothing global is touched: tests build as many applications as they like, each against
    its own database and its own fake Bot API server.
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
    application.bot_data[DEPS_KEY] = Deps(ctx=ctx, renderer=renderer)

    from bot.telegram import handlers

    handlers.register_all(application)
    application.add_error_handler(_on_error)
    return application


async def _post_init(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Runs once the bot is connected: announces the command list in every language and
    starts the scheduler's repeating tick (`bot.telegram.tick`)."""
    from bot.telegram import handlers
    from bot.telegram import tick as jobs

    await handlers.on_startup(application)
    jobs.install(application)


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
