"""`spondybot export`, `spondybot export --dictionary` and `spondybot audit list`."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.cli.export import terminate_cleanly
from bot.context import AppContext
from bot.export.columns import dictionary_csv, dictionary_markdown
from bot.export.service import ExportRequest, list_export_audit, run_export
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.export.conftest import Dataset

runner = CliRunner()


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, ctx: AppContext, dataset: Dataset, tmp_path: Path
) -> Path:
    """The operator's environment: the test clinic's database and a pseudonym key."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    return work


def audit_entries() -> list[dict[str, object]]:
    result = runner.invoke(app, ["audit", "list", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)["exports"]
    assert isinstance(entries, list)
    return entries


class TestExportCommand:
    def test_wide_to_file_is_audited(self, cli_env: Path) -> None:
        """The file is written and an audit entry records who, format, rows and its SHA-256."""
        out = cli_env / "wide.csv"
        result = runner.invoke(
            app, ["export", "--format", "wide", "--out", str(out), "--by", "Study team A"]
        )
        assert result.exit_code == 0, result.output
        data = out.read_bytes()
        assert data.startswith(b"patient_pseudonym,administration_id,")
        (entry,) = audit_entries()
        assert entry["by"] == "Study team A"
        assert entry["format"] == "wide"
        assert entry["rows"] == 7
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["destination"] == str(out.resolve())
        assert entry["filters"] == {
            "physician": None,
            "shift_dates": False,
            "since": None,
            "until": None,
        }
        assert f"audit entry {entry['audit_id']}" in result.stderr

    def test_csv_streams_to_standard_output(self, cli_env: Path) -> None:
        """Without --out the CSV goes to stdout, the summary to stderr, the hash is of stdout."""
        result = runner.invoke(
            app, ["export", "--format", "long", "--since", "2026-01-01", "--until", "2026-01-31"]
        )
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].startswith("patient_pseudonym,administration_id,record_type")
        assert len(lines) == 1 + 11
        assert "exported 11 rows" in result.stderr
        (entry,) = audit_entries()
        assert entry["destination"] == "stdout"
        assert entry["sha256"] == hashlib.sha256(result.stdout_bytes).hexdigest()
        filters = entry["filters"]
        assert isinstance(filters, dict), "filters are a JSON object, not a string inside JSON"
        assert filters["since"] == "2026-01-01"

    def test_json_summary_for_scripts(self, cli_env: Path) -> None:
        """`--json` prints what was written as one JSON object: rows, hash, audit entry."""
        result = runner.invoke(app, ["export", "--format", "wide", "--out", "w.csv", "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        (entry,) = audit_entries()
        assert summary["audit_id"] == entry["audit_id"]
        assert summary["rows"] == 7
        assert summary["sha256"] == hashlib.sha256((cli_env / "w.csv").read_bytes()).hexdigest()

    def test_json_without_out_is_refused(self, cli_env: Path) -> None:
        """With the data on standard output there is no room for JSON: exit 2, nothing written."""
        result = runner.invoke(app, ["export", "--format", "wide", "--json"])
        assert result.exit_code == 2
        assert "--json needs --out" in result.stderr
        assert audit_entries() == []

    def test_operator_is_the_os_user_by_default(self, cli_env: Path) -> None:
        """Without --by the audit names the operating-system user."""
        result = runner.invoke(app, ["export", "--format", "wide", "--out", "w.csv"])
        assert result.exit_code == 0, result.output
        assert audit_entries()[0]["by"] == getpass.getuser()

    def test_piped_output_has_no_progress_bar(self, cli_env: Path) -> None:
        """When not on a terminal the only thing on stderr is the one-line summary."""
        result = runner.invoke(app, ["export", "--format", "parquet", "--out", "w.parquet"])
        assert result.exit_code == 0, result.output
        assert result.stderr.strip().count("\n") == 0
        assert result.stderr.startswith("exported 7 rows (parquet)")

    def test_fhir_directory_and_shifted_summary(self, cli_env: Path) -> None:
        """FHIR goes to a new directory; the summary counts resources and says dates shifted."""
        result = runner.invoke(
            app, ["export", "--format", "fhir", "--out", "bundle", "--shift-dates"]
        )
        assert result.exit_code == 0, result.output
        assert (cli_env / "bundle" / "manifest.json").is_file()
        assert "exported 25 resources (fhir, dates shifted)" in result.stderr
        manifest = (cli_env / "bundle" / "manifest.json").read_bytes()
        assert audit_entries()[0]["sha256"] == hashlib.sha256(manifest).hexdigest()

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--format", "xml", "--out", "x.csv"], "--format must be one of"),
            (["--out", "x.csv"], "--format is required"),
            (
                ["--format", "wide", "--since", "2026-03-01", "--until", "2026-02-01"],
                "is after --until",
            ),
            (["--format", "wide", "--since", "last week"], "--since must be a date"),
            (["--format", "wide", "--out", "missing/dir/x.csv"], "does not exist"),
            (["--format", "wide", "--out", "afile.txt/x.csv"], "does not exist"),
            (["--format", "wide", "--out", "."], "is a directory"),
            (["--format", "parquet"], "give --out PATH"),
            (["--format", "fhir"], "give --out PATH"),
            (["--format", "fhir", "--out", "full"], "is not empty"),
            (["--format", "wide", "--out", "x.csv", "--physician", "999"], "no physician"),
            (["--format", "wide", "--out", "x.csv", "--by", " "], "--by must not be empty"),
        ],
    )
    def test_bad_arguments_exit_2_and_leave_nothing(
        self, cli_env: Path, args: list[str], message: str
    ) -> None:
        """A one-line error, exit code 2, no file (not even a temporary one), no audit entry."""
        (cli_env / "afile.txt").write_text("not a directory")
        (cli_env / "full").mkdir()
        (cli_env / "full" / "keep.txt").write_text("existing")
        before = sorted(path.name for path in cli_env.rglob("*"))
        result = runner.invoke(app, ["export", *args])
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.output
        assert sorted(path.name for path in cli_env.rglob("*")) == before
        assert audit_entries() == []

    def test_missing_pseudonym_key_is_named(
        self, cli_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without PSEUDONYM_KEY the export refuses in one line naming it, writing nothing."""
        monkeypatch.delenv("PSEUDONYM_KEY")
        result = runner.invoke(app, ["export", "--format", "wide", "--out", "w.csv"])
        assert result.exit_code == 2
        assert "PSEUDONYM_KEY" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert list(cli_env.iterdir()) == []
        assert audit_entries() == []

    def test_help_has_an_example(self) -> None:
        """`export --help` and `audit --help` show an example."""
        for args in (["export", "--help"], ["audit", "--help"], ["audit", "list", "--help"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0
            assert "Example" in result.output


class TestDictionaryCommand:
    def test_writes_markdown_and_csv(self, tmp_path: Path) -> None:
        """--dictionary --out DIR writes both files from the column definitions."""
        result = runner.invoke(app, ["export", "--dictionary", "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "data-dictionary.md").read_text() == dictionary_markdown()
        assert (tmp_path / "data-dictionary.csv").read_text() == dictionary_csv()
        assert sorted(path.name for path in tmp_path.iterdir()) == [
            "data-dictionary.csv",
            "data-dictionary.md",
        ]

    def test_prints_markdown_without_out(self) -> None:
        """Without --out the Markdown dictionary goes to standard output."""
        result = runner.invoke(app, ["export", "--dictionary"])
        assert result.exit_code == 0
        assert result.stdout == dictionary_markdown()

    def test_missing_directory_is_created(self, tmp_path: Path) -> None:
        """`--out dictionary/` as the README writes it creates the folder."""
        target = tmp_path / "dictionary"
        result = runner.invoke(app, ["export", "--dictionary", "--out", f"{target}/"])
        assert result.exit_code == 0, result.output
        assert sorted(path.name for path in target.iterdir()) == [
            "data-dictionary.csv",
            "data-dictionary.md",
        ]

    def test_a_file_in_the_way_exit_2(self, tmp_path: Path) -> None:
        """A file where the folder should be is a clear error with exit code 2."""
        (tmp_path / "taken").write_text("x")
        result = runner.invoke(app, ["export", "--dictionary", "--out", str(tmp_path / "taken")])
        assert result.exit_code == 2
        assert "is not a directory" in result.stderr


class TestAuditList:
    def test_lists_exports_most_recent_first(self, cli_env: Path) -> None:
        """Each export appears with time, operator, format, rows and hash, newest first."""
        runner.invoke(app, ["export", "--format", "wide", "--out", "a.csv", "--by", "first"])
        runner.invoke(app, ["export", "--format", "long", "--out", "b.csv", "--by", "second"])
        result = runner.invoke(app, ["audit", "list"])
        assert result.exit_code == 0
        lines = result.stdout.splitlines()
        assert "by second" in lines[0]
        assert "long" in lines[0]
        assert "49 rows" in lines[0]
        assert "by first" in lines[2]
        assert "sha256 " in lines[0]

    def test_empty_trail(self, cli_env: Path) -> None:
        """Before any export the list says so."""
        result = runner.invoke(app, ["audit", "list"])
        assert result.exit_code == 0
        assert "no exports yet" in result.stdout


class SignallingProgress:
    """Sends this process SIGTERM once the export is under way, as `kill` would."""

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler runs here at the latest


class TestTermination:
    def test_sigterm_midway_leaves_nothing(
        self, ctx: AppContext, dataset: Dataset, tmp_path: Path
    ) -> None:
        """A terminated export exits with 143 and removes its temporary file; nothing audited."""
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        before = signal.getsignal(signal.SIGTERM)
        with pytest.raises(SystemExit) as stopped, terminate_cleanly():
            run_export(
                ctx,
                ExportRequest(format="long", by="r", out=out_dir / "long.csv"),
                progress=SignallingProgress(),
                batch_size=2,
            )
        assert stopped.value.code == 143
        assert list(out_dir.iterdir()) == []
        assert list_export_audit(ctx) == []
        assert signal.getsignal(signal.SIGTERM) == before
