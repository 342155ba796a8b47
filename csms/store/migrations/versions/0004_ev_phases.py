"""phases the car draws on: transactions.ev_phases, charging_needs.ev_phases

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ev_phases', sa.Integer(), nullable=True))
    with op.batch_alter_table('charging_needs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ev_phases', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('charging_needs', schema=None) as batch_op:
        batch_op.drop_column('ev_phases')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_column('ev_phases')
