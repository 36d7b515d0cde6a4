"""Therapy episodes: entering, stopping, correcting and listing them, and the course reading.

Every route (the command line, a physician in chat) goes through these functions: the
episode is checked by the domain rules, stored, and written to the audit trail in one
transaction; a correction keeps the old values in the trail. `course` reads every episode
against the patient's scores as clinical spec §7 says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import treatment
from bot.domain.treatment import (
    EpisodeReading,
    ScorePoint,
    StopReason,
    TherapyClass,
    TherapyEpisode,
    TherapyInputError,
)
from bot.services.audit_trail import record_change
from storage import administrations, audit, labs, patients, physicians, scores, therapies
from storage.models import Patient, PatientStatus, TherapyColumns, TherapyEpisodeRow

AUDIT_ENTITY = "therapy"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TherapyView:
    """One episode as staff see it; `therapy_id` is None in a preview (nothing stored yet)."""

    therapy_id: int | None
    patient_id: int
    clinic_ref: str
    drug: str
    therapy_class: TherapyClass
    dose: str | None
    start: date
    stop: date | None
    stop_reason: StopReason | None
    entered_by: str

    @property
    def episode(self) -> TherapyEpisode:
        return TherapyEpisode(
            drug=self.drug,
            therapy_class=self.therapy_class,
            start=self.start,
            dose=self.dose,
            stop=self.stop,
            stop_reason=self.stop_reason,
        )


@dataclass(frozen=True)
class TherapyChange:
    """A stopped or corrected episode: before and after."""

    before: TherapyView
    after: TherapyView


@dataclass(frozen=True)
class EpisodeCourse:
    """One episode with its §7 reading."""

    therapy: TherapyView
    reading: EpisodeReading


@dataclass(frozen=True)
class Course:
    """A patient's treatment course: every episode read against every score (spec §7)."""

    patient_id: int
    clinic_ref: str
    today: date
    episodes: tuple[EpisodeCourse, ...]
    points: tuple[ScorePoint, ...]


def therapy_view(row: TherapyEpisodeRow, clinic_ref: str) -> TherapyView:
    """A stored episode as a plain value."""
    return TherapyView(
        therapy_id=row.id,
        patient_id=row.patient_id,
        clinic_ref=clinic_ref,
        drug=row.drug,
        therapy_class=TherapyClass(row.therapy_class),
        dose=row.dose,
        start=row.start_date,
        stop=row.stop_date,
        stop_reason=None if row.stop_reason is None else StopReason(row.stop_reason),
        entered_by=row.entered_by,
    )


def _audit_values(episode: TherapyEpisode) -> dict[str, Any]:
    return {
        "drug": episode.drug,
        "therapy_class": episode.therapy_class.value,
        "dose": episode.dose,
        "start": episode.start.isoformat(),
        "stop": None if episode.stop is None else episode.stop.isoformat(),
        "stop_reason": None if episode.stop_reason is None else episode.stop_reason.value,
    }


def clinic_today(ctx: AppContext) -> date:
    """Today in the clinic's time zone: start and stop dates are clinic dates."""
    return ctx.clock.now().astimezone(ZoneInfo(ctx.settings.clinic_timezone)).date()


def find_patient(session: Session, clinic_ref: str) -> Patient:
    """The patient a clinic reference names; deleted patients take no more episodes."""
    ref = clinic_ref.strip()
    patient = patients.get_patient_by_ref(session=session, clinic_ref=ref) if ref else None
    if patient is None or patient.status == PatientStatus.DELETED.value:
        raise TherapyInputError("patient_unknown", ref=ref[:64])
    return patient


def _optional(text: str | None) -> str | None:
    """A free-text field: blank means none."""
    if text is None:
        return None
    stripped = text.strip()
    return stripped or None


def add_therapy(
    ctx: AppContext,
    *,
    clinic_ref: str,
    drug: str,
    therapy_class: str,
    start: str,
    actor: str,
    dose: str | None = None,
    stop: str | None = None,
    stop_reason: str | None = None,
    dry_run: bool = False,
) -> TherapyView:
    """Stores a new episode (a second open one makes a combination, spec §7) and audits it;
    with `dry_run` checks it the same way and returns the preview, writing nothing."""
    today = clinic_today(ctx)
    episode = TherapyEpisode(
        drug=drug.strip(),
        therapy_class=treatment.parse_class(therapy_class),
        start=treatment.parse_day(start, today=today),
        dose=_optional(dose),
        stop=None if stop is None else treatment.parse_day(stop, today=today),
        stop_reason=None if stop_reason is None else treatment.parse_stop_reason(stop_reason),
    )
    if episode.stop is not None and episode.stop_reason is None:
        raise TherapyInputError("stop_without_reason")
    now = ctx.clock.now()
    with ctx.session() as session:
        patient = find_patient(session, clinic_ref)
        assert patient.id is not None
        if dry_run:
            return TherapyView(
                therapy_id=None,
                patient_id=patient.id,
                clinic_ref=patient.clinic_ref,
                drug=episode.drug,
                therapy_class=episode.therapy_class,
                dose=episode.dose,
                start=episode.start,
                stop=episode.stop,
                stop_reason=episode.stop_reason,
                entered_by=actor,
            )
        return store_episode(session, patient=patient, episode=episode, actor=actor, now=now)


