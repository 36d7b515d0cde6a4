"""The README's shell examples are executable documentation: they run as written, in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import TEST_PSEUDONYM_KEY
from tests.digest.conftest import Inbox, free_port

REPOSITORY = Path(__file__).resolve().parent.parent
README = REPOSITORY / "README.md"
RUN_IN_ORDER = ("Setting up a clinic", "Lab values", "Physician digest", "Research export")
"""The sections a clinic follows one after the other, on one database."""
LAB_FILE = "crp-march.csv"
"""The lab export the README imports; its content is the README's own example file."""

pytestmark = pytest.mark.slow


def sections(text: str) -> dict[str, str]:
    """The README's "## " sections (their "### " subsections included), by title."""
    found: dict[str, str] = {}
    title = None
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title is not None:
            found[title] += line
    return found


def blocks(section: str, language: str) -> list[str]:
    """The fenced code blocks of one language in a section, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", section, re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    """The commands of a shell block, without comment-only lines."""
    return [
        line.strip()
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


@pytest.fixture
def smtp_port() -> Iterator[int]:
    """A real SMTP server for the digest's e-mail (the README's physician has an address)."""
    port = free_port()
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_readme_sections_exist() -> None:
    """The sections this test runs are still there, each with shell examples."""
    found = sections(README.read_text(encoding="utf-8"))
    for title in RUN_IN_ORDER:
        assert blocks(found[title], "sh"), title
    assert blocks(found["Lab values"], "csv")


def test_shell_examples_run_in_order(database_url: str, smtp_port: int, tmp_path: Path) -> None:
    """Every command of the set-up, lab, digest and export examples exits 0 as written, on one
    fresh database, from a folder with the README's lab file."""
    found = sections(README.read_text(encoding="utf-8"))
    (lab_file,) = blocks(found["Lab values"], "csv")
    work = tmp_path / "clinic"
    (work / ".venv").mkdir(parents=True)
    # `.venv/bin/spondybot` as the README writes it: the test's own installation.
    (work / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    (work / LAB_FILE).write_text(lab_file, encoding="utf-8")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "DATABASE_URL": database_url,
        "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "SMTP_FROM": "spondybot@example.org",
        "LANG": "C.UTF-8",
    }
    ran = 0
    for title in RUN_IN_ORDER:
        for block in blocks(found[title], "sh"):
            for command in commands(block):
                # Files the examples write to /tmp go to the test's own folder.
                runnable = command.replace("/tmp", str(scratch))
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", runnable],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert result.returncode == 0, (
                    f"README, {title}: `{command}` exited {result.returncode}:\n"
                    f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
                )
                ran += 1
    assert ran >= 20
    assert (work / "dictionary" / "data-dictionary.md").is_file()
    assert (work / "basdai.parquet").is_file()
