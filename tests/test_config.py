"""Settings: read from the environment, unsafe or malformed values refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import SettingsError, load_settings

REPOSITORY = Path(__file__).resolve().parent.parent
runner = CliRunner()


class TestSettings:
    def test_defaults_are_usable_without_any_configuration(self) -> None:
        """A fresh machine with no settings gets a local SQLite database and no token."""
        settings = load_settings(_env_file=None)
        assert settings.database_url == f"sqlite:///{Path.cwd() / 'spondybot.db'}"
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


class TestLabWindow:
    """Clinical spec §6: the lab window is 1 to 14 days; a larger setting is refused."""

    @pytest.mark.parametrize("days", ["0", "15", "90", "-90"])
    def test_window_outside_one_to_fourteen_days_is_refused_in_one_line(self, days: str) -> None:
        """LAB_WINDOW_DAYS outside 1-14 stops with one line naming the setting."""
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, lab_window_days=days)
        message = str(raised.value)
        assert message.startswith("setting LAB_WINDOW_DAYS:")
        assert "\n" not in message

    @pytest.mark.parametrize("days", [1, 7, 14])
    def test_window_of_one_to_fourteen_days_is_accepted(self, days: int) -> None:
        """The bounds themselves are valid windows."""
        assert load_settings(_env_file=None, lab_window_days=days).lab_window_days == days


class TestEnvFileAsCopied:
    """`.env.example` copied to `.env`, with only the token filled in, is a working set-up."""

    @pytest.fixture
    def clinic_folder(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        for name in ("DATABASE_URL", "PSEUDONYM_KEY", "TELEGRAM_WEBHOOK_SECRET"):
            monkeypatch.delenv(name, raising=False)
        env = (REPOSITORY / ".env.example").read_text(encoding="utf-8")
        env = env.replace("TELEGRAM_BOT_TOKEN=\n", "TELEGRAM_BOT_TOKEN=123456:ABC-DEF\n")
        (tmp_path / ".env").write_text(env, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        return tmp_path

    def test_empty_values_mean_not_set(self, clinic_folder: Path) -> None:
        """`PSEUDONYM_KEY=` and `TELEGRAM_WEBHOOK_SECRET=` as copied are simply absent."""
        settings = load_settings()
        assert settings.pseudonym_key is None
        assert settings.telegram_webhook_secret is None
        assert settings.smtp_host is None
        assert settings.telegram_bot_token is not None

    def test_staff_commands_run_with_the_copied_file(self, clinic_folder: Path) -> None:
        """The README's first commands work with the copied `.env` once PSEUDONYM_KEY (the
        server secret that keys stored codes) is filled in; before, they say so in one line."""
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        refused = runner.invoke(app, ["physician", "add", "--name", "Dr. Lee"])
        assert refused.exit_code == 2
        assert "setting PSEUDONYM_KEY" in refused.output
        env = clinic_folder / ".env"
        key = "PSEUDONYM_KEY=test-pseudonym-key-0123456789abcdef\n"
        env.write_text(env.read_text(encoding="utf-8").replace("PSEUDONYM_KEY=\n", key))
        added = runner.invoke(app, ["physician", "add", "--name", "Dr. Lee"])
        assert added.exit_code == 0, added.output
        assert (clinic_folder / "spondybot.db").is_file()

    def test_export_demands_the_pseudonym_key_by_name(self, clinic_folder: Path) -> None:
        """Only the command that needs the key asks for it, in one line naming it."""
        runner.invoke(app, ["db", "upgrade"])
        result = runner.invoke(app, ["export", "--format", "wide", "--out", "x.csv"])
        assert result.exit_code == 2
        assert "PSEUDONYM_KEY" in result.output
        assert not (clinic_folder / "x.csv").exists()


class TestRelativeDatabasePath:
    """A relative SQLite path opens the same file from any working directory."""

    def test_relative_path_is_resolved_against_the_env_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`DATABASE_URL=sqlite:///data/clinic.db` in a .env means the folder of that .env."""
        monkeypatch.delenv("DATABASE_URL", raising=False)
        clinic = tmp_path / "clinic"
        elsewhere = tmp_path / "elsewhere"
        clinic.mkdir()
        elsewhere.mkdir()
        (clinic / ".env").write_text("DATABASE_URL=sqlite:///data/clinic.db\n", encoding="utf-8")
        monkeypatch.chdir(elsewhere)
        settings = load_settings(_env_file=clinic / ".env")
        assert settings.database_url == f"sqlite:///{clinic.resolve() / 'data' / 'clinic.db'}"

    def test_absolute_memory_and_server_urls_are_unchanged(self) -> None:
        """Only relative SQLite file paths are touched."""
        for url in ("sqlite:////srv/spondybot.db", "sqlite://", "sqlite:///:memory:"):
            assert load_settings(_env_file=None, database_url=url).database_url == url

    def test_schema_message_names_the_database_opened(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Run from a folder without the clinic's database, the command says which file it
        opened instead of a bare "run db upgrade"."""
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(app, ["patient", "list"])
        assert result.exit_code == 2
        assert str(tmp_path.resolve() / "spondybot.db") in result.output
        assert "spondybot db upgrade" in result.output
        assert len(result.output.strip().splitlines()) == 1

    def test_db_upgrade_names_the_file_it_migrated(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`db upgrade` says which database file it brought up to date."""
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0
        assert str(tmp_path.resolve() / "spondybot.db") in result.output


class TestTimeZoneSuggestion:
    def test_mistyped_zone_gets_a_suggestion(self) -> None:
        """`Europe/Berln` is refused with "did you mean Europe/Berlin?"."""
        with pytest.raises(SettingsError) as raised:
            load_settings(_env_file=None, clinic_timezone="Europe/Berln")
        assert "did you mean Europe/Berlin?" in str(raised.value)

    def test_patient_add_suggests_too(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The staff CLI passes the suggestion on in its one-line refusal."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
        runner.invoke(app, ["db", "upgrade"])
        result = runner.invoke(
            app, ["physician", "add", "--name", "Dr", "--timezone", "Asia/Shangai"]
        )
        assert result.exit_code == 2
        assert "did you mean Asia/Shanghai?" in result.output


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