def columns_of(episode: TherapyEpisode) -> TherapyColumns:
    """A checked episode as the columns it is stored in."""
    return TherapyColumns(
        drug=episode.drug,
        therapy_class=episode.therapy_class.value,
        dose=episode.dose,
        start_date=episode.start,
        stop_date=episode.stop,
        stop_reason=None if episode.stop_reason is None else episode.stop_reason.value,
    )


def store_episode(
    session: Session, *, patient: Patient, episode: TherapyEpisode, actor: str, now: datetime
) -> TherapyView:
    """Stores a checked episode and audits it in the caller's transaction (spec §7); shared by
    the command line and the physician's Save in chat."""
    assert patient.id is not None
    row = therapies.add_therapy(
        session=session,
        patient_id=patient.id,
        episode=columns_of(episode),
        entered_by=actor,
        now=now,
    )
    audited = (None, _audit_values(episode))
    record_change(
        session, AUDIT_ENTITY, row.id, patient, actor=actor, action="add", values=audited, now=now
    )
    return therapy_view(row, patient.clinic_ref)


def _therapy_for_change(session: Session, therapy_id: int) -> tuple[TherapyEpisodeRow, Patient]:
    row = therapies.get_therapy(session=session, therapy_id=therapy_id)
    if row is None:
        raise TherapyInputError("therapy_unknown", therapy_id=str(therapy_id))
    patient = patients.get_patient(session=session, patient_id=row.patient_id)
    assert patient is not None
    if patient.status == PatientStatus.DELETED.value:
        raise TherapyInputError("therapy_unknown", therapy_id=str(therapy_id))
    return row, patient


def _change(
    ctx: AppContext,
    *,
    therapy_id: int,
    actor: str,
    action: str,
    reason: str | None,
    values: dict[str, Any],
    require_open: bool = False,
) -> TherapyChange:
    """Loads an episode, applies new values (checked again by the domain), stores and audits,
    in one transaction."""
    now = ctx.clock.now()
    with ctx.session() as session:
        row, patient = _therapy_for_change(session, therapy_id)
        return change_episode(
            session,
            row=row,
            patient=patient,
            actor=actor,
            action=action,
            reason=reason,
            values=values,
            now=now,
            require_open=require_open,
        )


def change_episode(
    session: Session,
    *,
    row: TherapyEpisodeRow,
    patient: Patient,
    actor: str,
    action: str,
    reason: str | None,
    values: dict[str, Any],
    now: datetime,
    require_open: bool = False,
) -> TherapyChange:
    """Applies new values to a loaded episode (checked again by the domain), stores and
    audits them with the old ones, in the caller's transaction."""
    if require_open and row.stop_date is not None:
        raise TherapyInputError(
            "already_stopped", therapy_id=str(row.id), stop=row.stop_date.isoformat()
        )
    before = therapy_view(row, patient.clinic_ref)
    after_episode = dataclasses.replace(before.episode, **values)
    if after_episode == before.episode:
        raise TherapyInputError("fix_nothing")
    if after_episode.stop is not None and after_episode.stop_reason is None:
        raise TherapyInputError("stop_without_reason")
    therapies.change_therapy(
        session=session, therapy=row, episode=columns_of(after_episode), now=now
    )
    after = {**_audit_values(after_episode), **({"reason": reason} if reason else {})}
    audited = (_audit_values(before.episode), after)
    record_change(
        session, AUDIT_ENTITY, row.id, patient, actor=actor, action=action, values=audited, now=now
    )
    return TherapyChange(before=before, after=therapy_view(row, patient.clinic_ref))


def stop_therapy(
    ctx: AppContext,
    *,
    therapy_id: int,
    stop: str,
    stop_reason: str,
    actor: str,
) -> TherapyChange:
    """Ends an open episode on `stop` for a reason of spec §7; a stopped one is corrected
    with `fix_therapy` instead, so a second stop cannot silently move the date."""
    today = clinic_today(ctx)
    stop_day = treatment.parse_day(stop, today=today)
    reason = treatment.parse_stop_reason(stop_reason)
    return _change(
        ctx,
        therapy_id=therapy_id,
        actor=actor,
        action="stop",
        reason=None,
        values={"stop": stop_day, "stop_reason": reason},
        require_open=True,
    )


