"""Settings: read from the environment, unsafe or malformed values refused in one line."""

from __future__ import annotations

import pytest

from bot.config import SettingsError, load_settings


class TestSettings:
    def test_defaults_are_usable_without_any_configuration(self) -> None:
        """A fresh machine with no settings gets a local SQLite database and no token."""
        settings = load_settings(_env_file=None)
        assert settings.database_url == "sqlite:///spondybot.db"
        assert settings.telegram_bot_token is None
        assert settings.telegram_api_base_url == "https://api.telegram.org/bot"

    def test_reads_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Environment variables override the defaults."""
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081/bot/")
        monkeypatch.setenv("CLINIC_TIMEZONE", "Asia/Shanghai")
        settings = load_settings(_env_file=None)
        assert settings.telegram_api_base_url == "http://127.0.0.1:8081/bot"
        assert settings.clinic_timezone == "Asia/Shanghai"

    def test_postgres_url_is_normalised_to_psycopg(self) -> None:
        """A plain postgres:// URL from a hosting provider uses the psycopg 3 driver."""
        settings = load_settings(_env_file=None, database_url="postgres://u@h/db")
        assert settings.database_url == "postgresql+psycopg://u@h/db"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("clinic_timezone", "Mars/Olympus"),
            ("clinic_language", "fr"),
            ("telegram_bot_token", "not a token"),
            ("pseudonym_key", "changeme"),
            ("database_url", "mysql://x"),
            ("telegram_api_base_url", "ftp://x"),
            ("reminder_after_hours", "0"),
        ],
    )
    def test_bad_value_gives_one_line_naming_the_setting(self, name: str, value: str) -> None:
        """The error is a single line that starts with the setting's environment name."""
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, **{name: value})
        message = str(raised.value)
        assert message.startswith(f"setting {name.upper()}:")
        assert "\n" not in message

    def test_secrets_are_not_shown_in_repr(self) -> None:
        """Tokens and keys never appear when settings are printed or logged."""
        settings = load_settings(
            _env_file=None,
            telegram_bot_token="123:SECRETTOKENVALUE",
            pseudonym_key="a-very-long-pseudonym-key-value",
        )
        assert "SECRETTOKENVALUE" not in repr(settings)
        assert "pseudonym-key-value" not in str(settings)


class TestSafetyCheckinSettings:
    def test_emergency_number_required_when_checkins_are_on(self) -> None:
        """Check-ins on without EMERGENCY_NUMBER: one line naming it (clinical spec §8)."""
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, safety_checkins=True)
        assert str(raised.value).startswith("setting EMERGENCY_NUMBER: required when")

    def test_emergency_number_is_a_phone_number(self) -> None:
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, emergency_number="call us")
        assert str(raised.value).startswith("setting EMERGENCY_NUMBER: must be a telephone")
        settings = load_settings(_env_file=None, safety_checkins=True, emergency_number=" 112 ")
        assert settings.emergency_number == "112"
