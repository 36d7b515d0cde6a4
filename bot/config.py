"""Typed settings, read from the environment and `.env`, refusing unsafe or malformed values."""

from __future__ import annotations

import difflib
import os
import re
from datetime import time
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.domain.instruments import INSTRUMENT_VERSION


def _templates_dir() -> Path:
    """`templates/` inside the installed package (the wheel carries it as `bot/templates`),
    else at the top of the repository, where the people who edit the texts keep it."""
    packaged = Path(__file__).resolve().parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


TEMPLATES_DIR = _templates_dir()
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]{2,8})?")


def discover_languages(templates_dir: Path) -> tuple[str, ...]:
    """English, the language the messages are written in, then every language that has a
    catalog (`locale/<lang>/LC_MESSAGES/messages.po`): adding a language needs no code."""
    found = sorted(
        path.parent.parent.name
        for path in (templates_dir / "locale").glob("*/LC_MESSAGES/messages.po")
        if _LANGUAGE_TAG.fullmatch(path.parent.parent.name)
    )
    return ("en", *(language for language in found if language != "en"))


SUPPORTED_LANGUAGES: tuple[str, ...] = discover_languages(TEMPLATES_DIR)
"""The languages of the shipped templates (a Renderer over other templates has its own)."""
INSTRUMENTS_DIR = TEMPLATES_DIR / "instruments"
"""Where instrument versions are installed: one folder per version, one file per language."""
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder", "xxx"}


class PatientIdentifier(StrEnum):
    """What names a patient in physician-facing messages (clinic's choice)."""

    CLINIC_REF = "clinic_ref"
    DISPLAY_NAME = "display_name"


@cache
def _timezone_names() -> dict[str, str]:
    """Every IANA zone name, keyed by its case-folded form."""
    return {name.casefold(): name for name in available_timezones()}


def timezone_suggestion(value: str) -> str | None:
    """The known zone name a mistyped one most likely meant ("Europe/Berln" → Europe/Berlin)."""
    names = _timezone_names()
    if value.casefold() in names:
        return names[value.casefold()]
    close = difflib.get_close_matches(value.casefold(), names, n=1, cutoff=0.8)
    return names[close[0]] if close else None


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        suggestion = timezone_suggestion(value)
        hint = f": did you mean {suggestion}?" if suggestion else ""
        raise ValueError(f"unknown IANA time zone {value!r}{hint}") from None
    return value


def _check_language(value: str, languages: tuple[str, ...]) -> str:
    if value not in languages:
        raise ValueError(f"must be one of {', '.join(languages)}")
    return value


