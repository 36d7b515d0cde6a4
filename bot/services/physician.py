"""The physician's account in the bot: their patient list, one patient's course, and CRP entry.

Every function starts from the Telegram account asking and answers None when that account is
not a linked physician, so a patient or a stranger learns nothing, not even whether a clinic
reference exists. A physician sees and enters data only for their own patients; a clinic
admin (role "admin", set with `spondybot physician add --admin`) for every patient. A patient
who is not theirs and a reference that does not exist get the same answer.

A CRP typed in chat is only shown at first; it is kept in `pendinglabentry` and stored through
`bot.services.labs` (the one path for every entry route) when the physician presses "Save".
A therapy episode typed in chat (`/therapy <ref> add|stop …`) is kept in `pendingtherapychange`
the same way and stored through `bot.services.therapy`, audited like the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Generic
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import attention, instruments, scoring, treatment
from bot.domain import labs as lab_rules
from bot.domain.labs import LabInputError, Measurement
from bot.domain.treatment import TherapyInputError
from bot.services import labs as lab_service
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
    therapies,
)
from storage.models import (
    AdministrationKind,
    AdministrationStatus,
    Patient,
    PatientStatus,
    PendingLabEntry,
    PendingTherapyChange,
    Role,
)
from storage.pending import Pending

logger = logging.getLogger(__name__)

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


def _visible_patient(session: Session, viewer: Viewer, clinic_ref: str) -> Patient | None:
    ref = clinic_ref.strip()
    patient = patients.get_patient_by_ref(session=session, clinic_ref=ref) if ref else None
    if patient is None or not may_see(viewer, patient):
        return None
    return patient


def _shown(value: Decimal | None) -> str | None:
    """A score to one decimal, half away from zero (clinical spec §3)."""
    return None if value is None else scoring.display_round(value)


def _state(value: Decimal | None) -> str | None:
    """The template key of an ASDAS state, from the unrounded score (clinical spec §3)."""
    return None if value is None else state_key(value)


def state_key(value: Decimal) -> str:
    """The template key ("inactive", "low", "high", "very_high") of an ASDAS state, taken
    from the unrounded score (clinical spec §3)."""
    return scoring.asdas_category(value).key


# -- /patients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientSummary:
    """One line of `/patients`: latest scores with their states, trend and flags.

    Scores are display strings (one decimal, clinical spec §3) next to their state key;
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
    basdai: str | None
    basdai_active: bool
    asdas_crp: str | None
    asdas_state: str | None
    asdas_at: datetime | None
    crp_floored: bool
    awaiting_crp: bool
    trend: str
    flags: tuple[str, ...]
    asdas_kind: str = attention.Variant.CRP.value
    asdas_drawn_at: datetime | None = None
    basdai_baseline: str | None = None
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
    asdas_obs = judged.latest_asdas
    asdas_record = None
    if asdas_obs is not None:
        for administration in reversed(completed):
            if administration.completed_at == asdas_obs.at and administration.id is not None:
                asdas_record = stored.get(administration.id)
                break
    flags = [str(flag.kind) for flag in judged.concerns]
    if awaiting:
        flags.append("awaiting_crp")
    if patient.status in (PatientStatus.PAUSED.value, PatientStatus.WITHDRAWN.value):
        flags.append(patient.status)
    physician = physicians.get_physician(session=session, physician_id=patient.physician_id)
    if physician is not None and physician.deactivated_at is not None:
        flags.append("needs_physician")
    basdai = None if judged.latest_basdai is None else judged.latest_basdai.basdai
    asdas = judged.latest_asdas_value
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
        basdai=_shown(basdai),
        basdai_active=basdai is not None and scoring.basdai_active(basdai),
        asdas_crp=_shown(asdas),
        asdas_state=_state(asdas),
        asdas_at=None if asdas_obs is None else asdas_obs.at,
        crp_floored=(
            judged.variant is attention.Variant.CRP
            and asdas_record is not None
            and asdas_record.crp_floored
        ),
        awaiting_crp=awaiting,
        trend=str(judged.trend),
        flags=tuple(flags),
        asdas_kind=judged.variant.value,
        asdas_drawn_at=None if asdas_obs is None else asdas_obs.lab_at(judged.variant),
        basdai_baseline=None if first is None else _shown(first.basdai),
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
    """One item of the last questionnaire: a 0–10 rating, or minutes for stiffness duration."""

    item_code: str
    value: str
    minutes: int | None = None


