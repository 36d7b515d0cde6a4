"""The SQL statements the code under test sends, captured from every engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def captured_statements(skip: re.Pattern[str] | None = None) -> Iterator[list[tuple[str, Any]]]:
    """Every statement any engine sends while the block runs, with its parameters; those
    `skip` matches (transaction control, say) are left out."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if skip is None or not skip.match(statement):
            statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
