"""The safety check-in in Telegram, end to end through the real bot (clinical spec §8)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.clock import FixedClock
from bot.context import AppContext
from bot.services import therapy
from storage import safety as safety_storage
from storage.db import make_engine
from storage.models import SafetyAnswer, SafetyCheckin
from tests.bot.e2e import RunningBot
from tests.conftest import TEST_TOKEN, make_settings
from tests.factories import make_patient, make_physician
from tests.fake_telegram import FakeBotApi, FakeUser

BEFORE_VTE = ("fever_infection", "hospital", "zoster", "eye")


@pytest.fixture
async def safety_bot(
    database_url: str, migrated_engine: Engine, clock: FixedClock
) -> AsyncIterator[RunningBot]:
    """The real bot with safety check-ins on and the emergency number 112."""
    with FakeBotApi(TEST_TOKEN) as api:
        settings = make_settings(
            database_url,
            telegram_api_base_url=api.base_url,
            telegram_file_base_url=api.base_file_url,
            safety_checkins=True,
            emergency_number="112",
        )
        bot = RunningBot(
            api=api,
            ctx=AppContext(settings=settings, engine=migrated_engine, clock=clock),
            clock=clock,
        )
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()
        assert api.server_errors == []


async def clinic_with_patient_on_jak(bot: RunningBot) -> tuple[FakeUser, FakeUser, int]:
    """A linked physician (alerts off) and their onboarded patient on upadacitinib."""
    physician = make_physician(bot.ctx, name="Dr. Lee")
    doctor = bot.api.new_user("DrLee", language_code="en")
    doctor.send_command("/start", physician.code.code)
    await bot.settle()
    created = make_patient(bot.ctx, physician_id=physician.physician_id, ref="MRN-0042")
    ana = bot.api.new_user("Ana", language_code="en")
    ana.send_command("/start", created.code.code)
    await bot.settle()
    for data in ("o:lang:en", "o:consent:yes", "o:tz:Europe/Berlin", "o:day:0", "o:time:18:00"):
        ana.press(data)
        await bot.settle()
    therapy.add_therapy(
        bot.ctx,
        clinic_ref="MRN-0042",
        drug="upadacitinib",
        therapy_class="jak_inhibitor",
        start="2026-02-02",
        actor="test",
    )
    return ana, doctor, created.patient_id


def safety_alerts(doctor: FakeUser) -> list[str]:
    return [m["text"] for m in doctor.messages() if "safety check-in" in m.get("text", "")]


def stored_answers(ctx: AppContext, patient_id: int) -> list[tuple[str, bool]]:
    with ctx.session() as session:
        checkin = safety_storage.open_checkin_of(session=session, patient_id=patient_id)
        assert checkin is not None
        assert checkin.id is not None
        answers = safety_storage.answers_of(session=session, checkin_id=checkin.id)
        return [(code, answers[code].answer_yes) for code in answers]


class TestRedFlag:
    async def test_vte_yes_advises_at_once_and_alerts_the_physician_once(
        self, safety_bot: RunningBot, database_url: str
    ) -> None:
        """`vte_chest` yes: the emergency advice naming 112 in the same reply, one alert to the
        physician (alerts off); a redelivery, a restart and a second process send no other."""
        ana, doctor, patient_id = await clinic_with_patient_on_jak(safety_bot)
        ana.send_command("/sideeffect")
        await safety_bot.settle()
        question = ana.last_message()
        assert question is not None
        assert "Safety check-in" in question["text"]
        assert "not a validated questionnaire" in question["text"]
        assert "not read in real time" in question["text"]
        assert "call 112" in question["text"]
        for _ in BEFORE_VTE:
            ana.press_button("No")
            await safety_bot.settle()
        assert "Swelling or pain in one leg" in (ana.last_message() or {})["text"]
        tap = ana.press_button("Yes")
        await safety_bot.settle()

        texts = [m["text"] for m in ana.messages()]
        advice = texts[-1]
        assert "Call emergency services now: 112" in advice
        assert "Diarrhoea for more than two weeks" in texts[-2]  # the next question
        (alert,) = safety_alerts(doctor)
        assert "MRN-0042" in alert
        assert "leg swelling, chest pain or breathlessness" in alert
        assert "call emergency services" in alert
        assert stored_answers(safety_bot.ctx, patient_id)[-1] == ("vte_chest", True)

        # The same press again: a duplicate, a redelivery after a restart, another process.
        (duplicate,) = safety_bot.api.redeliver([tap])
        await safety_bot.settle()
        await safety_bot.restart()
        safety_bot.api.redeliver([tap, duplicate], same_ids=True)  # never confirmed, say
        await safety_bot.settle()
        await safety_bot.stop()
        other_engine = make_engine(database_url)
        other = RunningBot(
            api=safety_bot.api,
            ctx=AppContext(
                settings=safety_bot.ctx.settings, engine=other_engine, clock=safety_bot.clock
            ),
            clock=safety_bot.clock,
        )
        await other.start()
        try:
            safety_bot.api.redeliver([tap])
            await other.settle()
            # Back to the question and "yes" once more: stored again, no second alert.
            ana.press_button("← Back")
            await other.settle()
            assert "Swelling or pain in one leg" in (ana.last_message() or {})["text"]
            ana.press_button("·Yes·")
            await other.settle()
        finally:
            await other.stop()
            other_engine.dispose()
        assert len(safety_alerts(doctor)) == 1
        assert stored_answers(safety_bot.ctx, patient_id).count(("vte_chest", True)) == 1

    async def test_no_answers_alert_nobody_and_confirm_closes(self, safety_bot: RunningBot) -> None:
        """All "no", then Confirm: nothing sent to the physician, the check-in closes, and
        every answer was stored with the question set's version."""
        ana, doctor, patient_id = await clinic_with_patient_on_jak(safety_bot)
        ana.send_command("/sideeffect")
        await safety_bot.settle()
        for _ in range(8):
            ana.press_button("No")
            await safety_bot.settle()
        summary = (ana.last_message() or {})["text"]
        assert "your answers" in summary
        assert summary.count(": No") == 8
        ana.press_button("✅ Confirm")
        await safety_bot.settle()
        assert "your answers are saved" in (ana.last_message() or {})["text"]
        assert safety_alerts(doctor) == []
        with safety_bot.ctx.session() as session:
            checkins = session.exec(
                select(SafetyCheckin).where(SafetyCheckin.patient_id == patient_id)
            ).all()
            assert [(c.status, c.kind) for c in checkins] == [("confirmed", "report")]
            versions = {a.version for a in session.exec(select(SafetyAnswer)).all()}
            assert versions == {"safety-checkin-v1"}


