"""Telegram handlers. Each area module exposes `register(application)`; order matters.

Guards run first (group -1), then the areas. Handlers are thin: parse the update, call one
service, render, send.
"""

from __future__ import annotations

from typing import Any

from telegram.ext import Application

# Area modules, in registration order. Each has `register(application) -> None` and may have
# `async on_startup(application) -> None`.
# "reminders" stays first, so its snooze buttons (z:…) are matched before any catch-all.
AREAS: list[str] = ["reminders", "patient", "digest", "physician"]


def _modules() -> list[Any]:
    import importlib

    return [importlib.import_module(f"bot.telegram.handlers.{name}") for name in AREAS]


def register_all(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Registers every area's handlers on the application."""
    for module in _modules():
        module.register(application)


async def on_startup(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Runs each area's start-up hook (e.g. registering the command list)."""
    for module in _modules():
        hook = getattr(module, "on_startup", None)
        if hook is not None:
            await hook(application)
