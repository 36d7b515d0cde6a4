"""`/therapy <reference> add|stop` in the chat: the episode a physician types is shown first,
kept in `pendingtherapychange`, and stored through `bot.services.therapy` (audited like the
command line) when they press "Save"."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.context import AppContext
from bot.domain import treatment
from bot.domain.treatment import TherapyInputError
from bot.services import therapy as therapy_service
from bot.services.identifiers import identifier_of
from bot.services.physician_panel import (
    PENDING_TTL,
    PendingOutcome,
    PreviewClaim,
    Viewer,
    resolve_preview,
    viewer_of,
    visible_patient,
)
from storage import (
    therapies,
)
from storage.models import (
    Patient,
    PendingTherapyChange,
)

logger = logging.getLogger(__name__)


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
        patient = visible_patient(session, viewer, args[0] if args else "")
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
            episode=therapy_service.columns_of(episode),
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

    As with `/crp`, the episode is stored and audited in the transaction that claims the
    preview (`resolve_preview`), so a double tap, a second process or a restart stores it
    once; only the physician who typed it can save it, and only while the patient is still
    theirs (or they are an admin).
    """
    return resolve_preview(
        ctx,
        telegram_user_id=telegram_user_id,
        model=PendingTherapyChange,
        pending_id=pending_id,
        save=save,
        act=lambda session, viewer, claim, now: _resolve_change(
            session, viewer, claim, pending_id=pending_id, save=save, now=now
        ),
        refusal=TherapyInputError,
        refused=lambda viewer, error: TherapyPendingReply(
            PendingOutcome.REFUSED, viewer.language, reason=error.code, params=error.params
        ),
    )


def _resolve_change(
    session: Session,
    viewer: Viewer,
    claim: PreviewClaim[PendingTherapyChange],
    *,
    pending_id: int,
    save: bool,
    now: datetime,
) -> TherapyPendingReply:
    """Stores the claimed change (or only cancels it) and says what became of it."""
    entry, patient, identifier = claim.entry, claim.patient, claim.identifier
    if entry is None or patient is None:
        return TherapyPendingReply(PendingOutcome.GONE, viewer.language, identifier=identifier)
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
