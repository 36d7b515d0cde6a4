"""An idle tick at registry scale: what the weekly-invitation step reads and costs when nothing
is due (issue 22).

The registry's patients all have their slot on Monday 18:00 Berlin and their last
questionnaire a week before the registry's `NOW`, so on the Sunday before (`IDLE_AT`) every
one of them is an active patient without a recent questionnaire, and none is due. The
scheduler is marked as having run until a minute before; then `TICKS` ticks a minute apart
run the invitation step exactly as `bot.telegram.tick.send_invitations` does (the slot window,
every page of `claim_invitations`, the handled mark), in this process, with nothing to send.

Per tick: wall and CPU time of the step, the statements it sent, and the patients the
candidate query returned to Python (counted by running the same pages again before the
tick, read-only). On PostgreSQL also the patient rows the database itself examined for the
first page (`EXPLAIN ANALYZE`: rows returned plus rows removed by a filter).

Run: `.venv/bin/python -m benchmarks.idle_tick sqlite|postgresql [--patients N] [--ticks T]`;
the registry is the cached one of `benchmarks.registry`, reset afterwards.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from benchmarks import PSEUDONYM_KEY
from benchmarks.registry import NOW, Registry, build_registry, reset_registry
from tests.statements import captured_statements

IDLE_AT = NOW - timedelta(days=1)  # Sunday 17:00 UTC: the day before everyone's slot
TICKS = 5


def _context(registry: Registry, at: datetime) -> Any:
    from bot.clock import FixedClock
    from bot.config import load_settings
    from bot.context import AppContext

    settings = load_settings(
        _env_file=None,
        database_url=registry.url,
        pseudonym_key=PSEUDONYM_KEY,
    )
    return AppContext.from_settings(settings, clock=FixedClock(at))


def candidates_returned(ctx: Any, now: datetime) -> int:
    """How many patients the invitation step's candidate pages return at `now` (read-only)."""
    from bot.domain import timing
    from bot.services.scheduling import PAGE_SIZE
    from storage import schedule

    # A build without the next check has no `now` argument: it reads every candidate.
    takes_now = "now" in inspect.signature(schedule.invitation_candidates).parameters
    total, after = 0, 0
    with ctx.session() as session:
        while True:
            extra: dict[str, Any] = {"now": now} if takes_now else {}
            page = schedule.invitation_candidates(
                session=session,
                recent_since=now - timing.MIN_WEEKLY_GAP,
                after_patient_id=after,
                limit=PAGE_SIZE,
                **extra,
            )
            total += len(page)
            if len(page) < PAGE_SIZE:
                return total
            after = page[-1].patient_id


def invitation_step(ctx: Any, now: datetime) -> tuple[int, int]:
    """The invitation step of one tick at `now`; (pages, invitations claimed)."""
    from bot.services import scheduling

    window_start = scheduling.slot_window_start(ctx, now)
    pages, claimed = 0, 0
    after: int | None = 0
    while after is not None:
        page = scheduling.claim_invitations(
            ctx, now, window_start=window_start, after_patient_id=after
        )
        pages += 1
        claimed += len(page.messages)
        after = page.next_after
    scheduling.mark_slots_handled(ctx, now)
    return pages, claimed


def _first_page_statement(statements: list[tuple[str, Any]]) -> tuple[str, Any] | None:
    for statement, parameters in statements:
        if "max(administration.slot_at)" in statement:
            return statement, parameters
    return None


def patient_rows_examined(engine: Engine, statement: str, parameters: Any) -> int | None:
    """PostgreSQL: patient rows the plan of `statement` looked at (returned or filtered out)."""
    if engine.dialect.name != "postgresql":
        return None
    import psycopg

    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with psycopg.ClientCursor(driver) as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
            plan = cursor.fetchone()[0][0]["Plan"]  # type: ignore[index]
        driver.rollback()
    finally:
        raw.close()

    def walk(node: dict[str, Any]) -> int:
        own = 0
        if node.get("Relation Name") == "patient":
            loops = node.get("Actual Loops", 1)
            own = loops * (
                node.get("Actual Rows", 0)
                + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)
            )
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan)


def refresh_statistics(engine: Engine) -> None:
    """ANALYZE patient: what autovacuum does within a minute or so on PostgreSQL once a tick
    has written every patient's next check (SQLite's statistics are those of the build)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE patient")


def idle_ticks(
    registry: Registry, ticks: int = TICKS, *, analyze: bool = False
) -> list[dict[str, Any]]:
    """`ticks` idle ticks a minute apart from IDLE_AT; the figures of each. With `analyze`,
    the planner's statistics are refreshed after the first tick."""
    from bot.services.scheduling import mark_slots_handled

    ctx = _context(registry, IDLE_AT)
    results = []
    try:
        mark_slots_handled(ctx, IDLE_AT - timedelta(minutes=1))
        for number in range(ticks):
            now = IDLE_AT + timedelta(minutes=number)
            returned = candidates_returned(ctx, now)
            with captured_statements() as statements:
                wall, cpu = time.perf_counter(), time.process_time()
                pages, claimed = invitation_step(ctx, now)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            first = _first_page_statement(statements)
            results.append(
                {
                    "tick": number,
                    "wall_s": round(wall, 4),
                    "cpu_s": round(cpu, 4),
                    "pages": pages,
                    "statements": len(statements),
                    "candidates_returned": returned,
                    "invitations": claimed,
                    "first_page_patient_rows_examined": (
                        None if first is None else patient_rows_examined(ctx.engine, *first)
                    ),
                    "load_1min": round(os.getloadavg()[0], 2),
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            if analyze and number == 0:
                refresh_statistics(ctx.engine)
    finally:
        ctx.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_tick", description=__doc__)
    parser.add_argument("database", choices=("sqlite", "postgresql"))
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=TICKS)
    parser.add_argument(
        "--analyze", action="store_true", help="refresh statistics after the first tick"
    )
    args = parser.parse_args(argv)
    registry = build_registry(args.database, patients=args.patients)
    reset_registry(registry)
    try:
        results = idle_ticks(registry, args.ticks, analyze=args.analyze)
    finally:
        reset_registry(registry)
    print(json.dumps({"patients": args.patients, "database": args.database, "ticks": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
