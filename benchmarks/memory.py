"""Resident memory of `spondybot run` idle with 10,000 enrolled patients (target < 200 MB).

The patients are bulk-inserted as active, linked and consented, with weekly slots spread over
the week, so the scheduler's tick really walks them; the bot then polls an idle fake Bot API
server and its resident set size is read from /proc.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from datetime import time as clock_time

from sqlalchemy import insert

from benchmarks.conversation import SPONDYBOT, bot_environment, bot_process, database, rss_mb
from benchmarks.report import Report, median_spread
from storage.db import make_engine
from storage.models import ChatLink, Patient, PatientStatus, Physician
from tests.fake_telegram import FakeBotApi

TARGET_MB = 200


def seed(url: str, count: int) -> None:
    """Bulk-inserts one physician and `count` active, linked patients."""
    now = datetime.now(UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        physician_id = conn.execute(
            insert(Physician)
            .values(display_name="Dr. Bench", created_at=now, digest_time=clock_time(8, 0))
            .returning(Physician.id)
        ).scalar_one()
        patients = [
            {
                "physician_id": physician_id,
                "clinic_ref": f"B{index:06d}",
                "research_id": secrets.token_hex(16),
                "language": "en" if index % 3 else "zh",
                "timezone": "Europe/Berlin" if index % 2 else "Asia/Shanghai",
                "schedule_weekday": index % 7,
                "schedule_time": clock_time(8 + index % 12, 0),
                "status": PatientStatus.ACTIVE.value,
                "consent_version": "1",
                "consent_at": now,
                "created_at": now,
            }
            for index in range(count)
        ]
        conn.execute(insert(Patient), patients)
        ids = [
            row[0] for row in conn.execute(Patient.__table__.select().with_only_columns(Patient.id))
        ]
        conn.execute(
            insert(ChatLink),
            [
                {
                    "telegram_user_id": 900_000_000 + pid,
                    "chat_id": 900_000_000 + pid,
                    "patient_id": pid,
                    "linked_at": now,
                }
                for pid in ids
            ],
        )
    engine.dispose()


def run(quick: bool = False) -> Report:
    """Idle RSS after start-up and after two scheduler ticks, repeated."""
    count = 1_000 if quick else 10_000
    repeats = 1 if quick else 3
    report = Report(
        "Memory of `spondybot run`",
        ["database", "enrolled patients", "idle RSS MB (median ± spread)", "target"],
    )
    for kind in ("sqlite",) if quick else ("sqlite", "postgres"):
        with database(kind) as url, FakeBotApi() as api:
            seed(url, count)
            env = bot_environment(api, url)
            env["TICK_INTERVAL_SECONDS"] = "2"
            samples = []
            for _ in range(repeats):
                with bot_process([SPONDYBOT, "run"], env, api) as pid:
                    time.sleep(6)  # start-up plus a few scheduler ticks over every patient
                    samples.append(rss_mb(pid))
            median, spread = median_spread(samples)
            report.add(kind, count, f"{median:.0f} ± {spread:.0f}", f"< {TARGET_MB} MB")
    report.notes.append(
        "Resident set size from /proc/<pid>/status (VmRSS) of the bot process after start-up "
        "and several ticks with a 2 s interval; the figure after a throughput run is in the "
        "conversation section."
    )
    return report
