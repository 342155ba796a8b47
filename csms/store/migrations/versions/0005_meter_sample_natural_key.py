"""meter samples: a natural key (transaction, instant, measurand, phase), so a replayed MeterValues is not
stored twice (1.6 has no sequence number; chargers resend unacknowledged messages after a reconnect)

Duplicates already stored are removed first (the lowest id of each key is kept).

Revision ID: 0005_samples
Revises: 0004
Create Date: 2026-12-06 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_samples'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM meter_samples WHERE tx_key IS NOT NULL AND id NOT IN ("
        " SELECT MIN(id) FROM meter_samples WHERE tx_key IS NOT NULL"
        " GROUP BY tx_key, at, measurand, COALESCE(phase, ''))"
    )
    op.create_index('uq_samples_natural', 'meter_samples',
                    ['tx_key', 'at', 'measurand', sa.text("COALESCE(phase, '')")], unique=True)


def downgrade() -> None:
    op.drop_index('uq_samples_natural', table_name='meter_samples')
