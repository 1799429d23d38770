"""guidance and unsure: class descriptions (the field guide), "unsure" with a comment on a
put-off image, labels marked as imported, and who cancelled a job

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:35:00.000000

Existing labels count as given in the tool (imported false): before this revision nothing
told the two apart.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs on SQLite too (no table rebuild): other tables refer to these.
    op.add_column('label_class', sa.Column('description', sa.Text(), nullable=False,
                                           server_default=''))
    op.add_column('skip', sa.Column('unsure', sa.Boolean(), nullable=False,
                                    server_default=sa.false()))
    op.add_column('skip', sa.Column('comment', sa.String(length=500), nullable=True))
    op.add_column('label', sa.Column('imported', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column('job', sa.Column('cancelled_by_id', sa.Integer(), nullable=True))
    # SQLite adds a constraint by rebuilding the table (batch mode); no table refers to job.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_job_cancelled_by_id_user', 'user',
                                    ['cancelled_by_id'], ['id'])


def downgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuilds below drop tables that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_constraint('fk_job_cancelled_by_id_user', type_='foreignkey')
        batch_op.drop_column('cancelled_by_id')
    with op.batch_alter_table('label', schema=None) as batch_op:
        batch_op.drop_column('imported')
    with op.batch_alter_table('skip', schema=None) as batch_op:
        batch_op.drop_column('comment')
        batch_op.drop_column('unsure')
    with op.batch_alter_table('label_class', schema=None) as batch_op:
        batch_op.drop_column('description')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
