"""Digests built in memory (no database), for rendering tests of any size."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from bot.domain import attention, scoring
from bot.services.digest import (
    CHART_WEEKS,
    Digest,
    IsoWeek,
    PatientLine,
    WeekStatus,
)

WEEK = IsoWeek(2026, 14)
TIMEZONE = "Europe/Berlin"
END = WEEK.end(TIMEZONE)


def line(
    index: int,
    *,
    identifier: str | None = None,
    basdai: list[str] | None = None,
    asdas: list[str | None] | None = None,
    unreachable: bool = False,
    missed: int = 0,
    crp: bool = True,
) -> PatientLine:
    """One patient's line judged by the real rules; scores are weekly, the last one this week."""
    basdai_values = [Decimal(v) for v in (basdai or ["2.0", "2.5"])]
    asdas_values = [
        None if v is None else Decimal(v) for v in (asdas or [None] * len(basdai_values))
    ]
    count = len(basdai_values)
    observations = [
        attention.Observation(
            at=END - timedelta(weeks=count - position, days=-1),
            basdai=basdai_values[position],
            asdas=asdas_values[position],
        )
        for position in range(count)
    ]
    facts = attention.PatientFacts(
        as_of=END,
        observations=observations,
        scheduled_missed=[False] * count + [True] * missed,
        unreachable_since=END - timedelta(days=9) if unreachable else None,
        last_crp_at=END - timedelta(days=3) if crp else None,
    )
    judged = attention.assess(facts, no_crp_weeks=12)
    latest_asdas = judged.latest_asdas
    return PatientLine(
        patient_id=index,
        identifier=identifier or f"MRN-{index:05d}",
        clinic_ref=f"MRN-{index:05d}",
        paused=False,
        basdai=None if judged.latest_basdai is None else judged.latest_basdai.basdai,
        basdai_at=None if judged.latest_basdai is None else judged.latest_basdai.at,
        basdai_active=judged.latest_basdai is not None
        and scoring.basdai_active(judged.latest_basdai.basdai or 0),
        basdai_change=(
            None
            if judged.previous_basdai is None or judged.latest_basdai is None
            else attention.difference(
                judged.latest_basdai.basdai or Decimal(0),
                judged.previous_basdai.basdai or Decimal(0),
            )
        ),
        asdas=None if latest_asdas is None else latest_asdas.asdas,
        asdas_state=(
            None
            if latest_asdas is None or latest_asdas.asdas is None
            else scoring.asdas_category(latest_asdas.asdas)
        ),
        asdas_at=None if latest_asdas is None else latest_asdas.at,
        asdas_change=None,
        trend=judged.trend,
        last_weeks=(WeekStatus.COMPLETED,) * (4 - min(missed, 4))
        + (WeekStatus.MISSED,) * min(missed, 4),
        concerns=judged.concerns,
        progress=judged.progress,
        history=tuple(observations[-CHART_WEEKS:]),
        severity=judged.severity_key(),
        asdas_variant=judged.variant,
        asdas_drawn_at=None if latest_asdas is None else latest_asdas.lab_at(judged.variant),
    )


def digest(lines: list[PatientLine], *, language: str = "en") -> Digest:
    """A digest of these lines, attention and improving sections derived as the service does."""
    return Digest(
        physician_id=1,
        language=language,
        timezone=TIMEZONE,
        email="lee@clinic.example",
        week=WEEK,
        first_day=WEEK.monday(),
        last_day=WEEK.sunday(),
        patients_active=len(lines),
        patients_paused=0,
        completed=len(lines),
        missed=0,
        pending=0,
        completion_rate=Fraction(1) if lines else None,
        attention=tuple(sorted((ln for ln in lines if ln.concerns), key=lambda ln: ln.severity)),
        improving=tuple(ln for ln in lines if ln.progress),
        patients=tuple(lines),
        no_crp_weeks=12,
    )


def mixed_panel(size: int, *, language: str = "en") -> Digest:
    """`size` patients: every fifth flaring, every seventh unreachable, some improving."""
    lines = []
    for index in range(1, size + 1):
        if index % 5 == 0:
            lines.append(line(index, basdai=["3.0", "5.5"], asdas=["2.0", "3.8"]))
        elif index % 7 == 0:
            lines.append(line(index, unreachable=True, missed=3))
        elif index % 11 == 0:
            lines.append(line(index, basdai=["7.0", "5.0", "3.0"], asdas=["4.2", None, "2.0"]))
        else:
            lines.append(line(index))
    return digest(lines, language=language)
