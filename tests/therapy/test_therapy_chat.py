"""`/therapy <reference>` in Telegram: the course with each episode's response, and its report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlmodel import select

from bot.context import AppContext
from bot.services import labs, staff, therapy
from storage import audit, patients, therapies
from storage.models import PendingTherapyChange, TherapyColumns, TherapyEpisodeRow
from tests.bot.e2e import RunningBot
from tests.factories import make_patient, make_physician
from tests.therapy.conftest import CASE_AFTER, CASE_BEFORE, typed_questionnaire


async def test_physician_sees_the_course_and_gets_the_report(running_bot: RunningBot) -> None:
    """The patient's own physician reads the §7 reading and receives the one-page PDF; another
    physician is told the patient is not among theirs."""
    ctx = running_bot.ctx
    running_bot.clock.set(datetime(2025, 9, 1, 9, tzinfo=UTC))
    doctor, physician_id = await running_bot.linked_physician(name="Dr. Lee")
    other, _ = await running_bot.linked_physician(name="Dr. Wu")
    created = make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
    therapy.add_therapy(
        ctx, clinic_ref="MRN-0042", drug="upadacitinib", therapy_class="jak_inhibitor",
        start="2025-03-03", actor="test",
    )  # fmt: skip
    for crp, drawn in (("64.6", "2025-02-28 09:00"), ("7.59", "2025-08-15 09:00")):
        labs.add_lab_values(ctx, clinic_ref="MRN-0042", drawn=drawn, entered_by="test", crp=crp)
    for moment, answers in ((datetime(2025, 2, 28, 10, tzinfo=UTC), CASE_BEFORE),
                            (datetime(2025, 8, 15, 10, tzinfo=UTC), CASE_AFTER)):  # fmt: skip
        typed_questionnaire(
            ctx, patient_id=created.patient_id, completed_at=moment, answers=answers
        )

    doctor.send_command("/therapy", "MRN-0042")
    await running_bot.settle()
    course, report = doctor.messages()[-2:]
    assert "document" in report
    text = course["text"]
    assert "Treatment course: MRN-0042" in text
    assert "baseline ASDAS-CRP 3.9 (very high disease activity), BASDAI 3.8" in text
    assert "ASDAS-CRP 3.9 → 1.8 (low disease activity), CRP 64.6 → 7.59 mg/L" in text
    (upload,) = running_bot.api.calls("sendDocument")
    assert upload.files["document"].filename == "course-MRN-0042.pdf"
    assert upload.files["document"].content.startswith(b"%PDF")

    other.send_command("/therapy", "MRN-0042")
    await running_bot.settle()
    assert (other.last_message() or {})["text"] == "No patient “MRN-0042” among your patients."
    assert len(running_bot.api.calls("sendDocument")) == 1


async def test_patient_view_draws_therapies_and_sends_the_report(running_bot: RunningBot) -> None:
    """`/patient` of a patient on treatment: the chart (with the therapy bars) and, after the
    scores, the course report; a patient without episodes gets no report."""
    ctx = running_bot.ctx
    doctor, physician_id = await running_bot.linked_physician(name="Dr. Lee")
    created = make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
    make_patient(ctx, physician_id=physician_id, ref="MRN-0043")
    therapy.add_therapy(
        ctx, clinic_ref="MRN-0042", drug="upadacitinib", therapy_class="jak_inhibitor",
        dose="15 mg daily", start="2026-01-05", actor="test",
    )  # fmt: skip
    typed_questionnaire(
        ctx, patient_id=created.patient_id, completed_at=datetime(2026, 2, 23, 10, tzinfo=UTC),
        answers=CASE_AFTER,
    )  # fmt: skip
    doctor.send_command("/patient", "MRN-0042")
    await running_bot.settle()
    assert len(running_bot.api.calls("sendPhoto")) == 1
    (upload,) = running_bot.api.calls("sendDocument")
    assert upload.files["document"].filename == "course-MRN-0042.pdf"
    doctor.send_command("/patient", "MRN-0043")
    await running_bot.settle()
    assert len(running_bot.api.calls("sendDocument")) == 1


def _audited(ctx: AppContext, therapy_id: int) -> list[tuple[str, str]]:
    with ctx.session() as session:
        return [
            (event.actor, event.action)
            for event in audit.list_events(
                session=session, entity=therapy.AUDIT_ENTITY, entity_id=therapy_id
            )
        ]


class TestTherapyChangeInChat:
    """`/therapy <reference> add|stop …`: a preview with Save and Cancel, kept in the database
    like `/crp`, stored and audited only on Save (clinical spec §7)."""

    async def test_add_preview_then_save_once(self, running_bot: RunningBot) -> None:
        """The preview stores nothing; Save stores the episode once, audited with the
        physician as actor; a second tap after a restart changes nothing."""
        ctx = running_bot.ctx
        running_bot.clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
        doctor, physician_id = await running_bot.linked_physician(name="Dr. Lee")
        make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
        doctor.send_command(
            "/therapy", "MRN-0042", "add", "upadacitinib", "jak_inhibitor", "2026-03-02",
            "15", "mg", "daily",
        )  # fmt: skip
        await running_bot.settle()
        preview = doctor.last_message() or {}
        assert "upadacitinib 15 mg daily (JAK inhibitor), 2026-03-02 → ongoing" in str(
            preview["text"]
        )
        assert [label for label, _ in doctor.buttons()] == ["Save", "Cancel"]
        assert therapy.list_therapies(ctx, clinic_ref="MRN-0042") == []
        save = doctor.buttons()[0][1]

        await running_bot.restart()
        doctor.press(save)
        await running_bot.settle()
        doctor.press(save, force=True)
        await running_bot.settle()

        (stored,) = therapy.list_therapies(ctx, clinic_ref="MRN-0042")
        assert (stored.drug, stored.dose, stored.start) == (
            "upadacitinib", "15 mg daily", date(2026, 3, 2)
        )  # fmt: skip
        assert stored.entered_by == f"physician:{physician_id}"
        assert stored.therapy_id is not None
        assert _audited(ctx, stored.therapy_id) == [(f"physician:{physician_id}", "add")]
        saved = doctor.last_message() or {}
        assert saved["message_id"] == preview["message_id"]
        assert "Saved episode" in str(saved["text"])
        notice = running_bot.api.calls("answerCallbackQuery")[-1].params.get("text", "")
        assert "no longer open" in str(notice)

    async def test_stop_then_cancel_and_save(self, running_bot: RunningBot) -> None:
        """Stopping names the open episode by drug; Cancel changes nothing, Save stops it with
        the reason and keeps the old values in the audit trail."""
        ctx = running_bot.ctx
        running_bot.clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
        doctor, physician_id = await running_bot.linked_physician(name="Dr. Lee")
        make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
        added = therapy.add_therapy(
            ctx, clinic_ref="MRN-0042", drug="adalimumab", therapy_class="tnf_inhibitor",
            start="2025-06-01", actor="test",
        )  # fmt: skip
        assert added.therapy_id is not None
        args = ("MRN-0042", "stop", "Adalimumab", "2026-03-02", "inefficacy")
        doctor.send_command("/therapy", *args)
        await running_bot.settle()
        assert "2025-06-01 → 2026-03-02 (inefficacy)" in str((doctor.last_message() or {})["text"])
        doctor.press_button("Cancel")
        await running_bot.settle()
        assert "Cancelled" in str((doctor.last_message() or {})["text"])
        assert therapy.list_therapies(ctx, clinic_ref="MRN-0042")[0].stop is None

        doctor.send_command("/therapy", *args)
        await running_bot.settle()
        doctor.press_button("Save")
        await running_bot.settle()
        (stopped,) = therapy.list_therapies(ctx, clinic_ref="MRN-0042")
        assert stopped.stop == date(2026, 3, 2)
        assert str(stopped.stop_reason) == "inefficacy"
        assert _audited(ctx, added.therapy_id)[-1] == (f"physician:{physician_id}", "stop")
        with ctx.session() as session:
            (_, stop_event) = audit.list_events(
                session=session, entity=therapy.AUDIT_ENTITY, entity_id=added.therapy_id
            )
        assert stop_event.before is not None
        assert json.loads(stop_event.before)["stop"] is None

    async def test_mistakes_are_explained_and_nothing_is_kept(
        self, running_bot: RunningBot
    ) -> None:
        """A wrong class, a future date or an unknown drug to stop is explained with the usage;
        no buttons, nothing stored."""
        ctx = running_bot.ctx
        running_bot.clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
        doctor, physician_id = await running_bot.linked_physician(name="Dr. Lee")
        make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
        for args, expected in (
            (("add", "upadacitinib", "jak", "2026-03-02"), "unknown class “jak”"),
            (("add", "upadacitinib", "jak_inhibitor", "2026-04-01"), "2026-04-01 is in the future"),
            (("stop", "adalimumab", "2026-03-02", "inefficacy"), "no ongoing episode"),
            (("remove", "adalimumab"), "Usage: /therapy"),
        ):
            doctor.send_command("/therapy", "MRN-0042", *args)
            await running_bot.settle()
            text = str((doctor.last_message() or {})["text"])
            assert expected in text
            assert "Usage: /therapy" in text
            assert doctor.buttons() == []
        assert therapy.list_therapies(ctx, clinic_ref="MRN-0042") == []

    async def test_only_the_patients_own_physician_or_an_admin(
        self, running_bot: RunningBot
    ) -> None:
        """Another physician gets the unknown-patient answer and cannot save the first one's
        preview with its button; a patient gets "not available"; a clinic admin may add."""
        ctx = running_bot.ctx
        running_bot.clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
        doctor, physician_id = await running_bot.linked_physician(name="Dr. Lee")
        other, _ = await running_bot.linked_physician(name="Dr. Wu")
        make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
        args = ("MRN-0042", "add", "secukinumab", "il17_inhibitor", "2026-03-02")

        other.send_command("/therapy", *args)
        await running_bot.settle()
        assert (other.last_message() or {})["text"] == "No patient “MRN-0042” among your patients."
        doctor.send_command("/therapy", *args)
        await running_bot.settle()
        save = doctor.buttons()[0][1]
        other.press(save, force=True)
        await running_bot.settle()
        stranger = running_bot.api.new_user("Eve")
        stranger.send_command("/therapy", *args)
        await running_bot.settle()
        assert (stranger.last_message() or {})["text"] == "This command is not available."
        forged = save.rsplit(":", 1)[0] + ":999999"
        doctor.press(forged, force=True)
        await running_bot.settle()
        assert therapy.list_therapies(ctx, clinic_ref="MRN-0042") == []

        admin = staff.add_physician(ctx, display_name="Admin", language="en", admin=True)
        admin_user = running_bot.api.new_user("Admin", language_code="en")
        admin_user.send_command("/start", admin.code.code)
        await running_bot.settle()
        admin_user.send_command("/therapy", *args)
        await running_bot.settle()
        admin_user.press_button("Save")
        await running_bot.settle()
        (stored,) = therapy.list_therapies(ctx, clinic_ref="MRN-0042")
        assert stored.entered_by == f"physician:{admin.physician_id}"

    async def test_in_chinese_for_a_chinese_speaking_physician(
        self, running_bot: RunningBot
    ) -> None:
        """The preview and its buttons are in the physician's language."""
        ctx = running_bot.ctx
        running_bot.clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
        doctor, physician_id = await running_bot.linked_physician(name="Dr. Li", language="zh")
        make_patient(ctx, physician_id=physician_id, ref="MRN-0042")
        doctor.send_command(
            "/therapy", "MRN-0042", "add", "adalimumab", "tnf_inhibitor", "2026-03-02"
        )
        await running_bot.settle()
        assert "将以下治疗加入" in str((doctor.last_message() or {})["text"])
        assert [label for label, _ in doctor.buttons()] == ["保存", "取消"]
        doctor.press_button("保存")
        await running_bot.settle()
        assert "已为" in str((doctor.last_message() or {})["text"])
        assert len(therapy.list_therapies(ctx, clinic_ref="MRN-0042")) == 1


