"""Exports carry no identifying value, pseudonyms behave as keyed HMACs, dates shift safely,
deleted patients are absent and withdrawn patients end at their withdrawal."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bot.context import AppContext
from bot.export.pseudonyms import Pseudonymizer
from bot.export.service import ExportRequest, run_export
from tests.conftest import TEST_PSEUDONYM_KEY, make_settings
from tests.export.conftest import Dataset, csv_rows, export_csv, exported_id, wide_by_id

FORMATS = ("wide", "long", "parquet", "fhir")
DATE_COLUMNS = ("scheduled_for", "completed_at", "crp_drawn_at", "esr_drawn_at")


def export_text(ctx: AppContext, fmt: str, tmp_path: Path, *, shift: bool = False) -> str:
    """Everything an export of `fmt` wrote, as searchable text (Parquet decoded and raw)."""
    if fmt in ("wide", "long"):
        return export_csv(ctx, fmt, shift_dates=shift)[0]
    out = tmp_path / f"{fmt}-{shift}"
    run_export(ctx, ExportRequest(format=fmt, by="r", out=out, shift_dates=shift))
    if fmt == "parquet":
        table = pq.read_table(out)
        metadata = repr(table.schema.metadata) + repr(table.schema)
        return metadata + repr(table.to_pylist()) + out.read_bytes().decode("latin-1")
    return "\n".join(path.read_text() for path in sorted(out.iterdir()))


def pseudonym(research_id: str) -> str:
    return Pseudonymizer(TEST_PSEUDONYM_KEY.encode()).pseudonym(research_id)


class TestNoIdentifyingData:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_identifying_values_are_absent(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path, fmt: str
    ) -> None:
        """No clinic reference, name, e-mail, Telegram or chat id, code, research id or key."""
        text = export_text(ctx, fmt, tmp_path).casefold()
        secrets = [*dataset.identifying, *dataset.research_ids.values(), TEST_PSEUDONYM_KEY]
        leaked = [value for value in secrets if value.casefold() in text]
        assert leaked == []
        assert pseudonym(dataset.research_ids[dataset.alice]) in text

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_shifted_exports_leak_nothing_either(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path, fmt: str
    ) -> None:
        """Date shifting does not bring any identifying value in."""
        text = export_text(ctx, fmt, tmp_path, shift=True).casefold()
        assert [value for value in dataset.identifying if value.casefold() in text] == []


class TestPseudonyms:
    def test_keyed_hmac_of_the_research_id(self) -> None:
        """The pseudonym is the first 24 hex digits of HMAC-SHA256(key, research_id)."""
        expected = hmac.new(b"k" * 32, b"abc123", hashlib.sha256).hexdigest()[:24]
        assert Pseudonymizer(b"k" * 32).pseudonym("abc123") == expected

    @pytest.mark.parametrize("key", [b"k", b"k" * 64, b"k" * 65, TEST_PSEUDONYM_KEY.encode()])
    def test_record_ids_are_keyed_hmacs_of_kind_and_id(self, key: bytes) -> None:
        """A record id is HMAC-SHA256(key, prefix, kind, id) cut to 24 hex digits, for keys
        shorter and longer than SHA-256's block, and a kind's ids do not collide with
        another's."""
        pseudonymizer = Pseudonymizer(key)
        for kind, row_id in (("administration", 1), ("administration", 987654321), ("lab", 1)):
            message = b"spondybot-record\x00" + kind.encode() + b"\x00" + str(row_id).encode()
            expected = hmac.new(key, message, hashlib.sha256).hexdigest()[:24]
            assert pseudonymizer.record_id(kind, row_id) == expected
            assert pseudonymizer.record_id(kind, row_id) == expected  # and again, from the copy

    def test_stable_per_key_unlinkable_across_keys(self) -> None:
        """The same key gives the same pseudonym; another key gives an unrelated one."""
        first = Pseudonymizer(b"first-key-0123456789")
        again = Pseudonymizer(b"first-key-0123456789")
        other = Pseudonymizer(b"other-key-0123456789")
        assert first.pseudonym("r1") == again.pseudonym("r1")
        assert first.pseudonym("r1") != other.pseudonym("r1")
        assert first.pseudonym("r1") != first.pseudonym("r2")

    def test_offsets_are_whole_days_within_a_year_never_zero(self) -> None:
        """Offsets are ±1 to ±365 whole days, both directions occur, stable for a key."""
        keyed = Pseudonymizer(b"offset-key-0123456789")
        offsets = [keyed.date_offset(f"patient-{n}") for n in range(500)]
        assert all(offset == timedelta(days=offset.days) for offset in offsets)
        assert all(1 <= abs(offset.days) <= 365 for offset in offsets)
        assert any(offset.days < 0 for offset in offsets)
        assert any(offset.days > 0 for offset in offsets)
        assert offsets[7] == Pseudonymizer(b"offset-key-0123456789").date_offset("patient-7")

    def test_exports_join_across_runs(self, ctx: AppContext, dataset: Dataset) -> None:
        """Two exports under the same key give each patient the same pseudonym."""
        first = {row["patient_pseudonym"] for row in csv_rows(export_csv(ctx, "wide")[0])}
        second = {row["patient_pseudonym"] for row in csv_rows(export_csv(ctx, "long")[0])}
        assert first == second
        assert len(first) == 3

    def test_another_key_gives_unlinkable_pseudonyms(
        self, ctx: AppContext, dataset: Dataset
    ) -> None:
        """An export under a different PSEUDONYM_KEY shares no pseudonym with the first."""
        other = AppContext(
            settings=make_settings(
                ctx.settings.database_url, pseudonym_key="another-secret-key-for-tests"
            ),
            engine=ctx.engine,
            clock=ctx.clock,
        )
        first = {row["patient_pseudonym"] for row in csv_rows(export_csv(ctx, "wide")[0])}
        second = {row["patient_pseudonym"] for row in csv_rows(export_csv(other, "wide")[0])}
        assert first.isdisjoint(second)


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


