"""Security checks: code guessing is throttled and codes are kept only as hashes; physician
commands refuse everyone else alike; the webhook refuses a wrong secret; a whole session's
logs, at DEBUG, hold no token, name, clinic reference or answer.

Reproduce: `.venv/bin/pytest tests/faults -k security`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, select
from telegram import Bot

from bot.context import AppContext
from bot.log import (
    WITHHELD,
    JsonFormatter,
    RedactTokens,
    WithholdUpdateContent,
    configure_logging,
)
from bot.services import labs
from storage.models import ChatLink, EnrollmentCode, ProcessedUpdate
from tests.bot.e2e import RunningBot
from tests.conftest import TEST_PSEUDONYM_KEY, TEST_TOKEN
from tests.factories import make_patient, make_physician
from tests.fake_telegram import FakeBotApi, FakeUser
from tests.faults.harness import BotProcess, bot_environment

pytestmark = pytest.mark.slow

NOT_AVAILABLE = "This command is not available."
INVALID = "Sorry, that code did not work."
THROTTLED = "Too many codes did not work."
SECRET = "webhook-secret-0123456789abcdef"


def texts_after(user: FakeUser, before: int) -> list[str]:
    return [str(m.get("text") or m.get("caption") or "") for m in user.messages()[before:]]


async def say(bot: RunningBot, user: FakeUser, command: str, *args: str) -> list[str]:
    """Sends a command; the texts of the bot's messages that answered it."""
    before = len(user.messages())
    user.send_command(command, *args)
    await bot.settle()
    return texts_after(user, before)


class TestEnrollmentCodes:
    async def test_guessing_is_throttled_per_account(self, running_bot: RunningBot) -> None:
        """After five wrong codes within an hour even the right code is refused for that
        account, while other accounts are unaffected; an hour later it works."""
        api, _application, ctx = running_bot
        physician = make_physician(ctx)
        code = make_patient(ctx, physician_id=physician.physician_id).code.code
        guesser = api.new_user("Guesser")
        replies = [
            (await say(running_bot, guesser, "/start", f"WRONG{n:05d}"))[0] for n in range(5)
        ]
        assert [r.startswith(INVALID) for r in replies] == [True] * 4 + [False]
        assert replies[-1].startswith(THROTTLED)
        assert (await say(running_bot, guesser, "/start", code))[0].startswith(THROTTLED)
        guesser.send_text(code)  # typing it instead of /start is throttled alike
        await running_bot.settle()
        assert guesser.last_message()["text"].startswith(THROTTLED)
        with ctx.session() as session:
            links = session.exec(select(ChatLink).where(ChatLink.telegram_user_id == guesser.id))
            assert links.all() == []
        other = api.new_user("Other")
        assert (await say(running_bot, other, "/start", "WRONG99999"))[0].startswith(INVALID)

        running_bot.clock.advance(timedelta(hours=1, minutes=1))
        assert "now linked" in (await say(running_bot, guesser, "/start", code))[0]

    def test_only_hashes_of_codes_are_stored(self, ctx: AppContext, tmp_path: Path) -> None:
        """Neither a patient's nor a physician's code appears anywhere in the database; the
        code table holds their HMAC under the server secret, not the unkeyed SHA-256 a copy of
        the database could be searched with offline."""
        physician = make_physician(ctx)
        patient = make_patient(ctx, physician_id=physician.physician_id)
        codes = [physician.code.code, patient.code.code]
        everything = dump_database(ctx)
        for code in codes:
            for form in {code, code.replace("-", ""), code.lower()}:
                assert form not in everything
        with ctx.session() as session:
            stored = {row.code_hash for row in session.exec(select(EnrollmentCode))}
        normalised = [code.replace("-", "").upper() for code in codes]
        key = TEST_PSEUDONYM_KEY.encode()
        prefix = b"spondybot-enrollment-code\x00"
        assert stored == {
            hmac.new(key, prefix + code.encode(), hashlib.sha256).hexdigest() for code in normalised
        }
        assert not stored & {hashlib.sha256(code.encode()).hexdigest() for code in normalised}
        database = ctx.settings.database_url
        if database.startswith("sqlite"):
            path = Path(database.split("///", 1)[1])
            raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
            for code in codes:
                assert code.encode() not in raw
                assert code.replace("-", "").encode() not in raw


def dump_database(ctx: AppContext) -> str:
    """Every row of every table, as text."""
    lines = []
    with ctx.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(text(f'SELECT * FROM "{table.name}"')):
                lines.append(repr(tuple(row)))
    return "\n".join(lines)


