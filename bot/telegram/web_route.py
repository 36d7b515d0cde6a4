"""The Telegram webhook on the web app's server (python-telegram-bot's custom-webhook pattern)."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

logger = logging.getLogger(__name__)

MAX_UPDATE_BYTES = 1_000_000
"""Telegram's updates are far smaller; a larger body is refused before it is parsed."""


def webhook_route(
    application: Application[Any, Any, Any, Any, Any, Any], *, path: str, secret_token: str
) -> Route:
    """A POST route at `path` that hands each update to the running bot's update queue.

    Only Telegram knows `secret_token` (sent with `setWebhook`, returned in the
    X-Telegram-Bot-Api-Secret-Token header of every call): anything else gets 403 and is
    never parsed. The update is queued and answered at once, as `Updater.start_webhook` does;
    a redelivered update is recognised by the bot's own redelivery guard.
    """

    async def receive_update(request: Request) -> Response:
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not hmac.compare_digest(given.encode(), secret_token.encode()):
            return Response(status_code=403)
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            return Response(status_code=413)
        try:
            data = json.loads(body)
            update = Update.de_json(data, application.bot)
        except (ValueError, TypeError, KeyError):
            logger.warning("webhook body is not a Telegram update")
            return Response(status_code=400)
        await application.update_queue.put(update)
        return Response(status_code=200)

    return Route("/" + path.lstrip("/"), receive_update, methods=["POST"])
