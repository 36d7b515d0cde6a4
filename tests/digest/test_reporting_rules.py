"""The digest follows the reporting rules of clinical spec §6: ASDAS-ESR counts, every ASDAS is
dated by its lab value, and the ASAS/EULAR BASDAI response is reported beside BASDAI50."""

from __future__ import annotations

from datetime import timedelta

from bot.context import AppContext
from bot.domain.attention import Concern, Progress, Variant
from bot.domain.scoring import AsdasState
from bot.present.digest.text import render_digest
from bot.present.render import default_renderer
from bot.services.digest import build_digest
from tests.digest import builders as b
from tests.digest.test_service import line_of, slot


def _text(ctx: AppContext, doctor: int) -> str:
    digest = build_digest(ctx, physician_id=doctor)
    assert digest is not None
    return "\n".join(render_digest(digest, default_renderer(), charts=False).messages)


class TestAsdasEsrCounts:
    def test_patient_with_only_esr_is_judged_on_asdas_esr(self, ctx: AppContext) -> None:
        """Only ESR values: state and attention from ASDAS-ESR, labelled, never "no ASDAS"."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.esr(ctx, who, slot(), 81)
        b.completed(ctx, who, slot(), item=6)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.asdas_variant is Variant.ESR
        assert line.asdas is not None
        assert line.asdas_state is AsdasState.VERY_HIGH
        assert [(f.kind, f.variant) for f in line.concerns if f.kind.startswith("asdas")] == [
            (Concern.ASDAS_VERY_HIGH, Variant.ESR)
        ]
        assert Concern.NO_RECENT_CRP not in [flag.kind for flag in line.concerns]
        text = _text(ctx, doctor)
        assert "very high disease activity (ASDAS-ESR" in text
        assert "ASDAS-ESR <b>" in text
        assert "no ASDAS" not in text

    def test_esr_only_worsening_is_flagged_within_esr(self, ctx: AppContext) -> None:
        """An ASDAS-ESR rise of ≥ 0.9 is a clinically important worsening."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.esr(ctx, who, slot(1), 4)
        b.completed(ctx, who, slot(1), item=1)
        b.esr(ctx, who, slot(), 49)
        b.completed(ctx, who, slot(), item=4)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        kinds = [flag.kind for flag in line_of(digest, who).concerns]
        assert Concern.ASDAS_WORSENING in kinds

    def test_change_never_mixes_crp_and_esr(self, ctx: AppContext) -> None:
        """An ASDAS-ESR two weeks ago and an ASDAS-CRP now are not compared with each other."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.esr(ctx, who, slot(2), 4)
        b.completed(ctx, who, slot(2), item=1)
        b.crp(ctx, who, slot(), 60)
        b.completed(ctx, who, slot(), item=4)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.asdas_variant is Variant.CRP
        assert line.asdas_change is None
        assert Concern.ASDAS_WORSENING not in [flag.kind for flag in line.concerns]

    def test_with_both_crp_drives_and_esr_is_shown(self, ctx: AppContext) -> None:
        """CRP and ESR from the same draw: ASDAS-CRP drives the flags, ASDAS-ESR is shown too."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, slot(), 60)
        b.esr(ctx, who, slot(), 4)
        b.completed(ctx, who, slot(), item=4)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.asdas_variant is Variant.CRP
        assert line.asdas_esr is not None
        text = _text(ctx, doctor)
        assert "ASDAS-CRP <b>" in text
        assert "ASDAS-ESR <b>" in text


class TestAsdasIsDated:
    def test_every_asdas_shows_the_date_of_its_lab_value(self, ctx: AppContext) -> None:
        """The line and the attention reason name the day the CRP was drawn."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        drawn = slot() - timedelta(days=3)
        b.crp(ctx, who, drawn, 60)
        b.completed(ctx, who, slot(), item=6)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        line = line_of(digest, who)
        assert line.asdas_drawn_at == drawn
        (very_high,) = [f for f in line.concerns if f.kind is Concern.ASDAS_VERY_HIGH]
        assert very_high.drawn_at == drawn
        text = _text(ctx, doctor)
        assert "lab 20 Feb 2026)" in text
        assert "very high disease activity, lab 20 Feb 2026" in text

    def test_asdas_is_current_only_while_its_lab_value_is(self, ctx: AppContext) -> None:
        """A questionnaire inside the 12 weeks whose CRP was drawn before them is history."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, slot(11, days=-4), 100)
        b.completed(ctx, who, slot(11, days=1), item=8)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        kinds = [flag.kind for flag in line_of(digest, who).concerns]
        assert Concern.ASDAS_VERY_HIGH not in kinds
        assert Concern.NO_RECENT_CRP in kinds


class TestAsasEularResponse:
    def test_two_points_without_halving_is_asas_eular_only(self, ctx: AppContext) -> None:
        """BASDAI 6 → 4: the ASAS/EULAR response is met, BASDAI50 is not."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, slot(), 1)
        b.completed(ctx, who, slot(20), item=6)
        b.completed(ctx, who, slot(), item=4)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        kinds = [flag.kind for flag in line_of(digest, who).progress]
        assert kinds == [Progress.BASDAI_ASAS_EULAR]
        text = _text(ctx, doctor)
        assert "ASAS/EULAR BASDAI response met" in text
        assert "BASDAI50 reached" not in text

    def test_halving_reports_both_under_their_own_names(self, ctx: AppContext) -> None:
        """BASDAI 6 → 3: BASDAI50 and the ASAS/EULAR response, side by side."""
        doctor = b.physician(ctx)
        who = b.patient(ctx, doctor)
        b.crp(ctx, who, slot(), 1)
        b.completed(ctx, who, slot(20), item=6)
        b.completed(ctx, who, slot(), item=3)
        digest = build_digest(ctx, physician_id=doctor)
        assert digest is not None
        kinds = [flag.kind for flag in line_of(digest, who).progress]
        assert kinds == [Progress.BASDAI50, Progress.BASDAI_ASAS_EULAR]
        text = _text(ctx, doctor)
        assert "BASDAI50 reached" in text
        assert "ASAS/EULAR BASDAI response met" in text
