"""when a patient's next weekly slot may fall due, so an idle tick reads only those

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.column_types


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start NULL ("not known yet"): the first tick computes every patient once.
    with op.batch_alter_table('patient') as batch:
        batch.add_column(
            sa.Column('next_check_at', storage.column_types.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index(batch.f('ix_patient_next_check_at'), ['next_check_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('patient') as batch:
        batch.drop_index(batch.f('ix_patient_next_check_at'))
        batch.drop_column('next_check_at')