PHYSICIAN_COMMANDS = [
    ("/patients",),
    ("/patient", "MRN-SEC-0001"),
    ("/patient", "MRN-NOBODY"),
    ("/patient",),
    ("/crp", "MRN-SEC-0001", "7.59", "mg/L"),
    ("/crp", "MRN-NOBODY", "7.59"),
    ("/crp",),
    ("/digest",),
]


class TestPhysicianCommands:
    async def test_patients_and_strangers_get_the_same_not_available(
        self, running_bot: RunningBot
    ) -> None:
        """Every physician command and button, from a patient or an unknown account, with a
        real or an unknown reference, gets exactly "not available" and changes nothing."""
        api, _application, ctx = running_bot
        doctor, _physician_id = await running_bot.linked_physician()
        make_patient(ctx, physician_id=_physician_id, ref="MRN-SEC-0001")
        await say(running_bot, doctor, "/crp", "MRN-SEC-0001", "7.59", "mg/L")
        save, cancel = (data for _label, data in doctor.buttons())
        patient, _patient_id = await running_bot.onboarded_patient()
        stranger = api.new_user("Stranger")
        answers: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        earlier = len(api.calls("answerCallbackQuery"))
        for user in (patient, stranger):
            for command in PHYSICIAN_COMMANDS:
                replies = await say(running_bot, user, *command)
                answers.setdefault(command, set()).add(tuple(replies))
            for data in (save, cancel, "p:page:1", "p:dg_menu:day", "p:dg_alerts:on"):
                user.press(data, force=True)
                await running_bot.settle()
        assert answers == {command: {(NOT_AVAILABLE,)} for command in PHYSICIAN_COMMANDS}
        toasts = [
            call.params.get("text")
            for call in api.calls("answerCallbackQuery")[earlier:]
            if call.chat_id in (patient.chat_id, stranger.chat_id)
        ]
        assert toasts == [NOT_AVAILABLE] * 10
        assert api.calls("sendPhoto") == []
        assert labs.list_lab_values(ctx, clinic_ref="MRN-SEC-0001") == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestWebhook:
    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    def test_a_wrong_or_missing_secret_is_refused(
        self, database_url: str, live_ctx: AppContext, tmp_path: Path
    ) -> None:
        """`spondybot run --webhook-url …` answers 403 to an update without the right secret
        header and does nothing with it; with the secret the same update is handled."""
        physician = make_physician(live_ctx)
        code = make_patient(live_ctx, physician_id=physician.physician_id).code.code
        port = free_port()
        with FakeBotApi(TEST_TOKEN) as api:
            process = BotProcess(
                bot_environment(api, database_url, TELEGRAM_WEBHOOK_SECRET=SECRET),
                tmp_path,
                args=(
                    "run",
                    "--webhook-url",
                    "https://bot.example.org/tg/hook",
                    "--listen",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ),
            )
            process.start(api, wait_for="setWebhook")
            try:
                ana = api.new_user("Ana")
                update = json.dumps({"update_id": 77, **ana.command_update("/start", code)})
                url = f"http://127.0.0.1:{port}/tg/hook"
                assert post(url, update, {"X-Telegram-Bot-Api-Secret-Token": "x" * 31}) == 403
                assert post(url, update, {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]}) == 403
                assert post(url, update, {}) == 403
                time.sleep(1.0)  # give a wrongly accepted update time to show
                assert api.sent_messages(ana.chat_id) == []
                with live_ctx.session() as session:
                    assert session.exec(select(ProcessedUpdate)).all() == []
                    assert session.exec(select(ChatLink)).all() == []
                assert post(url, update, {"X-Telegram-Bot-Api-Secret-Token": SECRET}) == 200
                assert "now linked" in ana.wait_for_reply_sync(timeout=20)["text"]
            finally:
                process.stop()
        assert SECRET not in process.log()


def post(url: str, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    for _ in range(100):  # the server may take a moment to bind
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.1)
    raise AssertionError("the webhook server did not come up")


# -- logs ------------------------------------------------------------------------------------------


@pytest.fixture
def product_logging() -> Iterator[io.StringIO]:
    """The product's logging (`configure_logging`) at DEBUG, its JSON lines written into a
    buffer, alongside pytest's own capture; every logger is put back afterwards."""
    root = logging.getLogger()
    names = ("telegram", "httpx", "httpcore", "apscheduler")
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in names}
    configure_logging("DEBUG")
    (product,) = root.handlers
    assert isinstance(product, logging.StreamHandler)
    buffer = io.StringIO()
    product.setStream(buffer)
    root.handlers[:] = [*handlers, product]
    yield buffer
    root.removeHandler(product)
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


