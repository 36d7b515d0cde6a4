"""The built wheel, installed into a fresh virtual environment, works away from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _clean_environment(home: Path) -> dict[str, str]:
    """The environment of a clinic's shell: no settings, no path into the checkout."""
    kept = {"PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"}
    env = {name: value for name, value in os.environ.items() if name in kept}
    env["HOME"] = str(home)
    env["MPLCONFIGDIR"] = str(home / "matplotlib")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """spondybot's wheel, built from the checkout as `pip wheel .` would build it."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(REPOSITORY),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("spondybot-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (not editable).

    The dependencies are not downloaded again: a path file makes the pinned ones of the test's
    own environment visible after the venv's own packages (path lines do not run the checkout's
    editable-install hook, so `bot` can only come from the wheel).
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site_packages, "dependencies-of-the-test.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    return venv


class TestWheel:
    def test_wheel_carries_what_the_product_reads(self, wheel: Path) -> None:
        """Templates, instrument texts and migrations are inside the wheel."""
        names = set(zipfile.ZipFile(wheel).namelist())
        for template in (REPOSITORY / "templates").rglob("*"):
            if template.is_file():
                relative = template.relative_to(REPOSITORY).as_posix()
                assert f"bot/{relative}" in names
        assert "bot/templates/instruments/basdai-1994+asdas-pg-v1/zh.toml" in names
        assert "storage/migrations/env.py" in names
        assert "storage/migrations/script.py.mako" in names
        for migration in (REPOSITORY / "storage/migrations/versions").glob("*.py"):
            assert f"storage/migrations/versions/{migration.name}" in names


class TestInstalledPackage:
    def test_bot_comes_from_the_wheel(self, installed: Path, tmp_path: Path) -> None:
        """The fresh environment imports the installed package, not the checkout."""
        result = subprocess.run(
            [str(installed / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
            cwd=tmp_path,
            env=_clean_environment(tmp_path),
            capture_output=True,
            text=True,
            check=True,
        )
        assert Path(result.stdout.strip()).is_relative_to(installed)

    def test_demo_runs_to_the_end_outside_the_checkout(
        self, installed: Path, tmp_path: Path
    ) -> None:
        """`spondybot demo` with piped input ends with the BASDAI, the ASDAS and a chart."""
        chart = tmp_path / "chart.png"
        result = subprocess.run(
            [str(installed / "bin" / "spondybot"), "demo", "--chart", str(chart)],
            cwd=tmp_path,
            env=_clean_environment(tmp_path),
            input="",
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert "BASDAI" in result.stdout
        assert "ASDAS-CRP" in result.stdout
        assert chart.read_bytes().startswith(b"\x89PNG")

    def test_run_without_token_is_one_line_and_exit_code_3(
        self, installed: Path, tmp_path: Path
    ) -> None:
        """`spondybot run` on a new installation says how to get a token, in one line."""
        result = subprocess.run(
            [str(installed / "bin" / "spondybot"), "run"],
            cwd=tmp_path,
            env=_clean_environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 3
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1
        assert "TELEGRAM_BOT_TOKEN" in result.stderr
