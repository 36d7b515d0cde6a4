"""pending therapy changes typed in chat

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.column_types


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pendingtherapychange',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('therapy_id', sa.Integer(), nullable=True),
    sa.Column('drug', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('therapy_class', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('dose', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('stop_date', sa.Date(), nullable=True),
    sa.Column('stop_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.ForeignKeyConstraint(['therapy_id'], ['therapyepisode.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pendingtherapychange', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pendingtherapychange_physician_id'), ['physician_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pendingtherapychange', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pendingtherapychange_physician_id'))

    op.drop_table('pendingtherapychange')
