"""project.color_input: the learning loop's models see a project's images in colour

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 23:30:00.000000

Every existing project keeps grayscale input (color_input defaults to false), so its cached
activations and its next retrain are what they were.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN on SQLite too (no table rebuild): other tables refer to project.
    op.add_column('project', sa.Column('color_input', sa.Boolean(), nullable=False,
                                       server_default=sa.false()))


def downgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuild of project below drops a table that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('color_input')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
