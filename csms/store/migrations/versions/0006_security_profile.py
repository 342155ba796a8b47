"""stations.security_profile (the OCPP security profile a charger must connect with) and
stations.registration_by_operator (config.yaml never overrides a registration state the operator set)

Revision ID: 0006
Revises: 0005_samples
Create Date: 2026-12-06 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005_samples'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL (rows written before this column existed): the server default applies at the handshake.
    with op.batch_alter_table('stations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('security_profile', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('registration_by_operator', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stations', schema=None) as batch_op:
        batch_op.drop_column('registration_by_operator')
        batch_op.drop_column('security_profile')
