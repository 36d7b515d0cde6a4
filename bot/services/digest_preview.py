"""The weekly digest as the web app shows it: this week's as it will be sent, and earlier ones.

A physician reads their own digests, an admin any physician's; the digest is built by the
same service that sends it (`bot.services.digest.build_digest`), for the week asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bot.context import AppContext
from bot.services import digest as digest_service
from bot.services.accounts import PhysicianChoice, Principal, StaffRole
from bot.services.digest import Digest, IsoWeek
from storage import audit, physicians

WEEKS_BACK: Final = 12
"""Earlier weeks offered on the page."""


@dataclass(frozen=True)
class DigestPreview:
    physician_id: int | None
    week: IsoWeek
    weeks: tuple[IsoWeek, ...]
    physicians: tuple[PhysicianChoice, ...]
    digest: Digest | None


def preview(
    ctx: AppContext, *, principal: Principal, physician_id: int | None, week: str | None
) -> DigestPreview | None:
    """The digest of the physician and week asked (default: the reader's own, the week the
    next digest covers); None for a physician the reader may not read."""
    with ctx.session() as session:
        doctors = [
            PhysicianChoice(doctor.id, doctor.display_name)
            for doctor in physicians.list_physicians(session=session)
            if doctor.id is not None
        ]
        zone = {
            doctor.id: doctor.timezone
            for doctor in physicians.list_physicians(session=session)
            if doctor.id is not None
        }
    if principal.role is StaffRole.ADMIN:
        allowed = doctors
        chosen = (
            physician_id
            if physician_id is not None
            else (doctors[0].physician_id if doctors else None)
        )
    else:
        allowed = [d for d in doctors if d.physician_id == principal.physician_id]
        chosen = principal.physician_id if physician_id in (None, principal.physician_id) else -1
    if chosen is None:
        current = digest_service.covered_week(ctx.clock.now(), ctx.settings.clinic_timezone)
        return DigestPreview(None, current, (), tuple(allowed), None)
    if chosen not in zone or all(d.physician_id != chosen for d in allowed):
        return None
    current = digest_service.covered_week(ctx.clock.now(), zone[chosen])
    weeks = [current]
    for _ in range(WEEKS_BACK):
        weeks.append(weeks[-1].previous())
    try:
        asked = IsoWeek.parse(week) if week else current
    except ValueError:
        asked = current
    if asked not in weeks:
        asked = current
    built = digest_service.build_digest(ctx, physician_id=chosen, week=asked)
    with ctx.session() as session:
        # The digest names the physician's patients: who read it, and when, is recorded.
        audit.record_event(
            session=session,
            at=ctx.clock.now(),
            actor=principal.actor,
            entity="digest",
            entity_id=chosen,
            action="view",
            after={"week": str(asked)},
        )
    return DigestPreview(chosen, asked, tuple(weeks), tuple(allowed), built)
