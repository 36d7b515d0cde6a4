"""An idle tick reads only the patients who may be due, and every schedule change is honoured.

Each patient the invitation step looks at keeps when their next weekly slot can come
(`patient.next_check_at`); the step reads only patients whose check has come. Every writer of
what decides the slots clears it, so the next tick invites the patient at the new right time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from telegram.ext import Application

from benchmarks.registry import load_registry
from bot.context import AppContext
from bot.domain import timing
from bot.services import enrollment, scheduling, staff
from bot.services import patients as patient_service
from storage import patients, schedule
from storage.db import session_scope
from tests.bot.test_press_plans import REGISTRY_PATIENTS, captured_statements
from tests.fake_telegram import FakeBotApi, FakeUser
from tests.scheduling.conftest import Clinic, Enrolled, Ticker
from tests.scheduling.test_tick import process, sent_to

# The clock starts at T0 = Monday 2026-03-02 09:00 UTC; Monday 18:00 in Berlin is 17:00 UTC.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
MONDAY_SLOT = MONDAY + timedelta(hours=17)


def invitations(api: FakeBotApi, user: FakeUser) -> list[dict[str, Any]]:
    return [m for m in sent_to(api, user) if "weekly questionnaire" in m["text"]]


def next_check(ctx: AppContext, patient_id: int) -> datetime | None:
    with ctx.session() as session:
        patient = patients.get_patient(session=session, patient_id=patient_id)
        assert patient is not None
        return patient.next_check_at


def examined(ctx: AppContext, now: datetime) -> int:
    """How many patients the invitation step of a tick at `now` reads (every page)."""
    window_start = scheduling.slot_window_start(ctx, now)
    total, after = 0, 0
    while True:
        page = scheduling.claim_invitations(
            ctx, now, window_start=window_start, after_patient_id=after
        )
        total += page.examined
        if page.next_after is None:
            return total
        after = page.next_after


def candidates(ctx: AppContext, now: datetime) -> list[int]:
    """The patients the candidate query returns at `now` (reads only)."""
    with ctx.session() as session:
        return [
            candidate.patient_id
            for candidate in schedule.invitation_candidates(
                session=session,
                now=now,
                recent_since=now - timing.MIN_WEEKLY_GAP,
                after_patient_id=0,
                limit=1000,
            )
        ]


class TestIdleTick:
    async def test_an_idle_tick_reads_only_the_patients_who_are_due(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """After one tick has worked out everyone's next slot, a tick with nothing due reads
        nobody, and a tick at a slot reads only the patients of that slot."""
        mondays = [clinic.patient() for _ in range(8)]
        wednesdays = [clinic.patient(weekday=2, at=time(9, 0)) for _ in range(3)]
        first = await ticker.at(MONDAY + timedelta(hours=9))
        assert first.opened == 0
        everyone = sorted(p.patient_id for p in mondays + wednesdays)
        for enrolled in mondays:
            assert next_check(ctx, enrolled.patient_id) == MONDAY_SLOT
        for enrolled in wednesdays:  # Wednesday 09:00 in Berlin
            assert next_check(ctx, enrolled.patient_id) == MONDAY + timedelta(days=2, hours=8)
        assert len(everyone) == 11

        idle = MONDAY + timedelta(hours=9, minutes=1)
        assert candidates(ctx, idle) == []
        assert examined(ctx, idle) == 0
        assert candidates(ctx, MONDAY_SLOT) == sorted(p.patient_id for p in mondays)
        report = await ticker.at(MONDAY_SLOT)
        assert (report.opened, report.sent) == (8, 8)
        for enrolled in mondays:  # the following slot, a week later
            assert next_check(ctx, enrolled.patient_id) == MONDAY_SLOT + timedelta(weeks=1)
        assert examined(ctx, MONDAY_SLOT + timedelta(minutes=1)) == 0

        wednesday = MONDAY + timedelta(days=2, hours=8)
        assert candidates(ctx, wednesday) == sorted(p.patient_id for p in wednesdays)
        report = await ticker.at(wednesday)
        assert (report.opened, report.invitations) == (3, 3)
        for enrolled in mondays + wednesdays:
            assert len(invitations(api, enrolled.user)) == 1

    async def test_an_unusable_zone_is_looked_at_again_and_harms_no_one(
        self, clinic: Clinic, ticker: Ticker, ctx: AppContext
    ) -> None:
        """A patient whose schedule cannot be worked out keeps no next check (logged each
        tick, as before); the others still get theirs."""
        ana = clinic.patient()
        bob = clinic.patient()
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=bob.patient_id)
            assert patient is not None
            patient.timezone = "Mars/Olympus_Mons"
            patients.save_patient(session=session, patient=patient)
        await ticker.at(MONDAY + timedelta(hours=9))
        assert next_check(ctx, ana.patient_id) == MONDAY_SLOT
        assert next_check(ctx, bob.patient_id) is None
        assert candidates(ctx, MONDAY + timedelta(hours=9, minutes=1)) == [bob.patient_id]


class TestConcurrentChange:
    async def test_a_schedule_change_after_the_read_is_not_overwritten(
        self, clinic: Clinic, ctx: AppContext
    ) -> None:
        """A check worked out from a schedule that changed since it was read is not stored:
        the change's cleared check stands, and the next tick works the new slot out."""
        ana = clinic.patient()
        now = MONDAY + timedelta(hours=9)
        with ctx.session() as session:
            (read,) = schedule.invitation_candidates(
                session=session,
                now=now,
                recent_since=now - timing.MIN_WEEKLY_GAP,
                after_patient_id=0,
                limit=10,
            )
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="time", value="08:00")
        with ctx.session() as session:
            schedule.record_next_checks(
                session=session, checks=[schedule.NextCheck(candidate=read, at=MONDAY_SLOT)]
            )
        assert next_check(ctx, ana.patient_id) is None
        with ctx.session() as session:
            schedule.record_next_checks(
                session=session,
                checks=[
                    schedule.NextCheck(
                        candidate=schedule.InvitationCandidate(
                            **(read.__dict__ | {"schedule_time": time(8, 0)})
                        ),
                        at=MONDAY_SLOT,
                    )
                ],
            )
        assert next_check(ctx, ana.patient_id) == MONDAY_SLOT

    async def test_a_row_another_transaction_holds_is_skipped_not_waited_for(
        self, clinic: Clinic, ctx: AppContext
    ) -> None:
        """PostgreSQL: while another transaction holds the patient's row (a settings change,
        another process's tick), a tick's check for it is skipped at once, so two ticking
        processes never wait on each other there; the next tick stores it. SQLite runs one
        writer at a time, so there the check is simply written after the holder."""
        ana = clinic.patient()
        now = MONDAY + timedelta(hours=9)
        with ctx.session() as session:
            (read,) = schedule.invitation_candidates(
                session=session,
                now=now,
                recent_since=now - timing.MIN_WEEKLY_GAP,
                after_patient_id=0,
                limit=10,
            )
        check = schedule.NextCheck(candidate=read, at=MONDAY_SLOT)
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with session_scope(ctx.engine) as session:
                patients.get_patient_for_update(session=session, patient_id=ana.patient_id)
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        if ctx.engine.dialect.name == "postgresql":
            with ctx.session() as session:
                schedule.record_next_checks(session=session, checks=[check])
            assert holder.is_alive()  # returned while the row was still held
            assert next_check(ctx, ana.patient_id) is None
        release.set()
        holder.join()
        with ctx.session() as session:
            schedule.record_next_checks(session=session, checks=[check])
        assert next_check(ctx, ana.patient_id) == MONDAY_SLOT


