"""`spondybot digest preview` and `spondybot digest send`, as an operator runs them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.context import AppContext
from tests.conftest import TEST_PSEUDONYM_KEY, TEST_TOKEN
from tests.digest import builders as b
from tests.digest.conftest import Inbox
from tests.fake_telegram import FakeBotApi, image_size

runner = CliRunner()


def slot(weeks_before: int = 0) -> datetime:
    return datetime(2026, 2, 23, 17, 0, tzinfo=UTC) - timedelta(weeks=weeks_before)


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, ctx: AppContext, tmp_path: Path
) -> str:
    """The CLI pointed at the test database (already migrated by `ctx`), away from any .env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TEST_TOKEN)
    for name in ("SMTP_HOST", "SMTP_USER", "SMTP_FROM"):
        monkeypatch.delenv(name, raising=False)
    return database_url


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotApi]:
    with FakeBotApi(TEST_TOKEN) as server:
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", server.base_url)
        monkeypatch.setenv("TELEGRAM_FILE_BASE_URL", server.base_file_url)
        yield server


def panel(ctx: AppContext, *, telegram_user_id: int | None = None, email: str | None = None) -> int:
    doctor = b.physician(ctx, telegram_user_id=telegram_user_id, email=email)
    flaring = b.patient(ctx, doctor, ref="MRN-42")
    b.crp(ctx, flaring, slot(), 60)
    b.completed(ctx, flaring, slot(1), item=2)
    b.completed(ctx, flaring, slot(), item=7, patient_global=8)
    return doctor


class TestPreview:
    def test_prints_the_text_and_writes_html_and_chart(
        self, cli_env: str, ctx: AppContext, tmp_path: Path
    ) -> None:
        """Preview prints the digest and says where the HTML and the chart PNG were written."""
        doctor = panel(ctx)
        result = runner.invoke(
            app,
            ["digest", "preview", "--physician", str(doctor), "--week", "2026-W09",
             "--out", str(tmp_path)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "Weekly digest · 2026-W09" in result.output
        assert "MRN-42: very high disease activity" in result.output
        html = tmp_path / f"digest-{doctor}-2026-W09.html"
        chart = tmp_path / f"digest-{doctor}-2026-W09-chart-1.png"
        assert f"wrote {html}" in result.output
        assert f"wrote {chart}" in result.output
        assert "<h1>Weekly digest · 2026-W09</h1>" in html.read_text(encoding="utf-8")
        assert image_size(chart.read_bytes()) is not None
        assert "in Telegram: 1 message(s), 1 chart(s)" in result.output

    def test_refuses_a_malformed_week(self, cli_env: str, ctx: AppContext) -> None:
        """A week that is not like 2026-W14 is refused with one line naming the option."""
        doctor = panel(ctx)
        result = runner.invoke(
            app, ["digest", "preview", "--physician", str(doctor), "--week", "14"]
        )
        assert result.exit_code == 2
        assert "--week: week must look like 2026-W14" in result.output

    def test_unknown_physician_and_empty_panel(self, cli_env: str, ctx: AppContext) -> None:
        """An unknown physician is an error; one without patients simply has no digest."""
        result = runner.invoke(app, ["digest", "preview", "--physician", "77"])
        assert result.exit_code == 2
        assert "no physician with id 77" in result.output
        lonely = b.physician(ctx)
        result = runner.invoke(app, ["digest", "preview", "--physician", str(lonely)])
        assert result.exit_code == 0
        assert "no enrolled patients yet: no digest" in result.output


class TestSend:
    def test_sends_to_telegram_now(self, cli_env: str, ctx: AppContext, api: FakeBotApi) -> None:
        """Send delivers the digest and its chart to the physician's chat right away."""
        lee = api.new_user("Lee")
        doctor = panel(ctx, telegram_user_id=lee.id)
        result = runner.invoke(
            app, ["digest", "send", "--physician", str(doctor), "--week", "2026-W09"]
        )
        assert result.exit_code == 0, result.output
        assert "telegram: sent" in result.output
        texts = [m.get("text", "") for m in lee.messages()]
        assert any(text.startswith("Weekly digest · 2026-W09") for text in texts)
        assert any("photo" in m for m in lee.messages())

    def test_sends_by_email_too(
        self,
        cli_env: str,
        ctx: AppContext,
        api: FakeBotApi,
        inbox: tuple[Inbox, int],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With SMTP configured and an address on file, the same digest also goes by e-mail."""
        monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SMTP_PORT", str(inbox[1]))
        monkeypatch.setenv("SMTP_STARTTLS", "false")
        monkeypatch.setenv("SMTP_FROM", "digest@clinic.example")
        lee = api.new_user("Lee")
        doctor = panel(ctx, telegram_user_id=lee.id, email="lee@clinic.example")
        result = runner.invoke(
            app, ["digest", "send", "--physician", str(doctor), "--week", "2026-W09"]
        )
        assert result.exit_code == 0, result.output
        assert "telegram: sent" in result.output
        assert "email: sent" in result.output
        ((_, recipients, message),) = inbox[0].messages
        assert recipients == ["lee@clinic.example"]
        assert message["Subject"] == "Weekly digest 2026-W09"

    def test_unreachable_physician(self, cli_env: str, ctx: AppContext) -> None:
        """A physician with neither Telegram nor e-mail cannot be sent anything."""
        doctor = panel(ctx, telegram_user_id=0)
        result = runner.invoke(app, ["digest", "send", "--physician", str(doctor)])
        assert result.exit_code == 2
        assert "cannot be reached" in result.output
