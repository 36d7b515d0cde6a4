"""The composition root builds the bot only from the settings it is given."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from bot.app import MissingTokenError, build_application
from bot.clock import FixedClock
from bot.context import AppContext
from bot.telegram.deps import deps
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
