"""`spondybot lab …`: exit codes, clear one-line refusals, and nothing written when refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.context import AppContext
from bot.services import labs
from tests.labs.conftest import Clinic

runner = CliRunner()
MISTAKES = Path(__file__).parent / "data" / "lab_export_mistakes.csv"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, ctx: AppContext, clinic: Clinic, tmp_path: Path) -> Path:
    """The CLI pointed at the test database (clock: real time, so 2026 dates are past)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Berlin")
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["lab", *args])
    return result.exit_code, result.stdout, result.stderr


def stored(ctx: AppContext, ref: str = "MRN-0001") -> list[labs.LabView]:
    return labs.list_lab_values(ctx, clinic_ref=ref, include_deleted=True)


class TestLabAdd:
    def test_stores_and_reports(self, cli: Path, ctx: AppContext) -> None:
        """`lab add` stores CRP and ESR, shows the noon default and notes the floor."""
        code, out, _ = invoke(
            "add", "--patient", "MRN-0001", "--crp", "<0,5", "--esr", "5", "--drawn", "2026-02-02"
        )
        assert code == 0, out
        assert "stored CRP <0.5 mg/L for MRN-0001, drawn 2026-02-02 12:00" in out
        assert "ASDAS-CRP uses 2 mg/L" in out
        assert "stored ESR 5 mm/h" in out
        assert [lab.analyte for lab in stored(ctx)] == ["crp", "esr"]

    def test_mg_dl_and_json(self, cli: Path, ctx: AppContext) -> None:
        """--unit mg/dL converts, and --json gives the normalised value for scripts."""
        code, out, _ = invoke(
            "add", "--patient", "MRN-0001", "--crp", "0.759", "--unit", "mg/dL",
            "--drawn", "2026-02-02 08:30", "--json",
        )  # fmt: skip
        assert code == 0, out
        (lab,) = json.loads(out)["labs"]
        assert (lab["status"], lab["value_normalised"], lab["unit"]) == ("stored", "7.59", "mg/dL")

    def test_again_is_harmless(self, cli: Path, ctx: AppContext) -> None:
        """Running the same command twice reports the value as already stored (exit 0)."""
        args = ("add", "--patient", "MRN-0001", "--crp", "7.59", "--drawn", "2026-02-02")
        invoke(*args)
        code, out, _ = invoke(*args)
        assert code == 0
        assert "already stored" in out
        assert len(stored(ctx)) == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--crp", "abc"], "“abc” is not a number"),
            (["--crp", "-1"], "is negative"),
            (["--crp", "620"], "CRP 620 mg/L is implausible (above 500 mg/L)"),
            (["--crp", "60", "--unit", "mg/dL"], "CRP 600 mg/L is implausible"),
            (["--crp", "7", "--unit", "g/L"], "not a unit accepted for CRP"),
            (["--esr", "250"], "ESR 250 mm/h is implausible"),
            (["--crp", "7", "--esr", "x"], "“x” is not a number"),
            ([], "give a CRP value, an ESR value or both"),
        ],
    )
    def test_bad_values_exit_2_and_write_nothing(
        self, cli: Path, ctx: AppContext, args: list[str], message: str
    ) -> None:
        """A bad value exits with code 2 and one line saying what is wrong; nothing stored."""
        code, _, err = invoke("add", "--patient", "MRN-0001", "--drawn", "2026-02-02", *args)
        assert code == 2
        assert message in err
        assert err.startswith("error: ")
        assert len(err.strip().splitlines()) == 1
        assert stored(ctx) == []

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--patient", "MRN-404", "--drawn", "2026-02-02"], "no patient with reference"),
            (["--patient", "MRN-0001", "--drawn", "2099-01-01"], "is in the future"),
            (["--patient", "MRN-0001", "--drawn", "02/03/2026"], "is ambiguous"),
        ],
    )
    def test_bad_patient_or_date_exit_2(
        self, cli: Path, ctx: AppContext, args: list[str], message: str
    ) -> None:
        """An unknown patient or an unusable date exits with code 2; nothing stored."""
        code, _, err = invoke("add", "--crp", "7", *args)
        assert code == 2
        assert message in err
        assert stored(ctx) == []

    def test_missing_required_option_exits_2(self, cli: Path, ctx: AppContext) -> None:
        """Leaving out --drawn is a usage error (exit 2) that names the option."""
        code, _, err = invoke("add", "--patient", "MRN-0001", "--crp", "7")
        assert code == 2
        assert "--drawn" in err


