"""`python -m benchmarks [name ...]`: runs the benchmark suite and rewrites docs/benchmarks.md.

Each benchmark module in SUITE exposes `run(quick: bool) -> Report`; each report replaces its
own section of docs/benchmarks.md (sections of benchmarks not run are kept), under a header
with the machine and the date. `--scale N` runs, at N patients stored, every benchmark whose
`run` also takes `scale` (see benchmarks/registry.py and benchmarks/scale.py).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import sys
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
        sections[report.title] = report.markdown() + (f"\n\n{kept}\n" if kept else "")
    body = "\n\n".join(section.strip() for section in sections.values())
    return "\n".join(header).rstrip() + "\n\n" + body + "\n"


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
    args = parser.parse_args(argv)
    names = args.names or SUITE
    unknown = [name for name in names if name not in SUITE]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    reports: list[Report] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if args.scale is None:
            print(f"running {name} …", file=sys.stderr, flush=True)
            reports.append(module.run(quick=args.quick))
        elif "scale" in inspect.signature(module.run).parameters:
            print(f"running {name} at {args.scale:,} patients …", file=sys.stderr, flush=True)
            reports.append(module.run(quick=args.quick, scale=args.scale))
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
