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
from io import BytesIO
from pathlib import Path

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
    env = dict(os.environ, PYTHONPATH=str(code), DATABASE_URL=f"sqlite:///{folder / 'clinic.db'}")
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


def _measure(
    args: list[str], *, code: Path, folder: Path, runs: int
) -> tuple[list[float], list[float], set[str]]:
    """Wall-clock seconds and total import seconds of each run, and the heavy packages loaded."""
    _spondybot(args, code=code, folder=folder, importtime=False)  # warm-up: caches, .pyc files
    walls: list[float] = []
    imports: list[float] = []
    heavy: set[str] = set()
    for _ in range(runs):
        started = time.perf_counter()
        _spondybot(args, code=code, folder=folder, importtime=False)
        walls.append(time.perf_counter() - started)
        lines = _IMPORT_LINE.findall(
            _spondybot(args, code=code, folder=folder, importtime=True).stderr
        )
        imports.append(sum(int(micros) for micros, _ in lines) / 1e6)
        heavy |= {name.split(".")[0] for _, name in lines} & set(HEAVY)
    return walls, imports, heavy


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
        for label, code in ((f"before ({revision[:9]})", baseline), ("now", REPOSITORY)):
            folder = Path(scratch) / label.split()[0]
            folder.mkdir()
            _clinic(code, folder)
            for name, args in COMMANDS.items():
                walls, imports, heavy = _measure(args, code=code, folder=folder, runs=runs)
                wall, wall_spread = median_spread(walls)
                imported, imported_spread = median_spread(imports)
                report.add(
                    f"`{name}`",
                    label,
                    f"{wall:.2f} ± {wall_spread:.2f}",
                    f"{imported:.2f} ± {imported_spread:.2f}",
                    ", ".join(sorted(heavy)) or "none",
                )
    report.notes = [
        f"Median of {runs} runs after a warm-up run, ± half the min–max range; both versions "
        "measured one after the other in the same run on the same machine.",
        "Import time is the sum of the self times `python -X importtime` reports (it slows "
        "imports down a little, so it is measured in separate runs from the wall-clock).",
        "matplotlib, pyarrow and python-telegram-bot are imported where a chart is drawn, a "
        "Parquet file written or the bot started; `tests/cli/test_startup.py` checks that "
        "`--help`, `patient list` and `lab add` load none of them.",
    ]
    return report
