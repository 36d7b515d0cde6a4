"""The webhook server: checks Telegram's secret and the size of a request before reading its body.

python-telegram-bot's own webhook server reads a whole request (up to 100 MiB) before it looks
at the secret header, and compares the secret with `!=`. This one answers 403 to a request
without the right secret (compared in constant time) and 413 to a body over `MAX_BODY_BYTES`,
both before a byte of the body is read, then hands each update to the application's queue as
`Application.run_webhook` does (docs/security.md, "Webhook").
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import tornado.httpserver
import tornado.web
from telegram import Update
from telegram.ext import Application

MAX_BODY_BYTES: Final = 1024 * 1024
"""The largest update accepted; Telegram's updates are a few kilobytes."""
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name

logger = logging.getLogger(__name__)


def secret_matches(given: str | None, expected: str) -> bool:
    """Whether a request's secret header is the webhook secret, compared in constant time (no
    early exit at the first wrong character, which would let timing reveal the secret)."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class _Target:
    application: Application[Any, Any, Any, Any, Any, Any]
    secret_token: str


@tornado.web.stream_request_body
class _UpdateHandler(tornado.web.RequestHandler):
    """Receives one update: refused on its headers alone unless the secret is right and the
    declared size is within the limit; the body is then read up to the limit."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, target: _Target) -> None:
        self._target = target
        self._body = bytearray()

    def prepare(self) -> None:
        if not secret_matches(self.request.headers.get(SECRET_HEADER), self._target.secret_token):
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        declared = self.request.headers.get("Content-Length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            raise tornado.web.HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        # A chunked body has no declared size: the connection stops reading past the limit.
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(MAX_BODY_BYTES)

    def data_received(self, chunk: bytes) -> None:
        self._body += chunk
        if len(self._body) > MAX_BODY_BYTES:
            raise tornado.web.HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)

    async def post(self) -> None:
        application = self._target.application
        try:
            update = Update.de_json(json.loads(self._body), application.bot)
        except Exception:
            # Never log the body: it may hold what a patient wrote.
            logger.warning("webhook request that is no update refused")
            raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
        await application.update_queue.put(update)
        self.set_status(HTTPStatus.OK)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish()

    def log_exception(self, *args: Any) -> None:
        """Refusals are expected; the request (and its headers, with a secret) is not logged."""


def build_server(
    application: Application[Any, Any, Any, Any, Any, Any], *, url_path: str, secret_token: str
) -> tornado.httpserver.HTTPServer:
    """The HTTP server for `/<url_path>`, not yet listening."""
    routes = [(rf"/{url_path}/?", _UpdateHandler, {"target": _Target(application, secret_token)})]
    web_app = tornado.web.Application(routes, log_function=lambda _handler: None)
    return tornado.httpserver.HTTPServer(web_app, max_body_size=MAX_BODY_BYTES, xheaders=True)


async def serve(
    application: Application[Any, Any, Any, Any, Any, Any],
    *,
    listen: str,
    port: int,
    url_path: str,
    webhook_url: str,
    secret_token: str,
    allowed_updates: list[str],
) -> None:
    """Runs the bot behind this webhook server until SIGINT or SIGTERM, with the application's
    start-up and shutdown hooks as `Application.run_webhook` runs them; updates being handled
    are finished before it returns."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        await application.bot.set_webhook(
            url=webhook_url, secret_token=secret_token, allowed_updates=allowed_updates
        )
        await application.start()
        server = build_server(application, url_path=url_path, secret_token=secret_token)
        server.listen(port, address=listen)
        try:
            await stopping.wait()
        finally:
            server.stop()
            await server.close_all_connections()
            await application.stop()
            if application.post_stop is not None:
                await application.post_stop(application)
    finally:
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