class TestLabImport:
    def test_import_reports_lines_and_summary(self, cli: Path, ctx: AppContext) -> None:
        """Bad lines are listed with line number and reason, then the summary; exit 1 because
        some lines were refused, while the good ones are stored."""
        code, out, _ = invoke("import", str(MISTAKES))
        assert code == 1
        assert "line 8: refused: no patient with reference “MRN-0404”" in out
        assert "line 10: refused: CRP 620 mg/L is implausible (above 500 mg/L)" in out
        assert "line 24: duplicate of lab 1" in out
        assert out.strip().splitlines()[-1] == "stored 6, duplicate 1, refused 19"
        assert len(stored(ctx)) == 3

    def test_dry_run(self, cli: Path, ctx: AppContext) -> None:
        """--dry-run prints what would happen and writes nothing."""
        code, out, _ = invoke("import", str(MISTAKES), "--dry-run")
        assert code == 1
        assert "dry run, nothing written: would store 6, duplicate 1, refused 19" in out
        assert stored(ctx) == []

    def test_clean_file_and_reimport_exit_0(self, cli: Path, ctx: AppContext) -> None:
        """A file without mistakes exits 0; importing it again stores nothing and exits 0."""
        path = cli / "clean.csv"
        path.write_text("patient;drawn;test;value;unit\nMRN-0001;2026-02-20;CRP;7,59;mg/L\n")
        assert invoke("import", str(path))[0] == 0
        code, out, _ = invoke("import", str(path), "--json")
        assert code == 0
        summary = json.loads(out)
        assert (summary["stored"], summary["duplicate"], summary["refused"]) == (0, 1, 0)

    def test_unusable_file_exits_2(self, cli: Path, ctx: AppContext) -> None:
        """A file without the needed columns, or no file at all, exits 2 and stores nothing."""
        path = cli / "wrong.csv"
        path.write_text("name;value\nx;1\n")
        code, _, err = invoke("import", str(path))
        assert code == 2
        assert "the header lacks the column(s): patient, drawn, test, unit" in err
        assert invoke("import", str(cli / "missing.csv"))[0] == 2
        assert stored(ctx) == []


class TestLabFixDeleteList:
    def test_fix_delete_and_list(self, cli: Path, ctx: AppContext) -> None:
        """A value is corrected, then deleted; `list --all` shows it deleted."""
        invoke("add", "--patient", "MRN-0001", "--crp", "75.9", "--drawn", "2026-02-02")
        code, out, _ = invoke("fix", "1", "--value", "7.59", "--reason", "typo")
        assert code == 0, out
        assert "lab 1 corrected: CRP 75.9 mg/L, 2026-02-02 12:00 → CRP 7.59 mg/L" in out
        code, out, _ = invoke("list", "--patient", "MRN-0001")
        assert "7.59" in out
        assert invoke("delete", "1", "--reason", "wrong patient")[0] == 0
        assert "no lab values for MRN-0001" in invoke("list", "--patient", "MRN-0001")[1]
        assert "deleted" in invoke("list", "--patient", "MRN-0001", "--all")[1]

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["fix", "99", "--value", "1", "--reason", "typo"], "no lab value with id 99"),
            (["fix", "1", "--reason", "typo"], "nothing to change"),
            (["fix", "1", "--value", "900", "--reason", "typo"], "implausible"),
            (["fix", "one"], "Invalid value"),
            (["delete", "99", "--reason", "typo"], "no lab value with id 99"),
            (["delete", "1"], "--reason is required"),
            (["delete", "1", "--reason", "  "], "--reason is required"),
            (["fix", "1", "--value", "8"], "--reason is required"),
            (["list", "--patient", "MRN-404"], "no patient with reference"),
        ],
    )
    def test_refusals_exit_2(
        self, cli: Path, ctx: AppContext, args: list[str], message: str
    ) -> None:
        """Unknown ids, empty or implausible corrections and bad arguments exit 2, changing
        nothing."""
        invoke("add", "--patient", "MRN-0001", "--crp", "7.59", "--drawn", "2026-02-02")
        code, _, err = invoke(*args)
        assert code == 2
        assert message in err
        (lab,) = stored(ctx)
        assert (str(lab.value), lab.deleted) == ("7.59", False)


class TestClinicWideList:
    def test_without_patient_lists_the_clinic_newest_first(
        self, cli: Path, ctx: AppContext
    ) -> None:
        """`lab list` alone shows every patient's values, the most recently drawn first."""
        invoke("add", "--patient", "MRN-0001", "--crp", "7.59", "--drawn", "2026-02-02")
        invoke("add", "--patient", "MRN-0002", "--crp", "12", "--drawn", "2026-02-09")
        invoke("add", "--patient", "MRN-0003", "--esr", "30", "--drawn", "2026-01-20")
        code, out, _ = invoke("list")
        assert code == 0, out
        lines = out.strip().splitlines()[1:]
        assert [line.split()[1] for line in lines] == ["MRN-0002", "MRN-0001", "MRN-0003"]

    def test_a_page_at_a_time(self, cli: Path, ctx: AppContext) -> None:
        """Twenty values a page, with the command for the next page."""
        for day in range(1, 26):
            invoke(
                "add", "--patient", "MRN-0001", "--crp", str(day), "--drawn", f"2026-01-{day:02}"
            )
        first = json.loads(invoke("list", "--json")[1])
        second = json.loads(invoke("list", "--page", "2", "--json")[1])
        assert [lab["value"] for lab in first["labs"]][:2] == ["25", "24"]
        assert (len(first["labs"]), first["more"]) == (20, True)
        assert (len(second["labs"]), second["more"]) == (5, False)
        assert "spondybot lab list --page 2" in invoke("list")[1]
