"""`spondybot run`: the bot itself, by long polling or behind a webhook."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from typing import Annotated, Final, NoReturn
from urllib.parse import urlsplit

import typer

from bot.cli.common import app_context, fail, require_server_secret, settings_or_exit
from bot.config import Settings

NOT_CONFIGURED = 3
"""Exit code of `run` without a token: `make run` tells "not set up yet" from a failure."""
ALLOWED_UPDATES: Final = ["message", "callback_query", "my_chat_member"]
"""Update types the bot handles; Telegram sends nothing else."""
DEFAULT_LISTEN: Final = "127.0.0.1"
"""The webhook server is reached through a reverse proxy (the public face), not directly."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookOptions:
    """Where the webhook server listens and what Telegram is told (`Updater.start_webhook`)."""

    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str


def webhook_options(
    settings: Settings, *, webhook_url: str, listen: str, port: int
) -> WebhookOptions:
    """Webhook settings, refusing to run without TELEGRAM_WEBHOOK_SECRET.

    Telegram sends the secret in the X-Telegram-Bot-Api-Secret-Token header of every request,
    and the server answers 403 to any request without it, so nobody else can post updates.
    The local path is the path of the public URL (a proxy or load balancer forwards it as is).
    """
    parts = urlsplit(webhook_url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError("--webhook-url must be an https:// URL (Telegram only calls HTTPS)")
    if settings.telegram_webhook_secret is None:
        raise ValueError(
            "setting TELEGRAM_WEBHOOK_SECRET: required in webhook mode, so that only Telegram "
            "can deliver updates"
        )
    if not 1 <= port <= 65535:
        raise ValueError("--port must be between 1 and 65535")
    return WebhookOptions(
        listen=listen,
        port=port,
        url_path=parts.path.lstrip("/"),
        webhook_url=webhook_url,
        secret_token=settings.telegram_webhook_secret.get_secret_value(),
    )


def run(
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            help="Public https URL Telegram posts updates to; without it the bot long-polls.",
        ),
    ] = None,
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="Address the webhook server binds to: this machine only by default, where the "
            "reverse proxy forwards to it; 0.0.0.0 when the proxy runs on another machine.",
        ),
    ] = DEFAULT_LISTEN,
    port: Annotated[int, typer.Option("--port", help="Port of the webhook server.")] = 8443,
) -> None:
    """Start the Telegram bot: long polling by default, or a webhook server with --webhook-url.

    Webhook mode needs TELEGRAM_WEBHOOK_SECRET; several processes can serve one bot behind a
    load balancer, since all state lives in the database. Stops cleanly on SIGINT or SIGTERM.

    Example: spondybot run --webhook-url https://bot.example.org/telegram --port 8443
    (listening on 127.0.0.1 behind a reverse proxy; add --listen 0.0.0.0 if the proxy runs
    on another machine)
    """
    from bot.app import MissingTokenError, build_application
    from bot.log import configure_logging
    from bot.telegram import webhook

    # The token is asked for before the database is opened: it is the first thing a new
    # installation lacks, and the message says how to get it.
    if settings_or_exit().telegram_bot_token is None:
        _no_token()
    with app_context() as ctx:
        configure_logging(ctx.settings.log_level)
        options = None
        if webhook_url is not None:
            try:
                options = webhook_options(
                    ctx.settings, webhook_url=webhook_url, listen=listen, port=port
                )
            except ValueError as error:
                fail(str(error))
        try:
            application = build_application(ctx)
        except MissingTokenError:
            _no_token()
        require_server_secret(ctx, purpose="run the bot")
        # What start-up made (modules, templates, the schema: about 200,000 objects) lives as
        # long as the process; out of the collector's sight, its full collections only scan
        # what handling updates creates.
        gc.collect()
        gc.freeze()
        if options is None:
            logger.info("starting spondybot (long polling)")
            application.run_polling(allowed_updates=ALLOWED_UPDATES, close_loop=False)
        else:
            logger.info("starting spondybot (webhook)", extra={"fields": {"port": options.port}})
            asyncio.run(
                webhook.serve(
                    application,
                    listen=options.listen,
                    port=options.port,
                    url_path=options.url_path,
                    webhook_url=options.webhook_url,
                    secret_token=options.secret_token,
                    allowed_updates=ALLOWED_UPDATES,
                )
            )
        logger.info("spondybot stopped")


def _no_token() -> NoReturn:
    """One line saying how to get a token, and the exit code `make run` recognises."""
    typer.echo(
        "spondybot: no Telegram bot token yet: put TELEGRAM_BOT_TOKEN=<token from "
        "@BotFather> in .env (see .env.example), or try the terminal demo with `spondybot demo`.",
        err=True,
    )
    raise typer.Exit(NOT_CONFIGURED)
