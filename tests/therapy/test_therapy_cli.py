"""`spondybot therapy …`: episodes stored, stopped, corrected and listed; every change audited."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from bot.context import AppContext
from bot.services import therapy
from storage import audit, patients, therapies
from storage.models import AuditEvent
from tests.therapy.conftest import Clinic, invoke

ADD_UPA = (
    "therapy", "add", "--patient", "MRN-0001", "--drug", "upadacitinib",
    "--class", "JAK-inhibitor", "--dose", "15 mg daily", "--start", "2025-03-03",
)  # fmt: skip


def events(ctx: AppContext, therapy_id: int) -> list[AuditEvent]:
    with ctx.session() as session:
        return audit.list_events(session=session, entity="therapy", entity_id=therapy_id)


def stored(ctx: AppContext, ref: str = "MRN-0001") -> list[therapy.TherapyView]:
    return therapy.list_therapies(ctx, clinic_ref=ref)


class TestAdd:
    def test_stores_audits_and_reports(self, cli: Path, ctx: AppContext) -> None:
        """`therapy add` stores the episode, says what it stored, and audits it."""
        code, out, err = invoke(*ADD_UPA)
        assert code == 0, err
        (view,) = stored(ctx)
        assert out.strip() == (
            f"stored episode {view.therapy_id} for MRN-0001: upadacitinib 15 mg daily "
            "(JAK inhibitor), 2025-03-03 → ongoing"
        )
        assert (view.drug, view.therapy_class.value, view.start) == (
            "upadacitinib", "jak_inhibitor", date(2025, 3, 3),
        )  # fmt: skip
        assert view.therapy_id is not None
        (event,) = events(ctx, view.therapy_id)
        assert event.action == "add"
        assert event.actor.startswith("cli")
        assert json.loads(event.after or "{}")["drug"] == "upadacitinib"

    def test_dry_run_writes_nothing(self, cli: Path, ctx: AppContext) -> None:
        code, out, _ = invoke(*ADD_UPA, "--dry-run")
        assert code == 0
        assert out.startswith("would store for MRN-0001 (nothing written): upadacitinib")
        assert stored(ctx) == []

    def test_json(self, cli: Path, ctx: AppContext) -> None:
        code, out, _ = invoke(*ADD_UPA, "--json")
        assert code == 0
        data = json.loads(out)
        assert data["dry_run"] is False
        assert data["therapy"]["therapy_class"] == "jak_inhibitor"
        assert data["therapy"]["dose"] == "15 mg daily"

    def test_overlapping_episodes_make_a_combination(self, cli: Path, ctx: AppContext) -> None:
        """Two open episodes are both kept (adalimumab, then upadacitinib added)."""
        invoke("therapy", "add", "--patient", "MRN-0001", "--drug", "adalimumab",
               "--class", "tnf_inhibitor", "--start", "2024-06-03")  # fmt: skip
        invoke(*ADD_UPA)
        assert [(v.drug, v.stop) for v in stored(ctx)] == [
            ("adalimumab", None), ("upadacitinib", None),
        ]  # fmt: skip

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--class", "biologic"], "unknown class “biologic”"),
            (["--start", "03/03/2025"], "“03/03/2025” is not a date"),
            (["--start", "2999-01-01"], "2999-01-01 is in the future"),
            (["--stop", "2025-01-01", "--stop-reason", "inefficacy"],
             "the stop (2025-01-01) is before the start (2025-03-03)"),
            (["--stop", "2025-04-01"], "a stop date needs a stop reason"),
            (["--stop-reason", "inefficacy"], "a stop reason needs a stop date"),
            (["--patient", "MRN-9999"], "no patient with reference “MRN-9999”"),
        ],
    )  # fmt: skip
    def test_refusals_are_one_line_and_write_nothing(
        self, cli: Path, ctx: AppContext, args: list[str], message: str
    ) -> None:
        base = {
            "--patient": "MRN-0001", "--drug": "upadacitinib", "--class": "jak_inhibitor",
            "--start": "2025-03-03",
        }  # fmt: skip
        extra: list[str] = []
        for flag, value in zip(args[::2], args[1::2], strict=True):
            if flag in base:
                base[flag] = value
            else:
                extra += [flag, value]
        flat = [part for pair in base.items() for part in pair]
        code, _, err = invoke("therapy", "add", *flat, *extra)
        assert code == 2
        (line,) = err.strip().splitlines()
        assert line.startswith("error: ")
        assert message in line
        assert stored(ctx) == []


class TestStopAndFix:
    def added(self, ctx: AppContext) -> int:
        invoke(*ADD_UPA)
        (view,) = stored(ctx)
        assert view.therapy_id is not None
        return view.therapy_id

    def test_stop_records_date_and_reason(self, cli: Path, ctx: AppContext) -> None:
        therapy_id = self.added(ctx)
        code, out, err = invoke(
            "therapy", "stop", str(therapy_id), "--on", "2025-09-01", "--reason", "adverse event"
        )
        assert code == 0, err
        assert "2025-03-03 → 2025-09-01 (adverse event)" in out
        (view,) = stored(ctx)
        assert (view.stop, view.stop_reason) == (date(2025, 9, 1), "adverse_event")
        assert [e.action for e in events(ctx, therapy_id)] == ["add", "stop"]

    def test_second_stop_is_refused(self, cli: Path, ctx: AppContext) -> None:
        """A stopped episode is corrected with `fix`, never silently stopped again."""
        therapy_id = self.added(ctx)
        invoke("therapy", "stop", str(therapy_id), "--on", "2025-09-01", "--reason", "other")
        code, _, err = invoke(
            "therapy", "stop", str(therapy_id), "--on", "2025-10-01", "--reason", "other"
        )
        assert code == 2
        assert "already stopped on 2025-09-01" in err
        assert stored(ctx)[0].stop == date(2025, 9, 1)

    def test_fix_keeps_the_old_value_in_the_audit_trail(self, cli: Path, ctx: AppContext) -> None:
        therapy_id = self.added(ctx)
        code, out, err = invoke(
            "therapy", "fix", str(therapy_id), "--start", "2025-03-10", "--reason", "first dose",
            "--json",
        )  # fmt: skip
        assert code == 0, err
        data = json.loads(out)
        assert (data["before"]["start"], data["after"]["start"]) == ("2025-03-03", "2025-03-10")
        correction = events(ctx, therapy_id)[-1]
        assert correction.action == "correct"
        assert json.loads(correction.before or "{}")["start"] == "2025-03-03"
        after = json.loads(correction.after or "{}")
        assert (after["start"], after["reason"]) == ("2025-03-10", "first dose")

    def test_fix_reopen_removes_a_mistaken_stop(self, cli: Path, ctx: AppContext) -> None:
        therapy_id = self.added(ctx)
        invoke("therapy", "stop", str(therapy_id), "--on", "2025-09-01", "--reason", "other")
        code, _, err = invoke("therapy", "fix", str(therapy_id), "--reopen")
        assert code == 0, err
        assert (stored(ctx)[0].stop, stored(ctx)[0].stop_reason) == (None, None)

    def test_fix_nothing_and_unknown_id(self, cli: Path, ctx: AppContext) -> None:
        therapy_id = self.added(ctx)
        code, _, err = invoke("therapy", "fix", str(therapy_id), "--drug", "upadacitinib")
        assert (code, err.strip()) == (2, "error: nothing to change: give a new value")
        code, _, err = invoke("therapy", "fix", "999", "--drug", "x")
        assert (code, err.strip()) == (2, "error: no therapy episode with id 999")
        assert [e.action for e in events(ctx, therapy_id)] == ["add"]


class TestList:
    def test_empty(self, cli: Path) -> None:
        code, out, _ = invoke("therapy", "list", "--patient", "MRN-0001")
        assert (code, out.strip()) == (0, "no therapy episodes for MRN-0001")

    def test_no_baseline_is_said(self, cli: Path, ctx: AppContext) -> None:
        """Without a score near the start, the reading says no response can be judged."""
        invoke(*ADD_UPA)
        code, out, _ = invoke("therapy", "list", "--patient", "MRN-0001")
        assert code == 0
        assert "no baseline" in out
        assert "no response can be judged" in out


class TestDeletion:
    def test_deleting_a_patient_removes_the_episodes(
        self, cli: Path, ctx: AppContext, clinic: Clinic
    ) -> None:
        """A patient's data deletion removes every therapy episode of theirs."""
        invoke(*ADD_UPA)
        invoke("therapy", "add", "--patient", "MRN-0002", "--drug", "naproxen",
               "--class", "nsaid", "--start", "2025-01-01")  # fmt: skip
        with ctx.session() as session:
            patients.delete_patient_data(
                session=session, patient_id=clinic.patient_1, now=ctx.clock.now()
            )
        with ctx.session() as session:
            assert therapies.list_therapies(session=session, patient_id=clinic.patient_1) == []
            assert len(therapies.list_therapies(session=session, patient_id=clinic.patient_2)) == 1