class TestEveryWriterClearsTheCheck:
    """Each change to what decides the slots clears the patient's next check; the next tick
    then invites them at the new right time."""

    async def checked(self, ticker: Ticker, ctx: AppContext, ana: Enrolled, at: datetime) -> None:
        await ticker.at(at)
        assert next_check(ctx, ana.patient_id) is not None

    async def test_a_new_weekday(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Monday's slot had passed unseen; moved to Wednesday, the patient is invited on
        Wednesday, not next Monday."""
        ana = clinic.patient()
        tuesday = MONDAY + timedelta(days=1, hours=10)
        await self.checked(ticker, ctx, ana, tuesday)
        assert next_check(ctx, ana.patient_id) == MONDAY_SLOT + timedelta(weeks=1)
        ticker.clock.set(tuesday)
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="day", value="2")
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT + timedelta(days=2) - timedelta(minutes=1))
        assert invitations(api, ana.user) == []
        report = await ticker.at(MONDAY_SLOT + timedelta(days=2))
        assert report.opened == 1
        assert len(invitations(api, ana.user)) == 1

    async def test_an_earlier_time(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Moved from 18:00 to 17:00 the same Monday, the invitation comes at 17:00."""
        ana = clinic.patient()
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=15))
        ticker.clock.set(MONDAY + timedelta(hours=15))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="time", value="17:00")
        assert next_check(ctx, ana.patient_id) is None
        report = await ticker.at(MONDAY + timedelta(hours=16))  # 17:00 in Berlin
        assert report.opened == 1
        assert len(invitations(api, ana.user)) == 1

    async def test_a_new_time_zone(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Moved from Berlin to Moscow, Monday 18:00 comes two hours earlier in UTC."""
        ana = clinic.patient()
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=12))
        ticker.clock.set(MONDAY + timedelta(hours=12))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="tz", value="Europe/Moscow")
        assert next_check(ctx, ana.patient_id) is None
        report = await ticker.at(MONDAY + timedelta(hours=15))  # 18:00 in Moscow
        assert report.opened == 1
        assert len(invitations(api, ana.user)) == 1

    async def test_pause_and_resume_by_hand(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Pausing and resuming each clear the check; after the resume the next slot invites."""
        ana = clinic.patient()
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=12))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="2")
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT)
        assert invitations(api, ana.user) == []
        ticker.clock.set(MONDAY + timedelta(days=3))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="0")
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT + timedelta(weeks=1))
        assert len(invitations(api, ana.user)) == 1

    async def test_a_pause_that_ends_by_itself(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """The tick that lifts an ended pause clears the check; the first slot after the pause
        invites."""
        ana = clinic.patient()
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=9))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="1")
        for day in range(1, 8):
            await ticker.at(MONDAY + timedelta(days=day, hours=9))
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=ana.patient_id)
            assert patient is not None
            assert patient.status == "active"
        await ticker.at(MONDAY_SLOT + timedelta(weeks=1))
        assert len(invitations(api, ana.user)) == 1

    async def test_the_tick_that_lifts_a_pause_clears_the_check(
        self, clinic: Clinic, ctx: AppContext
    ) -> None:
        """`resume_paused_patients` clears the check of each patient it makes active again."""
        ana = clinic.patient()
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="1")
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=ana.patient_id)
            assert patient is not None
            patient.next_check_at = MONDAY_SLOT + timedelta(weeks=5)  # as if a tick had left one
            patients.save_patient(session=session, patient=patient)
        assert scheduling.resume_paused_patients(ctx, MONDAY + timedelta(weeks=1, hours=10)) == 1
        assert next_check(ctx, ana.patient_id) is None

    async def test_withdrawal_and_a_new_code(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
    ) -> None:
        """A patient who stopped and comes back with a fresh code (on a new phone) is active
        again and invited at the next slot."""
        ana = clinic.patient(ref="MRN-BACK")
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=9))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="stop", value="keep")
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT)
        assert invitations(api, ana.user) == []
        ticker.clock.set(MONDAY + timedelta(days=2))
        phone = api.new_user(language_code="en")
        code = staff.new_patient_code(ctx, clinic_ref="MRN-BACK")
        linked = enrollment.enroll(
            ctx, telegram_user_id=phone.id, chat_id=phone.id, code_text=code.code, language="en"
        )
        assert linked.outcome is enrollment.Outcome.PATIENT_LINKED
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT + timedelta(weeks=1))
        assert len(invitations(api, phone)) == 1

    async def test_relinking_an_active_patient(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A new phone (a fresh code used from another account) clears the check; the new
        account is invited at the next slot."""
        ana = clinic.patient(ref="MRN-PHONE")
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=9))
        phone = api.new_user(language_code="en")
        code = staff.new_patient_code(ctx, clinic_ref="MRN-PHONE")
        linked = enrollment.enroll(
            ctx, telegram_user_id=phone.id, chat_id=phone.id, code_text=code.code, language="en"
        )
        assert linked.outcome is enrollment.Outcome.PATIENT_LINKED
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT)
        assert len(invitations(api, phone)) == 1
        assert invitations(api, ana.user) == []

    async def test_data_deletion(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A patient whose data is deleted keeps no check and is never invited again."""
        ana = clinic.patient()
        await self.checked(ticker, ctx, ana, MONDAY + timedelta(hours=9))
        with ctx.session() as session:
            assert patients.delete_patient_data(
                session=session, patient_id=ana.patient_id, now=MONDAY + timedelta(hours=10)
            )
        assert next_check(ctx, ana.patient_id) is None
        await ticker.at(MONDAY_SLOT)
        assert invitations(api, ana.user) == []

    async def test_back_in_reach(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """Being unreachable changes no slot, so the check stays; it is in the past by the
        time the patient writes again, and the next slot invites them."""
        ana = clinic.patient()
        ana.user.block_bot()
        await ticker.at(MONDAY_SLOT)
        assert next_check(ctx, ana.patient_id) == MONDAY_SLOT + timedelta(weeks=1)
        ana.user.unblock_bot()
        ticker.clock.set(MONDAY_SLOT + timedelta(days=9))
        await process(app, api, ana.user.send_command("/start"))
        await ticker.at(MONDAY_SLOT + timedelta(weeks=2))
        assert len(invitations(api, ana.user)) == 1


class TestCandidatePlan:
    async def test_with_few_due_the_candidate_query_reads_no_whole_patient_table(
        self, ctx: AppContext
    ) -> None:
        """With a registry stored and its next checks known, an idle tick's candidate query
        reaches patients through `ix_patient_next_check_at` on PostgreSQL. SQLite's planner
        walks patients by id range instead (it has no statistics on how few are due); that
        walk reads each patient row once in the database and hands none to the tick."""
        load_registry(ctx.engine, patients=REGISTRY_PATIENTS, physicians=20, weeks=52, seed=3)
        now = MONDAY + timedelta(hours=9)
        assert examined(ctx, now) == REGISTRY_PATIENTS  # unknown until a tick works them out
        _refresh_statistics(ctx.engine)
        with captured_statements() as statements:
            assert examined(ctx, now + timedelta(minutes=1)) == 0
        (query,) = [(s, p) for s, p in statements if "max(administration.slot_at)" in s]
        plan = _plan(ctx.engine, *query)
        patient_steps = [
            line for line in plan if "patient" in line and "administration" not in line
        ]
        if ctx.engine.dialect.name == "postgresql":
            assert any("ix_patient_next_check_at" in line for line in plan), plan
            assert not any("Seq Scan on patient" in line for line in plan), plan
        else:
            assert not any(line.startswith("SCAN patient") for line in patient_steps), plan


def _refresh_statistics(engine: Engine) -> None:
    """ANALYZE, as autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) would after the tick
    wrote every patient's next check."""
    raw = engine.raw_connection()
    try:
        raw.cursor().execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def _plan(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The database's plan of `statement`, one step a line."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            cursor = raw.cursor()
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return [str(row[3]) for row in cursor.fetchall()]
        import psycopg

        driver = raw.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with psycopg.ClientCursor(driver) as client:
            client.execute(f"EXPLAIN {statement}", parameters)
            lines = [str(row[0]).strip() for row in client.fetchall()]
        driver.rollback()
        return lines
    finally:
        raw.close()
