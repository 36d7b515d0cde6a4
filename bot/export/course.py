"""The treatment course in the research export: therapy episodes with their response (§7)
and safety check-in answers (§8), pseudonymised and shifted like the patient's other rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from bot.context import AppContext
from bot.domain import treatment
from bot.export.columns import CheckinRow, TherapyRow
from bot.export.records import RecordBuilder
from bot.services import therapy as therapy_service
from storage import exports

CONFIRMED: Final = "confirmed"


def _day(day: date | None, offset: timedelta | None) -> date | None:
    if day is None or offset is None:
        return day
    return day + timedelta(days=offset.days)


def therapy_rows(
    ctx: AppContext, builder: RecordBuilder, *, physician_id: int | None
) -> list[TherapyRow]:
    """Every episode with its §7 reading as of today; dates moved by the patient's offset."""
    zone = ctx.settings.clinic_timezone
    today = ctx.clock.now().astimezone(ZoneInfo(zone)).date()
    rows: list[TherapyRow] = []
    with ctx.session() as session:
        found = exports.fetch_therapy_rows(session=session, physician_id=physician_id)
        points_of = therapy_service.score_points_of_many(
            session, patient_ids=sorted({stored.patient_id for _, stored in found}), timezone=zone
        )
        number: dict[int, int] = defaultdict(int)
        for research_id, stored in found:
            view = therapy_service.therapy_view(stored, "")
            reading = treatment.read_episode(
                view.episode, points_of[stored.patient_id], today=today
            )
            offset = builder.date_offset(research_id)
            number[stored.patient_id] += 1
            base, assessment = reading.baseline, reading.assessment
            anchor = base.asdas or base.basdai
            rows.append(
                TherapyRow(
                    pseudonym=builder.pseudonym(research_id),
                    episode=number[stored.patient_id],
                    drug=view.drug,
                    therapy_class=view.therapy_class.value,
                    dose=view.dose,
                    start=_day(view.start, offset) or view.start,
                    stop=_day(view.stop, offset),
                    stop_reason=None if view.stop_reason is None else view.stop_reason.value,
                    judgement=reading.judgement.value,
                    baseline_variant=(
                        None if base.asdas_variant is None else base.asdas_variant.value
                    ),
                    baseline_asdas=None if base.asdas is None else base.asdas.value,
                    baseline_day=_day(None if anchor is None else anchor.day, offset),
                    baseline_after_start=None if anchor is None else anchor.after_start,
                    baseline_basdai=None if base.basdai is None else base.basdai.value,
                    assessment_day=_day(None if assessment is None else assessment.day, offset),
                    assessment_week=None if assessment is None else assessment.week,
                    followup_asdas=None if assessment is None else assessment.asdas_after,
                    asdas_change=(
                        None
                        if assessment is None or assessment.asdas_change is None
                        else assessment.asdas_change.value
                    ),
                    major_improvement=(
                        None if assessment is None else assessment.major_improvement
                    ),
                    low_activity_target=(
                        None if assessment is None else assessment.low_activity_target
                    ),
                    inactive_disease=None if assessment is None else assessment.inactive_disease,
                    followup_basdai=None if assessment is None else assessment.basdai_after,
                    basdai50=None if assessment is None else assessment.basdai50,
                    asas_eular_basdai_response=(
                        None if assessment is None else assessment.asas_eular_basdai_response
                    ),
                    loss_of_response_day=_day(
                        None if reading.loss is None else reading.loss.day, offset
                    ),
                )
            )
    return rows


def checkin_rows(
    ctx: AppContext, builder: RecordBuilder, *, scope: exports.ExportScope
) -> list[CheckinRow]:
    """Every safety check-in answer in the scope; notes (free text) are left out."""
    rows: list[CheckinRow] = []
    numbers: dict[int, dict[int, int]] = defaultdict(dict)
    with ctx.session() as session:
        for research_id, checkin, answer in exports.fetch_safety_answer_rows(
            session=session, scope=scope
        ):
            assert checkin.id is not None
            per_patient = numbers[checkin.patient_id]
            number = per_patient.setdefault(checkin.id, len(per_patient) + 1)
            offset = builder.date_offset(research_id)
            rows.append(
                CheckinRow(
                    pseudonym=builder.pseudonym(research_id),
                    checkin=number,
                    kind=checkin.kind,
                    question=answer.question_code,
                    answer_yes=answer.answer_yes,
                    answered_at=(
                        answer.answered_at if offset is None else answer.answered_at + offset
                    ),
                    questions_version=answer.version,
                    confirmed=checkin.status == CONFIRMED,
                )
            )
    return rows
