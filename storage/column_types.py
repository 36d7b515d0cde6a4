"""Column types that behave identically on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_STORAGE_CONTEXT = Context(prec=40)


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal kept as its exact text, so clinical values never pass through binary floats."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value))
        if not value.is_finite():
            raise ValueError("non-finite decimal cannot be stored")
        # 40 significant digits: exact for every entered value and every threshold case;
        # repeating fractions (50 min / 12) are cut far below any clinical relevance.
        return format(_STORAGE_CONTEXT.plus(value).normalize(_STORAGE_CONTEXT), "f")

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """The stored text made a Decimal in one call per value.

        The decorator's own chain makes two Python calls of every value, and a digest or an
        export reads hundreds of thousands of them; the text type has no processing of its own
        on either database, and where a driver had one the chain is kept.
        """
        if self.impl_instance.result_processor(dialect, coltype) is not None:
            return super().result_processor(dialect, coltype)
        return _decimal_or_none

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return _decimal_or_none(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases; naive values are refused to catch bugs early."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        converted = value.astimezone(UTC)
        # SQLite keeps text; storing naive UTC keeps its ordering lexical and correct.
        return converted.replace(tzinfo=None) if dialect.name == "sqlite" else converted

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """One call per value: on SQLite the stored text parsed and marked UTC, elsewhere the
        driver's datetime checked to be UTC.

        The decorator's own chain (SQLite's text parser, then `process_result_value`) makes
        two or three Python calls of every value, and a digest reads forty thousand of them.
        """
        if dialect.name == "sqlite":
            return _sqlite_utc
        if self.impl_instance.result_processor(dialect, coltype) is not None:
            return super().result_processor(dialect, coltype)
        return _aware_utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return _aware_utc(value)


def _decimal_or_none(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _aware_utc(value: datetime | None) -> datetime | None:
    """A datetime the driver read, in UTC (PostgreSQL's sessions are in UTC, storage.db, so
    its values come marked UTC already)."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_utc(value: str | None) -> datetime | None:
    """A datetime SQLite keeps as naive UTC text (`UTCDateTime.process_bind_param`), aware."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
