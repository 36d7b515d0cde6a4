"""clinic web app accounts sessions and export jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.column_types


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('loginfailure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('loginfailure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loginfailure_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_loginfailure_key_hash'), ['key_hash'], unique=False)

    op.create_table('rolepolicy',
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('totp_required', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('role')
    )
    op.create_table('staffaccount',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('totp_secret', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deactivated_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    with op.batch_alter_table('staffaccount', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staffaccount_physician_id'), ['physician_id'], unique=False)

    op.create_table('exportjob',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('filters', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('audit_id', sa.Integer(), nullable=True),
    sa.Column('file_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['staffaccount.id'], ),
    sa.ForeignKeyConstraint(['audit_id'], ['exportaudit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exportjob', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exportjob_account_id'), ['account_id'], unique=False)

    op.create_table('nurseassignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['staffaccount.id'], ),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'physician_id', name='uq_nurse_assignment')
    )
    with op.batch_alter_table('nurseassignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nurseassignment_account_id'), ['account_id'], unique=False)

    op.create_table('passwordlink',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['staffaccount.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('passwordlink', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_passwordlink_account_id'), ['account_id'], unique=False)

    op.create_table('websession',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('csrf_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('pending_totp_secret', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['staffaccount.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('websession', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_websession_account_id'), ['account_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('websession', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_websession_account_id'))

    op.drop_table('websession')
    with op.batch_alter_table('passwordlink', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_passwordlink_account_id'))

    op.drop_table('passwordlink')
    with op.batch_alter_table('nurseassignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nurseassignment_account_id'))

    op.drop_table('nurseassignment')
    with op.batch_alter_table('exportjob', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exportjob_account_id'))

    op.drop_table('exportjob')
    with op.batch_alter_table('staffaccount', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staffaccount_physician_id'))

    op.drop_table('staffaccount')
    op.drop_table('rolepolicy')
    with op.batch_alter_table('loginfailure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loginfailure_key_hash'))
        batch_op.drop_index(batch_op.f('ix_loginfailure_at'))

    op.drop_table('loginfailure')