def fix_therapy(
    ctx: AppContext,
    *,
    therapy_id: int,
    actor: str,
    drug: str | None = None,
    therapy_class: str | None = None,
    dose: str | None = None,
    start: str | None = None,
    stop: str | None = None,
    stop_reason: str | None = None,
    reopen: bool = False,
    reason: str | None = None,
) -> TherapyChange:
    """Corrects an episode's values; the old ones stay in the audit trail. `reopen` removes a
    stop entered by mistake; an empty `dose` removes the dose."""
    today = clinic_today(ctx)
    values: dict[str, Any] = {}
    if drug is not None:
        values["drug"] = drug.strip()
    if therapy_class is not None:
        values["therapy_class"] = treatment.parse_class(therapy_class)
    if dose is not None:
        values["dose"] = _optional(dose)
    if start is not None:
        values["start"] = treatment.parse_day(start, today=today)
    if reopen:
        if stop is not None or stop_reason is not None:
            raise TherapyInputError("reopen_and_stop")
        values["stop"] = None
        values["stop_reason"] = None
    if stop is not None:
        values["stop"] = treatment.parse_day(stop, today=today)
    if stop_reason is not None:
        values["stop_reason"] = treatment.parse_stop_reason(stop_reason)
    if not values:
        raise TherapyInputError("fix_nothing")
    return _change(
        ctx,
        therapy_id=therapy_id,
        actor=actor,
        action="correct",
        reason=_optional(reason),
        values=values,
    )


def set_safety_checkin(
    ctx: AppContext, *, clinic_ref: str, setting: bool | None, actor: str
) -> bool | None:
    """The clinic turns a patient's weekly safety check-in on or off, or back to the default
    of clinical spec §8 (None: on while a TNF, IL-17 or JAK inhibitor episode is open).
    Audited; returns the previous setting."""
    now = ctx.clock.now()
    with ctx.session() as session:
        patient = find_patient(session, clinic_ref)
        previous = patient.safety_checkin
        patient.safety_checkin = setting
        patients.save_patient(session=session, patient=patient)
        audit.record_event(
            session=session,
            at=now,
            actor=actor,
            entity="patient",
            entity_id=patient.id,
            patient_id=patient.id,
            action="safety_checkin",
            before={"safety_checkin": previous},
            after={"safety_checkin": setting},
        )
        return previous


def list_therapies(ctx: AppContext, *, clinic_ref: str) -> list[TherapyView]:
    """A patient's episodes by start date."""
    with ctx.session() as session:
        return episodes_of_patient(session, patient=find_patient(session, clinic_ref))


def episodes_of_patient(session: Session, *, patient: Patient) -> list[TherapyView]:
    """The episodes of a patient loaded in this session, by start date."""
    assert patient.id is not None
    return [
        therapy_view(row, patient.clinic_ref)
        for row in therapies.list_therapies(session=session, patient_id=patient.id)
    ]


def score_points(session: Session, *, patient_id: int, timezone: str) -> list[ScorePoint]:
    """Every completed questionnaire's scores on its clinic-local day, oldest first."""
    return score_points_of_many(session, patient_ids=[patient_id], timezone=timezone)[patient_id]


def score_points_of_many(
    session: Session, *, patient_ids: list[int], timezone: str
) -> dict[int, list[ScorePoint]]:
    """`score_points` of several patients in one query (the digest and the export)."""
    return score_points_by_patient(
        scores.completed_scores_of_patients(session=session, patient_ids=patient_ids),
        patient_ids=patient_ids,
        timezone=timezone,
    )


class CompletedScores(Protocol):
    """A completed questionnaire's scores as storage reads them (`storage.scores` for a
    patient's course, `storage.digest` for a panel's history)."""

    @property
    def patient_id(self) -> int: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def basdai(self) -> Decimal | None: ...
    @property
    def asdas_crp(self) -> Decimal | None: ...
    @property
    def asdas_esr(self) -> Decimal | None: ...
    @property
    def crp_mg_l(self) -> Decimal | None: ...


