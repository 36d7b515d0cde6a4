"""The research export carries the treatment course (§7) and safety check-ins (§8)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine

from bot.clock import FixedClock
from bot.context import AppContext
from bot.export.columns import CHECKIN_COLUMNS, THERAPY_COLUMNS, dictionary_rows
from bot.export.pseudonyms import Pseudonymizer
from bot.export.service import ExportError, ExportRequest, run_export
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

    def test_parquet_has_the_csv_rows_typed_and_documented(
        self, case_ctx: AppContext, tmp_path: Path
    ) -> None:
        """`--format therapy-parquet` writes the CSV's rows with typed columns, each field
        documented from the same dictionary, and is audited with the file's hash."""
        seed_case(case_ctx)
        text, _ = export_csv(case_ctx, "therapy")
        out = tmp_path / "therapy.parquet"
        result = run_export(case_ctx, ExportRequest(format="therapy-parquet", by="r", out=out))
        table = pq.read_table(out)
        assert result.rows == table.num_rows == 2
        assert table.column_names == [column.name for column in THERAPY_COLUMNS]
        assert table.schema.metadata[b"spondybot.table"] == b"therapy"
        assert table.schema.field("basdai50").type == pa.bool_()
        assert table.schema.field("baseline_asdas").type == pa.float64()
        documented = table.schema.field("drug").metadata[b"meaning"].decode()
        assert documented == next(c.meaning for c in THERAPY_COLUMNS if c.name == "drug")
        upadacitinib = table.to_pylist()[1]
        assert upadacitinib["drug"] == "upadacitinib"
        assert upadacitinib["basdai50"] is True
        assert round(upadacitinib["baseline_asdas"], 3) == 3.876
        assert upadacitinib["patient_pseudonym"] == csv_rows(text)[1]["patient_pseudonym"]
        assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()

    def test_parquet_needs_out(self, case_ctx: AppContext) -> None:
        """Parquet is a file: without --out the request is refused before anything runs."""
        with pytest.raises(ExportError, match="--format therapy-parquet writes files"):
            run_export(case_ctx, ExportRequest(format="therapy-parquet", by="r"))


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

    def test_parquet_with_shifted_dates(self, case_ctx: AppContext, tmp_path: Path) -> None:
        """`--format checkins-parquet`: the answers typed, the time a UTC timestamp shifted by
        the patient's offset, the file marked as shifted; the note is not there either."""
        seed_case(case_ctx)
        case_ctx.clock.set(datetime(2025, 8, 20, 9, tzinfo=UTC))  # type: ignore[attr-defined]
        opened = safety.report(case_ctx, telegram_user_id=USER)
        assert opened.view is not None
        safety.answer(
            case_ctx, telegram_user_id=USER, checkin_id=opened.view.checkin_id,
            code="fever_infection", yes=True,
        )  # fmt: skip
        safety.note(case_ctx, telegram_user_id=USER, text="my neighbour Jo had flu")
        out = tmp_path / "checkins.parquet"
        request = ExportRequest(format="checkins-parquet", by="r", out=out, shift_dates=True)
        assert run_export(case_ctx, request).rows == 1
        table = pq.read_table(out)
        assert table.column_names == [column.name for column in CHECKIN_COLUMNS]
        assert table.schema.metadata[b"spondybot.dates_shifted"] == b"true"
        (row,) = table.to_pylist()
        assert (row["question"], row["answer_yes"]) == ("fever_infection", True)
        offset = Pseudonymizer(TEST_PSEUDONYM_KEY.encode()).date_offset(research_id(case_ctx))
        assert row["answered_at"] == datetime(2025, 8, 20, 9, tzinfo=UTC) + offset
        assert b"Jo had flu" not in out.read_bytes()


def test_data_dictionary_lists_the_new_tables() -> None:
    """The therapy and check-in tables are in the data dictionary, cited to §7 and §8."""
    rows = dictionary_rows()
    therapy = {row["name"]: row for row in rows if row["table"] == "therapy"}
    checkins = {row["name"]: row for row in rows if row["table"] == "checkins"}
    assert therapy["asas_eular_basdai_response"]["spec_reference"] == "docs/clinical.md §7"
    assert checkins["questions_version"]["spec_reference"] == "docs/clinical.md §8"
    assert "note" not in checkins
