"""Conversation throughput: spondybot against the bare framework, side by side in one run.

Simulated patients (closed loop: each waits for the reply before pressing again) complete whole
questionnaires through the real `spondybot run` process over HTTP against the local fake Bot API
server. In the same run and against the same server, a bare python-telegram-bot bot
(`benchmarks.bare_bot`) answers the same number of presses with one answerCallbackQuery and one
editMessageText each: the framework's floor. Latency runs from the moment an update becomes
available on the server to the bot's first reply request in that chat.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from benchmarks.report import Report, median_spread
from bot.clock import SystemClock
from bot.config import load_settings
from bot.context import AppContext
from storage import migrate
from storage.db import make_engine
from tests.factories import make_active_patient, make_physician
from tests.fake_bot_api import FakeBotApi, FakeUser

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SPONDYBOT = str(Path(PYTHON).with_name("spondybot"))
POSTGRES_URL = os.environ.get(
    "SPONDYBOT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PRESSES_PER_QUESTIONNAIRE = 8  # seven answers and the confirmation
REPLY_METHODS = {"editMessageText", "sendMessage", "editMessageReplyMarkup", "sendPhoto"}


@dataclass
class RunResult:
    presses: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float = float("nan")
    """CPU time (user and system) the bot process spent during the run."""

    @property
    def rate(self) -> float:
        return self.presses / self.seconds

    @property
    def cpu_ms_per_press(self) -> float:
        return 1000 * self.cpu_seconds / self.presses


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, migrated database URL: a SQLite file or a private PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            yield url
        return
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def bot_environment(api: FakeBotApi, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "TELEGRAM_FILE_BASE_URL": api.base_file_url,
            "TELEGRAM_BOT_USERNAME": "spondy_test_bot",
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "PTB_TIMEDELTA": "true",
            "SEND_RATE_PER_SECOND": "1000",
            "TICK_INTERVAL_SECONDS": "3600",
        }
    )
    return env


@contextmanager
def bot_process(command: list[str], env: dict[str, str], api: FakeBotApi) -> Iterator[int]:
    """Starts a bot process and waits until it polls the fake server; yields its pid."""
    before = len(api.calls("getUpdates"))
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        api.wait_until_sync(lambda: len(api.calls("getUpdates")) > before, timeout=60)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def seed_patients(database_url: str, api: FakeBotApi, count: int) -> list[FakeUser]:
    """Active, linked patients (through the real services) and their Telegram users."""
    settings = load_settings(
        _env_file=None, database_url=database_url, clinic_timezone="Europe/Berlin"
    )
    ctx = AppContext(
        settings=settings, engine=make_engine(settings.database_url), clock=SystemClock()
    )
    doctor = make_physician(ctx)
    users = []
    for _ in range(count):
        user = api.new_user("Bench", language_code="en")
        make_active_patient(ctx, physician_id=doctor.physician_id, telegram_user_id=user.id)
        users.append(user)
    ctx.close()
    return users


def bare_users(api: FakeBotApi, count: int) -> list[FakeUser]:
    return [api.new_user("Bare", language_code="en") for _ in range(count)]


def _choice(buttons: list[tuple[str, str]]) -> str:
    """A plausible answer: the middle answer button, or the confirmation."""
    answers = [data for _, data in buttons if data.startswith("a:")]
    if answers:
        return answers[len(answers) // 2]
    confirm = [data for _, data in buttons if data.startswith("c:")]
    if confirm:
        return confirm[0]
    raise RuntimeError(f"no button to press among {buttons}")


async def _patient(user: FakeUser, opener: str, presses: list[int]) -> None:
    update_id = user.send_command(opener) if opener.startswith("/") else user.send_text(opener)
    await user.wait_for_reply(after_update_id=update_id, timeout=60)
    for _ in range(PRESSES_PER_QUESTIONNAIRE):
        update_id = user.press(_choice(user.buttons()))
        presses.append(update_id)
        await user.wait_for_reply(after_update_id=update_id, timeout=60)


def _latencies(api: FakeBotApi, update_ids: list[int]) -> list[float]:
    replies: dict[int, list[float]] = {}
    for request in api.requests:
        if request.method in REPLY_METHODS and isinstance(request.chat_id, int):
            replies.setdefault(request.chat_id, []).append(request.time)
    for times in replies.values():
        times.sort()
    updates = {record.update_id: record for record in api.pushed_updates}
    result = []
    for update_id in update_ids:
        record = updates[update_id]
        chat = record.update["callback_query"]["message"]["chat"]["id"]
        times = replies.get(chat, [])
        index = bisect.bisect_left(times, record.pushed_at)
        if index < len(times):
            result.append(times[index] - record.pushed_at)
    return result


def drive(api: FakeBotApi, users: list[FakeUser], opener: str, pid: int) -> RunResult:
    """Every user opens a questionnaire and answers it through; `pid` is the bot's process."""
    presses: list[int] = []

    async def everyone() -> None:
        await asyncio.gather(*(_patient(user, opener, presses) for user in users))

    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    asyncio.run(everyone())
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    return RunResult(len(presses), elapsed, _latencies(api, presses), cpu)


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.0f}"


