"""Scale: a press, its work, the Monday wave, two processes and the bot's memory with N
patients stored (issue 22).

`python -m benchmarks --scale N` runs this at N patients on SQLite and PostgreSQL, each holding
the synthetic registry of `benchmarks.registry` (500 physicians, a year of weekly history):

1. **A press in a full database** (target p99 ≤ 150 ms): patients of the registry answer whole
   questionnaires through a real `spondybot run` process against the fake Bot API, their
   updates paced at 30 per second (Telegram's practical limit), each patient waiting for the
   reply before the next press. Latency runs from the update being available on the server to
   the bot's first reply in that chat.
2. **The Monday wave** (target ≥ 95 % of the configured rate, 0 duplicates): every patient's
   slot is due at once; two `spondybot tick --at` processes run together against the same
   database and fake server, each with SEND_RATE_PER_SECOND set. The server counts the
   invitations per chat and their rate. Separately, one tick in this process, with the send
   limit lifted, counts the database work (statements and their time) per 1,000 due patients.
3. **Memory** (target < 200 MB): resident set of `spondybot run` after start-up and its first
   tick walked every patient.
4. **A press's work** (target ≤ 1.15× spondybot's floor): instructions per press counted by
   callgrind for registry patients, against the floor on the same database.
5. **Two processes** (PostgreSQL, target ≥ 1.6× one): presses per second of two webhook
   processes against one, with redeliveries to the other process, exactly once.

Figures of each N go to benchmarks/results/scale-<N>.json; the report's "Scale" section is made
from every such file, so runs at different N sit side by side.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from benchmarks import PSEUDONYM_KEY
from benchmarks.conversation import (
    MEASURED_ROUNDS,
    PROCESS_PATIENTS,
    SPONDYBOT,
    WORK_PATIENTS,
    answer_button,
    bare_users,
    bot_environment,
    bot_process,
    press_work,
    processes_on,
    reply_latencies,
    rss_mb,
)
from benchmarks.registry import (
    NOW,
    Registry,
    build_registry,
    postgres_available,
    reset_registry,
)
from benchmarks.report import Report, median_spread
from tests.fake_telegram import FakeBotApi, FakeUser

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PRESS_RATE = 30.0  # updates per second offered to the bot
PRESS_PATIENTS = 100  # patients answering a questionnaire each, per run
PRESS_RUNS = 2
PRESSES_PER_QUESTIONNAIRE = 8  # seven answers and the confirmation
LATENCY_TARGET_MS = 150
WAVE_SHARE_TARGET = 0.95
RSS_TARGET_MB = 200
REPLY_METHODS = {"editMessageText", "sendMessage", "editMessageReplyMarkup", "sendPhoto"}


WAVE_RATE_CEILING = 100.0
OVERHEAD_TARGET = 1.15  # instructions per press against spondybot's floor
PROCESSES_TARGET = 1.6  # presses per second of two processes against one
PROCESSES_REDELIVER_EVERY = 5  # every fifth update also reaches the other process


def wave_rate(patients: int) -> float:
    """The configured send rate of the wave: Telegram's 30/s, raised for large N so that the
    wave fits in a benchmark run (10,000 invitations at 30/s take more than five minutes), to
    at most `WAVE_RATE_CEILING`, about what this benchmark's fake Bot API, two tick processes
    and the database sustain together on 2 cores (100,000 invitations then take 17 minutes)."""
    return max(30.0, min(patients / 100, WAVE_RATE_CEILING))


# -- a press in a full database ---------------------------------------------------------


def question_buttons(user: FakeUser) -> list[tuple[str, str]]:
    """The buttons of the newest message that asks a question or the confirmation (the
    offer to report a side effect has a keyboard too)."""
    for message in reversed(user.messages()):
        buttons = user.buttons(message)
        if any(data.startswith(("a:", "c:")) for _, data in buttons):
            return buttons
    return []


class Pacer:
    """Hands out send times 1/rate apart: an open-loop arrival rate across all patients."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.next = time.perf_counter()

    async def wait(self) -> None:
        slot = self.next = max(self.next + self.interval, time.perf_counter())
        await asyncio.sleep(max(0.0, slot - time.perf_counter()))


async def _next_buttons(user: FakeUser) -> list[tuple[str, str]]:
    """The question's (or the confirmation's) buttons once the bot has shown them."""
    deadline = time.perf_counter() + 60
    while not (buttons := question_buttons(user)):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no question in chat {user.id}: {user.messages()[-2:]}")
        await asyncio.sleep(0.01)
    return buttons


