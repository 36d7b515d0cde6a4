"""The physician's view of their patients in the bot: the list, one patient, the course.

Every function starts from the Telegram account asking and answers None when that account is
not a linked physician, so a patient or a stranger learns nothing, not even whether a clinic
reference exists. A physician sees and enters data only for their own patients; a clinic
admin (role "admin", set with `spondybot physician add --admin`) for every patient. A patient
who is not theirs and a reference that does not exist get the same answer.

What a physician types to store (`/crp`, `/therapy <ref> add|stop`) is shown first and saved
on a button: `bot.services.crp_entry` and `bot.services.therapy_entry`, which share the viewer,
the permission rule and `claim_preview` from here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Generic, TypeVar

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import attention, instruments, scoring
from bot.domain import labs as lab_rules
from bot.services import therapy as therapy_service
from bot.services.identifiers import identifier_of
from storage import (
    administrations,
    enrollment,
    labs,
    patients,
    pending,
    physicians,
    scores,
)
from storage.administrations import StoredAnswer
from storage.models import (
    AdministrationKind,
    AdministrationStatus,
    Patient,
    PatientStatus,
    Role,
)
from storage.pending import Pending

logger = logging.getLogger(__name__)

Reply = TypeVar("Reply")
Refusal = TypeVar("Refusal", bound=Exception)

PAGE_SIZE: Final = 8
"""Patients per page of `/patients`: short enough to read on a phone without scrolling."""

PENDING_TTL: Final = timedelta(hours=24)
"""How long a CRP preview can still be saved; later the physician sends `/crp` again."""

CHART_WEEKS: Final = 26
"""How far back `/patient` charts a patient's course."""

_LISTED_STATUSES: Final = (
    PatientStatus.INVITED.value,
    PatientStatus.ONBOARDING.value,
    PatientStatus.ACTIVE.value,
    PatientStatus.PAUSED.value,
    PatientStatus.WITHDRAWN.value,
)


@dataclass(frozen=True)
class Viewer:
    """A linked physician or clinic admin, in their own language and time zone."""

    physician_id: int
    language: str
    timezone: str
    is_admin: bool

    @property
    def actor(self) -> str:
        """How this physician appears as `entered_by` and in the audit trail."""
        return f"physician:{self.physician_id}"


def viewer_of(session: Session, telegram_user_id: int) -> Viewer | None:
    """The physician linked to this Telegram account, or None (patient, unknown account, or a
    deactivated physician). Read from the database on every update, so access taken away
    (`bot.services.staff_access`) is refused at the next command or button."""
    link = enrollment.get_link_by_user(session=session, telegram_user_id=telegram_user_id)
    if link is None or link.physician_id is None:
        return None
    physician = physicians.get_physician(session=session, physician_id=link.physician_id)
    if physician is None or physician.id is None or physician.deactivated_at is not None:
        return None
    return Viewer(
        physician_id=physician.id,
        language=physician.language,
        timezone=physician.timezone,
        is_admin=physician.role == Role.ADMIN.value,
    )


def may_see(viewer: Viewer, patient: Patient) -> bool:
    """Only a patient's own physician, or a clinic admin, sees or enters their data."""
    if patient.status == PatientStatus.DELETED.value:
        return False
    return viewer.is_admin or patient.physician_id == viewer.physician_id


def visible_patient(session: Session, viewer: Viewer, clinic_ref: str) -> Patient | None:
    """The patient with this reference if the viewer may see them; None alike for unknown."""
    ref = clinic_ref.strip()
    patient = patients.get_patient_by_ref(session=session, clinic_ref=ref) if ref else None
    if patient is None or not may_see(viewer, patient):
        return None
    return patient


def state_of(value: Decimal | None) -> scoring.AsdasState | None:
    """The ASDAS state, from the unrounded score (clinical spec §3); None without a score."""
    return None if value is None else scoring.asdas_category(value)


