"""`spondybot serve`: the clinic web app, and with a bot token the bot in the same process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import app_context, fail
from bot.cli.run import ALLOWED_UPDATES, WebhookOptions, webhook_options

if TYPE_CHECKING:
    from telegram.ext import Application

logger = logging.getLogger(__name__)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address the web server binds to.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port of the web server.")] = 8080,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            help=(
                "Public https URL Telegram posts updates to, served by this same server; "
                "without it the bot long-polls."
            ),
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            help="Proxies whose X-Forwarded-For/-Proto headers are trusted (comma-separated).",
        ),
    ] = "127.0.0.1",
) -> None:
    """Start the clinic web app (and the bot, when TELEGRAM_BOT_TOKEN is set).

    Put it behind a reverse proxy that terminates TLS (docs/web.md); cookies are marked
    Secure when the proxy says the browser used HTTPS. Stops cleanly on SIGINT or SIGTERM.

    Example: spondybot serve --port 8080 --webhook-url https://clinic.example.org/telegram
    """
    import uvicorn

    from bot.log import configure_logging
    from bot.web.app import create_app

    if not 1 <= port <= 65535:
        fail("--port must be between 1 and 65535")
    with app_context() as ctx:
        configure_logging(ctx.settings.log_level)
        application = None
        options: WebhookOptions | None = None
        extra_routes: list[Any] = []
        if ctx.settings.telegram_bot_token is not None:
            from bot.app import build_application
            from bot.telegram.web_route import webhook_route

            if webhook_url is not None:
                try:
                    options = webhook_options(
                        ctx.settings, webhook_url=webhook_url, listen=host, port=port
                    )
                except ValueError as error:
                    fail(str(error))
            application = build_application(ctx)
            if options is not None:
                extra_routes.append(
                    webhook_route(
                        application, path=options.url_path, secret_token=options.secret_token
                    )
                )
        elif webhook_url is not None:
            fail("setting TELEGRAM_BOT_TOKEN: required with --webhook-url")
        web = create_app(ctx, extra_routes=extra_routes)
        config = uvicorn.Config(
            web,
            host=host,
            port=port,
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
            log_config=None,
            access_log=False,  # paths carry clinic references: not for the log
            server_header=False,
        )
        asyncio.run(_serve(_quiet_server(config), application, options))
        logger.info("spondybot serve stopped")


def _quiet_exit_server_class() -> type[Any]:
    import uvicorn

    class QuietExitServer(uvicorn.Server):
        """uvicorn's server, except that SIGINT/SIGTERM end `serve` cleanly (exit code 0, like
        `spondybot run`) instead of being raised again once the server has stopped."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return QuietExitServer


def _quiet_server(config: Any) -> Any:
    """A uvicorn server for `config` that exits quietly on SIGINT or SIGTERM."""
    return _quiet_exit_server_class()(config)


async def _serve(
    server: Any,
    application: Application[Any, Any, Any, Any, Any, Any] | None,
    options: WebhookOptions | None,
) -> None:
    """Runs the web server; the bot, if any, is started before it and stopped after it, as in
    python-telegram-bot's custom-webhook example (post_init and post_shutdown included)."""
    if application is None:
        logger.info("starting spondybot web app (no bot token: web only)")
        await server.serve()
        return
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        if options is None:
            assert application.updater is not None
            await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        else:
            await application.bot.set_webhook(
                url=options.webhook_url,
                allowed_updates=ALLOWED_UPDATES,
                secret_token=options.secret_token,
            )
        await application.start()
        mode = "webhook" if options else "long polling"
        logger.info("starting spondybot web app and bot", extra={"fields": {"bot": mode}})
        try:
            await server.serve()
        finally:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
