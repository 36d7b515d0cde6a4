"""The benchmark report rewrites only the sections of the benchmarks that ran."""

from __future__ import annotations

from benchmarks.__main__ import compose
from benchmarks.report import Report

HEADER = ["# Benchmarks", "", "Last run today.", ""]


def _report(title: str, value: str) -> Report:
    report = Report(title, ["measure", "value"])
    report.add("speed", value)
    report.notes.append(f"{title} note")
    return report


def test_a_partial_run_replaces_only_its_own_section() -> None:
    first = compose("", HEADER, [_report("Export", "1.0"), _report("Digest", "2.0")])
    second = compose(first, HEADER, [_report("Export", "3.0")])
    assert "| speed | 3.0 |" in second
    assert "| speed | 1.0 |" not in second
    assert "| speed | 2.0 |" in second
    assert second.index("## Export") < second.index("## Digest")


def test_rewriting_keeps_the_layout_as_it_was() -> None:
    """Kept sections do not gather blank lines run after run."""
    first = compose("", HEADER, [_report("Export", "1.0"), _report("Digest", "2.0")])
    again = compose(first, HEADER, [_report("Digest", "2.0")])
    assert again == first
    assert "\n\n\n" not in first
    assert first.startswith("# Benchmarks\n\nLast run today.\n\n## Export\n")


def test_the_rounds_written_by_hand_stay_below_the_new_figures() -> None:
    """A run replaces a section's figures, never the rounds written under them."""
    first = compose("", HEADER, [_report("Export", "1.0"), _report("Digest", "2.0")])
    assert first.rstrip().endswith("Digest note")
    curated = first + "\n### Round 1\n\nWhat changed, and why.\n"
    second = compose(curated, HEADER, [_report("Digest", "3.0")])
    assert "| speed | 3.0 |" in second
    assert "| speed | 2.0 |" not in second
    assert second.count("### Round 1") == 1
    assert second.index("| speed | 3.0 |") < second.index("### Round 1")
    assert second.rstrip().endswith("What changed, and why.")
    assert compose(second, HEADER, [_report("Digest", "3.0")]) == second


def test_a_section_without_notes_keeps_one_blank_line_before_its_rounds() -> None:
    bare = Report("Digest", ["measure", "value"])
    bare.add("night", "3 min")
    first = compose("", HEADER, [bare])
    with_round = first.replace("| night | 3 min |", "| night | 3 min |\n\n### Round 1\n\nkept")
    again = compose(with_round, HEADER, [bare])
    assert "| night | 3 min |\n\n### Round 1\n\nkept" in again
