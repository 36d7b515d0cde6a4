"""What the clinic web app shows of patients: the attention-sorted list and one patient's record.

The reader is a web account. A physician reads their own patients, an admin everybody's (or
one physician's, filtered); other roles read none here. A patient who is not the reader's and
a reference that does not exist give the same answer (None), so nobody learns that a
reference exists. Every record opened is written to the audit trail (who, when, which
patient) in the same transaction that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Final

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import attention, scoring
from bot.domain import labs as lab_rules
from bot.services import physician_panel
from bot.services.accounts import Principal, StaffRole
from bot.services.physician_panel import PatientSummary
from storage import administrations, audit, enrollment, labs, patients, physicians, scores
from storage.models import AdministrationStatus, Patient, PatientStatus

AUDIT_ENTITY: Final = "patient"
AUDIT_VIEW: Final = "view"
CHART_WEEKS: Final = 52
"""How far back the patient page charts the course (a year of weekly questionnaires)."""

_SEVERITY_RANK: Final = {str(concern): rank for rank, concern in enumerate(attention.SEVERITY)}


def physicians_read_by(principal: Principal) -> frozenset[int] | None:
    """The physicians whose patients this account reads here; None means every physician."""
    if principal.role is StaffRole.ADMIN:
        return None
    if principal.role is StaffRole.PHYSICIAN and principal.physician_id is not None:
        return frozenset({principal.physician_id})
    return frozenset()


def _readable(principal: Principal, patient: Patient) -> bool:
    """Deleted patients are nobody's; otherwise the reader's own physicians' patients."""
    if patient.status == PatientStatus.DELETED.value:
        return False
    allowed = physicians_read_by(principal)
    return allowed is None or patient.physician_id in allowed


@dataclass(frozen=True)
class OverviewRow:
    """One patient of the list: the `/patients` summary plus their physician."""

    summary: PatientSummary
    physician_name: str
    attention_rank: int


@dataclass(frozen=True)
class PhysicianOption:
    physician_id: int
    display_name: str


@dataclass(frozen=True)
class Overview:
    """The list page: rows sorted by attention (most severe reason first), the filters used."""

    rows: tuple[OverviewRow, ...]
    search: str
    physician_id: int | None
    physicians: tuple[PhysicianOption, ...]
    no_crp_weeks: int


def _attention_rank(summary: PatientSummary) -> int:
    """Lower is more urgent: the most severe digest concern decides (attention.SEVERITY)."""
    ranks = [_SEVERITY_RANK[flag] for flag in summary.flags if flag in _SEVERITY_RANK]
    return min(ranks, default=len(_SEVERITY_RANK))


def overview(
    ctx: AppContext, *, principal: Principal, search: str = "", physician_id: int | None = None
) -> Overview:
    """The reader's patients with the digest's attention reasons, latest BASDAI/ASDAS with
    their states and dates, sorted by attention; `search` matches part of the reference."""
    now = ctx.clock.now()
    allowed = physicians_read_by(principal)
    needle = search.strip().casefold()[:64]
    with ctx.session() as session:
        doctors = {
            doctor.id: doctor.display_name
            for doctor in physicians.list_physicians(session=session)
            if doctor.id is not None and (allowed is None or doctor.id in allowed)
        }
        chosen = physician_id if physician_id in doctors else None
        rows = []
        for patient in patients.list_patients(session=session, physician_id=chosen):
            if not _readable(principal, patient):
                continue
            if needle and needle not in patient.clinic_ref.casefold():
                continue
            summary = physician_panel.summarize_patient(ctx, session, patient, now)
            rows.append(
                OverviewRow(
                    summary=summary,
                    physician_name=doctors.get(patient.physician_id, ""),
                    attention_rank=_attention_rank(summary),
                )
            )
        rows.sort(
            key=lambda row: (row.attention_rank, -len(row.summary.flags), row.summary.clinic_ref)
        )
        return Overview(
            rows=tuple(rows),
            search=search.strip()[:64],
            physician_id=chosen,
            physicians=tuple(PhysicianOption(i, name) for i, name in sorted(doctors.items())),
            no_crp_weeks=ctx.settings.digest_no_crp_weeks,
        )


