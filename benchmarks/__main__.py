"""`python -m benchmarks [name ...]`: runs the benchmark suite and rewrites docs/benchmarks.md.

Each benchmark module in SUITE exposes `run(quick: bool) -> Report`; each report replaces its
own section of docs/benchmarks.md (sections of benchmarks not run are kept), under a header
with the machine and the date. `--scale N` runs, at N patients stored, every benchmark whose
`run` also takes `scale` (see benchmarks/registry.py and benchmarks/scale.py). When several
benchmarks run, each runs in a process of its own, so none is measured with what another left
in memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import Report

# Benchmark modules in report order.
SUITE: list[str] = [
    "conversation",
    "memory",
    "export",
    "digest",
    "fanout",
    "labs",
    "startup",
    "lab_import_load",
    "scale",
]
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """One line describing where the figures were measured."""
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}"
    )


def _sections(text: str) -> dict[str, str]:
    """The "## Title" sections of the report, by title, so a partial run replaces only its own."""
    sections: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            sections[title] = ""
        if title is not None:
            sections[title] += line + "\n"
    return sections


def _written_by_hand(section: str) -> str:
    """A section's "### " subsections: rounds of measurements with what they changed and found,
    which no run writes (a report has none of its own)."""
    lines = section.splitlines()
    first = next((n for n, line in enumerate(lines) if line.startswith("### ")), len(lines))
    return "\n".join(lines[first:]).strip()


def compose(previous: str, header: list[str], reports: list[Report]) -> str:
    """The new report: `header`, then every section of `previous` in its place with those of
    `reports` replaced (new ones at the end), their "### " subsections kept below the new
    figures. Rewriting with the same reports changes nothing."""
    sections = _sections(previous)
    for report in reports:
        kept = _written_by_hand(sections.get(report.title, ""))
        sections[report.title] = report.markdown().rstrip() + "\n" + (f"\n{kept}\n" if kept else "")
    body = "\n\n".join(section.strip() for section in sections.values())
    return "\n".join(header).rstrip() + "\n\n" + body + "\n"


def _takes_scale(name: str) -> bool:
    module = importlib.import_module(f"benchmarks.{name}")
    return "scale" in inspect.signature(module.run).parameters


def _run_here(name: str, *, quick: bool, scale: int | None) -> Report:
    module = importlib.import_module(f"benchmarks.{name}")
    if scale is None:
        print(f"running {name} …", file=sys.stderr, flush=True)
        report: Report = module.run(quick=quick)
    else:
        print(f"running {name} at {scale:,} patients …", file=sys.stderr, flush=True)
        report = module.run(quick=quick, scale=scale)
    return report


def _run_apart(name: str, *, quick: bool, scale: int | None) -> Report:
    """`name` run in a process of its own, so that what one benchmark leaves in memory is not
    counted in the next one's resident set (the digest's target is on RSS)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        command = [sys.executable, "-m", "benchmarks", name, "--report-to", str(out)]
        command += ["--quick"] if quick else []
        command += [] if scale is None else ["--scale", str(scale)]
        subprocess.run(command, check=True)
        return Report(**json.loads(out.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"subset of: {', '.join(SUITE)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only; keep the doc")
    parser.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="run the benchmarks that take a registry size at N patients stored",
    )
    # One benchmark's report as JSON, for the run that started it in a process of its own.
    parser.add_argument("--report-to", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.names or SUITE
    unknown = [name for name in names if name not in SUITE]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.scale is not None:
        names = [name for name in names if _takes_scale(name)]
    if args.report_to is not None:
        (report,) = [_run_here(name, quick=args.quick, scale=args.scale) for name in names]
        Path(args.report_to).write_text(json.dumps(dataclasses.asdict(report)), encoding="utf-8")
        return 0
    run = _run_apart if len(names) > 1 else _run_here
    reports = [run(name, quick=args.quick, scale=args.scale) for name in names]
    header = [
        "# Benchmarks",
        "",
        f"Last run {datetime.now(UTC):%Y-%m-%d} on {machine()}.",
        "Reproduce with `make bench` (all) or `.venv/bin/python -m benchmarks NAME`.",
        "",
    ]
    text = compose(DOC.read_text(encoding="utf-8") if DOC.exists() else "", header, reports)
    print("\n".join(report.markdown() for report in reports))
    if not args.no_write and not args.quick:
        DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
