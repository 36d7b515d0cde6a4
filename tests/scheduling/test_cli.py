"""`spondybot tick` and `spondybot deliveries`, as an operator or cron runs them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.context import AppContext
from tests.conftest import TEST_PSEUDONYM_KEY, TEST_TOKEN
from tests.fake_telegram import FakeBotApi
from tests.scheduling.conftest import Clinic

runner = CliRunner()
SLOT = "2026-03-02T17:00:00Z"  # Monday 18:00 in Berlin, the default patients' weekly slot


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """The commands configure logging for a process; put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def operator_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, api: FakeBotApi, tmp_path: Path
) -> None:
    """An operator's environment: the test database and the fake Bot API."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", api.base_url)
    monkeypatch.setenv("TELEGRAM_FILE_BASE_URL", api.base_file_url)
    monkeypatch.setenv("SEND_RATE_PER_SECOND", "1000")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")


class TestTickCommand:
    def test_tick_at_an_instant_does_the_due_work_once(
        self, operator_env: None, clinic: Clinic, api: FakeBotApi
    ) -> None:
        """`tick --at` sends what is due at that instant; the same command again sends nothing."""
        ana = clinic.patient()
        first = runner.invoke(app, ["tick", "--at", SLOT])
        assert first.exit_code == 0, first.output
        assert "1 opened" in first.output
        assert "1 sent" in first.output
        again = runner.invoke(app, ["tick", "--at", SLOT, "--json"])
        assert again.exit_code == 0, again.output
        report = json.loads(again.output.strip().splitlines()[-1])
        assert (report["opened"], report["sent"]) == (0, 0)
        assert len(api.sent_messages(ana.user.chat_id)) == 1

    def test_tick_before_the_slot_sends_nothing(
        self, operator_env: None, clinic: Clinic, api: FakeBotApi
    ) -> None:
        """A minute before the slot nothing is due."""
        clinic.patient()
        result = runner.invoke(app, ["tick", "--at", "2026-03-02T16:59:00Z"])
        assert result.exit_code == 0, result.output
        assert api.calls("sendMessage") == []

    def test_instant_without_a_zone_is_refused(self, operator_env: None) -> None:
        """An ambiguous local instant is refused with a one-line error naming --at."""
        result = runner.invoke(app, ["tick", "--at", "2026-03-29T07:00:00"])
        assert result.exit_code == 2
        assert "--at needs a time zone" in result.output

    def test_instant_that_is_not_a_date_is_refused(self, operator_env: None) -> None:
        """Nonsense after --at gets a one-line error with an example."""
        result = runner.invoke(app, ["tick", "--at", "next tuesday"])
        assert result.exit_code == 2
        assert "2026-03-29T07:00:00Z" in result.output


class TestFutureTick:
    """Moving the clock forward on a real database needs --force."""

    def test_future_instant_without_force_changes_nothing(
        self, operator_env: None, clinic: Clinic, api: FakeBotApi
    ) -> None:
        """It prints what a tick then would do, sends nothing and leaves questionnaires open."""
        ana = clinic.patient()
        assert runner.invoke(app, ["tick", "--at", SLOT]).exit_code == 0
        future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        result = runner.invoke(app, ["tick", "--at", future])
        assert result.exit_code == 0, result.output
        assert "dry run, nothing changed" in result.output
        assert "would mark 1 open questionnaire(s) missed" in result.output
        assert "--force" in result.output
        assert len(api.sent_messages(ana.user.chat_id)) == 1
        again = runner.invoke(app, ["tick", "--at", future, "--json"])
        assert json.loads(again.output.strip().splitlines()[-1])["missed"] == 1

    def test_future_instant_with_force_does_the_work(
        self, operator_env: None, clinic: Clinic, api: FakeBotApi
    ) -> None:
        """With --force the tick acts at the future instant."""
        clinic.patient()
        assert runner.invoke(app, ["tick", "--at", SLOT]).exit_code == 0
        future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        result = runner.invoke(app, ["tick", "--at", future, "--force", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output.strip().splitlines()[-1])
        assert report["expired"] + report["missed"] >= 1

    def test_now_needs_no_force(self, operator_env: None, clinic: Clinic) -> None:
        """The present instant (as cron passes it) is not "the future"."""
        result = runner.invoke(app, ["tick", "--at", datetime.now(UTC).isoformat()])
        assert result.exit_code == 0, result.output
        assert "dry run" not in result.output

    def test_without_token_exits_2_naming_the_setting(
        self, operator_env: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A missing token is a missing setting: exit code 2 and one line, as documented."""
        monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
        result = runner.invoke(app, ["tick"])
        assert result.exit_code == 2
        assert "TELEGRAM_BOT_TOKEN" in result.output


class TestDeliveriesCommand:
    def test_lists_failures_and_unreachable_patients_by_reference(
        self, operator_env: None, clinic: Clinic, api: FakeBotApi
    ) -> None:
        """A refused chat and a blocked patient of today's tick show up by clinic reference."""
        # The command looks back from the real clock, so the slot is "a minute ago, in Berlin".
        berlin = ZoneInfo("Europe/Berlin")
        slot = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(berlin)
        weekly = {"weekday": slot.weekday(), "at": time(slot.hour, slot.minute)}
        lost = clinic.patient(ref="MRN-LOST", **weekly)
        blocked = clinic.patient(ref="MRN-BLOCKED", **weekly)
        clinic.patient(ref="MRN-FINE", **weekly)
        api.fail_next(
            "sendMessage", 400, description="Bad Request: chat not found", chat_id=lost.user.id
        )
        blocked.user.block_bot()
        ticked = runner.invoke(app, ["tick", "--at", datetime.now(UTC).isoformat()])
        assert ticked.exit_code == 0, ticked.output
        assert "1 sent, 1 failed, 1 unreachable" in ticked.output
        result = runner.invoke(app, ["deliveries"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert "Deliveries that did not arrive (last 7 days): 2" in lines
        assert any("MRN-LOST" in line and "BadRequest: Chat not found" in line for line in lines)
        assert any("MRN-BLOCKED" in line and "unreachable" in line for line in lines)
        assert "Unreachable patients (blocked the bot): 1" in lines
        assert any(line.strip().startswith("MRN-BLOCKED") for line in lines)
        assert "MRN-FINE" not in result.output

    def test_nothing_to_report(self, operator_env: None, ctx: AppContext) -> None:
        """With nothing lost and nobody unreachable, the command says so."""
        result = runner.invoke(app, ["deliveries"])
        assert result.exit_code == 0, result.output
        assert "No failed deliveries" in result.output
        assert "No unreachable patients" in result.output
