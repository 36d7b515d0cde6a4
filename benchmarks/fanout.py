"""Reminder fan-out: one tick with 10,000 weekly invitations due at the same instant.

Measured against the local fake Bot API running as its own process
(`python -m tests.fake_telegram --port 0`), so the server does not compete with the sender for
the interpreter. Two runs over the same patients:

1. **Rate-limited**, `SEND_RATE_PER_SECOND=30` through python-telegram-bot's AIORateLimiter, as
   deployed: the achieved send rate (target at least 95 % of the limit), duplicates (target 0)
   and failures (target 0). The rate is counted over the whole tick, claims and all, and also
   between the first and the last request the server saw.
2. **Limit lifted** (no rate limiter at all): raw sends per second against the fake server,
   the ceiling of this machine with claiming, sending and recording all in one process.

Patients are bulk-loaded into a fresh SQLite database (the one-machine deployment) as active,
consented, linked patients with the weekly slot Monday 18:00 Europe/Berlin; the tick is the
real `bot.telegram.tick.run_tick`, exactly as `spondybot tick --at` runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any

from benchmarks import PSEUDONYM_KEY
from benchmarks.report import Report
from bot.app import build_application
from bot.clock import FixedClock
from bot.config import load_settings
from bot.context import AppContext
from bot.services.scheduling import mark_slots_handled
from bot.telegram.tick import TickReport, run_tick
from storage import migrate
from storage.db import make_engine
from storage.models import ChatLink, Patient, PatientStatus, Physician

REPO = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-TOKEN"
RATE_LIMIT = 30.0
TARGET_SHARE = 0.95
ENROLLED_AT = datetime(2026, 2, 23, 9, 0, tzinfo=UTC)
FIRST_SLOT = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # Monday 18:00 in Berlin


class FakeServer:
    """The fake Bot API in a child process, driven over its /_fake/ control endpoint."""

    def __init__(self) -> None:
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_telegram", "--port", "0", "--token", TOKEN],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()

    def control(self, action: str, **payload: Any) -> Any:
        request = urllib.request.Request(
            f"{self.url}/_fake/{action}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["result"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def seed(ctx: AppContext, chat_ids: list[int]) -> None:
    """Active, consented, linked patients, one per chat, all due at FIRST_SLOT."""
    with ctx.session() as session:
        physician = Physician(display_name="Dr. Bench", created_at=ENROLLED_AT)
        session.add(physician)
        session.flush()
        assert physician.id is not None
        patients = [
            Patient(
                physician_id=physician.id,
                clinic_ref=f"BENCH-{index:05d}",
                research_id=secrets.token_hex(16),
                language="en" if index % 3 else "zh",
                timezone="Europe/Berlin",
                schedule_weekday=0,
                schedule_time=wall_time(18, 0),
                status=PatientStatus.ACTIVE.value,
                consent_version="bench",
                consent_at=ENROLLED_AT,
                created_at=ENROLLED_AT,
            )
            for index in range(len(chat_ids))
        ]
        session.add_all(patients)
        session.flush()
        session.add_all(
            ChatLink(
                telegram_user_id=chat_id,
                chat_id=chat_id,
                patient_id=patient.id,
                linked_at=ENROLLED_AT,
            )
            for patient, chat_id in zip(patients, chat_ids, strict=True)
        )


async def one_tick(ctx: AppContext, at: datetime, *, rate_limit: bool) -> tuple[TickReport, float]:
    """Runs the real tick once at `at`; its report and wall-clock seconds."""
    application = build_application(ctx, rate_limit=rate_limit)
    async with application:
        # The scheduler ran until a minute ago: an ordinary tick, not a catch-up after downtime.
        mark_slots_handled(ctx, at - timedelta(minutes=1))
        started = time.perf_counter()
        report = await run_tick(application, ctx, at)
        return report, time.perf_counter() - started


def server_figures(server: FakeServer) -> tuple[int, int, float]:
    """sendMessage requests seen, chats that got more than one, and the server-side rate."""
    requests = server.control("requests", method="sendMessage")
    per_chat = Counter(request["chat_id"] for request in requests)
    times = sorted(request["time"] for request in requests)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    rate = (len(times) - 1) / span if span > 0 else float("nan")
    return len(requests), sum(1 for count in per_chat.values() if count > 1), rate


def run(quick: bool) -> Report:
    """Both runs; `quick` uses 300 patients (the limited run then takes about 10 s)."""
    count = 300 if quick else 10_000
    report = Report(
        title="Reminder fan-out",
        columns=[
            "run",
            "invitations due",
            "sent",
            "tick seconds",
            "sends/s (whole tick)",
            "sends/s (server side)",
            "share of limit",
            "duplicates",
            "failures",
        ],
    )
    verdicts: list[bool] = []
    server = FakeServer()
    try:
        chat_ids = [server.control("new_user", first_name=f"P{i}")["id"] for i in range(count)]
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'fanout.db'}"
            engine = make_engine(url)
            migrate.upgrade(engine)
            for label, at, rate_limit in (
                ("rate-limited (30/s)", FIRST_SLOT, True),
                ("limit lifted", FIRST_SLOT + timedelta(weeks=1), False),
            ):
                settings = load_settings(
                    _env_file=None,
                    database_url=url,
                    telegram_bot_token=TOKEN,
                    pseudonym_key=PSEUDONYM_KEY,
                    telegram_api_base_url=f"{server.url}/bot",
                    telegram_file_base_url=f"{server.url}/file/bot",
                    send_rate_per_second=RATE_LIMIT,
                )
                ctx = AppContext(settings=settings, engine=engine, clock=FixedClock(at))
                if rate_limit:
                    seed(ctx, chat_ids)
                server.control("reset_requests")
                tick, seconds = asyncio.run(one_tick(ctx, at, rate_limit=rate_limit))
                requests, duplicates, server_rate = server_figures(server)
                whole = tick.sent / seconds
                share = f"{whole / RATE_LIMIT:.1%}" if rate_limit else "–"
                failures = tick.failed + tick.unreachable + len(tick.errors)
                extra = duplicates + (requests - tick.sent)
                if rate_limit:
                    verdicts.append(whole >= TARGET_SHARE * RATE_LIMIT)
                verdicts.extend([extra == 0, failures == 0, tick.sent == count])
                report.add(
                    label,
                    f"{count:,}",
                    f"{tick.sent:,}",
                    f"{seconds:.1f}",
                    f"{whole:.1f}",
                    f"{server_rate:.1f}",
                    share,
                    extra,
                    failures,
                )
            engine.dispose()
    finally:
        server.close()
    report.notes.extend(
        [
            f"Target: at least {TARGET_SHARE:.0%} of the {RATE_LIMIT:.0f}/s limit, "
            f"0 duplicates, 0 failures: {'met' if all(verdicts) else 'NOT met'}.",
            "One `run_tick` in one process: claims a page of 200 at a time just ahead of "
            "sending (16 concurrent sends), records outcomes in batches while sending goes on.",
            "Duplicates: sendMessage requests beyond one per chat, plus requests the tick did "
            "not count as sent. Failures: failed or unreachable deliveries and failed tasks.",
            "SQLite database; the fake Bot API server runs in its own process on 127.0.0.1.",
            "Load average of the machine at the end (other work shares its cores): "
            + " / ".join(f"{load:.1f}" for load in os.getloadavg())
            + " (1, 5, 15 min).",
            "Run with `.venv/bin/python -m benchmarks fanout` (`--quick`: 300 patients).",
        ]
    )
    return report