def test_deleting_a_patient_removes_pending_therapy_changes(ctx: AppContext) -> None:
    """A stop still waiting for Save neither blocks the patient's deletion nor survives it."""
    physician = make_physician(ctx, name="Dr. Lee")
    created = make_patient(ctx, physician_id=physician.physician_id, ref="MRN-0042")
    added = therapy.add_therapy(
        ctx, clinic_ref="MRN-0042", drug="adalimumab", therapy_class="tnf_inhibitor",
        start="2025-06-01", actor="test",
    )  # fmt: skip
    now = ctx.clock.now()
    with ctx.session() as session:
        therapies.create_pending_change(
            session=session, physician_id=physician.physician_id,
            patient_id=created.patient_id, action="stop", therapy_id=added.therapy_id,
            episode=TherapyColumns(
                drug="adalimumab", therapy_class="tnf_inhibitor", dose=None,
                start_date=date(2025, 6, 1), stop_date=date(2025, 9, 1),
                stop_reason="inefficacy",
            ),
            now=now, expires_at=now + timedelta(hours=1),
        )  # fmt: skip
    with ctx.session() as session:
        assert patients.delete_patient_data(session=session, patient_id=created.patient_id, now=now)
    with ctx.session() as session:
        assert session.exec(select(PendingTherapyChange)).all() == []
        assert session.exec(select(TherapyEpisodeRow)).all() == []
