"""Staff commands start without loading the chart, Parquet or Telegram libraries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("matplotlib", "pyarrow", "telegram", "starlette", "uvicorn")
"""The chart, Parquet and Telegram libraries, and the web server (`spondybot serve` only)."""


def imported_packages(args: list[str], cwd: Path) -> set[str]:
    """Top-level packages a `spondybot` command imports, read from `python -X importtime`."""
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite:///{cwd / 'clinic.db'}",
        PSEUDONYM_KEY="test-pseudonym-key-0123456789abcdef",
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", result.stderr, re.M)
    return {name.split(".")[0] for name in names}


@pytest.fixture
def clinic(tmp_path: Path) -> Path:
    """A migrated SQLite database with one physician and one patient."""
    for args in (
        ["db", "upgrade"],
        ["physician", "add", "--name", "Dr. Lee"],
        ["patient", "add", "--physician", "1", "--ref", "MRN-0042"],
    ):
        imported_packages(args, tmp_path)
    return tmp_path


class TestStartup:
    def test_help_loads_none_of_the_heavy_libraries(self, tmp_path: Path) -> None:
        """`spondybot --help` imports neither matplotlib, pyarrow, python-telegram-bot nor the
        web server."""
        loaded = imported_packages(["--help"], tmp_path)
        assert "typer" in loaded
        assert not loaded & set(HEAVY)

    @pytest.mark.parametrize(
        "args",
        [
            ["patient", "list"],
            ["lab", "add", "--patient", "MRN-0042", "--crp", "7.59", "--drawn", "2026-03-02"],
            ["therapy", "list", "--patient", "MRN-0042"],
        ],
    )
    def test_staff_commands_load_none_of_them(self, clinic: Path, args: list[str]) -> None:
        """`patient list` and `lab add` run to the end without the three libraries."""
        loaded = imported_packages(args, clinic)
        assert "sqlalchemy" in loaded
        assert not loaded & set(HEAVY)