class TestDateShift:
    def test_one_offset_per_patient_preserves_intervals(
        self, ctx: AppContext, dataset: Dataset
    ) -> None:
        """Every date of a patient moves by the same whole-day offset, so intervals hold."""
        real = wide_by_id(export_csv(ctx, "wide")[0])
        shifted_text, _ = export_csv(ctx, "wide", shift_dates=True)
        shifted = wide_by_id(shifted_text)
        assert set(real) == set(shifted)
        offsets: dict[str, set[timedelta]] = {}
        for admin_id, row in real.items():
            moved = shifted[admin_id]
            assert moved["patient_pseudonym"] == row["patient_pseudonym"]
            for name in DATE_COLUMNS:
                if row[name]:
                    offset = parse(moved[name]) - parse(row[name])
                    offsets.setdefault(row["patient_pseudonym"], set()).add(offset)
        for patient_offsets in offsets.values():
            assert len(patient_offsets) == 1
            (offset,) = patient_offsets
            assert offset.seconds == 0
            assert 1 <= abs(offset.days) <= 365
        baseline = shifted[dataset.admin["alice_baseline"]]
        follow_up = shifted[dataset.admin["alice_follow_up"]]
        assert parse(follow_up["completed_at"]) - parse(baseline["completed_at"]) == (
            datetime(2026, 6, 29, 19, 9) - datetime(2026, 1, 5, 19, 8)
        )

    def test_values_other_than_dates_are_unchanged(self, ctx: AppContext, dataset: Dataset) -> None:
        """Shifting touches dates only: answers, scores and states are the same."""
        real = wide_by_id(export_csv(ctx, "wide")[0])
        shifted = wide_by_id(export_csv(ctx, "wide", shift_dates=True)[0])
        for admin_id, row in real.items():
            for name, value in row.items():
                if name not in DATE_COLUMNS:
                    assert shifted[admin_id][name] == value

    def test_csv_says_dates_are_shifted(self, ctx: AppContext, dataset: Dataset) -> None:
        """A shifted CSV starts with a comment saying so; an unshifted one does not."""
        shifted, _ = export_csv(ctx, "long", shift_dates=True)
        plain, _ = export_csv(ctx, "long")
        assert shifted.startswith("# dates shifted")
        assert not plain.startswith("#")
        header = next(csv.reader(io.StringIO(shifted.split("\n", 1)[1])))
        assert header[0] == "patient_pseudonym"

    def test_long_answer_times_move_with_the_patient(
        self, ctx: AppContext, dataset: Dataset
    ) -> None:
        """Answer times in the long table move by the patient's offset too."""
        real = csv_rows(export_csv(ctx, "long")[0])
        shifted = csv_rows(export_csv(ctx, "long", shift_dates=True)[0])
        offsets = {
            (row["patient_pseudonym"], parse(moved["observed_at"]) - parse(row["observed_at"]))
            for row, moved in zip(real, shifted, strict=True)
        }
        assert len(offsets) == len({pseudonym for pseudonym, _ in offsets}) == 3

    def test_parquet_and_fhir_say_dates_are_shifted(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """Parquet metadata and the FHIR manifest state the shift; FHIR dates move."""
        parquet = tmp_path / "w.parquet"
        run_export(ctx, ExportRequest(format="parquet", by="r", out=parquet, shift_dates=True))
        assert pq.read_schema(parquet).metadata[b"spondybot.dates_shifted"] == b"true"
        real_dir, shifted_dir = tmp_path / "real", tmp_path / "shifted"
        run_export(ctx, ExportRequest(format="fhir", by="r", out=real_dir))
        run_export(ctx, ExportRequest(format="fhir", by="r", out=shifted_dir, shift_dates=True))
        manifest = json.loads((shifted_dir / "manifest.json").read_text())
        assert manifest["extension"]["spondybot"]["datesShifted"] is True

        def authored(directory: Path) -> dict[str, str]:
            lines = (directory / "QuestionnaireResponse.ndjson").read_text().splitlines()
            return {r["id"]: r.get("authored") for r in map(json.loads, lines)}

        real, moved = authored(real_dir), authored(shifted_dir)
        wide_real = wide_by_id(export_csv(ctx, "wide")[0])
        wide_moved = wide_by_id(export_csv(ctx, "wide", shift_dates=True)[0])
        admin = dataset.admin["alice_baseline"]
        expected = parse(wide_moved[admin]["completed_at"]) - parse(
            wide_real[admin]["completed_at"]
        )
        response = f"qr-{exported_id('administration', admin)}"
        assert parse(moved[response]) - parse(real[response]) == expected


class TestDeletedAndWithdrawn:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_deleted_patient_is_absent(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path, fmt: str
    ) -> None:
        """A patient who asked for deletion appears in no format, even if rows remain."""
        text = export_text(ctx, fmt, tmp_path)
        assert pseudonym(dataset.research_ids[dataset.carol_deleted]) not in text

    def test_withdrawn_patient_ends_at_withdrawal(self, ctx: AppContext, dataset: Dataset) -> None:
        """Administrations after withdrawal are left out, and so is a lab drawn after it."""
        rows = wide_by_id(export_csv(ctx, "wide")[0])
        assert dataset.admin["dan_after"] not in rows
        before = rows[dataset.admin["dan_before"]]
        assert before["crp_mg_l"] == before["asdas_crp"] == before["crp_floored"] == ""
        assert before["esr_mm_h"] == "25"
        # ASDAS-ESR = 0.08·5 + 0.07·5 + 0.11·5 + 0.09·0 + 0.29·√25 = 2.75 (high).
        assert before["asdas_esr"] == "2.75"
        assert before["asdas_esr_state"] == "high disease activity"

    def test_withdrawn_lab_is_absent_from_fhir(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """The FHIR export has no observation of a lab drawn after the withdrawal."""
        out = tmp_path / "fhir"
        run_export(ctx, ExportRequest(format="fhir", by="r", out=out))
        dan = pseudonym(dataset.research_ids[dataset.dan_withdrawn])
        observations = [
            json.loads(line) for line in (out / "Observation.ndjson").read_text().splitlines()
        ]
        dan_codes = sorted(
            o["code"]["coding"][0]["code"]
            for o in observations
            if o["subject"]["reference"] == f"Patient/{dan}"
        )
        assert dan_codes == ["30341-2", "asdas-esr", "basdai"]


class TestFilePermissions:
    @pytest.mark.parametrize("fmt", ["wide", "long", "parquet", "fhir"])
    def test_exports_are_readable_by_their_owner_only(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path, fmt: str
    ) -> None:
        """Every exported file is 0600 (a FHIR directory 0700), whatever the umask."""
        out = tmp_path / f"export-{fmt}"
        previous = os.umask(0o022)
        try:
            run_export(ctx, ExportRequest(format=fmt, by="r", out=out))
        finally:
            os.umask(previous)
        files = sorted(out.iterdir()) if out.is_dir() else [out]
        assert files
        assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}
        if out.is_dir():
            assert stat.S_IMODE(out.stat().st_mode) == 0o700
