"""The physician's account: who may see and enter what, the patient list, and CRP entry in chat."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.clock import FixedClock
from bot.config import PatientIdentifier
from bot.context import AppContext
from bot.domain.scoring import AsdasState
from bot.present.render import default_renderer
from bot.present.screens import lab_refusal, rounded
from bot.services import crp_entry, enrollment, labs, physician_panel, staff
from bot.services.crp_entry import CrpOutcome
from bot.services.physician_panel import Lookup, PendingOutcome
from storage import patients, pending
from storage.models import PendingLabEntry
from tests.factories import make_patient
from tests.labs.conftest import Clinic, questionnaire, score_of

DR_A, DR_B, ADMIN, PATIENT, STRANGER = 1001, 1002, 1003, 2001, 3001
DONE = datetime(2026, 2, 20, 18, 0, tzinfo=UTC)


def link(ctx: AppContext, account: int, code: str) -> None:
    result = enrollment.enroll(
        ctx, telegram_user_id=account, chat_id=account, code_text=code, language="en"
    )
    assert result.outcome in (
        enrollment.Outcome.PHYSICIAN_LINKED,
        enrollment.Outcome.PATIENT_LINKED,
    )


@pytest.fixture
def linked(ctx: AppContext, clinic: Clinic) -> Clinic:
    """Dr A, Dr B, a clinic admin and the patient MRN-0001 have linked their accounts."""
    link(ctx, DR_A, clinic.codes["dr_a"])
    link(ctx, DR_B, clinic.codes["dr_b"])
    admin = staff.add_physician(ctx, display_name="Admin", admin=True)
    link(ctx, ADMIN, admin.code.code)
    link(ctx, PATIENT, clinic.codes["MRN-0001"])
    return clinic


def pending_rows(ctx: AppContext, entry_id: int) -> str | None:
    with ctx.session() as session:
        entry = pending.get_pending(session=session, model=PendingLabEntry, row_id=entry_id)
    return None if entry is None else entry.status


def preview(ctx: AppContext, account: int, *args: str) -> crp_entry.CrpPreview:
    found = crp_entry.preview_crp(ctx, telegram_user_id=account, args=list(args))
    assert found is not None
    return found


class TestNotAPhysician:
    @pytest.mark.parametrize("account", [PATIENT, STRANGER])
    def test_every_physician_function_answers_none(
        self, ctx: AppContext, linked: Clinic, account: int
    ) -> None:
        """A patient or an unknown account gets None from every physician function, whether
        the reference exists or not, and nothing is kept."""
        assert physician_panel.patient_list(ctx, telegram_user_id=account) is None
        for ref in ("MRN-0001", "MRN-9999"):
            assert (
                physician_panel.patient_detail(ctx, telegram_user_id=account, clinic_ref=ref)
                is None
            )
            assert crp_entry.preview_crp(ctx, telegram_user_id=account, args=[ref, "7"]) is None
        assert pending_rows(ctx, 1) is None

    @pytest.mark.parametrize("account", [PATIENT, STRANGER])
    def test_cannot_press_a_physicians_save_button(
        self, ctx: AppContext, linked: Clinic, account: int
    ) -> None:
        """A forged Save press from a non-physician is refused and the entry stays pending."""
        entry = preview(ctx, DR_A, "MRN-0001", "7.59").pending_id
        assert entry is not None
        assert (
            crp_entry.resolve_pending(ctx, telegram_user_id=account, pending_id=entry, save=True)
            is None
        )
        assert pending_rows(ctx, entry) == "pending"
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []


class TestOtherPhysiciansPatients:
    def test_list_shows_only_own_patients(self, ctx: AppContext, linked: Clinic) -> None:
        """Dr A sees MRN-0001 and MRN-0002, Dr B only MRN-0003; the admin sees all three."""

        def refs(account: int) -> list[str]:
            found = physician_panel.patient_list(ctx, telegram_user_id=account)
            assert found is not None
            return [row.clinic_ref for row in found.rows]

        assert refs(DR_A) == ["MRN-0001", "MRN-0002"]
        assert refs(DR_B) == ["MRN-0003"]
        assert refs(ADMIN) == ["MRN-0001", "MRN-0002", "MRN-0003"]

    def test_someone_elses_patient_looks_like_no_patient(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """Dr B asking for Dr A's patient gets exactly the answer for a reference that does
        not exist."""
        foreign = physician_panel.patient_detail(ctx, telegram_user_id=DR_B, clinic_ref="MRN-0001")
        missing = physician_panel.patient_detail(ctx, telegram_user_id=DR_B, clinic_ref="MRN-0404")
        assert foreign is not None
        assert missing is not None
        assert (foreign.outcome, foreign.detail) == (missing.outcome, missing.detail)
        assert foreign.outcome is Lookup.NO_PATIENT
        crp_foreign = preview(ctx, DR_B, "MRN-0001", "7")
        crp_missing = preview(ctx, DR_B, "MRN-0404", "7")
        assert crp_foreign.outcome is crp_missing.outcome is CrpOutcome.NO_PATIENT
        assert crp_foreign.pending_id is crp_missing.pending_id is None

    def test_admin_sees_and_enters_for_everyone(self, ctx: AppContext, linked: Clinic) -> None:
        """A clinic admin sees any patient and saves a CRP for any patient."""
        detail = physician_panel.patient_detail(ctx, telegram_user_id=ADMIN, clinic_ref="MRN-0003")
        assert detail is not None
        assert detail.outcome is Lookup.FOUND
        entry = preview(ctx, ADMIN, "MRN-0003", "7.59").pending_id
        assert entry is not None
        saved = crp_entry.resolve_pending(ctx, telegram_user_id=ADMIN, pending_id=entry, save=True)
        assert saved is not None
        assert saved.outcome is PendingOutcome.SAVED

    def test_another_physicians_save_button_is_gone(self, ctx: AppContext, linked: Clinic) -> None:
        """Dr B pressing Save on Dr A's pending entry changes nothing."""
        entry = preview(ctx, DR_A, "MRN-0001", "7.59").pending_id
        assert entry is not None
        reply = crp_entry.resolve_pending(ctx, telegram_user_id=DR_B, pending_id=entry, save=True)
        assert reply is not None
        assert reply.outcome is PendingOutcome.GONE
        assert pending_rows(ctx, entry) == "pending"

    def test_a_patient_moved_away_can_no_longer_be_saved(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """A deleted patient's pending entry cannot be saved."""
        entry = preview(ctx, DR_A, "MRN-0002", "7.59").pending_id
        assert entry is not None
        with ctx.session() as session:
            patient = patients.get_patient(session=session, patient_id=linked.patient_2)
            assert patient is not None
            patient.status = "deleted"
            patients.save_patient(session=session, patient=patient)
        reply = crp_entry.resolve_pending(ctx, telegram_user_id=DR_A, pending_id=entry, save=True)
        assert reply is not None
        assert reply.outcome is PendingOutcome.GONE


class TestPatientList:
    def test_scores_states_and_awaiting_crp(self, ctx: AppContext, linked: Clinic) -> None:
        """The latest BASDAI and ASDAS-CRP come exact as stored with the state (shown with one
        decimal); a patient whose latest questionnaire has no CRP is marked awaiting CRP."""
        questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="cli:x", crp="7.59"
        )
        questionnaire(ctx, patient_id=linked.patient_2, completed_at=DONE)
        found = physician_panel.patient_list(ctx, telegram_user_id=DR_A)
        assert found is not None
        first, second = found.rows
        assert first.basdai == Decimal("1.325")
        assert (rounded(first.basdai), rounded(first.asdas_crp)) == (Decimal("1.3"), Decimal("1.8"))
        assert first.asdas_state is AsdasState.LOW
        assert not first.awaiting_crp
        assert (second.asdas_crp, second.awaiting_crp) == (None, True)
        assert "awaiting_crp" in second.flags
        assert "no_recent_crp" in second.flags

    def test_floor_is_reported(self, ctx: AppContext, linked: Clinic) -> None:
        """An ASDAS-CRP computed with the 2 mg/L floor says so."""
        questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="cli:x", crp="<0.5"
        )
        found = physician_panel.patient_list(ctx, telegram_user_id=DR_A)
        assert found is not None
        assert found.rows[0].crp_floored

    def test_paging(self, ctx: AppContext, linked: Clinic) -> None:
        """Ten patients make two pages of eight and two; a page past the end shows the last."""
        for number in range(8):
            make_patient(ctx, physician_id=linked.physician_a, ref=f"MRN-1{number:03d}")
        first = physician_panel.patient_list(ctx, telegram_user_id=DR_A, page=0)
        last = physician_panel.patient_list(ctx, telegram_user_id=DR_A, page=7)
        assert first is not None
        assert last is not None
        assert (first.total, first.pages, len(first.rows)) == (10, 2, 8)
        assert (last.page, [row.clinic_ref for row in last.rows]) == (1, ["MRN-1006", "MRN-1007"])

    def test_display_names_only_when_the_clinic_opts_in(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """Patients are named by clinic reference, or by display name when configured."""
        found = physician_panel.patient_list(ctx, telegram_user_id=DR_A)
        assert found is not None
        assert found.rows[0].identifier == "MRN-0001"
        settings = ctx.settings.model_copy(
            update={"patient_identifier": PatientIdentifier.DISPLAY_NAME}
        )
        found = physician_panel.patient_list(replace(ctx, settings=settings), telegram_user_id=DR_A)
        assert found is not None
        assert [row.identifier for row in found.rows] == ["Ana Ortiz", "MRN-0002"]


class TestCrpEntry:
    def test_preview_stores_nothing_until_saved(self, ctx: AppContext, linked: Clinic) -> None:
        """/crp only previews; Save stores the value as entered by that physician and
        completes the ASDAS of the questionnaire in the window."""
        administration = questionnaire(ctx, patient_id=linked.patient_1, completed_at=DONE)
        shown = preview(ctx, DR_A, "MRN-0001", "0,759", "mg/dL", "2026-02-19", "esr", "12")
        assert shown.outcome is CrpOutcome.PREVIEW
        assert shown.crp_mg_l == Decimal("7.59")
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []
        assert shown.pending_id is not None
        saved = crp_entry.resolve_pending(
            ctx, telegram_user_id=DR_A, pending_id=shown.pending_id, save=True
        )
        assert saved is not None
        assert (saved.outcome, saved.recomputed, rounded(saved.asdas_crp)) == (
            PendingOutcome.SAVED,
            1,
            Decimal("1.8"),
        )
        crp, esr = labs.list_lab_values(ctx, clinic_ref="MRN-0001")
        assert (crp.entered_by, crp.source, crp.unit) == (
            f"physician:{linked.physician_a}",
            "chat",
            "mg/dL",
        )
        assert esr.analyte == "esr"
        assert score_of(ctx, administration).asdas_crp_lab_id == crp.lab_id

    def test_a_second_press_saves_nothing_more(self, ctx: AppContext, linked: Clinic) -> None:
        """Save pressed twice stores once; the second press finds the entry gone."""
        entry = preview(ctx, DR_A, "MRN-0001", "7.59").pending_id
        assert entry is not None
        replies = [
            crp_entry.resolve_pending(ctx, telegram_user_id=DR_A, pending_id=entry, save=True)
            for _ in range(2)
        ]
        assert [reply.outcome for reply in replies if reply] == [
            PendingOutcome.SAVED,
            PendingOutcome.GONE,
        ]
        assert len(labs.list_lab_values(ctx, clinic_ref="MRN-0001")) == 1

    def test_cancel_stores_nothing(self, ctx: AppContext, linked: Clinic) -> None:
        """Cancel closes the entry; a later Save finds it gone."""
        entry = preview(ctx, DR_A, "MRN-0001", "7.59").pending_id
        assert entry is not None
        cancelled = crp_entry.resolve_pending(
            ctx, telegram_user_id=DR_A, pending_id=entry, save=False
        )
        late = crp_entry.resolve_pending(ctx, telegram_user_id=DR_A, pending_id=entry, save=True)
        assert cancelled is not None
        assert late is not None
        assert (cancelled.outcome, late.outcome) == (PendingOutcome.CANCELLED, PendingOutcome.GONE)
        assert labs.list_lab_values(ctx, clinic_ref="MRN-0001") == []

    def test_an_old_preview_expires(self, ctx: AppContext, linked: Clinic) -> None:
        """A preview older than a day can no longer be saved."""
        entry = preview(ctx, DR_A, "MRN-0001", "7.59").pending_id
        assert entry is not None
        assert isinstance(ctx.clock, FixedClock)
        ctx.clock.advance(physician_panel.PENDING_TTL + timedelta(seconds=1))
        reply = crp_entry.resolve_pending(ctx, telegram_user_id=DR_A, pending_id=entry, save=True)
        assert reply is not None
        assert reply.outcome is PendingOutcome.GONE

    def test_a_conflicting_value_is_refused_and_left_pending(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """Saving a different CRP for a sample already stored is refused; nothing changes."""
        labs.add_lab_values(
            ctx, clinic_ref="MRN-0001", drawn="2026-02-19", entered_by="cli:x", crp="7.59"
        )
        entry = preview(ctx, DR_A, "MRN-0001", "8", "2026-02-19").pending_id
        assert entry is not None
        reply = crp_entry.resolve_pending(ctx, telegram_user_id=DR_A, pending_id=entry, save=True)
        assert reply is not None
        assert (reply.outcome, reply.reason) == (PendingOutcome.REFUSED, "same_sample_differs")
        assert pending_rows(ctx, entry) == "pending"
        (only,) = labs.list_lab_values(ctx, clinic_ref="MRN-0001")
        assert str(only.value) == "7.59"
        assert reply.params == {"lab_id": only.lab_id, "stored": Decimal("7.59"), "unit": "mg/L"}
        german = lab_refusal(default_renderer(), "de", reply.reason, reply.params)
        assert f"(7,59 mg/L, Labor {only.lab_id})" in german

    def test_without_a_date_it_is_today_noon_clinic_time(
        self, ctx: AppContext, linked: Clinic
    ) -> None:
        """A CRP without a date is drawn today at 12:00 clinic time, as on every route."""
        shown = preview(ctx, DR_A, "MRN-0001", "7.59")
        assert shown.drawn_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("args", "reason"),
        [
            ((), "crp_usage"),
            (("MRN-0001", "seven"), "value_not_a_number"),
            (("MRN-0001", "7", "2099-01-01"), "date_future"),
            (("MRN-0001", "700"), "crp_implausible"),
        ],
    )
    def test_bad_entries_are_explained(
        self, ctx: AppContext, linked: Clinic, args: tuple[str, ...], reason: str
    ) -> None:
        """Unreadable or implausible entries are refused with the same reasons as the CLI."""
        shown = preview(ctx, DR_A, *args)
        assert (shown.outcome, shown.reason) == (CrpOutcome.INVALID, reason)
        assert shown.pending_id is None
