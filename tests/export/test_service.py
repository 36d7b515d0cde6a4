"""The export service: atomic output, progress reporting and the audit trail."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from bot.context import AppContext
from bot.export.service import ExportError, ExportRequest, list_export_audit, run_export
from storage.models import ExportAudit
from tests.export.conftest import Dataset


class RecordingProgress:
    """Remembers what the export reported."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.total: int | None = None
        self.done = 0
        self.fail_after = fail_after

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        self.done += count
        if self.fail_after is not None and self.done >= self.fail_after:
            raise OSError(28, "No space left on device")


def audit_rows(ctx: AppContext) -> list[ExportAudit]:
    with ctx.session() as session:
        return list(session.exec(select(ExportAudit)))


class TestRunExport:
    def test_progress_counts_every_administration(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """The progress sink is told the total first, then every batch."""
        progress = RecordingProgress()
        run_export(
            ctx,
            ExportRequest(format="wide", by="r", out=tmp_path / "w.csv"),
            progress=progress,
            batch_size=3,
        )
        assert progress.total == progress.done == 7

    @pytest.mark.parametrize(("fmt", "name"), [("wide", "w.csv"), ("fhir", "bundle")])
    def test_failure_halfway_leaves_nothing(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path, fmt: str, name: str
    ) -> None:
        """An export that fails midway leaves no file, no temporary file and no audit entry."""
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        with pytest.raises(OSError, match="No space"):
            run_export(
                ctx,
                ExportRequest(format=fmt, by="r", out=out_dir / name),
                progress=RecordingProgress(fail_after=2),
                batch_size=2,
            )
        assert list(out_dir.iterdir()) == []
        assert audit_rows(ctx) == []

    def test_replaces_an_existing_file_atomically(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """An existing file is replaced only by the complete new export."""
        (tmp_path / "out").mkdir()
        out = tmp_path / "out" / "w.csv"
        out.write_text("old content")
        result = run_export(ctx, ExportRequest(format="wide", by="r", out=out))
        assert out.read_bytes().startswith(b"patient_pseudonym")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
        assert [p.name for p in out.parent.iterdir()] == ["w.csv"]

    def test_audit_entry_records_the_export(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """when, who, format, filters, rows, SHA-256 and destination are stored."""
        out = tmp_path / "w.parquet"
        request = ExportRequest(
            format="parquet",
            by="Dr Researcher",
            out=out,
            since=date(2026, 1, 1),
            physician_id=dataset.physician_a,
            shift_dates=True,
        )
        result = run_export(ctx, request)
        (row,) = audit_rows(ctx)
        assert row.at == ctx.clock.now()
        assert (row.by, row.format, row.rows) == ("Dr Researcher", "parquet", 3)
        assert json.loads(row.filters) == {
            "since": "2026-01-01",
            "until": None,
            "physician": dataset.physician_a,
            "shift_dates": True,
        }
        assert row.sha256 == hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
        assert row.destination == str(out.resolve())
        (listed,) = list_export_audit(ctx)
        assert listed.audit_id == result.audit_id

    def test_without_pseudonym_key_nothing_happens(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """A deployment without PSEUDONYM_KEY cannot export, and says which setting is missing."""
        keyless = AppContext(
            settings=ctx.settings.model_copy(update={"pseudonym_key": None}),
            engine=ctx.engine,
            clock=ctx.clock,
        )
        (tmp_path / "out").mkdir()
        with pytest.raises(ExportError, match="PSEUDONYM_KEY"):
            run_export(keyless, ExportRequest(format="wide", by="r", out=tmp_path / "out" / "w"))
        assert list((tmp_path / "out").iterdir()) == []
        assert audit_rows(ctx) == []
