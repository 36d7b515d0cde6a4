"""`/crp` in the chat: a CRP (and ESR) a physician types is shown first, kept in
`pendinglabentry`, and stored through `bot.services.labs` (the one path for every entry route)
when they press "Save"."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import labs as lab_rules
from bot.domain import scoring
from bot.domain.labs import LabInputError, LabParam, Measurement
from bot.services import labs as lab_service
from bot.services.identifiers import identifier_of
from bot.services.physician_panel import (
    PENDING_TTL,
    LabLine,
    PendingOutcome,
    PreviewClaim,
    Viewer,
    lab_line,
    resolve_preview,
    state_of,
    viewer_of,
    visible_patient,
)
from storage import (
    administrations,
    labs,
    scores,
)
from storage.models import (
    PendingLabEntry,
)

logger = logging.getLogger(__name__)


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
    params: dict[str, LabParam] = field(default_factory=dict)
    clinic_ref: str = ""
    pending_id: int | None = None
    identifier: str = ""
    crp: LabLine | None = None
    crp_mg_l: Decimal | None = None
    esr: LabLine | None = None
    drawn_at: datetime | None = None


def _preview_line(measurement: Measurement, drawn_at: datetime) -> LabLine:
    floored = measurement.analyte == lab_rules.CRP and (
        measurement.below_detection_limit or measurement.value_normalised < scoring.CRP_FLOOR_MG_L
    )
    return LabLine(
        lab_id=0,
        analyte=measurement.analyte,
        value=measurement.value,
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
        patient = visible_patient(session, viewer, command.clinic_ref)
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
            crp_mg_l=command.crp.value_normalised,
            esr=None if command.esr is None else _preview_line(command.esr, drawn_at),
            drawn_at=drawn_at,
            language=viewer.language,
            timezone=viewer.timezone,
        )


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
    asdas_crp: Decimal | None = None
    asdas_crp_state: scoring.AsdasState | None = None
    reason: str | None = None
    params: dict[str, LabParam] = field(default_factory=dict)


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


def resolve_pending(
    ctx: AppContext, *, telegram_user_id: int, pending_id: int, save: bool
) -> PendingReply | None:
    """Saves or cancels a CRP preview; None if the account is not a physician.

    Only the physician who typed the entry can save it, and only while the patient is still
    theirs; a double tap or a second process saves once (`resolve_preview`).
    """
    return resolve_preview(
        ctx,
        telegram_user_id=telegram_user_id,
        model=PendingLabEntry,
        pending_id=pending_id,
        save=save,
        act=lambda session, viewer, claim, now: _resolve_entry(
            session, ctx, viewer, claim, pending_id=pending_id, save=save, now=now
        ),
        refusal=LabInputError,
        refused=lambda viewer, error: PendingReply(
            PendingOutcome.REFUSED,
            language=viewer.language,
            timezone=viewer.timezone,
            reason=error.code,
            params=error.params,
        ),
    )


def _resolve_entry(
    session: Session,
    ctx: AppContext,
    viewer: Viewer,
    claim: PreviewClaim[PendingLabEntry],
    *,
    pending_id: int,
    save: bool,
    now: datetime,
) -> PendingReply:
    """Stores the claimed entry's values (or only cancels it) and says what became of them."""
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
            for line in [lab_line(outcome.lab.lab_id, session)]
            if line is not None
        ),
        recomputed=len(recomputed),
        asdas_crp=crp_score,
        asdas_crp_state=state_of(crp_score),
        language=viewer.language,
        timezone=viewer.timezone,
    )
