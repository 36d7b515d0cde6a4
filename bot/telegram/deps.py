"""What handlers and the tick job need, kept once in `application.bot_data` by the root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from telegram.ext import Application, ContextTypes

from bot.context import AppContext
from bot.present.render import Renderer

DEPS_KEY = "spondybot.deps"


@dataclass
class Deps:
    """The collaborators the composition root (`bot.app`) chose for one application.

    `tick_tasks` are the tick's tasks in the order they run (`bot.telegram.tick.TickTask`;
    typed loosely here so that this module need not import the tick, which imports it).
    """

    ctx: AppContext
    renderer: Renderer
    tick_tasks: Sequence[Callable[[Any], Awaitable[None]]] = field(default_factory=tuple)


def deps(context: ContextTypes.DEFAULT_TYPE | Application[Any, Any, Any, Any, Any, Any]) -> Deps:
    """The dependencies of a running application, from a handler's context or the app."""
    value = context.bot_data[DEPS_KEY]
    assert isinstance(value, Deps)
    return value