# -- /patients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientSummary:
    """One line of `/patients`: latest scores with their states, trend and flags.

    Scores are exact as stored (`bot.present` rounds them, clinical spec §3) with their state;
    `awaiting_crp` when the latest questionnaire has no ASDAS because no lab value was drawn in
    its window (never imputed, clinical spec §2). `asdas_crp` is the current ASDAS of
    `asdas_kind`: ASDAS-CRP, or ASDAS-ESR for a patient with only ESR values, shown with
    `asdas_drawn_at`, the date of its lab value (clinical spec §6). The BASDAI responses
    compare the latest BASDAI with the baseline one, each under its own name (spec §3, §6).
    """

    clinic_ref: str
    identifier: str
    status: str
    latest_at: datetime | None
    basdai: Decimal | None
    basdai_active: bool
    asdas_crp: Decimal | None
    asdas_state: scoring.AsdasState | None
    asdas_at: datetime | None
    crp_floored: bool
    awaiting_crp: bool
    trend: attention.Trend
    flags: tuple[str, ...]
    asdas_kind: str = attention.Variant.CRP.value
    asdas_drawn_at: datetime | None = None
    basdai_baseline: Decimal | None = None
    basdai_baseline_at: datetime | None = None
    basdai50: bool | None = None
    basdai_asas_eular: bool | None = None


@dataclass(frozen=True)
class PatientList:
    """One page of a physician's patients."""

    language: str
    timezone: str
    page: int
    pages: int
    total: int
    rows: tuple[PatientSummary, ...]
    no_crp_weeks: int
    admin: bool


def summarize_patient(
    ctx: AppContext, session: Session, patient: Patient, now: datetime
) -> PatientSummary:
    """A patient's latest scores, trend and the digest's attention flags (for `/patients` and
    the clinic web app's patient list)."""
    assert patient.id is not None
    history = administrations.list_administrations(session=session, patient_id=patient.id)
    completed = [
        a for a in history if a.status == AdministrationStatus.COMPLETED.value and a.id is not None
    ]
    stored = scores.scores_of_many(
        session=session, administration_ids=[a.id for a in completed if a.id is not None]
    )
    drawn = {
        lab.id: lab.drawn_at
        for lab in labs.list_lab_results(session=session, patient_id=patient.id)
    }
    observations = []
    for administration in completed:
        assert administration.id is not None
        assert administration.completed_at is not None
        record = stored.get(administration.id)
        observations.append(
            attention.Observation(
                at=administration.completed_at,
                basdai=None if record is None else record.basdai,
                asdas=None if record is None else record.asdas_crp,
                asdas_esr=None if record is None else record.asdas_esr,
                crp_drawn_at=None if record is None else drawn.get(record.asdas_crp_lab_id),
                esr_drawn_at=None if record is None else drawn.get(record.asdas_esr_lab_id),
            )
        )
    last_crp = labs.latest_lab_result(session=session, patient_id=patient.id, analyte=lab_rules.CRP)
    facts = attention.PatientFacts(
        as_of=now,
        observations=observations,
        scheduled_missed=[
            a.status == AdministrationStatus.MISSED.value
            for a in history
            if a.kind == AdministrationKind.SCHEDULED.value
            and a.status != AdministrationStatus.OPEN.value
        ],
        unreachable_since=patient.unreachable_since,
        last_crp_at=None if last_crp is None else last_crp.drawn_at,
        baseline_at=patient.baseline_date,
    )
    judged = attention.assess(facts, no_crp_weeks=ctx.settings.digest_no_crp_weeks)
    latest = completed[-1] if completed else None
    latest_record = None if latest is None or latest.id is None else stored.get(latest.id)
    awaiting = latest is not None and (
        latest_record is None
        or (latest_record.asdas_crp is None and latest_record.asdas_esr is None)
    )
    # The rules compare settled scores; the summary hands over the scores exactly as stored.
    stored_at = {a.completed_at: stored.get(a.id) for a in completed if a.id is not None}
    asdas_obs = judged.latest_asdas
    asdas_record = None if asdas_obs is None else stored_at.get(asdas_obs.at)
    flags = [str(flag.kind) for flag in judged.concerns]
    if awaiting:
        flags.append("awaiting_crp")
    if patient.status in (PatientStatus.PAUSED.value, PatientStatus.WITHDRAWN.value):
        flags.append(patient.status)
    physician = physicians.get_physician(session=session, physician_id=patient.physician_id)
    if physician is not None and physician.deactivated_at is not None:
        flags.append("needs_physician")
    basdai_record = None if judged.latest_basdai is None else stored_at.get(judged.latest_basdai.at)
    basdai = None if basdai_record is None else basdai_record.basdai
    asdas = (
        None
        if asdas_record is None
        else asdas_record.asdas_crp
        if judged.variant is attention.Variant.CRP
        else asdas_record.asdas_esr
    )
    first = attention.baseline(
        [obs for obs in observations if obs.basdai is not None], patient.baseline_date
    )
    compared = (
        first is not None
        and judged.latest_basdai is not None
        and first.at != judged.latest_basdai.at
        and first.basdai is not None
        and basdai is not None
    )
    return PatientSummary(
        clinic_ref=patient.clinic_ref,
        identifier=identifier_of(patient, ctx.settings.patient_identifier),
        status=patient.status,
        latest_at=None if latest is None else latest.completed_at,
        basdai=basdai,
        basdai_active=basdai is not None and scoring.basdai_active(basdai),
        asdas_crp=asdas,
        asdas_state=state_of(asdas),
        asdas_at=None if asdas_obs is None else asdas_obs.at,
        crp_floored=(
            judged.variant is attention.Variant.CRP
            and asdas_record is not None
            and asdas_record.crp_floored
        ),
        awaiting_crp=awaiting,
        trend=judged.trend,
        flags=tuple(flags),
        asdas_kind=judged.variant.value,
        asdas_drawn_at=None if asdas_obs is None else asdas_obs.lab_at(judged.variant),
        basdai_baseline=None if first is None else first.basdai,
        basdai_baseline_at=None if first is None else first.at,
        basdai50=(
            scoring.basdai50(first.basdai, basdai)
            if compared and first is not None and first.basdai is not None and basdai is not None
            else None
        ),
        basdai_asas_eular=(
            scoring.asdas_eular_basdai_response(first.basdai, basdai)
            if compared and first is not None and first.basdai is not None and basdai is not None
            else None
        ),
    )


