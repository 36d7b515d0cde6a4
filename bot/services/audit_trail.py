"""The audit trail: a patient's row changed by a service, and as admins read it in the web
app: who did what to which patient, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlmodel import Session

from bot.context import AppContext
from storage import audit, patients, staff_accounts
from storage.models import Patient

PAGE_SIZE: Final = 100

Values = tuple[dict[str, Any] | None, dict[str, Any] | None]
"""A change's values before and after (None for a row created, or a step with no values)."""


def record_change(
    session: Session,
    entity: str,
    entity_id: int | None,
    patient: Patient,
    *,
    actor: str,
    action: str,
    values: Values,
    now: datetime,
) -> None:
    """One line of the audit trail for a patient's row, in the caller's transaction."""
    audit.record_event(
        session=session,
        at=now,
        actor=actor,
        entity=entity,
        entity_id=entity_id,
        patient_id=patient.id,
        action=action,
        before=values[0],
        after=values[1],
    )


@dataclass(frozen=True)
class EventRow:
    """One event; `who` names a web account by e-mail, other actors as recorded
    (physician:<id> in Telegram, the CLI user, the patient's own account)."""

    event_id: int
    at: datetime
    who: str
    entity: str
    entity_id: int | None
    action: str
    clinic_ref: str | None
    before: str | None
    after: str | None


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[EventRow, ...]
    clinic_ref: str
    unknown_ref: bool
    older_than: int | None


def recent(ctx: AppContext, *, clinic_ref: str = "", before_id: int | None = None) -> AuditPage:
    """The newest events (a page of `PAGE_SIZE`), optionally of one patient."""
    ref = clinic_ref.strip()[:64]
    with ctx.session() as session:
        patient_id = None
        if ref:
            patient = patients.get_patient_by_ref(session=session, clinic_ref=ref)
            if patient is None or patient.id is None:
                return AuditPage((), ref, True, None)
            patient_id = patient.id
        events = audit.recent_events(
            session=session, limit=PAGE_SIZE, patient_id=patient_id, before_id=before_id
        )
        refs: dict[int, str] = {}
        emails: dict[str, str] = {}
        rows = []
        for event in events:
            assert event.id is not None
            ref_of = None
            if event.patient_id is not None:
                if event.patient_id not in refs:
                    found = patients.get_patient(session=session, patient_id=event.patient_id)
                    refs[event.patient_id] = "" if found is None else found.clinic_ref
                ref_of = refs[event.patient_id] or None
            who = event.actor
            if who.startswith("staff:") and who[6:].isdigit():
                if who not in emails:
                    account = staff_accounts.get_account(session=session, account_id=int(who[6:]))
                    emails[who] = who if account is None else account.email
                who = emails[who]
            rows.append(
                EventRow(
                    event_id=event.id,
                    at=event.at,
                    who=who,
                    entity=event.entity,
                    entity_id=event.entity_id,
                    action=event.action,
                    clinic_ref=ref_of,
                    before=event.before,
                    after=event.after,
                )
            )
        older = rows[-1].event_id if len(rows) == PAGE_SIZE else None
        return AuditPage(tuple(rows), ref, False, older)
