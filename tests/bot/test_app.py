"""The composition root builds the bot only from the settings it is given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from telegram import CallbackQuery, Chat, Message, Update, User

from bot.app import MissingTokenError, build_application, handlers
from bot.clock import FixedClock
from bot.context import AppContext, RedeliveredUpdate
from bot.telegram.deps import UpdateContext, deps
from bot.telegram.handlers import patient
from tests.conftest import make_settings


class TestBuildApplication:
    def test_uses_the_configured_bot_api_endpoint(
        self, database_url: str, migrated_engine: Engine, clock: FixedClock
    ) -> None:
        """The Bot API base URL and file URL come from settings (self-hosted or test server)."""
        settings = make_settings(
            database_url,
            telegram_api_base_url="http://127.0.0.1:9/bot",
            telegram_file_base_url="http://127.0.0.1:9/file/bot",
        )
        application = build_application(AppContext(settings, migrated_engine, clock))
        assert application.bot.base_url.startswith("http://127.0.0.1:9/bot")
        assert application.bot.base_file_url.startswith("http://127.0.0.1:9/file/bot")
        assert deps(application).ctx.settings is settings

    def test_registers_handlers_and_rate_limiter(
        self, database_url: str, migrated_engine: Engine, clock: FixedClock
    ) -> None:
        """Every area's handlers are registered, and sends go through the rate limiter."""
        application = build_application(
            AppContext(make_settings(database_url), migrated_engine, clock)
        )
        assert sum(len(group) for group in application.handlers.values()) > 5
        assert application.bot.rate_limiter is not None

    def test_refuses_to_build_without_a_token(
        self, database_url: str, migrated_engine: Engine, clock: FixedClock
    ) -> None:
        """No token, no bot: the caller explains where to put one."""
        settings = make_settings(database_url, telegram_bot_token=None)
        with pytest.raises(MissingTokenError):
            build_application(AppContext(settings, migrated_engine, clock))

    def test_two_applications_do_not_share_state(
        self, database_url: str, migrated_engine: Engine, clock: FixedClock
    ) -> None:
        """Nothing global: two bots built side by side keep their own dependencies."""
        first = build_application(AppContext(make_settings(database_url), migrated_engine, clock))
        second = build_application(AppContext(make_settings(database_url), migrated_engine, clock))
        assert deps(first) is not deps(second)

    async def test_the_handlers_of_one_update_share_its_claim(
        self, database_url: str, migrated_engine: Engine, clock: FixedClock
    ) -> None:
        """The update guard hands the claim to the handlers after it through the update's
        context; the application's own context, used outside updates, carries none."""
        root = AppContext(make_settings(database_url), migrated_engine, clock)
        application = build_application(root)
        update = Update(1, message=_message("/help"))
        try:
            context = application.context_types.context.from_update(update, application)
            assert isinstance(context, UpdateContext)
            await patient.claim_update(update, context)
            ctx = deps(context).ctx
            assert ctx.claim is not None
            assert not ctx.claim.settled
            assert root.claim is None
            assert deps(application).ctx is root
            assert ctx.engine is root.engine
            await patient.settle_claim(update, context)
            assert ctx.claim.settled
            again = application.context_types.context.from_update(update, application)
            await patient.claim_update(update, again)
            with pytest.raises(RedeliveredUpdate):
                await patient.settle_claim(update, again)
        finally:
            await root.aclose()  # PostgreSQL connections awaited on this test's event loop


def _callbacks_run(update: Update) -> list[Any]:
    """The callbacks python-telegram-bot runs for `update`: the first matching handler of each
    group, in group order."""
    groups: dict[int, list[Any]] = {}
    for handler, group in handlers():
        groups.setdefault(group, []).append(handler)
    run = []
    for group in sorted(groups):
        matching = [h for h in groups[group] if h.check_update(update) not in (None, False)]
        if matching:
            run.append(matching[0].callback)
    return run


def _press(data: str) -> Update:
    user = User(7, "Ana", is_bot=False)
    return Update(2, callback_query=CallbackQuery("9", user, "7", data=data, message=_message("?")))


class TestHandlerOrder:
    def test_a_handled_press_does_not_reach_the_fallback(self) -> None:
        """An answer press runs the claim, the button handler and the claim's settling only."""
        assert _callbacks_run(_press("a:1:q1:3")) == [
            patient.claim_update,
            patient.button,
            patient.settle_claim,
        ]

    def test_an_unknown_button_is_answered_by_the_fallback(self) -> None:
        """A button no handler knows (stale or forged data) reaches the fallback, which answers
        it."""
        assert _callbacks_run(_press("x:1")) == [
            patient.claim_update,
            patient.unknown_button,
            patient.settle_claim,
        ]


def _message(text: str) -> Message:
    user = User(7, "Ana", is_bot=False)
    return Message(
        1, datetime(2026, 3, 2, tzinfo=UTC), Chat(7, Chat.PRIVATE), from_user=user, text=text
    )
