"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.column_types
from storage.migrations.shared_columns import awaiting_save_columns


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('auditevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('before', sa.Text(), nullable=True),
    sa.Column('after', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auditevent_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_auditevent_patient_id'), ['patient_id'], unique=False)

    op.create_table('enrollmentattempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('attempted_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enrollmentattempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollmentattempt_account_hash'), ['account_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollmentattempt_attempted_at'), ['attempted_at'], unique=False)

    op.create_table('exportaudit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('filters', sa.Text(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('physician',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('digest_weekday', sa.Integer(), nullable=False),
    sa.Column('digest_time', sa.Time(), nullable=False),
    sa.Column('alerts_enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('schedulermark',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('handled_until', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('processedupdate',
    sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('processed_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('message_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('update_id'),
    sa.UniqueConstraint('message_key')
    )
    with op.batch_alter_table('processedupdate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processedupdate_processed_at'), ['processed_at'], unique=False)

    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=False),
    sa.Column('clinic_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('research_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('schedule_weekday', sa.Integer(), nullable=False),
    sa.Column('schedule_time', sa.Time(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('onboarding_step', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('consent_version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('consent_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_until', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unreachable_since', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('baseline_date', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_ref', name='uq_patient_clinic_ref'),
    sa.UniqueConstraint('research_id')
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_physician_id'), ['physician_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_status'), ['status'], unique=False)

    op.create_table('administration',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('slot_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('current_item', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('return_to_summary', sa.Boolean(), nullable=False),
    sa.Column('instrument_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('opened_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_reminder_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('question_message_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('patient_id', 'kind', 'slot_at', name='uq_administration_slot')
    )
    with op.batch_alter_table('administration', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_administration_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_administration_next_reminder_at'), ['next_reminder_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_administration_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_administration_status_patient', ['status', 'patient_id'], unique=False)

    op.create_table('chatlink',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('physician_id', sa.Integer(), nullable=True),
    sa.Column('linked_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('patient_id'),
    sa.UniqueConstraint('physician_id'),
    sa.UniqueConstraint('telegram_user_id')
    )
    op.create_table('enrollmentcode',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('physician_id', sa.Integer(), nullable=True),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code_hash')
    )
    with op.batch_alter_table('enrollmentcode', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollmentcode_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollmentcode_physician_id'), ['physician_id'], unique=False)

    op.create_table('labresult',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('analyte', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('value', storage.column_types.ExactDecimal(length=64), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('value_normalised', storage.column_types.ExactDecimal(length=64), nullable=False),
    sa.Column('below_detection_limit', sa.Boolean(), nullable=False),
    sa.Column('drawn_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('entered_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_key')
    )
    with op.batch_alter_table('labresult', schema=None) as batch_op:
        batch_op.create_index('ix_lab_patient_analyte_drawn', ['patient_id', 'analyte', 'drawn_at'], unique=False)
        batch_op.create_index('uq_lab_current_sample', ['patient_id', 'analyte', 'drawn_at'], unique=True, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))

    op.create_table('answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('administration_id', sa.Integer(), nullable=False),
    sa.Column('item_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('raw_value', storage.column_types.ExactDecimal(length=64), nullable=False),
    sa.Column('score', storage.column_types.ExactDecimal(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('answered_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['administration_id'], ['administration.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('administration_id', 'item_code', name='uq_answer_item')
    )
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_answer_administration_id'), ['administration_id'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('physician_id', sa.Integer(), nullable=True),
    sa.Column('administration_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('claimed_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', storage.column_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['administration_id'], ['administration.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['physician_id'], ['physician.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_physician_id'), ['physician_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_status'), ['status'], unique=False)

    op.create_table('pendinglabentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('physician_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('crp_value', storage.column_types.ExactDecimal(length=64), nullable=False),
    sa.Column('crp_unit', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('crp_below_detection_limit', sa.Boolean(), nullable=False),
    sa.Column('esr_value', storage.column_types.ExactDecimal(length=64), nullable=True),
    sa.Column('drawn_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    *awaiting_save_columns(),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pendinglabentry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pendinglabentry_physician_id'), ['physician_id'], unique=False)

    op.create_table('scorerecord',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('administration_id', sa.Integer(), nullable=False),
    sa.Column('basdai', storage.column_types.ExactDecimal(length=64), nullable=True),
    sa.Column('asdas_crp', storage.column_types.ExactDecimal(length=64), nullable=True),
    sa.Column('asdas_crp_lab_id', sa.Integer(), nullable=True),
    sa.Column('crp_floored', sa.Boolean(), nullable=False),
    sa.Column('asdas_esr', storage.column_types.ExactDecimal(length=64), nullable=True),
    sa.Column('asdas_esr_lab_id', sa.Integer(), nullable=True),
    sa.Column('computed_at', storage.column_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['administration_id'], ['administration.id'], ),
    sa.ForeignKeyConstraint(['asdas_crp_lab_id'], ['labresult.id'], ),
    sa.ForeignKeyConstraint(['asdas_esr_lab_id'], ['labresult.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('administration_id')
    )
    with op.batch_alter_table('scorerecord', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scorerecord_asdas_crp_lab_id'), ['asdas_crp_lab_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scorerecord_asdas_esr_lab_id'), ['asdas_esr_lab_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scorerecord', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scorerecord_asdas_esr_lab_id'))
        batch_op.drop_index(batch_op.f('ix_scorerecord_asdas_crp_lab_id'))

    op.drop_table('scorerecord')
    with op.batch_alter_table('pendinglabentry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pendinglabentry_physician_id'))

    op.drop_table('pendinglabentry')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_status'))
        batch_op.drop_index(batch_op.f('ix_delivery_physician_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_patient_id'))

    op.drop_table('delivery')
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_answer_administration_id'))

    op.drop_table('answer')
    with op.batch_alter_table('labresult', schema=None) as batch_op:
        batch_op.drop_index('uq_lab_current_sample', sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
        batch_op.drop_index('ix_lab_patient_analyte_drawn')

    op.drop_table('labresult')
    with op.batch_alter_table('enrollmentcode', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollmentcode_physician_id'))
        batch_op.drop_index(batch_op.f('ix_enrollmentcode_patient_id'))

    op.drop_table('enrollmentcode')
    op.drop_table('chatlink')
    with op.batch_alter_table('administration', schema=None) as batch_op:
        batch_op.drop_index('ix_administration_status_patient')
        batch_op.drop_index(batch_op.f('ix_administration_patient_id'))
        batch_op.drop_index(batch_op.f('ix_administration_next_reminder_at'))
        batch_op.drop_index(batch_op.f('ix_administration_expires_at'))

    op.drop_table('administration')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_status'))
        batch_op.drop_index(batch_op.f('ix_patient_physician_id'))

    op.drop_table('patient')
    with op.batch_alter_table('processedupdate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processedupdate_processed_at'))

    op.drop_table('processedupdate')
    op.drop_table('schedulermark')
    op.drop_table('physician')
    op.drop_table('exportaudit')
    with op.batch_alter_table('enrollmentattempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollmentattempt_attempted_at'))
        batch_op.drop_index(batch_op.f('ix_enrollmentattempt_account_hash'))

    op.drop_table('enrollmentattempt')
    with op.batch_alter_table('auditevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auditevent_patient_id'))
        batch_op.drop_index(batch_op.f('ix_auditevent_at'))

    op.drop_table('auditevent')
