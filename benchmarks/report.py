"""A benchmark's result: a title, a table of figures and notes, rendered as Markdown."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Report:
    """Figures of one benchmark, with what they mean and the target they are held against."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        lines.append("")
        lines.extend(f"- {note}" for note in self.notes)
        lines.append("")
        return "\n".join(lines)


def median_spread(values: list[float]) -> tuple[float, float]:
    """Median and half the min–max range of repeated measurements."""
    return statistics.median(values), (max(values) - min(values)) / 2
