"""Flood: one account sends 500 updates a second while other patients answer their questionnaire.

Reproduce: `.venv/bin/pytest tests/faults -k flood -s` (prints the figures of docs/resilience.md).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path

import pytest

from bot.context import AppContext
from tests.conftest import TEST_TOKEN
from tests.fake_telegram import FakeBotApi, FakeUser
from tests.faults.harness import (
    SEED,
    BotProcess,
    SimulatedPatient,
    assert_completed_as_planned,
    await_reply,
    bot_environment,
    completed_in_chat,
    open_questionnaire,
    seed_patients,
)

pytestmark = pytest.mark.slow

FLOOD_PER_SECOND = 500
BATCH = 25
"""The flood is pushed in batches of this many every BATCH / FLOOD_PER_SECOND seconds."""
PATIENTS = 12
DRIVE_TIMEOUT = 120.0
P99_LIMIT_S = 3.0
"""Well under the flood's own length (more than five seconds): a press that waited behind the
flood would take longer. A quiet machine answers in 0.2-0.3 s (p99, docs/resilience.md); the
margin is for a machine shared with other work, where the sender, the server and the bot
compete for the CPU."""
THINK_S = 0.5
"""A patient reads each question this long, so the flood lasts about five seconds."""
SLOW_DOWN = "You are sending messages faster than we can read them"


async def flood(api: FakeBotApi, flooder: FakeUser, stop: asyncio.Event) -> int:
    """Pushes typed messages of one account at FLOOD_PER_SECOND until told to stop."""
    pushed = 0
    interval = BATCH / FLOOD_PER_SECOND
    started = time.monotonic()
    while not stop.is_set():
        api.push_batch(
            [flooder.text_update(f"spam {pushed + i}") for i in range(BATCH)], shuffled=False
        )
        pushed += BATCH
        delay = started + pushed / FLOOD_PER_SECOND - time.monotonic()
        await asyncio.sleep(max(0.0, delay) if delay > 0 else interval / 10)
    return pushed


async def answer_timed(api: FakeBotApi, patient: SimulatedPatient, waits: list[float]) -> None:
    """Presses the planned answers and the confirmation, timing each press to its reply."""
    for _ in range(12):
        if completed_in_chat(patient.user):
            patient.done = True
            return
        chosen = patient.choice()
        assert chosen is not None, patient.user.transcript()
        data, item = chosen
        pressed = time.monotonic()
        update_id = patient.user.press(data)
        await await_reply(api, patient.user, update_id, notice_counts=False)
        waits.append(time.monotonic() - pressed)
        if item is None:
            await patient.user.wait_until(lambda _m: completed_in_chat(patient.user), 30)
        else:
            patient.observed[item] = patient.plan[item]
        await asyncio.sleep(THINK_S)
    raise AssertionError(patient.user.transcript())


class TestFlood:
    async def test_other_patients_are_not_kept_waiting_by_the_flood_and_lose_nothing(
        self, database_url: str, live_ctx: AppContext, tmp_path: Path
    ) -> None:
        """While one account floods at 500 updates/s, other patients' presses are answered
        within P99_LIMIT_S (p99), never behind the flood, and every answer of theirs is stored
        once; the flooder is asked to slow down exactly once for the whole flood."""
        rng = random.Random(SEED)
        with FakeBotApi(TEST_TOKEN) as api:
            flooder, *people = seed_patients(live_ctx, api, PATIENTS + 1, rng)
            bot = BotProcess(bot_environment(api, database_url), tmp_path)
            bot.start(api)
            stop = asyncio.Event()
            waits: list[float] = []
            try:
                async with asyncio.timeout(DRIVE_TIMEOUT):
                    await asyncio.gather(*(open_questionnaire(api, p) for p in people))
                    flooding = asyncio.create_task(flood(api, flooder.user, stop))
                    await asyncio.sleep(1.0)  # the flood is under way before anyone presses
                    await asyncio.gather(*(answer_timed(api, p, waits) for p in people))
                    stop.set()
                    pushed = await flooding
                    await asyncio.sleep(1.0)
            finally:
                stop.set()
                bot.stop()
            log = bot.log()
            told = [
                m for m in flooder.user.messages() if str(m.get("text", "")).startswith(SLOW_DOWN)
            ]
            answered_flood = len(api.sent_messages(flooder.user.id)) - len(told)
        for patient in people:
            assert_completed_as_planned(live_ctx, patient)
        waits.sort()
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        print(
            f"\nflood: {pushed} updates pushed, {answered_flood} answered, "
            f"slow-down notices {len(told)}; other patients' presses {len(waits)}: "
            f"median {statistics.median(waits):.3f} s, p99 {p99:.3f} s, max {waits[-1]:.3f} s"
        )
        assert p99 < P99_LIMIT_S, waits
        # Updates were dropped, and the flooder was asked once, however often their queue
        # drained between two batches.
        assert pushed - answered_flood > 20
        assert len(told) == 1, len(told)
        assert "unhandled error" not in log
