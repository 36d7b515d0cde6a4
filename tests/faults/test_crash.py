"""Crash: `spondybot run` is killed with SIGKILL while 50 patients are answering, then restarted.

Reproduce: `.venv/bin/pytest tests/faults -k crash` (SPONDYBOT_FAULT_SEED picks another moment).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bot.context import AppContext
from tests.conftest import TEST_TOKEN
from tests.fake_telegram import FakeBotApi
from tests.faults.harness import (
    REPLY_TIMEOUT,
    SEED,
    BotProcess,
    SimulatedPatient,
    assert_completed_as_planned,
    await_reply,
    bot_environment,
    finish,
    open_questionnaire,
    seed_patients,
    stored_answers,
)

pytestmark = pytest.mark.slow

PATIENTS = 50
ANSWERS = 7 * PATIENTS
KILL_WINDOW = (ANSWERS // 6, ANSWERS * 2 // 3)
"""The kill comes after this many answers were seen stored (a seeded draw), mid-way for most."""
DRIVE_TIMEOUT = 180.0


class Crash:
    """Patients answering until the bot is killed; what each saw before it died."""

    def __init__(self, api: FakeBotApi, bot: BotProcess, kill_after: int) -> None:
        self.api = api
        self.bot = bot
        self.kill_after = kill_after
        self.seen = 0
        self.killed = asyncio.Event()
        self.returncode: int | None = None

    async def answer_until_killed(self, patient: SimulatedPatient) -> None:
        """Presses the planned answers one by one, noting each press whose reply arrived."""
        for _ in range(8):
            chosen = patient.choice()
            assert chosen is not None, patient.user.transcript()
            data, item = chosen
            update_id = patient.user.press(data)
            reply = await self._reply_or_kill(patient, update_id)
            if reply is None:
                patient.unconfirmed.append(data)
                return
            if item is None:  # the confirmation
                patient.done = True
                return
            patient.observed[item] = patient.plan[item]
            self.seen += 1
            if self.seen == self.kill_after:
                self.returncode = self.bot.kill()
                self.killed.set()
            if self.killed.is_set():
                return

    async def _reply_or_kill(self, patient: SimulatedPatient, update_id: int) -> object | None:
        deadline = asyncio.get_running_loop().time() + REPLY_TIMEOUT
        while not self.killed.is_set():
            try:
                return await await_reply(
                    self.api, patient.user, update_id, within=0.25, notice_counts=False
                )
            except TimeoutError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
        try:  # a reply already on its way when the process died still counts
            return await await_reply(
                self.api, patient.user, update_id, within=0.25, notice_counts=False
            )
        except TimeoutError:
            return None


class TestSigkillMidQuestionnaire:
    async def test_every_seen_answer_is_kept_once_and_everyone_can_finish(
        self, database_url: str, live_ctx: AppContext, tmp_path: Path
    ) -> None:
        """After a SIGKILL at a random moment and a restart, each answer whose reply a patient
        saw is stored exactly once against its own item, and all 50 patients complete."""
        rng = random.Random(SEED)
        ctx = live_ctx
        with FakeBotApi(TEST_TOKEN) as api:
            people = seed_patients(ctx, api, PATIENTS, rng)
            bot = BotProcess(bot_environment(api, database_url), tmp_path)
            bot.start(api)
            try:
                crash = Crash(api, bot, kill_after=rng.randint(*KILL_WINDOW))
                async with asyncio.timeout(DRIVE_TIMEOUT):
                    await asyncio.gather(*(open_questionnaire(api, p) for p in people))
                    await asyncio.gather(*(crash.answer_until_killed(p) for p in people))
                assert crash.returncode == -9, f"seed {SEED}: the bot was not killed"
                midway = [p for p in people if 0 < len(p.observed) < 7]
                assert len(midway) >= PATIENTS // 2, f"seed {SEED}: only {len(midway)} mid-way"
                in_flight = [p for p in people if p.unconfirmed]
                assert in_flight, f"seed {SEED}: no press was in flight at the kill"

                # Before the restart: the database already holds every answer seen.
                for patient in people:
                    stored = {
                        a.item_code: int(a.raw_value)
                        for a in stored_answers(ctx, patient.patient_id)
                    }
                    assert patient.observed.items() <= stored.items(), (SEED, patient.plan, stored)

                bot.start(api)
                async with asyncio.timeout(DRIVE_TIMEOUT):
                    await asyncio.gather(*(finish(api, ctx, p) for p in people))
            finally:
                bot.stop()
            restarted_log = bot.log()
        for patient in people:
            assert_completed_as_planned(ctx, patient)
        assert "unhandled error" not in restarted_log
