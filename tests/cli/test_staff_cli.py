"""The staff CLI: creates physicians and patients, prints codes, refuses bad arguments."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from typer.main import get_command
from typer.testing import CliRunner

from bot.cli import app
from bot.services.keyed import code_hash
from bot.services.staff import normalise_code
from storage import enrollment
from storage.db import make_engine, session_scope
from storage.models import Physician
from tests.conftest import TEST_PSEUDONYM_KEY

runner = CliRunner()


def stored(code: object) -> str:
    """How a code is stored under the test's PSEUDONYM_KEY."""
    return code_hash(TEST_PSEUDONYM_KEY.encode("utf-8"), normalise_code(str(code)))


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> str:
    """Points the CLI at a fresh database, as an operator's environment would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "clinic_bot")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return database_url


def _json(output: str) -> dict[str, object]:
    value = json.loads(output.strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


class TestStaffCli:
    def test_patient_add_prints_code_and_deep_link(self, cli_env: str) -> None:
        """Adding a patient prints a code and the t.me link that carries it."""
        runner.invoke(app, ["physician", "add", "--name", "Dr Lee"])
        result = runner.invoke(app, ["patient", "add", "--physician", "1", "--ref", "MRN-7"])
        assert result.exit_code == 0, result.output
        code = result.output.split("one-time code:")[1].split()[0]
        assert f"https://t.me/clinic_bot?start={code}" in result.output

    def test_json_output_for_scripts(self, cli_env: str) -> None:
        """--json prints one object with the ids, the code and the link."""
        physician = _json(runner.invoke(app, ["physician", "add", "--name", "Dr", "--json"]).output)
        patient = _json(
            runner.invoke(
                app,
                [
                    "patient",
                    "add",
                    "--physician",
                    str(physician["physician_id"]),
                    "--ref",
                    "A1",
                    "--json",
                ],
            ).output
        )
        assert patient["physician_id"] == physician["physician_id"]
        assert patient["link"] == f"https://t.me/clinic_bot?start={patient['code']}"

    def test_new_code_revokes_the_old_one(self, cli_env: str) -> None:
        """`patient code` issues a fresh code and the previous one no longer works."""
        runner.invoke(app, ["physician", "add", "--name", "Dr"])
        old = _json(
            runner.invoke(
                app, ["patient", "add", "--physician", "1", "--ref", "A1", "--json"]
            ).output
        )
        new = _json(runner.invoke(app, ["patient", "code", "A1", "--json"]).output)
        assert new["code"] != old["code"]
        engine = make_engine(cli_env)
        from datetime import UTC, datetime

        with session_scope(engine) as session:
            now = datetime.now(UTC)
            assert (
                enrollment.claim_code(
                    session=session,
                    code_hash=stored(old["code"]),
                    now=now,
                )
                is None
            )
            assert (
                enrollment.claim_code(
                    session=session,
                    code_hash=stored(new["code"]),
                    now=now,
                )
                is not None
            )
        engine.dispose()

    def test_patient_list_shows_status(self, cli_env: str) -> None:
        """The list names each patient's reference, physician and status."""
        runner.invoke(app, ["physician", "add", "--name", "Dr"])
        runner.invoke(app, ["patient", "add", "--physician", "1", "--ref", "REF-A"])
        result = runner.invoke(app, ["patient", "list"])
        assert result.exit_code == 0
        assert "REF-A" in result.output
        assert "invited" in result.output

    @pytest.mark.parametrize(
        "args",
        [
            ["patient", "add", "--physician", "99", "--ref", "X"],
            ["patient", "add", "--physician", "1", "--ref", "has space"],
            ["patient", "add", "--physician", "1", "--ref", "X", "--language", "fr"],
            ["patient", "add", "--physician", "1", "--ref", "X", "--timezone", "Nowhere/City"],
            ["patient", "add", "--physician", "abc", "--ref", "X"],
            ["physician", "add", "--name", "  "],
            ["patient", "code", "UNKNOWN"],
        ],
    )
    def test_bad_arguments_exit_2_and_write_nothing(self, cli_env: str, args: list[str]) -> None:
        """A clear message, exit code 2, and no patient created."""
        runner.invoke(app, ["physician", "add", "--name", "Dr"])
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        listing = runner.invoke(app, ["patient", "list", "--json"])
        assert _json(listing.output)["patients"] == []

    def test_duplicate_reference_is_refused(self, cli_env: str) -> None:
        """Two patients cannot share a clinic reference."""
        runner.invoke(app, ["physician", "add", "--name", "Dr"])
        runner.invoke(app, ["patient", "add", "--physician", "1", "--ref", "R"])
        result = runner.invoke(app, ["patient", "add", "--physician", "1", "--ref", "R"])
        assert result.exit_code == 2
        assert "already exists" in result.output

    def test_unmigrated_database_is_explained(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Before `db upgrade`, commands say what to run instead of failing on SQL."""
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
        result = runner.invoke(app, ["patient", "list"])
        assert result.exit_code == 2
        assert "spondybot db upgrade" in result.output

    def test_bad_setting_is_one_line_exit_2(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A malformed setting names itself on one line, without a traceback."""
        monkeypatch.setenv("CLINIC_LANGUAGE", "xx")
        result = runner.invoke(app, ["patient", "list"])
        assert result.exit_code == 2
        assert result.output.strip().startswith("error: setting CLINIC_LANGUAGE")

    def test_help_has_an_example_at_every_level(self) -> None:
        """Every command group and every command of `spondybot` shows an example in its help."""
        root = get_command(app)
        assert hasattr(root, "commands")
        paths: list[list[str]] = [[]]
        for name, command in root.commands.items():
            paths.append([name])
            if hasattr(command, "commands"):
                paths.extend([name, sub] for sub in command.commands)
        assert len(paths) > 10
        for args in paths:
            result = runner.invoke(app, [*args, "--help"])
            assert result.exit_code == 0, args
            assert "Example" in result.output, args


class TestCodeExpiry:
    def test_expiry_is_clinic_local_time_to_the_minute(
        self, cli_env: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ "valid until" is in the clinic's time zone, without seconds or microseconds."""
        monkeypatch.setenv("CLINIC_TIMEZONE", "Asia/Shanghai")
        runner.invoke(app, ["physician", "add", "--name", "Dr"])
        result = runner.invoke(app, ["patient", "add", "--physician", "1", "--ref", "A1"])
        assert result.exit_code == 0, result.output
        line = next(line for line in result.output.splitlines() if "valid until" in line)
        assert re.fullmatch(r"valid until:\s+\d{4}-\d\d-\d\d \d\d:\d\d \(Asia/Shanghai\)", line), (
            line
        )
        shown = datetime.strptime(line.split()[2] + " " + line.split()[3], "%Y-%m-%d %H:%M")
        expected = (datetime.now(UTC) + timedelta(days=14)).astimezone(ZoneInfo("Asia/Shanghai"))
        assert abs(shown - expected.replace(tzinfo=None)) < timedelta(minutes=2)


class TestServerSecret:
    def test_codes_and_the_bot_need_pseudonym_key(
        self, cli_env: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without PSEUDONYM_KEY, issuing a code and running the bot stop in one line naming
        the setting, and nothing is created."""
        monkeypatch.delenv("PSEUDONYM_KEY")
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN-abcdefghijklmnopqrstuv")
        added = runner.invoke(app, ["physician", "add", "--name", "Dr"])
        assert added.exit_code != 0
        assert isinstance(added.exception, SystemExit)  # a refusal, not a crash
        assert "setting PSEUDONYM_KEY" in added.output.strip().splitlines()[-1]
        engine = make_engine(cli_env)
        with session_scope(engine) as session:
            assert session.exec(select(Physician)).first() is None
        engine.dispose()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:  # `run` sets up the product's logging on the runner's stream, closed afterwards
            started = runner.invoke(app, ["run"])
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
        assert started.exit_code != 0
        assert "setting PSEUDONYM_KEY" in started.output
