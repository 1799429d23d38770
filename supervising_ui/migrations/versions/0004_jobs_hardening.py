"""jobs: the worker process (pid, host) that claimed a job, and its interruptions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('worker_host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('interruptions', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('interruptions')
        batch_op.drop_column('worker_host')
        batch_op.drop_column('worker_pid')
