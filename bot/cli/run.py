"""`spondybot run`: the bot itself."""

from __future__ import annotations

import logging

import typer

from bot.cli.common import app_context

NOT_CONFIGURED = 3


def run() -> None:
    """Start the Telegram bot (long polling).

    Example: TELEGRAM_BOT_TOKEN=123456:ABC spondybot run
    """
    from bot.app import MissingTokenError, build_application
    from bot.logging import configure_logging

    with app_context() as ctx:
        configure_logging(ctx.settings.log_level)
        try:
            application = build_application(ctx)
        except MissingTokenError:
            typer.echo(
                "spondybot: no Telegram bot token yet: put TELEGRAM_BOT_TOKEN=<token from "
                "@BotFather> in .env (see .env.example), "
                "or try the terminal demo with `make demo`.",
                err=True,
            )
            raise typer.Exit(NOT_CONFIGURED) from None
        logging.getLogger(__name__).info("starting spondybot (long polling)")
        application.run_polling(allowed_updates=["message", "callback_query"])
