"""The research export carries the treatment course (§7) and safety check-ins (§8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.clock import FixedClock
from bot.context import AppContext
from bot.export.columns import dictionary_rows
from bot.export.pseudonyms import Pseudonymizer
from bot.export.service import ExportRequest, run_export
from bot.services import safety
from storage import patients
from tests.conftest import TEST_PSEUDONYM_KEY, make_settings
from tests.export.conftest import csv_rows, export_csv
from tests.export.test_formats import read_fhir
from tests.therapy.test_digest_treatment import USER, seed_case


@pytest.fixture
async def case_ctx(
    database_url: str, migrated_engine: Engine, clock: FixedClock
) -> AsyncIterator[AppContext]:
    clock.set(datetime(2025, 9, 1, 9, 0, tzinfo=UTC))
    settings = make_settings(database_url, safety_checkins=True, emergency_number="112")
    context = AppContext(settings=settings, engine=migrated_engine, clock=clock)
    yield context
    await context.aclose()


def research_id(ctx: AppContext) -> str:
    with ctx.session() as session:
        patient = patients.get_patient_by_ref(session=session, clinic_ref="MRN-0042")
        assert patient is not None
        return patient.research_id


class TestTherapyTable:
    def test_episodes_with_their_response(self, case_ctx: AppContext) -> None:
        """One row per episode with the §7 reading's exact numbers; nothing identifying."""
        seed_case(case_ctx)
        text, result = export_csv(case_ctx, "therapy")
        assert result.rows == 2
        assert "MRN-0042" not in text
        adalimumab, upadacitinib = csv_rows(text)
        assert (adalimumab["drug"], adalimumab["response"]) == ("adalimumab", "no baseline")
        assert upadacitinib["therapy_class"] == "jak_inhibitor"
        assert upadacitinib["response"] == "response"
        assert upadacitinib["baseline_asdas"].startswith("3.876")
        assert upadacitinib["followup_asdas"].startswith("1.767")
        assert upadacitinib["asdas_change"] == "major improvement"
        assert (upadacitinib["baseline_basdai"], upadacitinib["followup_basdai"]) == ("3.8", "1.4")
        assert upadacitinib["basdai50"] == "true"
        assert upadacitinib["asas_eular_basdai_response"] == "true"
        assert upadacitinib["low_activity_target"] == "true"
        assert upadacitinib["assessment_week"] == "23"
        expected = Pseudonymizer(TEST_PSEUDONYM_KEY.encode()).pseudonym(research_id(case_ctx))
        assert upadacitinib["patient_pseudonym"] == expected

    def test_dates_shift_with_the_patients_offset(self, case_ctx: AppContext) -> None:
        """With --shift-dates every date moves by the patient's one offset, intervals kept."""
        seed_case(case_ctx)
        text, result = export_csv(case_ctx, "therapy", shift_dates=True)
        assert result.dates_shifted
        upadacitinib = csv_rows(text)[1]
        offset = Pseudonymizer(TEST_PSEUDONYM_KEY.encode()).date_offset(research_id(case_ctx))
        assert date.fromisoformat(upadacitinib["start_date"]) == date(2025, 3, 3) + offset
        assert date.fromisoformat(upadacitinib["assessment_date"]) == date(2025, 8, 15) + offset
        assert date.fromisoformat(upadacitinib["baseline_date"]) == date(2025, 2, 28) + offset

    def test_fhir_medication_statements_validate(
        self, case_ctx: AppContext, tmp_path: Path
    ) -> None:
        """Each episode is an R4 MedicationStatement that fhir.resources accepts."""
        seed_case(case_ctx)
        out = tmp_path / "fhir"
        run_export(case_ctx, ExportRequest(format="fhir", by="r", out=out))
        statements = read_fhir(out)["MedicationStatement"]
        assert [(s["medicationCodeableConcept"], s["status"]) for s in statements] == [
            ({"text": "adalimumab"}, "active"),
            ({"text": "upadacitinib"}, "active"),
        ]
        assert statements[1]["effectivePeriod"] == {"start": "2025-03-03"}


class TestCheckinTable:
    def test_answers_with_version_and_no_note(self, case_ctx: AppContext) -> None:
        """Every answer with the question set's version; the free-text note is not exported."""
        seed_case(case_ctx)
        case_ctx.clock.set(datetime(2025, 8, 20, 9, tzinfo=UTC))  # type: ignore[attr-defined]
        opened = safety.report(case_ctx, telegram_user_id=USER)
        assert opened.view is not None
        safety.answer(
            case_ctx, telegram_user_id=USER, checkin_id=opened.view.checkin_id,
            code="fever_infection", yes=True,
        )  # fmt: skip
        safety.note(case_ctx, telegram_user_id=USER, text="my neighbour Jo had flu")
        case_ctx.clock.set(datetime(2025, 9, 1, 9, tzinfo=UTC))  # type: ignore[attr-defined]
        text, result = export_csv(case_ctx, "checkins")
        assert result.rows == 1
        (row,) = csv_rows(text)
        assert (row["question"], row["answer_yes"], row["questions_version"]) == (
            "fever_infection", "true", "safety-checkin-v1",
        )  # fmt: skip
        assert row["answered_at"] == "2025-08-20T09:00:00Z"
        assert "Jo" not in text
        shifted, _ = export_csv(case_ctx, "checkins", shift_dates=True)
        offset = Pseudonymizer(TEST_PSEUDONYM_KEY.encode()).date_offset(research_id(case_ctx))
        moved = datetime(2025, 8, 20, 9, tzinfo=UTC) + offset
        assert csv_rows(shifted)[0]["answered_at"] == moved.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_data_dictionary_lists_the_new_tables() -> None:
    """The therapy and check-in tables are in the data dictionary, cited to §7 and §8."""
    rows = dictionary_rows()
    therapy = {row["name"]: row for row in rows if row["table"] == "therapy"}
    checkins = {row["name"]: row for row in rows if row["table"] == "checkins"}
    assert therapy["asas_eular_basdai_response"]["spec_reference"] == "docs/clinical.md §7"
    assert checkins["questions_version"]["spec_reference"] == "docs/clinical.md §8"
    assert "note" not in checkins