@dataclass(frozen=True)
class ScoreCell:
    """A score exact as stored (shown to one decimal by `bot.present`, spec §3), with its ASDAS
    state from the unrounded value and the lab value it used."""

    value: Decimal
    state: scoring.AsdasState | None
    lab_value: Decimal | None = None
    lab_unit: str | None = None
    lab_drawn_at: datetime | None = None
    floored: bool = False


@dataclass(frozen=True)
class QuestionnaireRow:
    administration_id: int
    kind: str
    slot_at: datetime
    completed_at: datetime | None
    status: str
    answers: tuple[physician_panel.AnswerLine, ...]
    basdai: ScoreCell | None
    basdai_active: bool
    asdas_crp: ScoreCell | None
    asdas_esr: ScoreCell | None


@dataclass(frozen=True)
class LabRow:
    """A lab value with the questionnaires whose ASDAS uses it (provenance, spec §4)."""

    lab_id: int
    analyte: str
    value: Decimal
    unit: str
    below_detection_limit: bool
    floored: bool
    drawn_at: datetime
    source: str
    used_by: tuple[datetime, ...]


@dataclass(frozen=True)
class CoursePoint:
    """One completed questionnaire on the course chart; the two ASDAS variants are kept
    apart, since they are compared only with themselves (spec §6)."""

    at: datetime
    basdai: Decimal | None
    asdas_crp: Decimal | None
    asdas_esr: Decimal | None


@dataclass(frozen=True)
class Record:
    """Everything the patient page shows."""

    patient_id: int
    clinic_ref: str
    display_name: str | None
    physician_name: str
    status: str
    language: str
    timezone: str
    schedule_weekday: int
    schedule_time: time
    linked: bool
    paused_until: datetime | None
    unreachable_since: datetime | None
    withdrawn_at: datetime | None
    consent_at: datetime | None
    summary: PatientSummary
    latest_asdas_crp: ScoreCell | None
    latest_asdas_esr: ScoreCell | None
    questionnaires: tuple[QuestionnaireRow, ...]
    labs: tuple[LabRow, ...]
    course: tuple[CoursePoint, ...]
    course_since: datetime


def _lab_of(lab_id: int | None, by_id: dict[int, LabRow]) -> LabRow | None:
    return None if lab_id is None else by_id.get(lab_id)


def _score(value: Decimal | None, lab: LabRow | None, *, asdas: bool) -> ScoreCell | None:
    """A stored score with its state from the unrounded value (clinical spec §3) and the date
    of the lab value it used (spec §6)."""
    if value is None:
        return None
    state = physician_panel.state_of(value) if asdas else None
    if lab is None:
        return ScoreCell(value, state)
    return ScoreCell(
        value,
        state,
        lab_value=lab.value,
        lab_unit=lab.unit,
        lab_drawn_at=lab.drawn_at,
        floored=lab.floored,
    )


def _lab_rows(session: Session, patient_id: int) -> list[LabRow]:
    stored = labs.list_lab_results(session=session, patient_id=patient_id)
    rows = []
    for lab in stored:
        assert lab.id is not None
        used = administrations_completed_at(
            session, labs.administrations_using(session=session, lab_id=lab.id)
        )
        rows.append(
            LabRow(
                lab_id=lab.id,
                analyte=lab.analyte,
                value=lab.value,
                unit=lab.unit,
                below_detection_limit=lab.below_detection_limit,
                floored=lab.analyte == lab_rules.CRP
                and (lab.below_detection_limit or lab.value_normalised < scoring.CRP_FLOOR_MG_L),
                drawn_at=lab.drawn_at,
                source=lab.source,
                used_by=used,
            )
        )
    return rows


