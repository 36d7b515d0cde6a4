"""Lab entry from the clinic web app: preview, store, import a file, fix and delete.

Every route goes through `bot.services.labs` (the one entry path). A preview runs exactly the
steps of the real entry, in a transaction that is then rolled back, so it shows what will be
stored and the ASDAS each value completes, computed by the real scoring path; the page then
asks to confirm. An admin enters values for every patient, a physician for their own, a nurse
for the patients of the physicians they work for; any other patient is refused as an unknown
reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import labs as lab_rules
from bot.domain import scoring
from bot.domain.labs import LabInputError as LabInputError  # re-exported for the web
from bot.domain.labs import LabParam, Measurement
from bot.services import labs as lab_service
from bot.services.accounts import Principal
from storage import administrations, audit, labs, patients, scores
from storage.models import Patient, PatientStatus

MAX_LINES = 20
"""Lines of one entry form; a longer list goes through a lab file."""


def _patient_for(session: Session, principal: Principal, clinic_ref: str) -> Patient:
    patient = lab_service.find_patient(session, clinic_ref)
    allowed = principal.physicians_served
    if allowed is not None and patient.physician_id not in allowed:
        raise LabInputError("patient_unknown", ref=clinic_ref.strip()[:64])
    return patient


@dataclass(frozen=True)
class EntryLine:
    """One row of the entry form, as typed."""

    clinic_ref: str
    crp: str = ""
    crp_unit: str = lab_rules.CRP_UNIT_MG_L
    esr: str = ""
    drawn: str = ""

    @property
    def blank(self) -> bool:
        return not (self.clinic_ref.strip() or self.crp.strip() or self.esr.strip())


@dataclass(frozen=True)
class CompletedScore:
    """An ASDAS that a value completes or changes: exact as stored, with its state from the
    unrounded score (spec §3)."""

    completed_at: datetime
    variant: str
    value: Decimal
    state: scoring.AsdasState


@dataclass(frozen=True)
class StoredValue:
    analyte: str
    value: Decimal
    unit: str
    value_mg_l: Decimal
    below_detection_limit: bool
    floored: bool
    status: str  # lab_service.STORED or DUPLICATE


@dataclass(frozen=True)
class LineResult:
    """What one form line stores (or would), or why it is refused."""

    line: int
    entry: EntryLine
    drawn_at: datetime | None = None
    values: tuple[StoredValue, ...] = ()
    completes: tuple[CompletedScore, ...] = ()
    reason: str | None = None
    params: dict[str, LabParam] = field(default_factory=dict)


@dataclass(frozen=True)
class EntryResult:
    lines: tuple[LineResult, ...]
    stored: bool

    @property
    def refused(self) -> int:
        return sum(1 for line in self.lines if line.reason is not None)


def _measurements(line: EntryLine) -> list[Measurement]:
    found = []
    if line.crp.strip():
        found.append(lab_rules.read_measurement(lab_rules.CRP, line.crp, line.crp_unit))
    if line.esr.strip():
        found.append(lab_rules.read_measurement(lab_rules.ESR, line.esr, None))
    if not found:
        raise LabInputError("values_missing")
    return found


def _completes(session: Session, administration_ids: tuple[int, ...]) -> tuple[CompletedScore, ...]:
    """The ASDAS of each administration recomputed, as stored now in this transaction."""
    found = []
    for administration_id in administration_ids:
        record = scores.get_score(session=session, administration_id=administration_id)
        administration = administrations.get_administration(
            session=session, administration_id=administration_id
        )
        if record is None or administration is None or administration.completed_at is None:
            continue
        for variant, value in (("ASDAS-CRP", record.asdas_crp), ("ASDAS-ESR", record.asdas_esr)):
            if value is not None:
                found.append(
                    CompletedScore(
                        completed_at=administration.completed_at,
                        variant=variant,
                        value=value,
                        state=scoring.asdas_category(value),
                    )
                )
    return tuple(sorted(found, key=lambda score: (score.completed_at, score.variant)))


def _enter_line(
    ctx: AppContext, session: Session, principal: Principal, number: int, line: EntryLine
) -> LineResult:
    now = ctx.clock.now()
    try:
        measurements = _measurements(line)
        today = now.astimezone(ZoneInfo(ctx.settings.clinic_timezone)).date().isoformat()
        drawn_at = lab_rules.drawn_instant(
            line.drawn.strip() or today, timezone=ctx.settings.clinic_timezone, now=now
        )
        patient = _patient_for(session, principal, line.clinic_ref)
        stored = []
        recomputed: set[int] = set()
        for measurement in measurements:
            outcome = lab_service.store_measurement(
                session,
                patient=patient,
                measurement=measurement,
                drawn_at=drawn_at,
                source=lab_service.SOURCE_WEB,
                entered_by=principal.actor,
                now=now,
                window=lab_service.window(ctx),
                usage=False,
            )
            recomputed.update(outcome.recomputed)
            stored.append(
                StoredValue(
                    analyte=measurement.analyte,
                    value=measurement.value,
                    unit=measurement.unit,
                    value_mg_l=measurement.value_normalised,
                    below_detection_limit=measurement.below_detection_limit,
                    floored=outcome.lab.floored,
                    status=outcome.status,
                )
            )
    except LabInputError as error:
        return LineResult(number, line, reason=error.code, params=error.params)
    return LineResult(
        number,
        line,
        drawn_at=drawn_at,
        values=tuple(stored),
        completes=_completes(session, tuple(sorted(recomputed))),
    )


def enter(
    ctx: AppContext, *, principal: Principal, lines: list[EntryLine], confirm: bool
) -> EntryResult:
    """Previews (`confirm=False`) or stores the lines of the entry form, all in one
    transaction: a store with any refused line stores nothing, so a confirmed form is stored
    exactly as it was previewed or not at all."""
    filled = [line for line in lines if not line.blank][:MAX_LINES]
    if not filled:
        return EntryResult((LineResult(1, EntryLine(""), reason="values_missing"),), False)
    with ctx.session() as session:
        results = tuple(
            _enter_line(ctx, session, principal, number, line)
            for number, line in enumerate(filled, start=1)
        )
        keep = confirm and all(result.reason is None for result in results)
        if not keep:
            session.rollback()
        return EntryResult(results, keep)


def import_file(
    ctx: AppContext, *, principal: Principal, data: bytes, confirm: bool
) -> lab_service.ImportReport:
    """A lab file's dry-run report (`confirm=False`), or its import: good lines stored, each
    bad line reported with its reason. Raises `LabInputError` for a file that is no lab file."""
    return lab_service.import_lab_file(
        ctx,
        data=data,
        entered_by=principal.actor,
        dry_run=not confirm,
        allowed_physicians=principal.physicians_served,
    )


@dataclass(frozen=True)
class PatientLabs:
    clinic_ref: str
    values: tuple[lab_service.LabView, ...]


def patient_labs(ctx: AppContext, *, principal: Principal, clinic_ref: str) -> PatientLabs | None:
    """A patient's current lab values with the questionnaires each feeds, for fixing and
    deleting; None for an unknown reference or somebody else's patient. Showing a patient's
    values is recorded in the audit trail, like every page that shows a patient."""
    with ctx.session() as session:
        try:
            patient = _patient_for(session, principal, clinic_ref)
        except LabInputError:
            return None
        assert patient.id is not None
        audit.record_event(
            session=session,
            at=ctx.clock.now(),
            actor=principal.actor,
            entity="patient",
            entity_id=patient.id,
            patient_id=patient.id,
            action="view_labs",
        )
        return PatientLabs(
            clinic_ref=patient.clinic_ref,
            values=tuple(
                lab_service.view(session, lab, patient.clinic_ref)
                for lab in labs.list_lab_results(session=session, patient_id=patient.id)
            ),
        )


def _check_lab_access(ctx: AppContext, principal: Principal, lab_id: int) -> None:
    with ctx.session() as session:
        lab = labs.get_lab_result(session=session, lab_id=lab_id)
        patient = (
            None
            if lab is None
            else patients.get_patient(session=session, patient_id=lab.patient_id)
        )
        allowed = principal.physicians_served
        if (
            patient is None
            or patient.status == PatientStatus.DELETED.value
            or (allowed is not None and patient.physician_id not in allowed)
        ):
            raise LabInputError("lab_unknown", lab_id=lab_id)


def _reason(reason: str) -> str:
    text = reason.strip()[:500]
    if not text:
        raise LabInputError("reason_missing")
    return text


def fix(
    ctx: AppContext,
    *,
    principal: Principal,
    lab_id: int,
    value: str,
    unit: str,
    drawn: str,
    reason: str,
) -> lab_service.ChangeOutcome:
    """Corrects a value the reader may enter; the reason goes to the audit trail and every
    score that depended on it is recomputed (spec §4)."""
    why = _reason(reason)
    _check_lab_access(ctx, principal, lab_id)
    return lab_service.fix_lab_value(
        ctx,
        lab_id=lab_id,
        actor=principal.actor,
        value=value.strip() or None,
        unit=unit.strip() or None,
        drawn=drawn.strip() or None,
        reason=why,
    )


def delete(
    ctx: AppContext, *, principal: Principal, lab_id: int, reason: str
) -> lab_service.ChangeOutcome:
    """Withdraws a value from every score, with the reason in the audit trail (spec §4)."""
    why = _reason(reason)
    _check_lab_access(ctx, principal, lab_id)
    return lab_service.delete_lab_value(ctx, lab_id=lab_id, actor=principal.actor, reason=why)