@dataclass(frozen=True)
class LabLine:
    """A lab value as the physician reads it, with whether ASDAS-CRP uses 2 mg/L instead."""

    lab_id: int
    analyte: str
    value: str
    unit: str
    drawn_at: datetime
    below_detection_limit: bool
    floored: bool


@dataclass(frozen=True)
class ChartPoint:
    """One completed questionnaire on the trend chart."""

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
    basdai: str | None
    asdas_crp: str | None
    asdas_crp_state: str | None
    crp: LabLine | None
    asdas_esr: str | None
    asdas_esr_state: str | None
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


def _lab_line(lab_id: int | None, session: Session) -> LabLine | None:
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
        value=lab_rules.display_value(lab.value),
        unit=lab.unit,
        drawn_at=lab.drawn_at,
        below_detection_limit=lab.below_detection_limit,
        floored=floored,
    )


def _answers(session: Session, administration_id: int) -> tuple[AnswerLine, ...]:
    stored = administrations.answers_of(session=session, administration_id=administration_id)
    lines = []
    for code in instruments.ITEM_CODES:
        answer = stored.get(code)
        if answer is None:
            continue
        if instruments.item(code).kind is instruments.ItemKind.DURATION:
            minutes = int(answer.raw_value)
            lines.append(AnswerLine(code, scoring.display_round(answer.score), minutes))
        else:
            lines.append(AnswerLine(code, lab_rules.display_value(answer.raw_value)))
    return tuple(lines)


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
        patient = _visible_patient(session, viewer, clinic_ref)
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
            for line in [_lab_line(lab.id, session)]
            if line is not None
        )
        detail = PatientDetail(
            language=viewer.language,
            timezone=viewer.timezone,
            summary=summary,
            completed_at=None if latest is None else latest.completed_at,
            answers=() if latest is None or latest.id is None else _answers(session, latest.id),
            basdai=None if record is None else _shown(record.basdai),
            asdas_crp=None if record is None else _shown(record.asdas_crp),
            asdas_crp_state=None if record is None else _state(record.asdas_crp),
            crp=None if record is None else _lab_line(record.asdas_crp_lab_id, session),
            asdas_esr=None if record is None else _shown(record.asdas_esr),
            asdas_esr_state=None if record is None else _state(record.asdas_esr),
            esr=None if record is None else _lab_line(record.asdas_esr_lab_id, session),
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


# -- /crp ----------------------------------------------------------------------------------------


class CrpOutcome(StrEnum):
    PREVIEW = "preview"
    INVALID = "invalid"
    NO_PATIENT = "no_patient"


@dataclass(frozen=True)
class CrpPreview:
    """What `/crp` will store once saved, or why it cannot; `pending_id` goes in the button."""

    outcome: CrpOutcome
    language: str
    timezone: str
    reason: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    clinic_ref: str = ""
    pending_id: int | None = None
    identifier: str = ""
    crp: LabLine | None = None
    crp_mg_l: str | None = None
    esr: LabLine | None = None
    drawn_at: datetime | None = None


def _preview_line(measurement: Measurement, drawn_at: datetime) -> LabLine:
    floored = measurement.analyte == lab_rules.CRP and (
        measurement.below_detection_limit or measurement.value_normalised < scoring.CRP_FLOOR_MG_L
    )
    return LabLine(
        lab_id=0,
        analyte=measurement.analyte,
        value=lab_rules.display_value(measurement.value),
        unit=measurement.unit,
        drawn_at=drawn_at,
        below_detection_limit=measurement.below_detection_limit,
        floored=floored,
    )


def preview_crp(ctx: AppContext, *, telegram_user_id: int, args: list[str]) -> CrpPreview | None:
    """`/crp <ref> <value> [mg/L|mg/dL] [YYYY-MM-DD] [esr <value>]`: reads and checks the entry
    exactly as the command line would, keeps it as pending and returns the preview; nothing is
    stored yet. A date alone (or none: today) is noon clinic time, as on every route."""
    now = ctx.clock.now()
    with ctx.session() as session:
        viewer = viewer_of(session, telegram_user_id)
        if viewer is None:
            return None
        try:
            command = lab_rules.parse_crp_command(args)
            today = now.astimezone(ZoneInfo(ctx.settings.clinic_timezone)).date()
            drawn_text = command.drawn_text or today.isoformat()
            drawn_at = lab_rules.drawn_instant(
                drawn_text, timezone=ctx.settings.clinic_timezone, now=now
            )
        except LabInputError as error:
            return CrpPreview(
                CrpOutcome.INVALID,
                reason=error.code,
                params=error.params,
                language=viewer.language,
                timezone=viewer.timezone,
            )
        patient = _visible_patient(session, viewer, command.clinic_ref)
        if patient is None or patient.id is None:
            return CrpPreview(
                CrpOutcome.NO_PATIENT,
                clinic_ref=command.clinic_ref[:64],
                language=viewer.language,
                timezone=viewer.timezone,
            )
        entry = labs.create_pending_entry(
            session=session,
            physician_id=viewer.physician_id,
            patient_id=patient.id,
            crp_value=command.crp.value,
            crp_unit=command.crp.unit,
            crp_below_detection_limit=command.crp.below_detection_limit,
            esr_value=None if command.esr is None else command.esr.value,
            drawn_at=drawn_at,
            now=now,
            expires_at=now + PENDING_TTL,
        )
        return CrpPreview(
            CrpOutcome.PREVIEW,
            clinic_ref=patient.clinic_ref,
            pending_id=entry.id,
            identifier=identifier_of(patient, ctx.settings.patient_identifier),
            crp=_preview_line(command.crp, drawn_at),
            crp_mg_l=lab_rules.display_value(command.crp.value_normalised),
            esr=None if command.esr is None else _preview_line(command.esr, drawn_at),
            drawn_at=drawn_at,
            language=viewer.language,
            timezone=viewer.timezone,
        )


class PendingOutcome(StrEnum):
    SAVED = "saved"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    GONE = "gone"


@dataclass(frozen=True)
class PendingReply:
    """What became of a Save/Cancel press; `gone` for a stale, repeated, expired or foreign
    button (nothing changes)."""

    outcome: PendingOutcome
    language: str
    timezone: str
    identifier: str = ""
    stored: tuple[LabLine, ...] = ()
    recomputed: int = 0
    asdas_crp: str | None = None
    asdas_crp_state: str | None = None
    reason: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def _measurements(entry: PendingLabEntry) -> list[Measurement]:
    """The values of a pending entry, read again through the same rules as at preview."""
    found = [
        lab_rules.measurement(
            lab_rules.CRP,
            lab_rules.Reading(entry.crp_value, entry.crp_below_detection_limit),
            lab_rules.parse_unit(lab_rules.CRP, entry.crp_unit),
        )
    ]
    if entry.esr_value is not None:
        found.append(
            lab_rules.measurement(
                lab_rules.ESR, lab_rules.Reading(entry.esr_value, False), lab_rules.ESR_UNIT
            )
        )
    return found


def _latest_asdas_crp(session: Session, administration_ids: set[int]) -> Decimal | None:
    """ASDAS-CRP of the most recently completed of these administrations, if it has one."""
    found = [
        administration
        for administration_id in administration_ids
        for administration in [
            administrations.get_administration(session=session, administration_id=administration_id)
        ]
        if administration is not None and administration.completed_at is not None
    ]
    if not found:
        return None
    latest = max(found, key=lambda a: (a.completed_at, a.id))
    assert latest.id is not None
    record = scores.get_score(session=session, administration_id=latest.id)
    return None if record is None else record.asdas_crp


@dataclass(frozen=True)
class _Claim(Generic[Pending]):
    """A preview this press took out of "pending"; `entry` is None when it was gone (stale,
    repeated, expired or another physician's), `identifier` empty when the patient is not
    the viewer's."""

    entry: Pending | None
    patient: Patient | None
    identifier: str = ""


def _claim_preview(
    session: Session,
    ctx: AppContext,
    viewer: Viewer,
    model: type[Pending],
    pending_id: int,
    *,
    save: bool,
    now: datetime,
) -> _Claim[Pending]:
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
        return _Claim(None, None)
    identifier = identifier_of(patient, ctx.settings.patient_identifier)
    moved = pending.resolve_pending(
        session=session,
        model=model,
        row_id=pending_id,
        physician_id=viewer.physician_id,
        status=pending.SAVED if save else pending.CANCELLED,
        now=now,
    )
    return _Claim(entry if moved else None, patient, identifier)


def resolve_pending(
    ctx: AppContext, *, telegram_user_id: int, pending_id: int, save: bool
) -> PendingReply | None:
    """Saves or cancels a CRP preview; None if the account is not a physician.

    The pending row moves out of "pending" with a conditional update in the same transaction
    that stores the values, so a double tap or a second process saves once. Only the
    physician who typed the entry can save it, and only while the patient is still theirs.
    """
    now = ctx.clock.now()
    try:
        with ctx.session() as session:
            viewer = viewer_of(session, telegram_user_id)
            if viewer is None:
                return None
            claim = _claim_preview(
                session, ctx, viewer, PendingLabEntry, pending_id, save=save, now=now
            )
            entry, patient, identifier = claim.entry, claim.patient, claim.identifier
            if entry is None or patient is None:
                return PendingReply(
                    PendingOutcome.GONE,
                    identifier=identifier,
                    language=viewer.language,
                    timezone=viewer.timezone,
                )
            if not save:
                return PendingReply(
                    PendingOutcome.CANCELLED,
                    identifier=identifier,
                    language=viewer.language,
                    timezone=viewer.timezone,
                )
            outcomes = [
                lab_service.store_measurement(
                    session,
                    patient=patient,
                    measurement=measurement,
                    drawn_at=entry.drawn_at,
                    source=lab_service.SOURCE_CHAT,
                    entered_by=viewer.actor,
                    now=now,
                    window=lab_service.window(ctx),
                )
                for measurement in _measurements(entry)
            ]
            recomputed = {admin for outcome in outcomes for admin in outcome.recomputed}
            crp_score = _latest_asdas_crp(session, recomputed)
            everything_known = all(o.status == lab_service.DUPLICATE for o in outcomes)
            logger.info(
                "lab entry resolved in chat",
                extra={"fields": {"pending_id": pending_id, "saved": not everything_known}},
            )
            return PendingReply(
                PendingOutcome.DUPLICATE if everything_known else PendingOutcome.SAVED,
                identifier=identifier,
                stored=tuple(
                    line
                    for outcome in outcomes
                    for line in [_lab_line(outcome.lab.lab_id, session)]
                    if line is not None
                ),
                recomputed=len(recomputed),
                asdas_crp=_shown(crp_score),
                asdas_crp_state=_state(crp_score),
                language=viewer.language,
                timezone=viewer.timezone,
            )
    except LabInputError as error:
        # The transaction rolled back: the entry is still pending and nothing was stored.
        with ctx.session() as session:
            viewer = viewer_of(session, telegram_user_id)
        assert viewer is not None
        return PendingReply(
            PendingOutcome.REFUSED,
            language=viewer.language,
            timezone=viewer.timezone,
            reason=error.code,
            params=error.params,
        )


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
        patient = _visible_patient(session, viewer, clinic_ref)
        if patient is None:
            return CourseReply(Lookup.NO_PATIENT, viewer.language, clinic_ref.strip()[:64])
    report = therapy_service.course_report(ctx, clinic_ref=patient.clinic_ref)
    return CourseReply(
        Lookup.FOUND,
        viewer.language,
        patient.clinic_ref,
        dataclasses.replace(report, language=viewer.language),
    )


# -- /therapy <reference> add|stop ---------------------------------------------------------------

THERAPY_ADD: Final = "add"
THERAPY_STOP: Final = "stop"


class TherapyOutcome(StrEnum):
    PREVIEW = "preview"
    USAGE = "usage"
    INVALID = "invalid"
    NO_PATIENT = "no_patient"


@dataclass(frozen=True)
class TherapyPreview:
    """What `/therapy <ref> add|stop …` will store once saved, or why it cannot; `pending_id`
    goes in the Save button."""

    outcome: TherapyOutcome
    language: str
    action: str = ""
    reason: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    clinic_ref: str = ""
    identifier: str = ""
    pending_id: int | None = None
    episode: treatment.TherapyEpisode | None = None


def is_therapy_change(args: list[str]) -> bool:
    """`/therapy <ref> add|stop …` changes the course; `/therapy <ref>` only shows it."""
    return len(args) >= 2


def _parse_therapy_change(
    session: Session, *, patient: Patient, words: list[str], today: date
) -> tuple[str, int | None, treatment.TherapyEpisode]:
    """The episode to add, or the open episode with its stop, exactly as the command line
    checks them (clinical spec §7); raises TherapyInputError."""
    action, rest = words[0].lower(), words[1:]
    if action == THERAPY_ADD and len(rest) >= 3:
        drug, therapy_class, start, *dose = rest
        episode = treatment.TherapyEpisode(
            drug=drug.strip(),
            therapy_class=treatment.parse_class(therapy_class),
            start=treatment.parse_day(start, today=today),
            dose=" ".join(dose).strip() or None,
        )
        return THERAPY_ADD, None, episode
    if action == THERAPY_STOP and len(rest) == 3:
        drug, stop, reason = rest
        assert patient.id is not None
        open_episodes = [
            view
            for view in therapy_service.episodes_of_patient(session, patient=patient)
            if view.stop is None and view.drug.casefold() == drug.strip().casefold()
        ]
        if len(open_episodes) != 1:
            raise TherapyInputError("no_open_episode", drug=drug[:40])
        (current,) = open_episodes
        stopped = dataclasses.replace(
            current.episode,
            stop=treatment.parse_day(stop, today=today),
            stop_reason=treatment.parse_stop_reason(reason),
        )
        return THERAPY_STOP, current.therapy_id, stopped
    raise TherapyInputError("chat_usage")


def preview_therapy_change(
    ctx: AppContext, *, telegram_user_id: int, args: list[str]
) -> TherapyPreview | None:
    """`/therapy <ref> add <drug> <class> <start> [dose]` or `/therapy <ref> stop <drug>
    <stop> <reason>`: checks the change as the command line would, keeps it as pending and
    returns the preview; nothing is stored yet. None if the account is not a physician."""
    now = ctx.clock.now()
    with ctx.session() as session:
        viewer = viewer_of(session, telegram_user_id)
        if viewer is None:
            return None
        patient = _visible_patient(session, viewer, args[0] if args else "")
        if patient is None or patient.id is None:
            return TherapyPreview(
                TherapyOutcome.NO_PATIENT,
                viewer.language,
                clinic_ref=(args[0] if args else "").strip()[:64],
            )
        today = now.astimezone(ZoneInfo(ctx.settings.clinic_timezone)).date()
        try:
            action, therapy_id, episode = _parse_therapy_change(
                session, patient=patient, words=args[1:], today=today
            )
        except TherapyInputError as error:
            outcome = TherapyOutcome.USAGE if error.code == "chat_usage" else TherapyOutcome.INVALID
            return TherapyPreview(outcome, viewer.language, reason=error.code, params=error.params)
        entry = therapies.create_pending_change(
            session=session,
            physician_id=viewer.physician_id,
            patient_id=patient.id,
            action=action,
            therapy_id=therapy_id,
            drug=episode.drug,
            therapy_class=episode.therapy_class.value,
            dose=episode.dose,
            start_date=episode.start,
            stop_date=episode.stop,
            stop_reason=None if episode.stop_reason is None else episode.stop_reason.value,
            now=now,
            expires_at=now + PENDING_TTL,
        )
        return TherapyPreview(
            TherapyOutcome.PREVIEW,
            viewer.language,
            action=action,
            clinic_ref=patient.clinic_ref,
            identifier=identifier_of(patient, ctx.settings.patient_identifier),
            pending_id=entry.id,
            episode=episode,
        )


@dataclass(frozen=True)
class TherapyPendingReply:
    """What became of a Save/Cancel press on a therapy preview; `gone` for a stale, repeated,
    expired or foreign button (nothing changes)."""

    outcome: PendingOutcome
    language: str
    action: str = ""
    identifier: str = ""
    therapy_id: int | None = None
    episode: treatment.TherapyEpisode | None = None
    reason: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def resolve_therapy_change(
    ctx: AppContext, *, telegram_user_id: int, pending_id: int, save: bool
) -> TherapyPendingReply | None:
    """Saves or cancels a therapy preview; None if the account is not a physician.

    As with `/crp`, the pending row leaves "pending" with a conditional update in the same
    transaction that stores and audits the episode, so a double tap, a second process or a
    restart stores it once; only the physician who typed it can save it, and only while the
    patient is still theirs (or they are an admin).
    """
    now = ctx.clock.now()
    try:
        with ctx.session() as session:
            viewer = viewer_of(session, telegram_user_id)
            if viewer is None:
                return None
            claim = _claim_preview(
                session, ctx, viewer, PendingTherapyChange, pending_id, save=save, now=now
            )
            entry, patient, identifier = claim.entry, claim.patient, claim.identifier
            if entry is None or patient is None:
                return TherapyPendingReply(
                    PendingOutcome.GONE, viewer.language, identifier=identifier
                )
            episode = treatment.TherapyEpisode(
                drug=entry.drug,
                therapy_class=treatment.TherapyClass(entry.therapy_class),
                start=entry.start_date,
                dose=entry.dose,
                stop=entry.stop_date,
                stop_reason=(
                    None if entry.stop_reason is None else treatment.StopReason(entry.stop_reason)
                ),
            )
            if not save:
                return TherapyPendingReply(
                    PendingOutcome.CANCELLED,
                    viewer.language,
                    action=entry.action,
                    identifier=identifier,
                    episode=episode,
                )
            if entry.action == THERAPY_ADD:
                view = therapy_service.store_episode(
                    session, patient=patient, episode=episode, actor=viewer.actor, now=now
                )
            else:
                row = (
                    None
                    if entry.therapy_id is None
                    else therapies.get_therapy(session=session, therapy_id=entry.therapy_id)
                )
                if row is None or row.patient_id != patient.id:
                    raise TherapyInputError("therapy_unknown", therapy_id=str(entry.therapy_id))
                view = therapy_service.change_episode(
                    session,
                    row=row,
                    patient=patient,
                    actor=viewer.actor,
                    action=THERAPY_STOP,
                    reason=None,
                    values={"stop": episode.stop, "stop_reason": episode.stop_reason},
                    now=now,
                    require_open=True,
                ).after
            logger.info(
                "therapy change resolved in chat",
                extra={"fields": {"pending_id": pending_id, "action": entry.action}},
            )
            return TherapyPendingReply(
                PendingOutcome.SAVED,
                viewer.language,
                action=entry.action,
                identifier=identifier,
                therapy_id=view.therapy_id,
                episode=view.episode,
            )
    except TherapyInputError as error:
        # The transaction rolled back: the change is still pending and nothing was stored.
        with ctx.session() as session:
            viewer = viewer_of(session, telegram_user_id)
        assert viewer is not None
        return TherapyPendingReply(
            PendingOutcome.REFUSED, viewer.language, reason=error.code, params=error.params
        )
