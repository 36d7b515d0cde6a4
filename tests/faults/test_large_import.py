"""A large lab import while patients answer: no answer waits long or is lost, memory stays flat.

Reproduce: `.venv/bin/pytest tests/faults -k large_import`; the 100,000-line run with its
figures is `python -m benchmarks lab_import_load` (docs/resilience.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.lab_import_load import import_under_load

pytestmark = pytest.mark.slow

LINES = 3_000
"""About fifteen seconds of importing: in one transaction, longer than an answer may wait."""


class TestLargeImport:
    def test_every_answer_is_stored_while_a_large_file_is_imported(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """While `spondybot lab import` stores 3,000 lines, answers written alongside all
        succeed and are stored; the import stays small in memory and names every bad line."""
        result = import_under_load(database_url, LINES, tmp_path)
        assert result.import_exit_code == 1  # some lines were refused, the others stored
        assert result.reported_bad_lines == result.bad_lines
        assert result.stored == LINES - len(result.bad_lines)
        assert result.answers_failed == 0
        assert result.answers_written > 0
        assert result.answers_stored == result.answers_written
        assert result.peak_rss_mb < 150