def _median_cpu(runs: list[RunResult]) -> float:
    return median_spread([run.cpu_ms_per_press for run in runs])[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(quick: bool = False) -> Report:
    """Throughput and latency at 1, 10 and 50 patients, spondybot vs bare bot, both databases."""
    levels = (1, 5) if quick else (1, 10, 50)
    repeats = 1 if quick else 3
    kinds = ("sqlite",) if quick else ("sqlite", "postgres")
    report = Report(
        "Conversation throughput",
        [
            "database",
            "patients",
            "spondybot answers/s",
            "bare bot answers/s",
            "ratio (target ≥ 0.7)",
            "spondybot p50/p95/p99 ms",
            "bare p50/p95/p99 ms",
            "CPU ms per press, spondybot / bare",
        ],
    )
    memory: list[str] = []
    for kind in kinds:
        with database(kind) as url, FakeBotApi() as api:
            env = bot_environment(api, url)
            results: dict[tuple[str, int], list[RunResult]] = {}
            for _ in range(repeats):
                for level in levels:
                    users = seed_patients(url, api, level)
                    with bot_process([SPONDYBOT, "run"], env, api) as pid:
                        results.setdefault(("spondybot", level), []).append(
                            drive(api, users, "/checkin", pid)
                        )
                        after = rss_mb(pid)
                    with bot_process([PYTHON, "-m", "benchmarks.bare_bot"], env, api) as pid:
                        results.setdefault(("bare", level), []).append(
                            drive(api, bare_users(api, level), "hello", pid)
                        )
            memory.append(
                f"{kind}: resident memory of `spondybot run` after the run {after:.0f} MB"
            )
            for level in levels:
                ours = [r.rate for r in results[("spondybot", level)]]
                bare = [r.rate for r in results[("bare", level)]]
                ratios = [a / b for a, b in zip(ours, bare, strict=True)]
                ours_median, ours_spread = median_spread(ours)
                bare_median, bare_spread = median_spread(bare)
                ratio_median, ratio_spread = median_spread(ratios)
                our_lat = [x for r in results[("spondybot", level)] for x in r.latencies]
                bare_lat = [x for r in results[("bare", level)] for x in r.latencies]
                report.add(
                    kind,
                    level,
                    f"{ours_median:.1f} ± {ours_spread:.1f}",
                    f"{bare_median:.1f} ± {bare_spread:.1f}",
                    f"{ratio_median:.2f} ± {ratio_spread:.2f}",
                    "/".join(_ms(our_lat, q) for q in (0.5, 0.95, 0.99)),
                    "/".join(_ms(bare_lat, q) for q in (0.5, 0.95, 0.99)),
                    f"{_median_cpu(results[('spondybot', level)]):.1f} / "
                    f"{_median_cpu(results[('bare', level)]):.1f}",
                )
    report.notes.append(
        f"Median of {repeats} runs ± half the range; the two bots alternate within each run, "
        "against the same fake Bot API server, so the ratio is measured side by side."
    )
    report.notes.append(
        f"Each patient completes one questionnaire: {PRESSES_PER_QUESTIONNAIRE} button presses "
        "(seven answers and the confirmation), each waiting for the bot's reply."
    )
    report.notes.extend(memory)
    report.notes.append(
        "CPU per press: user and system time of the bot process during the run (from /proc), "
        "over the presses; the opening /checkin (spondybot) or message (bare bot) is included."
    )
    report.notes.append(
        "Where the gap to the 0.7× target comes from: both bots are CPU-bound, so the ratio is "
        "about the inverse ratio of CPU per press. What spondybot adds to the bare bot's two Bot "
        "API requests is its database work (one transaction per press: the update claim, the "
        "patient, the administration and its answers, the compare-and-set move, the answer and "
        "its audit entry; about 3 ms measured alone on SQLite, two to three times that inside "
        "the running bot, where it shares the processor and its caches with the Bot API "
        "traffic), the check-in that opens each questionnaire and the scoring on confirmation "
        "(each about 6 ms alone, once per questionnaire), and richer requests (HTML text, larger "
        "keyboards, the rate limiter)."
    )
    return report
