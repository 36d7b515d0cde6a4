"""Column groups that two tables were created with, shared by the migrations that created them.

A released migration must create the same table forever, so each group here is frozen as the
revisions named in its docstring created it: never edit one. A later change to a group is a new
migration that alters the tables, as a change to any column is.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import SchemaItem
from sqlmodel.sql.sqltypes import AutoString

from storage.column_types import UTCDateTime


def therapy_columns() -> list[sa.Column[object]]:
    """The six fields of a therapy (clinical spec §7) as revision 0002 created them on
    `therapyepisode` and 0005 on `pendingtherapychange`; the models share them through
    `storage.models.TherapyColumns`."""
    return [
        sa.Column("drug", AutoString(length=120), nullable=False),
        sa.Column("therapy_class", AutoString(length=32), nullable=False),
        sa.Column("dose", AutoString(length=120), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("stop_date", sa.Date(), nullable=True),
        sa.Column("stop_reason", AutoString(length=32), nullable=True),
    ]


def awaiting_save_columns() -> list[SchemaItem]:
    """The life of a change a physician typed in chat and has not saved yet, with the two
    references it belongs to, as revision 0001 created it on `pendinglabentry` and 0005 on
    `pendingtherapychange`."""
    return [
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.ForeignKeyConstraint(["physician_id"], ["physician.id"]),
    ]
