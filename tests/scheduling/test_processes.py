"""Several operating-system processes ticking at once: every invitation is sent exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.context import AppContext
from storage import deliveries
from storage.models import DeliveryStatus
from tests.conftest import TEST_PSEUDONYM_KEY, TEST_TOKEN
from tests.fake_telegram import FakeBotApi
from tests.scheduling.conftest import Clinic

REPO = Path(__file__).resolve().parents[2]
SLOT = "2026-03-02T17:00:00Z"  # Monday 18:00 in Berlin, the patients' weekly slot


def enroll_many(clinic: Clinic, count: int) -> list[int]:
    """`count` active patients through the real services, four at a time; their chat ids."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        enrolled = list(pool.map(lambda _: clinic.patient(), range(count)))
    return [patient.user.chat_id for patient in enrolled]


def tick_processes(database_url: str, api: FakeBotApi, cwd: Path, count: int) -> list[str]:
    """Starts `count` `spondybot tick --at SLOT` processes together; their outputs."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "TELEGRAM_FILE_BASE_URL": api.base_file_url,
        "SEND_RATE_PER_SECOND": "1000",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "tick", "--at", SLOT],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        outputs.append(out)
    return outputs


def assert_each_sent_once(api: FakeBotApi, ctx: AppContext, chats: list[int]) -> None:
    sends = Counter(request.chat_id for request in api.calls("sendMessage"))
    delivered = Counter(message["chat"]["id"] for message in api.sent_messages())
    assert set(sends) == set(chats)
    assert max(sends.values()) == 1, sends.most_common(3)
    assert all(delivered[chat] == 1 for chat in chats)
    with ctx.session() as session:
        log = deliveries.list_deliveries(session=session, limit=len(chats) + 10)
    assert len(log) == len(chats)
    assert {entry.status for entry in log} == {DeliveryStatus.SENT.value}


class TestConcurrentTicks:
    @pytest.mark.slow
    @pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
    def test_two_processes_on_postgresql_send_2000_invitations_once_each(
        self, clinic: Clinic, api: FakeBotApi, ctx: AppContext, database_url: str, tmp_path: Path
    ) -> None:
        """Two `spondybot tick` processes on one PostgreSQL share 2,000 due invitations: each
        chat receives exactly one sendMessage."""
        chats = enroll_many(clinic, 2000)
        outputs = tick_processes(database_url, api, tmp_path, 2)
        assert_each_sent_once(api, ctx, chats)
        sent = [int(out.split(" sent,")[0].rsplit(" ", 1)[-1]) for out in outputs]
        assert sum(sent) == 2000, outputs

    @pytest.mark.slow
    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    def test_two_processes_on_sqlite_send_each_invitation_once(
        self, clinic: Clinic, api: FakeBotApi, ctx: AppContext, database_url: str, tmp_path: Path
    ) -> None:
        """On one SQLite file two ticking processes queue for the write lock and never double."""
        chats = enroll_many(clinic, 150)
        tick_processes(database_url, api, tmp_path, 2)
        assert_each_sent_once(api, ctx, chats)