def administrations_completed_at(
    session: Session, administration_ids: list[int]
) -> tuple[datetime, ...]:
    """When the questionnaires that use a lab value were completed, oldest first."""
    moments = []
    for administration_id in administration_ids:
        row = administrations.get_administration(
            session=session, administration_id=administration_id
        )
        if row is not None and row.completed_at is not None:
            moments.append(row.completed_at)
    return tuple(sorted(moments))


def record(ctx: AppContext, *, principal: Principal, clinic_ref: str) -> Record | None:
    """One patient's page, recorded in the audit trail; None for a reference that is unknown
    or not the reader's (the same answer for both)."""
    now = ctx.clock.now()
    ref = clinic_ref.strip()[:64]
    with ctx.session() as session:
        patient = patients.get_patient_by_ref(session=session, clinic_ref=ref) if ref else None
        if patient is None or patient.id is None or not _readable(principal, patient):
            return None
        audit.record_event(
            session=session,
            at=now,
            actor=principal.actor,
            entity=AUDIT_ENTITY,
            entity_id=patient.id,
            patient_id=patient.id,
            action=AUDIT_VIEW,
        )
        summary = physician_panel.summarize_patient(ctx, session, patient, now)
        doctor = physicians.get_physician(session=session, physician_id=patient.physician_id)
        history = administrations.list_administrations(session=session, patient_id=patient.id)
        ids = [a.id for a in history if a.id is not None]
        stored = scores.scores_of_many(session=session, administration_ids=ids)
        answers = administrations.answers_of_many(session=session, administration_ids=ids)
        lab_rows = _lab_rows(session, patient.id)
        by_id = {row.lab_id: row for row in lab_rows}
        rows = []
        course = []
        since = now - timedelta(weeks=CHART_WEEKS)
        for administration in reversed(history):
            assert administration.id is not None
            score = stored.get(administration.id)
            basdai = None if score is None else score.basdai
            rows.append(
                QuestionnaireRow(
                    administration_id=administration.id,
                    kind=administration.kind,
                    slot_at=administration.slot_at,
                    completed_at=administration.completed_at,
                    status=administration.status,
                    answers=physician_panel.answer_lines(answers.get(administration.id, {})),
                    basdai=_score(basdai, None, asdas=False),
                    basdai_active=basdai is not None and scoring.basdai_active(basdai),
                    asdas_crp=None
                    if score is None
                    else _score(
                        score.asdas_crp,
                        _lab_of(score.asdas_crp_lab_id, by_id),
                        asdas=True,
                    ),
                    asdas_esr=None
                    if score is None
                    else _score(
                        score.asdas_esr,
                        _lab_of(score.asdas_esr_lab_id, by_id),
                        asdas=True,
                    ),
                )
            )
            done = administration.completed_at
            if (
                administration.status == AdministrationStatus.COMPLETED.value
                and done is not None
                and done >= since
            ):
                course.append(
                    CoursePoint(
                        done,
                        basdai,
                        None if score is None else score.asdas_crp,
                        None if score is None else score.asdas_esr,
                    )
                )
        course.sort(key=lambda point: point.at)
        link = enrollment.get_link_for_patient(session=session, patient_id=patient.id)
        return Record(
            patient_id=patient.id,
            clinic_ref=patient.clinic_ref,
            display_name=patient.display_name,
            physician_name="" if doctor is None else doctor.display_name,
            status=patient.status,
            language=patient.language,
            timezone=patient.timezone,
            schedule_weekday=patient.schedule_weekday,
            schedule_time=patient.schedule_time,
            linked=link is not None,
            paused_until=patient.paused_until,
            unreachable_since=patient.unreachable_since,
            withdrawn_at=patient.withdrawn_at,
            consent_at=patient.consent_at,
            summary=summary,
            latest_asdas_crp=next((q.asdas_crp for q in rows if q.asdas_crp), None),
            latest_asdas_esr=next((q.asdas_esr for q in rows if q.asdas_esr), None),
            questionnaires=tuple(rows),
            labs=tuple(reversed(lab_rows)),
            course=tuple(course),
            course_since=since,
        )
