"""What handlers and the tick job need, kept once in `application.bot_data` by the root, and the
context of one update, which carries them with the update's claim."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.context import AppContext, UpdateClaim
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


class UpdateContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """The context python-telegram-bot hands the handlers of one update (one object for all
    of them, whatever their group): once the update guard has claimed the update, it carries
    the application's `Deps` with a context that takes the claim (`AppContext.claiming`)."""

    __slots__ = ("claimed",)

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application, chat_id=chat_id, user_id=user_id)
        self.claimed: Deps | None = None

    def claim(self, claim: UpdateClaim) -> None:
        """Makes the handlers that follow run their services with this update's claim."""
        root = deps(self.application)
        self.claimed = replace(root, ctx=root.ctx.claiming(claim))


CONTEXT_TYPES: ContextTypes[UpdateContext, dict[Any, Any], dict[Any, Any], dict[Any, Any]] = (
    ContextTypes(context=UpdateContext)
)
"""What the composition root gives the application builder, so every update gets an
`UpdateContext`."""


def deps(
    context: ContextTypes.DEFAULT_TYPE | UpdateContext | Application[Any, Any, Any, Any, Any, Any],
) -> Deps:
    """The dependencies of a running application, from a handler's context or the app; within
    an update's handlers, their `ctx` carries the update's claim."""
    if isinstance(context, UpdateContext) and context.claimed is not None:
        return context.claimed
    value = context.bot_data[DEPS_KEY]
    assert isinstance(value, Deps)
    return value
