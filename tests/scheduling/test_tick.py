"""The tick end to end: what patients' phones receive (through a fake Bot API) and when."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from telegram import Update
from telegram.ext import Application

from bot.app import TICK_TASKS, build_application
from bot.callbacks import SnoozeButton, StartButton, encode
from bot.clock import FixedClock
from bot.context import AppContext
from bot.domain.instruments import INSTRUMENT_VERSION
from bot.services import patients as patient_service
from bot.services import questionnaire, scheduling
from bot.telegram import tick as jobs
from bot.telegram.tick import Tick
from storage import administrations, deliveries, patients
from storage.models import Administration, DeliveryStatus
from tests.fake_telegram import FakeBotApi, FakeUser
from tests.scheduling.conftest import Clinic, Enrolled, Ticker

# The clock starts at T0 = Monday 2026-03-02 09:00 UTC; Monday 18:00 in Berlin is 17:00 UTC.
MONDAY_SLOT = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def sent_to(api: FakeBotApi, user: FakeUser) -> list[dict[str, Any]]:
    """Successful sendMessage calls to one chat, as the phone received them."""
    return api.sent_messages(user.chat_id)


def administrations_of(ctx: AppContext, patient_id: int) -> list[Administration]:
    with ctx.session() as session:
        return administrations.list_administrations(session=session, patient_id=patient_id)


def callback_data(message: dict[str, Any]) -> list[str]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]


async def process(
    app: Application[Any, Any, Any, Any, Any, Any], api: FakeBotApi, update_id: int
) -> None:
    """Hands an update the fake server queued to the real dispatcher, and waits for its
    non-blocking handlers too (as if it had been fetched by polling)."""
    (queued,) = [u.update for u in api.pushed_updates if u.update_id == update_id]
    before = asyncio.all_tasks()
    await app.process_update(Update.de_json(queued, app.bot))
    spawned = asyncio.all_tasks() - before - {asyncio.current_task()}
    await asyncio.gather(*spawned)


class TestWeeklyInvitation:
    async def test_invitation_at_the_slot_with_a_start_button(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """At the patient's local slot the week's administration opens and a Start button comes."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT - timedelta(minutes=1))
        assert sent_to(api, ana.user) == []
        report = await ticker.at(MONDAY_SLOT)
        assert (report.opened, report.sent) == (1, 1)
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.kind == "scheduled"
        assert administration.slot_at == MONDAY_SLOT
        assert administration.status == "open"
        assert administration.current_item is None
        assert administration.expires_at == MONDAY_SLOT + timedelta(days=3)
        assert administration.instrument_version == INSTRUMENT_VERSION
        assert administration.language == "en"
        (message,) = sent_to(api, ana.user)
        assert "weekly questionnaire" in message["text"]
        assert "2026-03-05 18:00" in message["text"]  # closes, in Berlin time
        assert administration.id is not None
        assert callback_data(message) == [encode(StartButton(administration.id))]

    async def test_the_same_tick_twice_sends_once(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi
    ) -> None:
        """Running the tick for the same instant again claims and sends nothing."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT)
        again = await ticker.at(MONDAY_SLOT)
        later = await ticker.at(MONDAY_SLOT + timedelta(minutes=1))
        assert (again.sent, later.sent) == (0, 0)
        assert len(sent_to(api, ana.user)) == 1

    async def test_invitation_in_the_patients_language(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi
    ) -> None:
        """A patient who chose Chinese is invited in Chinese, with a Chinese button."""
        li = clinic.patient(language="zh", timezone="Asia/Shanghai", weekday=0, at=time(20, 0))
        await ticker.at(utc(2026, 3, 2, 12, 0))  # 20:00 in Shanghai
        (message,) = sent_to(api, li.user)
        assert "本周的问卷已准备好" in message["text"]
        assert message["reply_markup"]["inline_keyboard"][0][0]["text"] == "开始"

    async def test_each_patient_at_their_own_local_time(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi
    ) -> None:
        """Two patients with Monday 18:00 in different zones are invited hours apart."""
        berlin = clinic.patient(timezone="Europe/Berlin")
        new_york = clinic.patient(timezone="America/New_York")
        await ticker.at(MONDAY_SLOT)
        assert (len(sent_to(api, berlin.user)), len(sent_to(api, new_york.user))) == (1, 0)
        await ticker.at(utc(2026, 3, 2, 23, 0))  # 18:00 EST
        assert len(sent_to(api, new_york.user)) == 1

    async def test_paused_and_withdrawn_patients_get_nothing(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A paused and a withdrawn patient receive no invitation and get no administration."""
        paused = clinic.patient()
        stopped = clinic.patient()
        patient_service.choose(ctx, telegram_user_id=paused.user.id, step="pause", value="2")
        patient_service.choose(ctx, telegram_user_id=stopped.user.id, step="stop", value="keep")
        await ticker.at(MONDAY_SLOT)
        assert sent_to(api, paused.user) == []
        assert sent_to(api, stopped.user) == []
        assert administrations_of(ctx, paused.patient_id) == []
        assert administrations_of(ctx, stopped.patient_id) == []

    async def test_a_pause_ends_by_itself_and_paused_weeks_are_not_missed(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """After a two-week pause the patient is active again; the weeks paused are not missed."""
        ana = clinic.patient()
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="2")
        for day in range(0, 15):  # a tick every day at 17:00 UTC, through the pause
            await ticker.at(MONDAY_SLOT + timedelta(days=day))
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=ana.patient_id)
            assert patient is not None
            assert patient.status == "active"
        assert [a.slot_at for a in administrations_of(ctx, ana.patient_id)] == [
            MONDAY_SLOT + timedelta(weeks=2)
        ]
        assert len(sent_to(api, ana.user)) == 1

    async def test_manual_resume_does_not_back_fill_paused_weeks(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A patient who resumes early by hand is asked from the next slot on, nothing missed."""
        ana = clinic.patient()
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="4")
        for day in range(9):  # the scheduler runs through the paused days
            await ticker.at(MONDAY_SLOT + timedelta(days=day))
        ticker.clock.set(MONDAY_SLOT + timedelta(weeks=1, days=2))
        patient_service.choose(ctx, telegram_user_id=ana.user.id, step="pause", value="0")
        await ticker.at(MONDAY_SLOT + timedelta(weeks=1, days=2))
        assert administrations_of(ctx, ana.patient_id) == []
        await ticker.at(MONDAY_SLOT + timedelta(weeks=2))
        assert [a.status for a in administrations_of(ctx, ana.patient_id)] == ["open"]
        assert len(sent_to(api, ana.user)) == 1


class TestDaylightSaving:
    @pytest.mark.parametrize(
        ("zone", "sundays"),
        [
            ("Europe/Berlin", [utc(2026, 3, 22), utc(2026, 3, 29), utc(2026, 4, 5)]),
            ("Europe/Berlin", [utc(2026, 10, 18), utc(2026, 10, 25), utc(2026, 11, 1)]),
            ("America/New_York", [utc(2026, 3, 1), utc(2026, 3, 8), utc(2026, 3, 15)]),
            ("America/New_York", [utc(2026, 10, 25), utc(2026, 11, 1), utc(2026, 11, 8)]),
        ],
    )
    async def test_sunday_evening_slot_keeps_its_local_time(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        zone: str,
        sundays: list[datetime],
    ) -> None:
        """Through a DST change the invitation comes at 18:00 local: none skipped, none doubled."""
        ticker.clock.set(sundays[0] - timedelta(days=1))
        ana = clinic.patient(timezone=zone, weekday=6, at=time(18, 0))
        tz = ZoneInfo(zone)
        for sunday in sundays:
            slot = datetime.combine(sunday.date(), time(18, 0), tzinfo=tz).astimezone(UTC)
            await ticker.at(slot - timedelta(hours=1))
            await ticker.at(slot - timedelta(seconds=1))
            assert len(sent_to(api, ana.user)) == sundays.index(sunday)
            await ticker.at(slot)
            await ticker.at(slot + timedelta(hours=1))
            assert len(sent_to(api, ana.user)) == sundays.index(sunday) + 1
        slots = [a.slot_at.astimezone(tz) for a in administrations_of(ctx, ana.patient_id)]
        assert [s.strftime("%a %H:%M") for s in slots] == ["Sun 18:00"] * 3

    async def test_slot_in_the_spring_forward_gap_comes_an_hour_later(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi
    ) -> None:
        """A Sunday 02:30 slot, which does not exist on 29 March in Berlin, comes at 03:30 CEST."""
        ticker.clock.set(utc(2026, 3, 28, 12))
        ana = clinic.patient(weekday=6, at=time(2, 30))
        await ticker.at(utc(2026, 3, 29, 1, 29))
        assert sent_to(api, ana.user) == []
        await ticker.at(utc(2026, 3, 29, 1, 30))  # 03:30 CEST
        assert len(sent_to(api, ana.user)) == 1

    async def test_slot_in_the_repeated_hour_comes_once(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi
    ) -> None:
        """A Sunday 01:30 slot in New York on 1 November comes at its first occurrence only."""
        ticker.clock.set(utc(2026, 10, 31, 12))
        ana = clinic.patient(timezone="America/New_York", weekday=6, at=time(1, 30))
        await ticker.at(utc(2026, 11, 1, 5, 30))  # 01:30 EDT
        await ticker.at(utc(2026, 11, 1, 6, 30))  # 01:30 EST, the same wall time again
        assert len(sent_to(api, ana.user)) == 1


class TestReminders:
    async def test_reminders_after_a_day_at_most_twice_then_missed(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Not answered: a reminder after 24 h and after 48 h, none more, missed after 3 days."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT)
        await ticker.at(MONDAY_SLOT + timedelta(hours=23, minutes=59))
        assert len(sent_to(api, ana.user)) == 1
        first = await ticker.at(MONDAY_SLOT + timedelta(hours=24))
        assert first.reminders == 1
        reminder = sent_to(api, ana.user)[-1]
        assert "still waiting" in reminder["text"]
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.id is not None
        assert callback_data(reminder) == [
            encode(StartButton(administration.id)),
            encode(SnoozeButton(administration.id, "2h")),
            encode(SnoozeButton(administration.id, "1d")),
        ]
        await ticker.at(MONDAY_SLOT + timedelta(hours=48))
        await ticker.at(MONDAY_SLOT + timedelta(hours=70))
        assert len(sent_to(api, ana.user)) == 3
        expired = await ticker.at(MONDAY_SLOT + timedelta(days=3))
        assert expired.expired == 1
        assert [a.status for a in administrations_of(ctx, ana.patient_id)] == ["missed"]
        assert len(sent_to(api, ana.user)) == 3

    async def test_completed_questionnaire_gets_no_reminder(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A patient who started answering is reminded to continue; one who finished is not."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT)
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.id is not None
        ticker.clock.set(MONDAY_SLOT + timedelta(hours=1))
        questionnaire.start(ctx, telegram_user_id=ana.user.id, administration_id=administration.id)
        questionnaire.answer(
            ctx,
            telegram_user_id=ana.user.id,
            administration_id=administration.id,
            item="q1",
            value=5,
        )
        await ticker.at(MONDAY_SLOT + timedelta(hours=24))
        reminder = sent_to(api, ana.user)[-1]
        assert "partway" in reminder["text"]
        assert reminder["reply_markup"]["inline_keyboard"][0][0]["text"] == "Continue"
        await ticker.at(MONDAY_SLOT + timedelta(days=3))
        (closed,) = administrations_of(ctx, ana.patient_id)
        assert closed.status == "missed"
        assert closed.id is not None
        with ctx.session() as session:
            kept = administrations.answers_of(session=session, administration_id=closed.id)
        assert kept["q1"].raw_value == Decimal(5)

    async def test_reminder_never_in_quiet_hours(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """An invitation at 23:00 is reminded at 08:00 the morning after next, not at 23:00."""
        ana = clinic.patient(at=time(23, 0))
        slot = utc(2026, 3, 2, 22, 0)
        await ticker.at(slot)
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.next_reminder_at == utc(2026, 3, 4, 7, 0)  # 08:00 CET
        await ticker.at(slot + timedelta(hours=24))
        await ticker.at(utc(2026, 3, 4, 6, 59))
        assert len(sent_to(api, ana.user)) == 1
        await ticker.at(utc(2026, 3, 4, 7, 0))
        assert len(sent_to(api, ana.user)) == 2

    async def test_late_tick_in_quiet_hours_waits_for_morning(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A reminder due at 18:00 but first looked at 23:30 (downtime) is sent at 08:00."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT)
        late = await ticker.at(utc(2026, 3, 3, 22, 30))  # 23:30 CET
        assert (late.sent, late.deferred) == (0, 1)
        await ticker.at(utc(2026, 3, 4, 6, 59))
        assert len(sent_to(api, ana.user)) == 1
        await ticker.at(utc(2026, 3, 4, 7, 0))
        assert len(sent_to(api, ana.user)) == 2


class TestSnooze:
    async def reminded(
        self, clinic: Clinic, ticker: Ticker, ctx: AppContext
    ) -> tuple[Enrolled, int]:
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT)
        await ticker.at(MONDAY_SLOT + timedelta(hours=24))
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.id is not None
        return ana, administration.id

    async def test_snooze_two_hours(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """ "Remind me in 2 hours" is confirmed in place; the reminder returns 2 hours later."""
        ana, administration_id = await self.reminded(clinic, ticker, ctx)
        ticker.clock.set(MONDAY_SLOT + timedelta(hours=25))
        await process(app, api, ana.user.press(encode(SnoozeButton(administration_id, "2h"))))
        edited = ana.user.last_message()
        assert edited is not None
        assert "remind you again at 2026-03-03 21:00" in edited["text"]
        assert callback_data(edited) == [encode(StartButton(administration_id))]
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.next_reminder_at == MONDAY_SLOT + timedelta(hours=27)
        await ticker.at(MONDAY_SLOT + timedelta(hours=26, minutes=59))
        assert len(sent_to(api, ana.user)) == 2
        await ticker.at(MONDAY_SLOT + timedelta(hours=27))
        assert len(sent_to(api, ana.user)) == 3

    async def test_snooze_until_tomorrow(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """ "Tomorrow" brings the reminder back at the same local time the next day."""
        ana, administration_id = await self.reminded(clinic, ticker, ctx)
        ticker.clock.set(utc(2026, 3, 3, 18, 0))  # 19:00 CET
        await process(app, api, ana.user.press(encode(SnoozeButton(administration_id, "1d"))))
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.next_reminder_at == utc(2026, 3, 4, 18, 0)

    async def test_snooze_on_a_closed_questionnaire(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """A snooze button pressed after expiry answers that the questionnaire has closed."""
        ana, administration_id = await self.reminded(clinic, ticker, ctx)
        await ticker.at(MONDAY_SLOT + timedelta(days=3))
        await process(app, api, ana.user.press(encode(SnoozeButton(administration_id, "2h"))))
        edited = ana.user.last_message()
        assert edited is not None
        assert "has closed" in edited["text"]
        assert callback_data(edited) == []

    async def test_someone_elses_snooze_button_changes_nothing(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """A forged snooze naming another patient's questionnaire is refused kindly."""
        ana, administration_id = await self.reminded(clinic, ticker, ctx)
        mallory = clinic.patient()
        before = administrations_of(ctx, ana.patient_id)[0].next_reminder_at
        forged = mallory.user.press(encode(SnoozeButton(administration_id, "1d")), force=True)
        await process(app, api, forged)
        assert administrations_of(ctx, ana.patient_id)[0].next_reminder_at == before
        (answer,) = api.calls("answerCallbackQuery")
        assert answer.params.get("text") == "This button no longer applies."


class TestDowntime:
    async def test_expired_slot_is_recorded_missed_not_sent_late(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Down from before the slot until after its expiry: the week is missed, nothing sent."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT - timedelta(hours=1))
        report = await ticker.at(MONDAY_SLOT + timedelta(days=4))
        assert (report.missed, report.sent) == (1, 0)
        assert [a.status for a in administrations_of(ctx, ana.patient_id)] == ["missed"]
        assert sent_to(api, ana.user) == []

    async def test_open_slot_is_sent_after_a_short_outage(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Back within the slot's open days, the invitation goes out once, closing as planned."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT - timedelta(hours=1))
        await ticker.at(MONDAY_SLOT + timedelta(hours=5))
        await ticker.at(MONDAY_SLOT + timedelta(hours=6))
        (administration,) = administrations_of(ctx, ana.patient_id)
        assert administration.expires_at == MONDAY_SLOT + timedelta(days=3)
        assert len(sent_to(api, ana.user)) == 1

    async def test_long_outage_handles_every_overdue_slot_once(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """Two and a half weeks down: two weeks are missed, the current one is sent, once."""
        ana = clinic.patient()
        await ticker.at(MONDAY_SLOT - timedelta(hours=1))
        back = MONDAY_SLOT + timedelta(weeks=2, hours=2)
        await ticker.at(back)
        await ticker.at(back)
        statuses = [(a.slot_at, a.status) for a in administrations_of(ctx, ana.patient_id)]
        assert statuses == [
            (MONDAY_SLOT, "missed"),
            (MONDAY_SLOT + timedelta(weeks=1), "missed"),
            (MONDAY_SLOT + timedelta(weeks=2), "open"),
        ]
        assert len(sent_to(api, ana.user)) == 1


class TestUnreachable:
    async def test_blocked_patient_is_marked_and_then_left_alone(
        self, clinic: Clinic, ticker: Ticker, api: FakeBotApi, ctx: AppContext
    ) -> None:
        """A 403 marks the patient unreachable; no reminder or invitation is even attempted."""
        ana = clinic.patient()
        ana.user.block_bot()
        report = await ticker.at(MONDAY_SLOT)
        assert report.unreachable == 1
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=ana.patient_id)
            assert patient is not None
            assert patient.unreachable_since == MONDAY_SLOT
            (claimed,) = deliveries.list_deliveries(session=session)
            assert claimed.status == DeliveryStatus.UNREACHABLE.value
            assert claimed.error is not None
            assert "blocked" in claimed.error
        await ticker.at(MONDAY_SLOT + timedelta(hours=24))
        await ticker.at(MONDAY_SLOT + timedelta(weeks=1))
        assert len(api.calls("sendMessage")) == 1

    async def test_blocking_notice_marks_unreachable_at_once(
        self,
        clinic: Clinic,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """Telegram's notice that the patient blocked the bot marks them before any send fails."""
        ana = clinic.patient()
        ana.user.block_bot(notify=True)
        (notice,) = [u.update_id for u in api.pushed_updates if "my_chat_member" in u.update]
        await process(app, api, notice)
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=ana.patient_id)
            assert patient is not None
            assert patient.unreachable_since is not None

    async def test_writing_again_restores_the_patient(
        self,
        clinic: Clinic,
        ticker: Ticker,
        api: FakeBotApi,
        ctx: AppContext,
        app: Application[Any, Any, Any, Any, Any, Any],
    ) -> None:
        """After unblocking, any message clears the mark, and next week they are invited again."""
        ana = clinic.patient()
        ana.user.block_bot()
        await ticker.at(MONDAY_SLOT)
        ana.user.unblock_bot()
        ticker.clock.set(MONDAY_SLOT + timedelta(days=2))
        await process(app, api, ana.user.send_command("/start"))
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=ana.patient_id)
            assert patient is not None
            assert patient.unreachable_since is None
        await ticker.at(MONDAY_SLOT + timedelta(weeks=1))
        invitations = [m for m in sent_to(api, ana.user) if "weekly questionnaire" in m["text"]]
        assert len(invitations) == 1


class TestCrashBetweenClaimAndSend:
    def test_a_claimed_message_is_never_sent_later(
        self, clinic: Clinic, api: FakeBotApi, ctx: AppContext, clock: FixedClock
    ) -> None:
        """At-most-once: a claim whose process died before sending is listed, never re-sent."""
        ana = clinic.patient(ref="MRN-CRASH")
        slot = datetime(2026, 3, 2, 17, tzinfo=UTC)
        # The process claims the invitation and dies before the message leaves.
        window = scheduling.slot_window_start(ctx, slot)
        page = scheduling.claim_invitations(ctx, slot, window_start=window)
        assert [m.patient_id for m in page.messages] == [ana.patient_id]
        # A restarted scheduler ticks again: the slot is taken, nothing is sent.
        again = scheduling.claim_invitations(ctx, slot + timedelta(minutes=1), window_start=window)
        assert again.messages == []
        assert api.calls("sendMessage") == []
        clock.set(slot + timedelta(minutes=30))
        (problem,) = scheduling.delivery_report(ctx).problems
        assert (problem.clinic_ref, problem.status) == ("MRN-CRASH", "claimed")


async def failing_task(tick: Tick) -> None:
    """A tick task that always fails, standing in for a broken extension."""
    raise RuntimeError("broken task")


async def counting_task(tick: Tick) -> None:
    """A tick task standing in for another area's work (such as the weekly digests)."""
    tick.report.sent += 100


class TestTickWiring:
    async def test_run_installs_one_repeating_tick(
        self, app: Application[Any, Any, Any, Any, Any, Any], ctx: AppContext
    ) -> None:
        """The running bot ticks every TICK_INTERVAL_SECONDS through the job queue."""
        jobs.install(app)
        assert app.job_queue is not None
        (job,) = app.job_queue.get_jobs_by_name(jobs.TICK_JOB_NAME)
        assert job.job.trigger.interval == timedelta(seconds=ctx.settings.tick_interval_seconds)
        assert job.job.max_instances == 1
        job.schedule_removal()

    async def test_added_tasks_run_and_a_failing_one_does_not_stop_the_rest(
        self, clinic: Clinic, ctx: AppContext, clock: FixedClock, api: FakeBotApi
    ) -> None:
        """Tick tasks given to the composition root all run in order; a failure is reported,
        the rest goes on."""
        ana = clinic.patient()
        application = build_application(ctx, tick_tasks=[failing_task, *TICK_TASKS, counting_task])
        async with application:
            report = await Ticker(application, ctx, clock).at(MONDAY_SLOT)
        assert report.errors == ["failing_task"]
        assert report.sent == 1 + 100
        assert len(sent_to(api, ana.user)) == 1
