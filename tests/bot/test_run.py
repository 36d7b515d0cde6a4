"""`spondybot run` as a real process: long polling, the webhook server, clean shutdown."""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.run import run, webhook_options
from bot.context import AppContext
from bot.telegram.webhook import secret_matches
from storage import migrate
from storage.db import make_engine
from tests.conftest import TEST_PSEUDONYM_KEY, TEST_TOKEN, make_settings
from tests.factories import make_patient, make_physician
from tests.fake_telegram import FakeBotApi

pytestmark = pytest.mark.slow

SECRET = "webhook-secret-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TEST_TOKEN) as fake:
        yield fake


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite database file with one physician and one patient."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def environment(api: FakeBotApi, database: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TELEGRAM_")}
    env.update(
        {
            "DATABASE_URL": database,
            "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
            "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "TELEGRAM_FILE_BASE_URL": api.base_file_url,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "CLINIC_TIMEZONE": "Europe/Berlin",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def spondybot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    process.send_signal(sig)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise
    return process.returncode, stderr


def a_code(database: str) -> str:
    ctx = AppContext(settings=make_settings(database), engine=make_engine(database))
    try:
        physician = make_physician(ctx)
        return make_patient(ctx, physician_id=physician.physician_id).code.code
    finally:
        ctx.close()


class TestLongPolling:
    def test_answers_registers_commands_and_stops_on_sigterm(
        self, api: FakeBotApi, database: str, tmp_path: Path
    ) -> None:
        """The bot polls, publishes its menu in both languages, answers, and exits 0 on SIGTERM."""
        code = a_code(database)
        process = spondybot(["run"], environment(api, database), tmp_path)
        try:
            api.wait_for_request_sync("getUpdates", timeout=30)
            assert api.commands()[0]["command"] == "checkin"
            assert api.commands(language_code="zh")[0]["command"] == "checkin"
            ana = api.new_user("Ana")
            ana.send_command("/start", code)
            assert "now linked" in ana.wait_for_reply_sync(timeout=15)["text"]
        finally:
            returncode, stderr = stop(process, signal.SIGTERM)
        assert returncode == 0, stderr
        assert TEST_TOKEN.split(":")[1] not in stderr  # the token never reaches the log
        assert code not in stderr


def status_on_headers_alone(port: int, *, secret: str, length: int) -> int:
    """The status the webhook answers to a request whose headers announce `length` bytes of
    body, none of which is ever sent (the default listen address is 127.0.0.1)."""
    head = (
        "POST /telegram/hook HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\nContent-Length: {length}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode())
        reply = connection.recv(4096).decode("latin-1")
    return int(reply.split()[1])


class TestWebhookGuards:
    def test_secret_is_compared_whole(self) -> None:
        """Only the exact secret matches; a prefix, a longer value or none does not."""
        assert secret_matches(SECRET, SECRET)
        assert not secret_matches(SECRET[:-1], SECRET)
        assert not secret_matches(SECRET + "x", SECRET)
        assert not secret_matches(None, SECRET)
        assert not secret_matches("ü" * 5, SECRET)

    def test_listens_on_this_machine_by_default(self) -> None:
        """Without --listen the server binds 127.0.0.1: the reverse proxy is the public face."""
        assert inspect.signature(run).parameters["listen"].default == "127.0.0.1"


class TestWebhook:
    def test_secret_token_is_checked_on_every_request(
        self, api: FakeBotApi, database: str, tmp_path: Path
    ) -> None:
        """Webhook mode refuses updates without the right secret header and handles the rest."""
        code = a_code(database)
        port = free_port()
        process = spondybot(
            ["run", "--webhook-url", "https://bot.example.org/telegram/hook", "--port", str(port)],
            environment(api, database),
            tmp_path,
        )
        try:
            api.wait_for_request_sync("setWebhook", timeout=30)
            assert api.webhook_url == "https://bot.example.org/telegram/hook"
            assert api.calls("setWebhook")[-1].params["secret_token"] == SECRET
            ana = api.new_user("Ana")
            update = {"update_id": 1, **ana.command_update("/start", code)}

            def post(headers: dict[str, str]) -> int:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/telegram/hook",
                    data=json.dumps(update).encode(),
                    headers={"Content-Type": "application/json", **headers},
                    method="POST",
                )
                for _ in range(50):  # the server may take a moment to bind
                    try:
                        with urllib.request.urlopen(request, timeout=5) as response:
                            return int(response.status)
                    except urllib.error.HTTPError as error:
                        return int(error.code)
                    except (ConnectionError, urllib.error.URLError):
                        time.sleep(0.1)
                raise AssertionError("webhook server did not come up")

            assert post({"X-Telegram-Bot-Api-Secret-Token": "wrong-secret-0123456789"}) == 403
            assert post({}) == 403
            # A huge body is refused on its headers: answered while none of it has been sent.
            assert status_on_headers_alone(port, secret="wrong-secret", length=100 << 20) == 403
            assert status_on_headers_alone(port, secret=SECRET, length=(1 << 20) + 1) == 413
            assert api.sent_messages(ana.id) == []
            assert post({"X-Telegram-Bot-Api-Secret-Token": SECRET}) == 200
            assert "now linked" in ana.wait_for_reply_sync(timeout=15)["text"]
        finally:
            returncode, stderr = stop(process, signal.SIGINT)
        assert returncode == 0, stderr
        assert SECRET not in stderr

    def test_webhook_needs_a_secret(self, database: str) -> None:
        """Webhook mode refuses to start without TELEGRAM_WEBHOOK_SECRET or with plain http."""
        settings = make_settings(database)
        with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET"):
            webhook_options(settings, webhook_url="https://x.org/hook", listen="::", port=8443)
        with_secret = make_settings(database, telegram_webhook_secret=SECRET)
        with pytest.raises(ValueError, match="https"):
            webhook_options(with_secret, webhook_url="http://x.org/hook", listen="::", port=8443)
        options = webhook_options(
            with_secret, webhook_url="https://x.org/a/hook", listen="::", port=8443
        )
        assert (options.url_path, options.secret_token) == ("a/hook", SECRET)
