"""Which lab value belongs to which questionnaire (clinical spec §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LabCandidate:
    """A lab value reduced to what matching needs."""

    lab_id: int
    drawn_at: datetime


def nearest_lab(
    candidates: list[LabCandidate], completed_at: datetime, window: timedelta
) -> LabCandidate | None:
    """The lab drawn nearest to the questionnaire's completion within ±window.

    Clinical spec §4: nearest in time within the window (default ±7 days); on a tie, the earlier
    sample; and, for two samples drawn at the same instant, the one entered first (lower id), so
    the choice is deterministic.
    """
    in_window = [c for c in candidates if abs(c.drawn_at - completed_at) <= window]
    if not in_window:
        return None
    return min(in_window, key=lambda c: (abs(c.drawn_at - completed_at), c.drawn_at, c.lab_id))