def patient_list(ctx: AppContext, *, telegram_user_id: int, page: int = 0) -> PatientList | None:
    """`/patients`: the physician's patients (every patient for an admin), sorted by how
    they are named, one page at a time; None if the account is not a physician."""
    now = ctx.clock.now()
    with ctx.session() as session:
        viewer = viewer_of(session, telegram_user_id)
        if viewer is None:
            return None
        everyone = [
            patient
            for patient in patients.list_patients(
                session=session, physician_id=None if viewer.is_admin else viewer.physician_id
            )
            if patient.status in _LISTED_STATUSES and may_see(viewer, patient)
        ]
        choice = ctx.settings.patient_identifier
        everyone.sort(key=lambda p: (identifier_of(p, choice).casefold(), p.clinic_ref))
        pages = max(1, math.ceil(len(everyone) / PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        shown = everyone[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        rows = tuple(summarize_patient(ctx, session, patient, now) for patient in shown)
        return PatientList(
            language=viewer.language,
            timezone=viewer.timezone,
            page=page,
            pages=pages,
            total=len(everyone),
            rows=rows,
            no_crp_weeks=ctx.settings.digest_no_crp_weeks,
            admin=viewer.is_admin,
        )


# -- /patient <ref> ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerLine:
    """One item of the last questionnaire: a 0–10 rating, or for stiffness duration its
    minutes and their exact 0–10 score."""

    item_code: str
    value: Decimal
    minutes: int | None = None


@dataclass(frozen=True)
class LabLine:
    """A lab value as the physician reads it, with whether ASDAS-CRP uses 2 mg/L instead."""

    lab_id: int
    analyte: str
    value: Decimal
    unit: str
    drawn_at: datetime
    below_detection_limit: bool
    floored: bool


@dataclass(frozen=True)
class ChartPoint:
    """One completed questionnaire on a trend chart (the patient view's and the digest's); None
    where the score is unavailable."""

    at: datetime
    basdai: Decimal | None
    asdas: Decimal | None


@dataclass(frozen=True)
class PatientDetail:
    """`/patient <ref>`: one patient's latest scores with the lab values they used, the last
    answers, and the course over `CHART_WEEKS` weeks for the chart."""

    language: str
    timezone: str
    summary: PatientSummary
    completed_at: datetime | None
    answers: tuple[AnswerLine, ...]
    basdai: Decimal | None
    asdas_crp: Decimal | None
    asdas_crp_state: scoring.AsdasState | None
    crp: LabLine | None
    asdas_esr: Decimal | None
    asdas_esr_state: scoring.AsdasState | None
    esr: LabLine | None
    points: tuple[ChartPoint, ...]
    lab_marks: tuple[LabLine, ...]
    since: datetime
    therapies: tuple[therapy_service.TherapyView, ...] = ()
    """Episodes overlapping the chart's period, drawn as bars under the curves (spec §7)."""


class Lookup(StrEnum):
    FOUND = "found"
    NO_PATIENT = "no_patient"


@dataclass(frozen=True)
class DetailReply:
    """The detail, or `no_patient` for a reference that is unknown or not the viewer's."""

    outcome: Lookup
    language: str
    clinic_ref: str
    detail: PatientDetail | None = None


def lab_line(lab_id: int | None, session: Session) -> LabLine | None:
    """A stored lab value as the physician reads it, or None."""
    if lab_id is None:
        return None
    lab = labs.get_lab_result(session=session, lab_id=lab_id)
    if lab is None or lab.id is None:
        return None
    floored = lab.analyte == lab_rules.CRP and (
        lab.below_detection_limit or lab.value_normalised < scoring.CRP_FLOOR_MG_L
    )
    return LabLine(
        lab_id=lab.id,
        analyte=lab.analyte,
        value=lab.value,
        unit=lab.unit,
        drawn_at=lab.drawn_at,
        below_detection_limit=lab.below_detection_limit,
        floored=floored,
    )


def answer_lines(stored: Mapping[str, StoredAnswer]) -> tuple[AnswerLine, ...]:
    """Answers in questionnaire order; stiffness duration as minutes with its 0–10 score."""
    lines = []
    for code in instruments.ITEM_CODES:
        answer = stored.get(code)
        if answer is None:
            continue
        if instruments.item(code).kind is instruments.ItemKind.DURATION:
            lines.append(AnswerLine(code, answer.score, int(answer.raw_value)))
        else:
            lines.append(AnswerLine(code, answer.raw_value))
    return tuple(lines)


def _answers(session: Session, administration_id: int) -> tuple[AnswerLine, ...]:
    return answer_lines(
        administrations.answers_of(session=session, administration_id=administration_id)
    )


def patient_detail(
    ctx: AppContext, *, telegram_user_id: int, clinic_ref: str
) -> DetailReply | None:
    """`/patient <ref>`; None if the account is not a physician."""
    now = ctx.clock.now()
    since = now - timedelta(weeks=CHART_WEEKS)
    with ctx.session() as session:
        viewer = viewer_of(session, telegram_user_id)
        if viewer is None:
            return None
        patient = visible_patient(session, viewer, clinic_ref)
        if patient is None or patient.id is None:
            return DetailReply(Lookup.NO_PATIENT, viewer.language, clinic_ref.strip()[:64])
        summary = summarize_patient(ctx, session, patient, now)
        completed = administrations.list_administrations(
            session=session,
            patient_id=patient.id,
            statuses=(AdministrationStatus.COMPLETED,),
        )
        stored = scores.scores_of_many(
            session=session, administration_ids=[a.id for a in completed if a.id is not None]
        )
        points = []
        for administration in completed:
            assert administration.id is not None
            assert administration.completed_at is not None
            if administration.completed_at < since:
                continue
            record = stored.get(administration.id)
            points.append(
                ChartPoint(
                    at=administration.completed_at,
                    basdai=None if record is None else record.basdai,
                    asdas=None if record is None else record.asdas_crp,
                )
            )
        points.sort(key=lambda point: point.at)
        latest = max(completed, key=lambda a: a.completed_at or since, default=None)
        record = None if latest is None or latest.id is None else stored.get(latest.id)
        marks = tuple(
            line
            for lab in labs.list_lab_results(session=session, patient_id=patient.id)
            if since <= lab.drawn_at <= now
            for line in [lab_line(lab.id, session)]
            if line is not None
        )
        detail = PatientDetail(
            language=viewer.language,
            timezone=viewer.timezone,
            summary=summary,
            completed_at=None if latest is None else latest.completed_at,
            answers=() if latest is None or latest.id is None else _answers(session, latest.id),
            basdai=None if record is None else record.basdai,
            asdas_crp=None if record is None else record.asdas_crp,
            asdas_crp_state=None if record is None else state_of(record.asdas_crp),
            crp=None if record is None else lab_line(record.asdas_crp_lab_id, session),
            asdas_esr=None if record is None else record.asdas_esr,
            asdas_esr_state=None if record is None else state_of(record.asdas_esr),
            esr=None if record is None else lab_line(record.asdas_esr_lab_id, session),
            points=tuple(points),
            lab_marks=marks,
            since=since,
            therapies=tuple(
                view
                for view in therapy_service.episodes_of_patient(session, patient=patient)
                if view.stop is None or view.stop >= since.date()
            ),
        )
        return DetailReply(Lookup.FOUND, viewer.language, patient.clinic_ref, detail)


# -- /therapy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CourseReply:
    """`/therapy <reference>`: the patient's treatment course (clinical spec §7) in the
    viewer's language, or why not."""

    outcome: Lookup
    language: str
    clinic_ref: str
    report: therapy_service.CourseReport | None = None


def patient_course(
    ctx: AppContext, *, telegram_user_id: int, clinic_ref: str
) -> CourseReply | None:
    """The course of a patient the physician may see (own patient, or any for an admin);
    None if the account is not a physician."""
    with ctx.session() as session:
        viewer = viewer_of(session, telegram_user_id)
        if viewer is None:
            return None
        patient = visible_patient(session, viewer, clinic_ref)
        if patient is None:
            return CourseReply(Lookup.NO_PATIENT, viewer.language, clinic_ref.strip()[:64])
    report = therapy_service.course_report(ctx, clinic_ref=patient.clinic_ref)
    return CourseReply(
        Lookup.FOUND,
        viewer.language,
        patient.clinic_ref,
        dataclasses.replace(report, language=viewer.language),
    )


# -- previews a physician confirms ---------------------------------------------------------


class PendingOutcome(StrEnum):
    SAVED = "saved"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    GONE = "gone"


@dataclass(frozen=True)
class PreviewClaim(Generic[Pending]):
    """A preview this press took out of "pending"; `entry` is None when it was gone (stale,
    repeated, expired or another physician's), `identifier` empty when the patient is not
    the viewer's."""

    entry: Pending | None
    patient: Patient | None
    identifier: str = ""


def claim_preview(
    session: Session,
    ctx: AppContext,
    viewer: Viewer,
    model: type[Pending],
    pending_id: int,
    *,
    save: bool,
    now: datetime,
) -> PreviewClaim[Pending]:
    """Saves or cancels the viewer's own preview with a conditional update, so a double tap
    or a second process resolves it once; only while the patient is still theirs."""
    entry = pending.get_pending(session=session, model=model, row_id=pending_id)
    patient = (
        None
        if entry is None
        else patients.get_patient(session=session, patient_id=entry.patient_id)
    )
    if (
        entry is None
        or patient is None
        or entry.physician_id != viewer.physician_id
        or not may_see(viewer, patient)
    ):
        return PreviewClaim(None, None)
    identifier = identifier_of(patient, ctx.settings.patient_identifier)
    moved = pending.resolve_pending(
        session=session,
        model=model,
        row_id=pending_id,
        physician_id=viewer.physician_id,
        status=pending.SAVED if save else pending.CANCELLED,
        now=now,
    )
    return PreviewClaim(entry if moved else None, patient, identifier)


def resolve_preview(
    ctx: AppContext,
    *,
    telegram_user_id: int,
    model: type[Pending],
    pending_id: int,
    save: bool,
    act: Callable[[Session, Viewer, PreviewClaim[Pending], datetime], Reply],
    refusal: type[Refusal],
    refused: Callable[[Viewer, Refusal], Reply],
) -> Reply | None:
    """Saves or cancels a preview with `act`, in one transaction with its claim; None if the
    account is not a physician.

    The pending row moves out of "pending" with a conditional update in the same transaction
    that stores (and audits) what it holds, so a double tap, a second process or a restart
    saves once. When `act` raises `refusal`, that transaction rolls back (the preview is still
    pending, nothing was stored) and the answer is `refused`.
    """
    now = ctx.clock.now()
    try:
        with ctx.session() as session:
            viewer = viewer_of(session, telegram_user_id)
            if viewer is None:
                return None
            claim = claim_preview(session, ctx, viewer, model, pending_id, save=save, now=now)
            return act(session, viewer, claim, now)
    except refusal as error:
        with ctx.session() as session:
            viewer = viewer_of(session, telegram_user_id)
        assert viewer is not None
        return refused(viewer, error)
