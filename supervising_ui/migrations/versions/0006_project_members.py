"""project membership: members_only projects and the users chosen for them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 12:00:00.000000

Every existing project stays open to every active user (members_only defaults to false).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('project_member',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'project_id')
    )
    # A plain ADD COLUMN on SQLite too (no table rebuild): other tables refer to project.
    op.add_column('project', sa.Column('members_only', sa.Boolean(), nullable=False,
                                       server_default=sa.false()))


def downgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuild of project below drops a table that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('members_only')
    op.drop_table('project_member')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