class TestLogs:
    async def test_a_whole_session_logs_no_token_name_reference_or_answer(
        self,
        running_bot: RunningBot,
        product_logging: io.StringIO,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Enrollment, onboarding, a questionnaire with typed and pressed answers, history,
        and a physician's list, patient view and CRP entry, logged at DEBUG through the
        product's JSON formatter: no secret or personal value appears."""
        caplog.set_level(logging.DEBUG)
        api, _application, ctx = running_bot
        physician = make_physician(ctx, name="Dr. Quixote Fernsby")
        created = make_patient(
            ctx,
            physician_id=physician.physician_id,
            ref="MRN-SECRET-4417",
            name="Zebulon Quarrington",
        )
        zeb = api.new_user("Zebulon", last_name="Quarrington", username="zeb_q")
        await say(running_bot, zeb, "/start", created.code.code)
        for data in ("o:lang:en", "o:consent:yes", "o:tz:Europe/Berlin", "o:day:2", "o:time:18:00"):
            zeb.press(data)
            await running_bot.settle()
        await say(running_bot, zeb, "/checkin")
        for typed in ("9", "8"):
            zeb.send_text(typed)
            await running_bot.settle()
        for label in ("7", "6", "3"):
            zeb.press_button(label)
            await running_bot.settle()
        zeb.send_text("105 min")
        await running_bot.settle()
        zeb.press_button("4")
        await running_bot.settle()
        zeb.press_button("✅ Confirm")
        await running_bot.settle()
        assert "Your BASDAI today is" in zeb.messages()[-1]["text"]
        await say(running_bot, zeb, "/history")
        doctor = api.new_user("Quixote", last_name="Fernsby")
        await say(running_bot, doctor, "/start", physician.code.code)
        await say(running_bot, doctor, "/patients")
        await say(running_bot, doctor, "/patient", "MRN-SECRET-4417")
        await say(running_bot, doctor, "/crp", "MRN-SECRET-4417", "37.25", "mg/L")
        doctor.press_button("Save")
        await running_bot.settle()
        assert "Saved" in doctor.messages()[-1]["text"]

        written = product_logging.getvalue()
        redact = RedactTokens()
        formatter = JsonFormatter()
        captured = "\n".join(
            formatter.format(record) for record in caplog.records if redact.filter(record)
        )
        assert "answer recorded" in written  # the capture saw the session
        assert [json.loads(line) for line in written.splitlines()]  # one JSON object a line
        secrets: list[Any] = [
            TEST_TOKEN,
            TEST_TOKEN.split(":")[1],
            created.code.code,
            physician.code.code,
            "Zebulon",
            "Quarrington",
            "zeb_q",
            "Quixote",
            "Fernsby",
            "MRN-SECRET-4417",
            "105 min",
            "37.25",
            "Your BASDAI",  # no message text at all
            re.compile(r"\ba:\d+:(?:q[1-6]|pg):\d+"),  # an answer button's data
            re.compile(r'"text":'),
        ]
        for log in (written, captured):
            for secret in secrets:
                if isinstance(secret, re.Pattern):
                    assert secret.search(log) is None, secret.pattern
                else:
                    assert secret not in log, secret


class TestMalformedUpdate:
    async def test_its_content_never_reaches_the_log(self, product_logging: io.StringIO) -> None:
        """An update python-telegram-bot cannot read is logged at CRITICAL with the data it
        received; the product's logging withholds that data, whatever it holds."""
        with FakeBotApi(TEST_TOKEN) as api:
            api.push_update({"message": {"message_id": 1, "text": "my back pain is 9 today"}})
            async with Bot(TEST_TOKEN, base_url=api.base_url) as bot:
                with pytest.raises(KeyError):
                    await bot.get_updates(timeout=0)
        written = product_logging.getvalue()
        lines = [json.loads(line) for line in written.splitlines()]
        assert any(line["level"] == "CRITICAL" for line in lines), written
        assert "back pain" not in written
        assert WITHHELD in written

    def test_the_filter_withholds_every_argument_but_numbers(self) -> None:
        """python-telegram-bot's arguments are withheld unless plain numbers; spondybot's own
        lines are left as they are."""
        withhold = WithholdUpdateContent()
        record = logging.LogRecord(
            "telegram.ext.Updater", logging.CRITICAL, __file__, 1,
            "data %r after %s s, update %d", ({"text": "secret"}, 1.5, 7), None,
        )  # fmt: skip
        assert withhold.filter(record)
        assert record.getMessage() == f"data {WITHHELD!r} after 1.5 s, update 7"
        own = logging.LogRecord("bot.app", logging.INFO, __file__, 1, "kept %s", ("x",), None)
        assert withhold.filter(own)
        assert own.getMessage() == "kept x"
