"""Delete-my-data leaves no trace of the person: no Telegram id and none of their answers,
scores or lab values, in any column of any table, from the same transaction on."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import SQLModel

from bot.services import labs
from storage import labs as lab_storage
from storage.models import (
    Answer,
    AuditEvent,
    EnrollmentAttempt,
    LabResult,
    Patient,
    PatientStatus,
    PendingLabEntry,
    ScoreRecord,
)
from tests.bot.e2e import RunningBot
from tests.factories import make_physician


def every_cell(bot: RunningBot) -> list[tuple[str, str, object]]:
    """(table, column, value) of every cell of every table the schema declares."""
    cells = []
    with bot.ctx.session() as session:
        for table in SQLModel.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                cells += [(table.name, column, value) for column, value in row.items()]
    return cells


def mentions(value: object, telegram_id: int) -> bool:
    """Whether a cell holds a Telegram id, as a number or inside a text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value == telegram_id
    return isinstance(value, str) and str(telegram_id) in value


class TestDeleteMyData:
    async def test_no_table_keeps_the_telegram_id_or_any_answer(
        self, running_bot: RunningBot
    ) -> None:
        """After deletion, no column of any table holds the account's user or chat id, and no
        answer, score, lab value or pending lab entry of the patient remains."""
        ana, patient_id, code = running_bot.patient()
        ana.send_command("/start", "WRONGCODE2")  # a failed attempt, counted under a hash
        await running_bot.settle()
        ana.send_command("/start", code)
        await running_bot.settle()
        for data in ("o:lang:en", "o:consent:yes", "o:tz:Europe/Berlin", "o:day:0"):
            ana.press(data)
            await running_bot.settle()
        ana.press("o:time:18:00")
        await running_bot.settle()
        ana.send_command("/checkin")
        await running_bot.settle()
        for value in ["4", "5", "0", "3", "4", "60", "5"]:
            ana.send_text(value)
            await running_bot.settle()
        ana.press(next(data for _, data in ana.buttons() if data.startswith("c:")))
        await running_bot.settle()
        with running_bot.ctx.session() as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            clinic_ref, research_id = patient.clinic_ref, patient.research_id
        now = running_bot.clock.now()
        labs.add_lab_values(
            running_bot.ctx, clinic_ref=clinic_ref, drawn=now.isoformat(timespec="minutes"),
            entered_by="test", crp="5", crp_unit="mg/L",
        )  # fmt: skip
        doctor = make_physician(running_bot.ctx, name="Dr. Pending")
        with running_bot.ctx.session() as session:
            lab_storage.create_pending_entry(
                session=session, physician_id=doctor.physician_id, patient_id=patient_id,
                crp_value=Decimal(9), crp_unit="mg/L", crp_below_detection_limit=False,
                esr_value=None, drawn_at=now, now=now, expires_at=now + timedelta(hours=1),
            )  # fmt: skip
        before = every_cell(running_bot)
        assert any(mentions(value, ana.id) for _, _, value in before)
        assert any(table == "processedupdate" and mentions(v, ana.id) for table, _, v in before)

        ana.send_command("/stop")
        await running_bot.settle()
        for label in ("Stop and delete my data", "Yes, delete", "Delete everything"):
            ana.press_button(label)
            await running_bot.settle()
        assert "Your data has been deleted" in ana.last_message()["text"]

        after = every_cell(running_bot)
        leaks = [(t, c) for t, c, value in after if mentions(value, ana.id)]
        leaks += [(t, c) for t, c, value in after if mentions(value, ana.chat_id)]
        assert leaks == []
        assert not any(value == research_id for _, _, value in after)
        with running_bot.ctx.session() as session:
            for model in (Answer, ScoreRecord, LabResult, PendingLabEntry, EnrollmentAttempt):
                assert session.execute(select(model)).first() is None, model.__name__
            patient = session.get(Patient, patient_id)
            assert patient is not None
            assert patient.status == PatientStatus.DELETED.value
            assert patient.clinic_ref == clinic_ref  # kept on purpose: docs/security.md
            events = (
                session.execute(
                    select(AuditEvent).where(AuditEvent.patient_id == patient_id)  # type: ignore[arg-type]
                )
                .scalars()
                .all()
            )
        assert events[-1].action == "delete_data"
        assert all(event.before is None and event.after is None for event in events)
