"""One unit of work that a refusal may end early with its reply.

The questionnaire and the safety check-in check ownership and state inside the transaction that
then records the press; a failed check raises `Refused`, and `run_refusable` hands its reply
back as the press's answer (what the transaction read or wrote so far still commits).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar, cast

from sqlmodel import Session

from bot.context import AppContext

Reply = TypeVar("Reply")


class Refused(Exception, Generic[Reply]):
    """Ends a unit of work early with `reply`."""

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply


def run_refusable(ctx: AppContext, action: Callable[[Session, datetime], Reply]) -> Reply:
    """Runs `action(session, now)` in one unit of work, turning a `Refused` into its reply."""
    now = ctx.clock.now()
    with ctx.session() as session:
        try:
            return action(session, now)
        except Refused as refused:
            return cast(Reply, refused.reply)
