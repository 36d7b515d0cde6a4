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
from storage.migrations.shared_columns import awaiting_save_columns, therapy_columns


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
    *therapy_columns(),
    *awaiting_save_columns(),
    sa.ForeignKeyConstraint(['therapy_id'], ['therapyepisode.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pendingtherapychange', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pendingtherapychange_physician_id'), ['physician_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pendingtherapychange', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pendingtherapychange_physician_id'))

    op.drop_table('pendingtherapychange')
