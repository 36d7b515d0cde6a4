"""The fault suite's tools: `spondybot run` as a real process, simulated patients, DB readers.

Simulated patients answer like people do: they look at the newest keyboard in their chat and
press the button of their planned answer for the item it asks. Each patient's plan gives the
six 0–10 items six different values, so an answer stored against the wrong item cannot go
unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlmodel import col, select

from bot import callbacks
from bot.clock import SystemClock
from bot.context import AppContext
from bot.domain.instruments import ITEM_CODES, STIFFNESS_CHOICES_MINUTES
from storage.db import make_engine
from storage.models import Administration, AdministrationStatus, Answer, AuditEvent
from tests.conftest import TEST_PSEUDONYM_KEY, TEST_TOKEN, make_settings
from tests.factories import make_active_patient, make_physician
from tests.fake_telegram import FakeBotApi, FakeUser

SEED = int(os.environ.get("SPONDYBOT_FAULT_SEED", "20260302"))
"""Seeds every random choice of the suite; set SPONDYBOT_FAULT_SEED to replay another run."""

STARTUP_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
NOTICE_GRACE = 1.0
TRY_AGAIN = "Sorry, something went wrong on our side. Please try again in a moment."
THANKS = "Thank you! Your answers have been sent to your clinic."
NRS_ITEMS = tuple(code for code in ITEM_CODES if code != "q6")


# -- the bot as an operating-system process ---------------------------------------------------


def bot_environment(api: FakeBotApi, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `spondybot` process talking to the fake Bot API."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "DATABASE_", "SQLITE_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
            "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "TELEGRAM_FILE_BASE_URL": api.base_file_url,
            "TELEGRAM_BOT_USERNAME": "spondy_test_bot",
            "CLINIC_TIMEZONE": "Europe/Berlin",
            "LOG_LEVEL": "INFO",
            "PTB_TIMEDELTA": "true",
            "SEND_RATE_PER_SECOND": "1000",
            "TICK_INTERVAL_SECONDS": "3600",
        }
    )
    env.update(extra)
    return env


class BotProcess:
    """`spondybot run` (or another sub-command) as a child process; its log goes to a file."""

    def __init__(self, env: dict[str, str], workdir: Path, args: tuple[str, ...] = ("run",)):
        self.env = env
        self.workdir = workdir
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self._log: IO[bytes] | None = None

    def start(self, api: FakeBotApi, *, wait_for: str = "getUpdates") -> None:
        """Starts the process and returns once it calls `wait_for` on the fake server."""
        assert self.process is None or self.process.poll() is not None
        before = len(api.calls(wait_for))
        log_path = self.workdir / f"bot-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", *self.args],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(api.calls(wait_for)) <= before:
            if self.process.poll() is not None:
                raise AssertionError(f"the bot exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the bot did not call {wait_for}:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs, nothing is flushed or confirmed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        return self._reap()

    def stop(self) -> int:
        """SIGTERM and wait, as an operator's restart would (killed if it hangs)."""
        if self.process is None or self.process.poll() is not None:
            return self._reap()
        self.process.send_signal(signal.SIGTERM)
        return self._reap()

    def _reap(self) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log(self, index: int = -1) -> str:
        """What one run of the process wrote to stderr (default: the latest run)."""
        if not self.logs:
            return ""
        return self.logs[index].read_text(errors="replace")


@contextmanager
def bot_process(
    api: FakeBotApi, database_url: str, workdir: Path, **extra_env: str
) -> Iterator[BotProcess]:
    """A started `spondybot run`, stopped (or reaped) at the end."""
    process = BotProcess(bot_environment(api, database_url, **extra_env), workdir)
    process.start(api)
    try:
        yield process
    finally:
        process.stop()


# -- data --------------------------------------------------------------------------------------


def system_context(database_url: str, **settings: Any) -> AppContext:
    """A context on the real clock, for seeding and reading a database a bot process uses."""
    return AppContext(
        settings=make_settings(database_url, **settings),
        engine=make_engine(database_url),
        clock=SystemClock(),
    )