def score_points_by_patient(
    completed: Iterable[CompletedScores], *, patient_ids: Iterable[int], timezone: str
) -> dict[int, list[ScorePoint]]:
    """The score points of these patients (others are passed over) from their completed
    questionnaires in the order they were completed, each on its clinic-local day."""
    zone = ZoneInfo(timezone)
    found: dict[int, list[ScorePoint]] = {patient_id: [] for patient_id in patient_ids}
    for stored in completed:
        points = found.get(stored.patient_id)
        if points is None or stored.completed_at is None:
            continue
        points.append(
            ScorePoint(
                day=stored.completed_at.astimezone(zone).date(),
                basdai=stored.basdai,
                asdas_crp=stored.asdas_crp,
                asdas_esr=stored.asdas_esr,
                crp_mg_l=None if stored.asdas_crp is None else stored.crp_mg_l,
            )
        )
    return found


def course(ctx: AppContext, *, clinic_ref: str) -> Course:
    """The §7 reading of every episode of a patient, as of today (clinical spec §7)."""
    today = clinic_today(ctx)
    with ctx.session() as session:
        patient = find_patient(session, clinic_ref)
        assert patient.id is not None
        return course_of_patient(
            session, patient=patient, today=today, timezone=ctx.settings.clinic_timezone
        )


def course_of_patient(session: Session, *, patient: Patient, today: date, timezone: str) -> Course:
    """The course of a patient loaded in this session (shared by the chat and the CLI)."""
    assert patient.id is not None
    points = score_points(session, patient_id=patient.id, timezone=timezone)
    episodes = tuple(
        EpisodeCourse(
            therapy=(view := therapy_view(row, patient.clinic_ref)),
            reading=treatment.read_episode(view.episode, points, today=today),
        )
        for row in therapies.list_therapies(session=session, patient_id=patient.id)
    )
    return Course(
        patient_id=patient.id,
        clinic_ref=patient.clinic_ref,
        today=today,
        episodes=episodes,
        points=tuple(points),
    )


@dataclass(frozen=True)
class ScoreLine:
    """One completed questionnaire for the course report: its scores and the lab values they
    used, each with its own date (clinical spec §6: every ASDAS with its lab's date)."""

    completed_at: datetime
    basdai: Decimal | None
    asdas_crp: Decimal | None
    crp_mg_l: Decimal | None
    crp_below_detection_limit: bool
    crp_drawn_at: datetime | None
    asdas_esr: Decimal | None
    esr_mm_h: Decimal | None
    esr_drawn_at: datetime | None


@dataclass(frozen=True)
class CourseReport:
    """Everything the one-page course report shows, in the physician's language."""

    clinic_ref: str
    language: str
    timezone: str
    generated_at: datetime
    course: Course
    scores: tuple[ScoreLine, ...]


def course_report(ctx: AppContext, *, clinic_ref: str) -> CourseReport:
    """The data of a patient's course report for the clinic visit (clinical spec §7)."""
    now = ctx.clock.now()
    today = clinic_today(ctx)
    with ctx.session() as session:
        patient = find_patient(session, clinic_ref)
        assert patient.id is not None
        physician = physicians.get_physician(session=session, physician_id=patient.physician_id)
        language = "en" if physician is None else physician.language
        timezone = ctx.settings.clinic_timezone
        course_value = course_of_patient(session, patient=patient, today=today, timezone=timezone)
        completed = administrations.completed_since(
            session=session, patient_id=patient.id, since=_EPOCH
        )
        stored = scores.scores_of_many(
            session=session, administration_ids=[a.id for a in completed if a.id is not None]
        )
        lab_by_id = {
            lab.id: lab for lab in labs.list_lab_results(session=session, patient_id=patient.id)
        }
        lines = []
        for administration in completed:
            assert administration.id is not None
            assert administration.completed_at is not None
            record = stored.get(administration.id)
            if record is None:
                continue
            crp = lab_by_id.get(record.asdas_crp_lab_id) if record.asdas_crp_lab_id else None
            esr = lab_by_id.get(record.asdas_esr_lab_id) if record.asdas_esr_lab_id else None
            lines.append(
                ScoreLine(
                    completed_at=administration.completed_at,
                    basdai=record.basdai,
                    asdas_crp=record.asdas_crp,
                    crp_mg_l=None if crp is None else crp.value_normalised,
                    crp_below_detection_limit=crp is not None and crp.below_detection_limit,
                    crp_drawn_at=None if crp is None else crp.drawn_at,
                    asdas_esr=record.asdas_esr,
                    esr_mm_h=None if esr is None else esr.value_normalised,
                    esr_drawn_at=None if esr is None else esr.drawn_at,
                )
            )
        return CourseReport(
            clinic_ref=patient.clinic_ref,
            language=language,
            timezone=timezone,
            generated_at=now,
            course=course_value,
            scores=tuple(lines),
        )