class Settings(BaseSettings):
    """All configuration of one clinic's deployment; built once by the composition root."""

    # An empty value (`PSEUDONYM_KEY=` as copied from .env.example) means "not set": each
    # setting is then demanded only by the command that needs it.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    telegram_bot_username: str = "spondybot"
    telegram_webhook_secret: SecretStr | None = None

    database_url: str = "sqlite:///spondybot.db"
    sqlite_busy_timeout_ms: Annotated[int, Field(ge=100, le=600_000)] = 15_000
    pseudonym_key: SecretStr | None = None

    clinic_timezone: str = "UTC"
    # The texts people read: messages, catalogs (their languages are the supported ones) and
    # instrument wording. Declared before clinic_language, which is checked against it.
    templates_dir: Path = TEMPLATES_DIR
    clinic_language: str = "en"
    patient_identifier: PatientIdentifier = PatientIdentifier.CLINIC_REF

    enrollment_code_ttl_days: Annotated[int, Field(ge=1, le=365)] = 14
    enrollment_max_failures_per_hour: Annotated[int, Field(ge=1, le=100)] = 5

    default_questionnaire_weekday: Annotated[int, Field(ge=0, le=6)] = 0
    default_questionnaire_time: time = time(18, 0)
    reminder_after_hours: Annotated[int, Field(ge=1, le=168)] = 24
    max_reminders: Annotated[int, Field(ge=0, le=10)] = 2
    quiet_hours_start: time = time(22, 0)
    quiet_hours_end: time = time(8, 0)
    expiry_days: Annotated[int, Field(ge=1, le=14)] = 3
    tick_interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    send_rate_per_second: Annotated[float, Field(gt=0, le=1000)] = 25.0
    telegram_connections: Annotated[int, Field(ge=1, le=256)] = 8

    # The weekly safety check-in of clinical spec §8; its emergency advice names the number
    # patients call, so the check-in cannot be turned on without it.
    safety_checkins: bool = False
    emergency_number: Annotated[str | None, Field(validate_default=True)] = None

    # Clinical spec §6: a lab value is matched within 1 to 14 days of a questionnaire.
    # The questionnaire text asked from now on, per language: a folder of templates/instruments
    # (clinical spec §1: a clinic installs its licensed translation as a new version).
    instrument_version_en: str = INSTRUMENT_VERSION
    instrument_version_zh: str = INSTRUMENT_VERSION
    instrument_version_de: str = INSTRUMENT_VERSION

    lab_window_days: Annotated[int, Field(ge=1, le=14)] = 7
    digest_no_crp_weeks: Annotated[int, Field(ge=1, le=104)] = 12

    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True

    web_base_url: str = "http://127.0.0.1:8080"
    web_session_idle_minutes: Annotated[int, Field(ge=5, le=720)] = 30
    web_session_max_hours: Annotated[int, Field(ge=1, le=72)] = 12
    web_login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    web_login_max_failures_per_address: Annotated[int, Field(ge=1, le=1000)] = 20
    web_password_link_hours: Annotated[int, Field(ge=1, le=336)] = 72
    web_export_dir: str = "exports"

    log_level: str = "INFO"

    @field_validator("clinic_timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("clinic_language")
    @classmethod
    def _language_supported(cls, value: str, info: ValidationInfo) -> str:
        templates_dir = info.data.get("templates_dir", TEMPLATES_DIR)
        return _check_language(value, discover_languages(Path(templates_dir)))

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages patients and staff may choose: those with a catalog."""
        return discover_languages(self.templates_dir)

    @field_validator("instrument_version_en", "instrument_version_zh", "instrument_version_de")
    @classmethod
    def _instrument_installed(cls, value: str, info: ValidationInfo) -> str:
        """The version must be installed for its language, so no patient is asked from a
        missing text."""
        language = str(info.field_name).rsplit("_", 1)[-1]
        if not _VERSION_NAME.fullmatch(value):
            raise ValueError("must be a folder name: letters, digits and . + - _")
        if not (INSTRUMENTS_DIR / value / f"{language}.toml").is_file():
            raise ValueError(f"templates/instruments/{value}/{language}.toml is not installed")
        return value

    def instrument_version(self, language: str) -> str:
        """The instrument version new questionnaires in `language` are asked and stored with."""
        chosen = {
            "en": self.instrument_version_en,
            "zh": self.instrument_version_zh,
            "de": self.instrument_version_de,
        }
        return chosen.get(language, INSTRUMENT_VERSION)

    @field_validator("telegram_api_base_url", "telegram_file_base_url", "web_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """Normalise PostgreSQL URLs to the psycopg 3 driver we ship."""
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if not (value.startswith("sqlite") or value.startswith("postgresql+psycopg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", value.get_secret_value()):
            raise ValueError("must look like 123456:ABC-DEF (the token BotFather gave you)")
        return value

    @field_validator("pseudonym_key", "telegram_webhook_secret")
    @classmethod
    def _real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.lower() in _PLACEHOLDER_SECRETS or len(secret) < 16:
            raise ValueError("must be a real secret of at least 16 characters, not a placeholder")
        return value

    @field_validator("emergency_number")
    @classmethod
    def _emergency_number(cls, value: str | None, info: ValidationInfo) -> str | None:
        number = None if value is None else value.strip() or None
        if number is None and info.data.get("safety_checkins"):
            raise ValueError(
                "required when SAFETY_CHECKINS is on: the emergency number patients are told "
                "to call (for example 112)"
            )
        if number is not None and not re.fullmatch(r"\+?[0-9][0-9 ()-]{1,30}", number):
            raise ValueError("must be a telephone number such as 112 or +49 30 1234567")
        return number

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def load_settings(**overrides: Any) -> Settings:
    """Reads settings, turning pydantic's report into one line that names the setting.

    A relative SQLite path is made absolute here, against the folder of the `.env` file that
    named it (else the working directory), so every part of the process opens the same file
    and every message about the database names the file it really opened.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]).upper() or "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"setting {name}: {message}") from None
    base = _database_url_folder(overrides)
    return settings.model_copy(
        update={"database_url": absolute_sqlite_url(settings.database_url, base)}
    )


def _database_url_folder(overrides: dict[str, Any]) -> Path:
    """The folder a relative DATABASE_URL is relative to: that of the `.env` that set it."""
    if "database_url" in overrides or any(
        name.upper() == "DATABASE_URL" and value for name, value in os.environ.items()
    ):
        return Path.cwd()
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    if isinstance(env_file, str | Path) and Path(env_file).is_file():
        return Path(env_file).resolve().parent
    return Path.cwd()


def absolute_sqlite_url(url: str, folder: Path) -> str:
    """`sqlite:///relative.db` as `sqlite:////folder/relative.db`; other URLs unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, query_mark, query = url.removeprefix(prefix).partition("?")
    if not path or path == ":memory:" or Path(path).is_absolute():
        return url
    return f"{prefix}{(folder / path).resolve()}{query_mark}{query}"


def database_name(url: str) -> str:
    """The database a URL opens, for messages: the SQLite file, or the server URL without a
    password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///").partition("?")[0] or "in-memory SQLite"
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def check_timezone(value: str) -> str:
    """Validates an IANA time zone name typed by a person; raises ValueError if unknown."""
    return _check_timezone(value)
