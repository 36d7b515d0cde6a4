"""Test data created through the real services, so it cannot drift from production writes."""

from __future__ import annotations

from itertools import count

from bot.context import AppContext
from bot.services import staff

_refs = count(1)


def make_physician(
    ctx: AppContext, *, name: str = "Dr. Test", language: str = "en", timezone: str | None = None
) -> staff.PhysicianCreated:
    """A physician created as the CLI would."""
    return staff.add_physician(ctx, display_name=name, language=language, timezone=timezone)


def make_patient(
    ctx: AppContext,
    *,
    physician_id: int,
    ref: str | None = None,
    name: str | None = None,
    language: str = "en",
    timezone: str | None = None,
) -> staff.PatientCreated:
    """A patient created as the CLI would, with a fresh enrollment code."""
    return staff.add_patient(
        ctx,
        physician_id=physician_id,
        clinic_ref=ref or f"MRN-{next(_refs):05d}",
        display_name=name,
        language=language,
        timezone=timezone,
    )
