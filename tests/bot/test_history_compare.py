"""A follow-up compared with its baseline, as clinical spec §3 and §6 report change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bot.domain.scoring import AsdasChange
from bot.services.history import HistoryEntry, compare


def entry(basdai: str | None, asdas: str | None, kind: str | None = "CRP") -> HistoryEntry:
    return HistoryEntry(
        administration_id=1,
        completed_at=datetime(2026, 3, 2, tzinfo=UTC),
        kind="weekly",
        basdai=None if basdai is None else Decimal(basdai),
        asdas=None if asdas is None else Decimal(asdas),
        asdas_kind=kind if asdas is not None else None,
        crp_floored=False,
    )


class TestCompare:
    def test_published_case(self) -> None:
        """3.876 → 1.767 is a major improvement; BASDAI 3.8 → 1.4 meets both responses."""
        comparison = compare(entry("3.8", "3.876"), entry("1.4", "1.767"))
        assert comparison.asdas_change is AsdasChange.MAJOR_IMPROVEMENT
        assert comparison.basdai50 is True
        assert comparison.asas_eular_response is True

    def test_change_only_within_one_variant(self) -> None:
        """ASDAS-CRP is never compared with ASDAS-ESR."""
        comparison = compare(entry("5", "3.9", "CRP"), entry("4", "1.2", "ESR"))
        assert comparison.asdas_change is None

    def test_two_points_without_fifty_percent(self) -> None:
        """6 → 4 meets the ASAS/EULAR response (≥ 2 points) but not BASDAI50."""
        comparison = compare(entry("6", None), entry("4", None))
        assert (comparison.basdai50, comparison.asas_eular_response) == (False, True)
        assert comparison.asdas_change is None
