"""`spondybot serve` as a real process: the web app alone, with the bot polling, or with the
bot's webhook on the same server; and `spondybot staff` for the first admin account."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.bot.test_run import (
    SECRET,
    a_code,
    api,
    database,
    environment,
    free_port,
    spondybot,
    stop,
)
from tests.fake_telegram import FakeBotApi

__all__ = ["api", "database"]  # fixtures shared with the `spondybot run` tests

pytestmark = pytest.mark.slow
runner = CliRunner()


def request(
    port: int, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """Status and body of one request, waiting for the server to bind."""
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers=headers or {},
        method="POST" if data else "GET",
    )
    for _ in range(100):
        try:
            with urllib.request.urlopen(call, timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.1)
    raise AssertionError("web server did not come up")


class TestServe:
    def test_web_app_alone_without_a_bot_token(
        self, api: FakeBotApi, database: str, tmp_path: Path
    ) -> None:
        """Without a token the web app serves its sign-in page and stops cleanly on SIGTERM."""
        env = environment(api, database)
        del env["TELEGRAM_BOT_TOKEN"]
        port = free_port()
        process = spondybot(["serve", "--port", str(port)], env, tmp_path)
        try:
            status, body = request(port, "/login")
            assert status == 200
            assert "Sign in" in body
        finally:
            returncode, stderr = stop(process, signal.SIGTERM)
        assert returncode == 0, stderr
        assert api.calls("getUpdates") == []

    def test_bot_polls_beside_the_web_app(
        self, api: FakeBotApi, database: str, tmp_path: Path
    ) -> None:
        """With a token the same process answers patients in Telegram and serves the pages."""
        code = a_code(database)
        port = free_port()
        process = spondybot(["serve", "--port", str(port)], environment(api, database), tmp_path)
        try:
            api.wait_for_request_sync("getUpdates", timeout=30)
            ana = api.new_user("Ana")
            ana.send_command("/start", code)
            assert "now linked" in ana.wait_for_reply_sync(timeout=15)["text"]
            assert request(port, "/login")[0] == 200
        finally:
            returncode, stderr = stop(process, signal.SIGTERM)
        assert returncode == 0, stderr
        assert TEST_TOKEN_SECRET not in stderr

    def test_webhook_on_the_same_server(
        self, api: FakeBotApi, database: str, tmp_path: Path
    ) -> None:
        """With --webhook-url the web server also takes Telegram's updates, secret checked."""
        code = a_code(database)
        port = free_port()
        process = spondybot(
            [
                "serve",
                "--port",
                str(port),
                "--webhook-url",
                "https://clinic.example.org/telegram/hook",
            ],
            environment(api, database),
            tmp_path,
        )
        try:
            api.wait_for_request_sync("setWebhook", timeout=30)
            assert api.calls("setWebhook")[-1].params["secret_token"] == SECRET
            ana = api.new_user("Ana")
            body = json.dumps({"update_id": 1, **ana.command_update("/start", code)}).encode()
            json_type = {"Content-Type": "application/json"}
            wrong = {**json_type, "X-Telegram-Bot-Api-Secret-Token": "wrong-secret-0123456789"}
            assert request(port, "/telegram/hook", data=body, headers=wrong)[0] == 403
            assert api.sent_messages(ana.id) == []
            right = {**json_type, "X-Telegram-Bot-Api-Secret-Token": SECRET}
            assert request(port, "/telegram/hook", data=body, headers=right)[0] == 200
            assert "now linked" in ana.wait_for_reply_sync(timeout=15)["text"]
            assert request(port, "/login")[0] == 200
        finally:
            returncode, stderr = stop(process, signal.SIGINT)
        assert returncode == 0, stderr
        assert SECRET not in stderr

    def test_webhook_needs_https(self, api: FakeBotApi, database: str, tmp_path: Path) -> None:
        """A plain-http webhook URL stops serve with one line naming the option."""
        process = spondybot(
            ["serve", "--webhook-url", "http://clinic.example.org/hook"],
            environment(api, database),
            tmp_path,
        )
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 2
        assert stderr.strip().splitlines() == [
            "error: --webhook-url must be an https:// URL (Telegram only calls HTTPS)"
        ]


TEST_TOKEN_SECRET = "TEST-TOKEN"


class TestStaffCommand:
    @pytest.fixture
    def cli_env(self, monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("WEB_BASE_URL", "https://clinic.example.org")
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    def test_first_admin_gets_a_one_time_link(self, cli_env: None) -> None:
        """`staff add` prints the link under WEB_BASE_URL; `staff list` shows the account."""
        result = runner.invoke(
            app, ["staff", "add", "--email", "Lee@Clinic.example", "--role", "admin"]
        )
        assert result.exit_code == 0, result.output
        assert "https://clinic.example.org/password/" in result.output
        listed = runner.invoke(app, ["staff", "list"])
        assert "lee@clinic.example" in listed.output
        assert "admin" in listed.output

    def test_bad_role_is_one_line(self, cli_env: None) -> None:
        """A wrong role exits 2 with one line naming the option."""
        result = runner.invoke(
            app, ["staff", "add", "--email", "a@clinic.example", "--role", "boss"]
        )
        assert result.exit_code == 2
        assert (
            result.output.strip()
            == "error: --role must be one of admin, physician, nurse, researcher"
        )

    def test_physician_account_needs_its_record(self, cli_env: None) -> None:
        """A physician account without --physician is refused."""
        result = runner.invoke(
            app, ["staff", "add", "--email", "a@clinic.example", "--role", "physician"]
        )
        assert result.exit_code == 2
        assert "--physician" in result.output

    def test_deactivate_and_require_2fa(self, cli_env: None) -> None:
        """Deactivation shows in the list; requiring 2FA names the role."""
        runner.invoke(app, ["staff", "add", "--email", "r@clinic.example", "--role", "researcher"])
        assert runner.invoke(app, ["staff", "deactivate", "1"]).exit_code == 0
        assert "deactivated" in runner.invoke(app, ["staff", "list"]).output
        result = runner.invoke(app, ["staff", "require-2fa", "admin"])
        assert result.output.strip() == "second factor required for admin"
        assert runner.invoke(app, ["staff", "deactivate", "99"]).exit_code == 2