@dataclass
class SimulatedPatient:
    """A Telegram user linked to an active patient, with the answers they mean to give."""

    user: FakeUser
    patient_id: int
    plan: dict[str, int]
    observed: dict[str, int] = field(default_factory=dict)
    """Answers whose reply the patient saw (so the bot had stored them)."""
    unconfirmed: list[str] = field(default_factory=list)
    """Presses still waiting for a reply when the trouble began."""
    done: bool = False
    try_again: int = 0
    """Presses answered with "please try again in a moment"."""
    progress_at: list[float] = field(default_factory=list)
    """When (time.monotonic()) each answer of theirs was seen stored."""

    def choice(self) -> tuple[str, str | None] | None:
        """(callback data, item) of the press the patient makes on the newest keyboard, or
        None if it shows neither a question of theirs nor the confirmation."""
        confirm = None
        for _label, data in self.user.buttons():
            button = callbacks.decode(data)
            if isinstance(button, callbacks.AnswerButton):
                if button.value == self.plan.get(button.item_code):
                    return data, button.item_code
            elif isinstance(button, callbacks.ConfirmButton):
                confirm = data
        return (confirm, None) if confirm is not None else None


def answer_plan(rng: random.Random) -> dict[str, int]:
    """Six different 0–10 values for the rating items, and a duration for item 6."""
    plan = dict(zip(NRS_ITEMS, rng.sample(range(11), len(NRS_ITEMS)), strict=True))
    plan["q6"] = rng.choice(STIFFNESS_CHOICES_MINUTES)
    return plan


def seed_patients(
    ctx: AppContext, api: FakeBotApi, count: int, rng: random.Random
) -> list[SimulatedPatient]:
    """`count` active patients (onboarded through the real services) with their plans.

    Their weekly slot is three days away, so the scheduler leaves them alone during a test.
    """
    physician = make_physician(ctx)
    weekday = (datetime.now(UTC).weekday() + 3) % 7
    people = []
    for index in range(count):
        user = api.new_user(f"P{index}")
        patient_id = make_active_patient(
            ctx, physician_id=physician.physician_id, telegram_user_id=user.id, weekday=weekday
        )
        people.append(SimulatedPatient(user, patient_id, answer_plan(rng)))
    return people


def administrations(ctx: AppContext, patient_id: int) -> list[Administration]:
    with ctx.session() as session:
        return list(
            session.exec(
                select(Administration)
                .where(Administration.patient_id == patient_id)
                .order_by(col(Administration.id))
            )
        )


def stored_answers(ctx: AppContext, patient_id: int) -> list[Answer]:
    """Every answer row of every administration of a patient."""
    with ctx.session() as session:
        return list(
            session.exec(
                select(Answer)
                .join(Administration, col(Administration.id) == col(Answer.administration_id))
                .where(Administration.patient_id == patient_id)
            )
        )


def answer_events(ctx: AppContext, patient_id: int) -> list[AuditEvent]:
    """The audit trail's answer events ("answer" or "correct") of a patient."""
    with ctx.session() as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.patient_id == patient_id, AuditEvent.entity == "answer"
                )
            )
        )


def is_completed(ctx: AppContext, patient_id: int) -> bool:
    return any(
        a.status == AdministrationStatus.COMPLETED.value for a in administrations(ctx, patient_id)
    )


def assert_completed_as_planned(ctx: AppContext, patient: SimulatedPatient) -> None:
    """One completed questionnaire holding exactly the planned answers, each stored once."""
    (administration,) = administrations(ctx, patient.patient_id)
    assert administration.status == AdministrationStatus.COMPLETED.value, patient.user.transcript()
    answers = stored_answers(ctx, patient.patient_id)
    stored = {a.item_code: int(a.raw_value) for a in answers}
    assert stored == patient.plan, (patient.plan, stored, patient.user.transcript())
    assert [a.version for a in answers] == [1] * len(ITEM_CODES)
    events = answer_events(ctx, patient.patient_id)
    assert sorted(e.action for e in events) == ["answer"] * len(ITEM_CODES)
    for item, value in patient.observed.items():
        assert stored[item] == value


# -- driving -----------------------------------------------------------------------------------


