"""The data dictionary is generated from the column definitions the writers use."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq

from bot.context import AppContext
from bot.export.columns import (
    DICTIONARY_FIELDS,
    TABLES,
    dictionary_csv,
    dictionary_markdown,
)
from bot.export.records import WideText
from bot.export.service import ExportRequest, run_export
from tests.export.conftest import Dataset, export_csv


def dictionary(table: str) -> list[dict[str, str]]:
    """Rows of the CSV dictionary for one table."""
    rows = csv.DictReader(io.StringIO(dictionary_csv()))
    return [row for row in rows if row["table"] == table]


def header(text: str) -> list[str]:
    return next(csv.reader(line for line in text.splitlines() if not line.startswith("#")))


class TestDataDictionary:
    def test_matches_the_columns_written(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """Wide CSV, Parquet and long CSV have exactly the dictionary's columns, in order."""
        wide_names = [row["name"] for row in dictionary("wide")]
        long_names = [row["name"] for row in dictionary("long")]
        assert header(export_csv(ctx, "wide")[0]) == wide_names
        assert header(export_csv(ctx, "long", shift_dates=True)[0]) == long_names
        parquet = tmp_path / "w.parquet"
        run_export(ctx, ExportRequest(format="parquet", by="r", out=parquet))
        assert pq.read_schema(parquet).names == wide_names

    def test_wide_csv_rows_are_named_as_the_columns(self) -> None:
        """The rows the wide CSV writes have the wide columns' names in their order, so each
        value lands under the header the dictionary documents."""
        assert list(WideText._fields) == [row["name"] for row in dictionary("wide")]

    def test_long_variables_are_documented_wide_columns(self) -> None:
        """The long table's allowed variables are wide columns, each with a unit."""
        variable = next(row for row in dictionary("long") if row["name"] == "variable")
        allowed = variable["allowed_values"].split(", ")
        wide = {row["name"]: row for row in dictionary("wide")}
        assert set(allowed) <= set(wide)
        assert all(wide[name]["unit"] for name in allowed)

    def test_every_column_is_fully_described(self) -> None:
        """Each column has a type, a meaning and a source; clinical ones cite the spec."""
        rows = list(csv.DictReader(io.StringIO(dictionary_csv())))
        assert list(rows[0]) == list(DICTIONARY_FIELDS)
        assert len(rows) == sum(len(columns) for columns in TABLES.values())
        assert {row["table"] for row in rows} == {"wide", "long", "therapy", "checkins"}
        for row in rows:
            assert row["type"] in {"string", "integer", "decimal", "boolean", "datetime"}
            assert row["meaning"]
            assert row["source"]
        cited = {row["name"]: row["spec_reference"] for row in dictionary("wide")}
        for name in ("q1_fatigue", "q6_stiffness_duration", "basdai", "asdas_crp", "crp_floored"):
            assert cited[name].startswith("docs/clinical.md §")
        assert cited["asdas_crp_state"] == "docs/clinical.md §3"

    def test_markdown_and_csv_list_the_same_columns(self) -> None:
        """The Markdown tables name the same columns as the CSV, table by table."""
        markdown = dictionary_markdown()
        sections = markdown.split("\n## ")
        wide_section = next(s for s in sections if s.startswith("Wide table"))
        long_section = next(s for s in sections if s.startswith("Long table"))
        for section, table in ((wide_section, "wide"), (long_section, "long")):
            names = [
                line.split("|")[1].strip().strip("`")
                for line in section.splitlines()
                if line.startswith("| `")
            ]
            assert names == [row["name"] for row in dictionary(table)]

    def test_allowed_states_are_the_clinical_names(self) -> None:
        """ASDAS states are listed with the 2018 ASAS names (clinical spec §3)."""
        state = next(row for row in dictionary("wide") if row["name"] == "asdas_crp_state")
        assert state["allowed_values"] == (
            "inactive disease, low disease activity, high disease activity, "
            "very high disease activity"
        )