async def _questionnaire(user: FakeUser, pacer: Pacer, presses: list[int]) -> None:
    """/checkin, then presses until the questionnaire is confirmed (eight, as a rule)."""
    await pacer.wait()
    update_id = user.send_command("/checkin")
    await user.wait_for_reply(after_update_id=update_id, timeout=60)
    for _ in range(2 * PRESSES_PER_QUESTIONNAIRE):
        data = answer_button(await _next_buttons(user))
        await pacer.wait()
        update_id = user.press(data)
        presses.append(update_id)
        await user.wait_for_reply(after_update_id=update_id, timeout=60)
        if data.startswith("c:"):
            return
    raise RuntimeError(f"chat {user.id}: no confirmation after {len(presses)} presses")


async def press_round(users: list[FakeUser], rate: float) -> list[int]:
    """Every user answers one questionnaire, updates paced at `rate`; the pressed update ids."""
    pacer = Pacer(rate)
    presses: list[int] = []
    await asyncio.gather(*(_questionnaire(user, pacer, presses) for user in users))
    return presses


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _first_tick_done(registry: Registry, timeout: float = 900) -> float:
    """Waits until the bot's first tick has worked out every patient's next check; the
    seconds it took.

    The registry is loaded, and reset, with every next check unknown, as right after the
    migration that added them: the first tick then reads every patient once (nothing is due
    today) and stores their checks. A running bot does that once in its life, not after each
    restart, so presses are measured after it rather than against it.
    """
    engine = create_engine(registry.url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            with engine.connect() as connection:
                unknown = connection.execute(
                    text("SELECT count(*) FROM patient WHERE next_check_at IS NULL")
                ).scalar_one()
            if unknown == 0:
                return time.perf_counter() - started
            time.sleep(1)
    finally:
        engine.dispose()
    raise RuntimeError(f"the first tick did not finish in {timeout:.0f} s")


def registry_users(api: FakeBotApi, registry: Registry, count: int) -> list[FakeUser]:
    """`count` of the registry's patients, spread over it, as users of the fake server."""
    step = max(1, registry.patients // count)
    chosen = list(range(1, registry.patients + 1, step))[:count]
    if len(chosen) < count:
        raise ValueError(f"the registry of {registry.patients} holds fewer than {count} patients")
    return [
        api.new_user("P", language_code="en", user_id=registry.telegram_id(patient))
        for patient in chosen
    ]


def _in_groups(users: list[FakeUser], size: int) -> list[list[FakeUser]]:
    return [users[start : start + size] for start in range(0, len(users), size)]


def press_latency(registry: Registry) -> dict[str, Any]:
    """Latency percentiles of presses at PRESS_RATE updates/s, over PRESS_RUNS runs."""
    runs: list[dict[str, float]] = []
    all_latencies: list[float] = []
    with FakeBotApi() as api:
        users = registry_users(api, registry, PRESS_PATIENTS * PRESS_RUNS)
        env = bot_environment(api, registry.url)
        with bot_process([SPONDYBOT, "run"], env, api) as pid:
            first_tick = _first_tick_done(registry)
            for group in _in_groups(users, PRESS_PATIENTS):
                started = time.perf_counter()
                presses = asyncio.run(press_round(group, PRESS_RATE))
                seconds = time.perf_counter() - started
                latencies = reply_latencies(api, presses)
                all_latencies += latencies
                runs.append(
                    {
                        "presses": len(presses),
                        "updates_per_s": len(presses) * 9 / 8 / seconds,
                        **{
                            f"p{round(q * 100)}_ms": percentile_ms(latencies, q)
                            for q in (0.5, 0.95, 0.99)
                        },
                    }
                )
            rss = rss_mb(pid)
    reset_registry(registry)
    return {
        "first_tick_s": first_tick,
        "runs": runs,
        "all": {
            f"p{round(q * 100)}_ms": percentile_ms(all_latencies, q) for q in (0.5, 0.95, 0.99)
        },
        "rss_after_mb": rss,
    }


def _settle_first_tick(registry: Registry, api: FakeBotApi, env: dict[str, str]) -> float:
    """Runs `spondybot run` until its first tick has stored every patient's next check, then
    stops it; the seconds the tick took. A bot started afterwards begins in its steady state
    (see `_first_tick_done`), which matters most under valgrind, where the first walk over
    100,000 patients would take about an hour."""
    with bot_process([SPONDYBOT, "run"], env, api):
        return _first_tick_done(registry)


def press_overhead(registry: Registry) -> dict[str, float]:
    """Instructions per press of `spondybot run` for registry patients against its floor
    (`benchmarks.conversation.press_work`, target 3), with the registry stored."""
    groups = 1 + MEASURED_ROUNDS
    with FakeBotApi() as api:
        env = bot_environment(api, registry.url)
        _settle_first_tick(registry, api, env)
        patients = _in_groups(registry_users(api, registry, WORK_PATIENTS * groups), WORK_PATIENTS)
        bare = [bare_users(api, WORK_PATIENTS) for _ in range(groups)]
        ours, floor = press_work(api, env, patients, bare)
    reset_registry(registry)
    return {"spondybot": ours, "floor": floor, "ratio": ours / floor}


def two_process_presses(registry: Registry) -> dict[str, Any]:
    """Presses per second of two webhook processes against one on the registry's database,
    every fifth update redelivered to the other process (target 7), and whether every answer
    was stored and every press answered exactly once."""
    per_run = PROCESS_PATIENTS * (1 + MEASURED_ROUNDS)
    after = registry.last_ids["administration"]
    results: dict[str, Any] = {}
    with FakeBotApi() as api:
        _settle_first_tick(registry, api, bot_environment(api, registry.url))
        users = registry_users(api, registry, 2 * per_run)
        for count, chosen in zip((1, 2), (users[:per_run], users[per_run:]), strict=True):
            result = processes_on(
                registry.url,
                api,
                _in_groups(chosen, PROCESS_PATIENTS),
                count,
                duplicate_every=PROCESSES_REDELIVER_EVERY,
                after_administration=after,
            )
            results[str(count)] = {
                "presses_per_s": result.run.rate,
                "presses": result.presses,
                "answers": result.answers,
                "expected_answers": result.expected_answers,
                "completed": result.completed,
                "edits": result.edits,
                "load": result.load,
            }
    reset_registry(registry)
    results["ratio"] = results["2"]["presses_per_s"] / results["1"]["presses_per_s"]
    return results


# -- the Monday wave -------------------------------------------------------------------


@contextmanager
def counting(engine_names: tuple[str, ...] = ()) -> Iterator[dict[str, float]]:
    """Statements sent by any engine while the block runs, and their time in seconds."""
    totals = {"statements": 0.0, "seconds": 0.0}
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        totals["statements"] += 1
        totals["seconds"] += time.perf_counter() - started.pop(id(cursor), time.perf_counter())

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        yield totals
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def _mark_handled(registry: Registry) -> None:
    """The scheduler ran until a minute before the wave: an ordinary tick, not a catch-up."""
    from bot.clock import FixedClock
    from bot.config import load_settings
    from bot.context import AppContext
    from bot.services.scheduling import mark_slots_handled

    settings = load_settings(
        _env_file=None,
        database_url=registry.url,
        pseudonym_key=PSEUDONYM_KEY,
    )
    ctx = AppContext.from_settings(settings, clock=FixedClock(NOW))
    try:
        mark_slots_handled(ctx, NOW - timedelta(minutes=1))
    finally:
        ctx.close()


def add_patients(api: FakeBotApi, registry: Registry) -> None:
    """Every registry patient as a user of the fake server, so invitations reach a chat."""
    for patient in range(1, registry.patients + 1):
        api.new_user("P", language_code="en", user_id=registry.telegram_id(patient))


def two_process_wave(registry: Registry) -> dict[str, Any]:
    """Two `spondybot tick --at` processes at once; what the server received."""
    rate = wave_rate(registry.patients)
    _mark_handled(registry)
    with FakeBotApi() as api:
        add_patients(api, registry)
        env = bot_environment(api, registry.url) | {"SEND_RATE_PER_SECOND": f"{rate:g}"}
        command = [SPONDYBOT, "tick", "--at", NOW.isoformat(), "--json"]
        started = time.perf_counter()
        processes = [
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=3600)[0] for process in processes]
        wall = time.perf_counter() - started
        sends = [r for r in api.requests if r.method == "sendMessage"]
    per_chat = Counter(request.chat_id for request in sends)
    times = sorted(request.time for request in sends)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    reports = []
    for output in outputs:
        try:
            reports.append(json.loads(output.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            reports.append({"unparsed": output[-500:]})
    reset_registry(registry)
    server_rate = (len(times) - 1) / span if span > 0 else float("nan")
    return {
        "configured_rate": rate,
        "due": registry.patients,
        "sent": len(sends),
        "chats": len(per_chat),
        "duplicates": sum(count - 1 for count in per_chat.values()),
        "seconds": wall,
        "rate_whole": len(sends) / wall,
        "rate_server": server_rate,
        "ticks": reports,
    }


def tick_db_work(registry: Registry) -> dict[str, float]:
    """One tick in this process with the send limit lifted: statements and their time."""
    from bot.app import build_application
    from bot.clock import FixedClock
    from bot.config import load_settings
    from bot.context import AppContext
    from bot.telegram.tick import run_tick

    _mark_handled(registry)
    with FakeBotApi() as api:
        add_patients(api, registry)
        settings = load_settings(
            _env_file=None,
            database_url=registry.url,
            telegram_bot_token=api.token,
            pseudonym_key=PSEUDONYM_KEY,
            telegram_api_base_url=api.base_url,
            telegram_file_base_url=api.base_file_url,
        )
        ctx = AppContext.from_settings(settings, clock=FixedClock(NOW))

        async def tick() -> tuple[int, float, dict[str, float]]:
            application = build_application(ctx, rate_limit=False)
            async with application:
                with counting() as totals:
                    started = time.perf_counter()
                    report = await run_tick(application, ctx, NOW)
                    seconds = time.perf_counter() - started
            return report.sent, seconds, dict(totals)

        try:
            sent, seconds, totals = asyncio.run(tick())
        finally:
            ctx.close()
    reset_registry(registry)
    per_thousand = 1000 / registry.patients
    return {
        "sent": sent,
        "tick_seconds": seconds,
        "statements": totals["statements"],
        "db_seconds": totals["seconds"],
        "statements_per_1000": totals["statements"] * per_thousand,
        "db_seconds_per_1000": totals["seconds"] * per_thousand,
    }


# -- memory ----------------------------------------------------------------------------


def idle_rss(registry: Registry, repeats: int = 2) -> list[float]:
    """RSS of `spondybot run` after start-up and a first tick over every patient."""
    samples = []
    with FakeBotApi() as api:
        env = bot_environment(api, registry.url) | {"TICK_INTERVAL_SECONDS": "2"}
        for _ in range(repeats):
            with bot_process([SPONDYBOT, "run"], env, api) as pid:
                time.sleep(8)
                samples.append(rss_mb(pid))
    reset_registry(registry)
    return samples


# -- the run ---------------------------------------------------------------------------


def measure(patients: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Every figure at `patients` on each database kind; written to results/scale-<N>.json."""
    figures: dict[str, Any] = {
        "patients": patients,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "load_before": os.getloadavg(),
        "databases": {},
    }
    for kind in kinds:
        print(f"scale {patients}: {kind} registry …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        registry = build_registry(kind, patients=patients)
        reset_registry(registry)
        entry: dict[str, Any] = {
            "registry_seconds": time.perf_counter() - started,
            "built": registry.build_seconds is not None,
            "last_ids": registry.last_ids,
        }
        steps = [
            ("press", press_latency),
            ("overhead", press_overhead),
            ("wave", two_process_wave),
            ("tick_db", tick_db_work),
            ("rss_mb", idle_rss),
        ]
        if kind == "postgresql":  # target 7 is two processes on one PostgreSQL
            steps.append(("processes", two_process_presses))
        for name, step in steps:
            print(f"scale {patients}: {kind} {name} …", file=sys.stderr, flush=True)
            step_started = time.perf_counter()
            entry[name] = step(registry)
            entry[f"{name}_seconds"] = time.perf_counter() - step_started
        figures["databases"][kind] = entry
    figures["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scale-{patients}.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def report() -> Report:
    """The "Scale" section from every results/scale-<N>.json."""
    table = Report(
        title="Scale",
        columns=[
            "patients",
            "database",
            "press p50/p95/p99 ms (target p99 ≤ 150)",
            "p99 per run ms",
            "wave: sent / due, duplicates",
            "wave rate: configured / achieved (server side)",
            "tick DB work per 1,000 due: statements, seconds",
            "idle RSS MB (target < 200)",
            "M instructions per press, spondybot / floor (target ≤ 1.15×)",
            "two processes / one, presses/s (target ≥ 1.6×)",
            "registry build s",
        ],
    )
    machine = ""
    loads = []
    for path in sorted(RESULTS.glob("scale-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        figures = json.loads(path.read_text())
        machine = figures["machine"]
        loads.append(
            f"{figures['patients']:,}: {figures['load_before'][0]:.1f} before, "
            f"{figures['load_after'][0]:.1f} after"
        )
        for kind, entry in figures["databases"].items():
            press = entry["press"]
            wave = entry["wave"]
            tick = entry["tick_db"]
            rss, spread = median_spread(entry["rss_mb"])
            p99 = press["all"]["p99_ms"]
            share = wave["rate_server"] / wave["configured_rate"]
            table.add(
                f"{figures['patients']:,}",
                kind,
                f"{press['all']['p50_ms']:.0f} / {press['all']['p95_ms']:.0f} / {p99:.0f} "
                f"{'✓' if p99 <= LATENCY_TARGET_MS else '✗'}",
                ", ".join(f"{run['p99_ms']:.0f}" for run in press["runs"]),
                f"{wave['sent']:,} / {wave['due']:,}, {wave['duplicates']}",
                f"{wave['configured_rate']:g} / {wave['rate_server']:.1f} ({share:.0%})",
                f"{tick['statements_per_1000']:.0f}, {tick['db_seconds_per_1000']:.2f}",
                f"{rss:.0f} ± {spread:.0f}",
                _overhead_cell(entry.get("overhead")),
                _processes_cell(entry.get("processes")),
                f"{entry['last_ids']['answer']:,} answers; "
                + (f"built in {entry['registry_seconds']:.0f}" if entry["built"] else "cached"),
            )
    table.notes += [
        f"Machine: {machine}. 1-minute load average per N: " + "; ".join(loads) + ".",
        f"Press: {PRESS_RUNS} runs of {PRESS_PATIENTS} registry patients each answering one "
        f"questionnaire (/checkin, then {PRESSES_PER_QUESTIONNAIRE} presses), updates offered "
        f"at {PRESS_RATE:g}/s; percentiles over both runs, then the p99 of each run (spread).",
        "Wave: every patient's slot is due at once (Monday 18:00 Europe/Berlin); two "
        "`spondybot tick --at` processes start together. Achieved rate: sendMessage requests "
        "the server received, first to last. The configured rate is Telegram's 30/s, raised to "
        "N/100 per second for large N so that the wave fits in a run.",
        "Instructions per press: valgrind's callgrind over two rounds of "
        f"{WORK_PATIENTS} registry patients answering a questionnaire after a warm-up round, "
        "against spondybot's floor (`benchmarks.app_floor`) on the same database "
        "(`benchmarks.conversation.press_work`); both bots start after a first tick has "
        "stored every patient's next check.",
        f"Two processes (PostgreSQL only): {PROCESS_PATIENTS} registry patients at once "
        "answer questionnaires through one, then two, `spondybot run --webhook-url` processes, "
        f"every {PROCESSES_REDELIVER_EVERY}th update also relayed to the other process; ✓ "
        "after the ratio means every answer was stored once and every press edited once.",
        "Tick DB work: one tick in the benchmark process with the send limit lifted; every "
        "statement any engine sent and the time spent in the driver, divided per 1,000 due.",
        "Run with `.venv/bin/python -m benchmarks --scale N`; figures of each N are kept in "
        "benchmarks/results/scale-<N>.json.",
    ]
    return table


def _overhead_cell(overhead: dict[str, float] | None) -> str:
    if overhead is None:
        return "–"
    ratio = overhead["ratio"]
    return (
        f"{overhead['spondybot'] / 1e6:.2f} / {overhead['floor'] / 1e6:.2f} = {ratio:.2f}× "
        f"{'✓' if ratio <= OVERHEAD_TARGET else '✗'}"
    )


def _processes_cell(processes: dict[str, Any] | None) -> str:
    if processes is None:
        return "–"
    one, two, ratio = processes["1"], processes["2"], processes["ratio"]
    exact = all(
        run["answers"] == run["expected_answers"] and run["edits"] == run["presses"]
        for run in (one, two)
    )
    return (
        f"{two['presses_per_s']:.1f} / {one['presses_per_s']:.1f} = {ratio:.2f}× "
        f"{'✓' if ratio >= PROCESSES_TARGET else '✗'}; exactly once "
        f"{'✓' if exact else '✗'}"
    )


def run(quick: bool = False, scale: int = 1_000) -> Report:
    """Measures at `scale` patients (SQLite, and PostgreSQL when reachable)."""
    kinds = ("sqlite", "postgresql") if postgres_available() and not quick else ("sqlite",)
    measure(scale, kinds)
    return report()