def toast_for(api: FakeBotApi, update_id: int) -> str | None:
    """The notice the bot answered a button press with ("" for none), or None if unanswered."""
    update = next(u.update for u in api.pushed_updates if u.update_id == update_id)
    query = update.get("callback_query")
    if query is None:
        return None
    for call in api.calls("answerCallbackQuery"):
        if call.params.get("callback_query_id") == query["id"] and call.ok:
            return str(call.params.get("text") or "")
    return None


async def await_reply(
    api: FakeBotApi,
    user: FakeUser,
    update_id: int,
    within: float = REPLY_TIMEOUT,
    *,
    notice_counts: bool = True,
) -> dict[str, Any] | None:
    """The bot's first message (sent or edited) in the chat after an update, or None when it
    answered a press with a notice only (`notice_counts`; a message normally follows the
    notice, so a notice alone counts once NOTICE_GRACE has passed without one). Raises
    TimeoutError if the person heard nothing `within` seconds."""
    deadline = time.monotonic() + within
    noticed: float | None = None
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await user.wait_for_reply(
                after_update_id=update_id, timeout=max(0.05, min(0.25, remaining))
            )
        except TimeoutError:
            now = time.monotonic()
            if notice_counts and noticed is None and toast_for(api, update_id) is not None:
                noticed = now
            if noticed is not None and now - noticed >= NOTICE_GRACE:
                return None
            if now >= deadline:
                raise


async def open_questionnaire(api: FakeBotApi, patient: SimulatedPatient) -> None:
    """/checkin, and wait until the first question is on screen."""
    update_id = patient.user.send_command("/checkin")
    await await_reply(api, patient.user, update_id)
    await patient.user.wait_until(lambda _messages: patient.choice() is not None, REPLY_TIMEOUT)


async def finish(
    api: FakeBotApi, ctx: AppContext, patient: SimulatedPatient, *, max_steps: int = 30
) -> list[dict[str, Any] | None]:
    """Presses on (the current question, the confirmation, or /checkin to find the
    questionnaire again) until the database holds it completed; returns the replies."""
    replies = []
    for _ in range(max_steps):
        if await asyncio.to_thread(is_completed, ctx, patient.patient_id):
            patient.done = True
            return replies
        chosen = patient.choice()
        if chosen is None:
            update_id = patient.user.send_command("/checkin")
        else:
            update_id = patient.user.press(chosen[0])
        replies.append(await await_reply(api, patient.user, update_id))
    raise AssertionError(f"not finished after {max_steps} steps:\n{patient.user.transcript()}")


def completed_in_chat(user: FakeUser) -> bool:
    """Whether the patient has been thanked for a completed questionnaire."""
    return any(str(m.get("text", "")).startswith(THANKS) for m in user.messages())


async def answer_through_trouble(
    api: FakeBotApi,
    patient: SimulatedPatient,
    *,
    pause: float = 0.3,
    think: float = 0.3,
    max_presses: int = 120,
) -> None:
    """Answers as planned until thanked, reading each question for `think` seconds (so the
    load lasts as long as the trouble, however fast the bot is); a "try again in a moment" is
    followed by a short pause and the same press again, as a patient would do."""
    for _ in range(max_presses):
        if completed_in_chat(patient.user):
            patient.done = True
            return
        chosen = patient.choice()
        if chosen is None:
            update_id = patient.user.send_command("/checkin")
        else:
            update_id = patient.user.press(chosen[0])
        reply = await await_reply(api, patient.user, update_id)
        if reply is not None and reply.get("text") == TRY_AGAIN:
            patient.try_again += 1
            await asyncio.sleep(pause)
        elif chosen is not None and chosen[1] is None:
            await patient.user.wait_until(lambda _m: completed_in_chat(patient.user), REPLY_TIMEOUT)
        elif chosen is not None and reply is not None:
            text = str(reply.get("text"))
            if text.startswith(("Question", "Your answers")):  # the next step: stored
                item = chosen[1]
                assert item is not None
                patient.observed[item] = patient.plan[item]
                patient.progress_at.append(time.monotonic())
                await asyncio.sleep(think)
    raise AssertionError(f"not finished after {max_presses} presses:\n{patient.user.transcript()}")
