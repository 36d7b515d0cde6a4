"""Start-up of staff commands: wall-clock and `python -X importtime`, before and after lazy imports.

Every `spondybot` command used to import matplotlib (through the chart module that the demo and
the screens share) before doing anything. The baseline is the same commands run from the code of
`BASELINE` (default: where this branch left `main`), unpacked with `git archive` and put first on
the import path, on the same machine in the same run; "now" is the working tree. Each figure is
the median of several runs after one warm-up run, with half the min–max range.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from benchmarks import PSEUDONYM_KEY
from benchmarks.report import Report, median_spread

REPOSITORY = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "pyarrow", "telegram")
COMMANDS: dict[str, list[str]] = {
    "spondybot --help": ["--help"],
    "spondybot patient list": ["patient", "list"],
    "spondybot lab add": [
        "lab",
        "add",
        "--patient",
        "MRN-0042",
        "--crp",
        "7.59",
        "--drawn",
        "2026-03-02",
    ],
}
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+\d+ \|\s*([\w.]+)$", re.MULTILINE)


def _baseline_revision() -> str:
    explicit = os.environ.get("BASELINE")
    if explicit:
        return explicit
    return subprocess.run(
        ["git", "merge-base", "HEAD", "main"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _unpack(revision: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", revision, "bot", "storage", "templates"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _spondybot(
    args: list[str], *, code: Path, folder: Path, importtime: bool
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        PYTHONPATH=str(code),
        DATABASE_URL=f"sqlite:///{folder / 'clinic.db'}",
        PSEUDONYM_KEY=PSEUDONYM_KEY,  # `physician add` issues a code
    )
    flags = ["-X", "importtime"] if importtime else []
    result = subprocess.run(
        [sys.executable, *flags, "-m", "bot", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr[-500:]}")
    return result


@dataclass
class Figures:
    """Wall-clock and total import seconds of each run, and the heavy packages loaded."""

    walls: list[float] = field(default_factory=list)
    imports: list[float] = field(default_factory=list)
    heavy: set[str] = field(default_factory=set)


def _measure_once(args: list[str], *, code: Path, folder: Path, figures: Figures) -> None:
    started = time.perf_counter()
    _spondybot(args, code=code, folder=folder, importtime=False)
    figures.walls.append(time.perf_counter() - started)
    lines = _IMPORT_LINE.findall(_spondybot(args, code=code, folder=folder, importtime=True).stderr)
    figures.imports.append(sum(int(micros) for micros, _ in lines) / 1e6)
    figures.heavy |= {name.split(".")[0] for _, name in lines} & set(HEAVY)


def _clinic(code: Path, folder: Path) -> None:
    for args in (
        ["db", "upgrade"],
        ["physician", "add", "--name", "Dr. Lee"],
        ["patient", "add", "--physician", "1", "--ref", "MRN-0042"],
    ):
        _spondybot(args, code=code, folder=folder, importtime=False)


def run(quick: bool) -> Report:
    runs = 3 if quick else 9
    revision = _baseline_revision()
    report = Report(
        title="Start-up of staff commands",
        columns=[
            "command",
            "code",
            "wall-clock (s)",
            "import time (s, -X importtime)",
            "heavy libraries loaded",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="spondybot-startup-") as scratch:
        baseline = Path(scratch) / "baseline"
        baseline.mkdir()
        _unpack(revision, baseline)
        versions = {f"before ({revision[:9]})": baseline, "now": REPOSITORY}
        folders = {}
        for label, code in versions.items():
            folders[label] = Path(scratch) / label.split()[0]
            folders[label].mkdir()
            _clinic(code, folders[label])
        figures = {(name, label): Figures() for label in versions for name in COMMANDS}
        for name, args in COMMANDS.items():
            for label, code in versions.items():  # warm-up: caches, .pyc files
                _spondybot(args, code=code, folder=folders[label], importtime=False)
            # Before and now alternate, so a busy moment of the machine hits both alike.
            for _ in range(runs):
                for label, code in versions.items():
                    _measure_once(
                        args, code=code, folder=folders[label], figures=figures[name, label]
                    )
        for label in versions:
            for name in COMMANDS:
                measured = figures[name, label]
                wall, wall_spread = median_spread(measured.walls)
                imported, imported_spread = median_spread(measured.imports)
                report.add(
                    f"`{name}`",
                    label,
                    f"{wall:.2f} ± {wall_spread:.2f}",
                    f"{imported:.2f} ± {imported_spread:.2f}",
                    ", ".join(sorted(measured.heavy)) or "none",
                )
    report.notes = [
        f"Median of {runs} runs after a warm-up run, ± half the min–max range; both versions "
        "measured in the same run on the same machine, their runs alternating.",
        "Import time is the sum of the self times `python -X importtime` reports (it slows "
        "imports down a little, so it is measured in separate runs from the wall-clock).",
        "matplotlib, pyarrow and python-telegram-bot are imported where a chart is drawn, a "
        "Parquet file written or the bot started; `tests/cli/test_startup.py` checks that "
        "`--help`, `patient list` and `lab add` load none of them.",
    ]
    return report