class TestReportButtonOnCheckin:
    async def test_checkin_offers_the_same_path_as_sideeffect(self, safety_bot: RunningBot) -> None:
        """`/checkin` offers "Report a side effect" above its question; the button turns that
        message into the check-in `/sideeffect` opens (a report), a second press resumes it,
        and a red flag from it advises and alerts exactly as from `/sideeffect`."""
        ana, doctor, patient_id = await clinic_with_patient_on_jak(safety_bot)
        ana.send_command("/checkin")
        await safety_bot.settle()
        offer, question = ana.messages()[-2:]
        assert "side effect" in offer["text"]
        assert question["text"].startswith("Question 1 of 7")
        assert [label for label, _ in ana.buttons(offer)] == ["🛡 Report a side effect"]
        (report,) = ana.buttons(offer)
        ana.press(report[1], offer["message_id"])
        await safety_bot.settle()
        shown = {m["message_id"]: m["text"] for m in ana.messages()}
        assert "Safety check-in" in shown[offer["message_id"]]
        assert "not a validated questionnaire" in shown[offer["message_id"]]
        ana.press(report[1], offer["message_id"], force=True)
        await safety_bot.settle()
        with safety_bot.ctx.session() as session:
            (checkin,) = session.exec(
                select(SafetyCheckin).where(SafetyCheckin.patient_id == patient_id)
            ).all()
        assert (checkin.kind, checkin.status) == ("report", "open")
        for _ in BEFORE_VTE:
            ana.press_button("No")
            await safety_bot.settle()
        ana.press_button("Yes")
        await safety_bot.settle()
        assert any("Call emergency services now: 112" in m["text"] for m in ana.messages())
        assert len(safety_alerts(doctor)) == 1

    async def test_in_chinese(self, safety_bot: RunningBot) -> None:
        """The offer and its button speak the patient's language."""
        ana, _doctor, _ = await clinic_with_patient_on_jak(safety_bot)
        ana.press("o:lang:zh", force=True)
        await safety_bot.settle()
        ana.send_command("/checkin")
        await safety_bot.settle()
        offer = ana.messages()[-2]
        assert "报告副作用" in offer["text"]
        assert [label for label, _ in ana.buttons(offer)] == ["🛡 报告副作用"]
