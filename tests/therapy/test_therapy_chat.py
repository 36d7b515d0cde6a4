"""`/therapy <reference>` in Telegram: the course with each episode's response, and its report."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.services import labs, therapy
from tests.bot.e2e import RunningBot
from tests.factories import make_patient
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
