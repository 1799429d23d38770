"""observations and boxes: whole observations, their tiles as work units (leases, Later,
done), annotators' boxes and consensus landmarks; per project the labelers per tile and the
landmarks' minimum votes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:40:00.000000

Existing projects get two labelers per tile and the merge's default minimum votes (null).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs on SQLite too (no table rebuild): other tables refer to project.
    op.add_column('project', sa.Column('labelers_per_tile', sa.Integer(), nullable=False,
                                       server_default='2'))
    op.add_column('project', sa.Column('landmark_min_votes', sa.Integer(), nullable=True))
    op.create_table(
        'observation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('image_key', sa.String(length=255), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False, server_default='queued'),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('label_kind', sa.String(length=8), nullable=True),
        sa.Column('meters_per_pixel', sa.Float(), nullable=True),
        sa.Column('projection', sa.JSON(), nullable=True),
        sa.Column('tile_size', sa.Integer(), nullable=False, server_default='1024'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['user.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project_id', 'name'))
    op.create_index(op.f('ix_observation_project_id'), 'observation', ['project_id'])
    op.create_table(
        'observation_tile',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('observation_id', sa.Integer(), nullable=False),
        sa.Column('x', sa.Integer(), nullable=False),
        sa.Column('y', sa.Integer(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('done_count', sa.Integer(), nullable=False, server_default='0'),
        sa.ForeignKeyConstraint(['observation_id'], ['observation.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('observation_id', 'x', 'y'))
    op.create_table(
        'tile_lease',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tile_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('later', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(['tile_id'], ['observation_tile.id']),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tile_id', 'user_id'))
    op.create_index('ix_tile_lease_user', 'tile_lease', ['user_id', 'expires_at'])
    op.create_table(
        'tile_done',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tile_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['tile_id'], ['observation_tile.id']),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tile_id', 'user_id'))
    op.create_index('ix_tile_done_user', 'tile_done', ['user_id'])
    op.create_table(
        'box',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('observation_id', sa.Integer(), nullable=False),
        sa.Column('tile_id', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('label_class_id', sa.Integer(), nullable=True),
        sa.Column('shape', sa.String(length=8), nullable=False, server_default='box'),
        sa.Column('x_min', sa.Float(), nullable=False),
        sa.Column('y_min', sa.Float(), nullable=False),
        sa.Column('x_max', sa.Float(), nullable=False),
        sa.Column('y_max', sa.Float(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False, server_default='drawn'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['label_class_id'], ['label_class.id']),
        sa.ForeignKeyConstraint(['observation_id'], ['observation.id']),
        sa.ForeignKeyConstraint(['tile_id'], ['observation_tile.id']),
        sa.ForeignKeyConstraint(['user_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_box_observation', 'box', ['observation_id', 'user_id'])
    op.create_index('ix_box_tile', 'box', ['tile_id', 'user_id'])
    op.create_table(
        'landmark',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('observation_id', sa.Integer(), nullable=False),
        sa.Column('x_min', sa.Float(), nullable=False),
        sa.Column('y_min', sa.Float(), nullable=False),
        sa.Column('x_max', sa.Float(), nullable=False),
        sa.Column('y_max', sa.Float(), nullable=False),
        sa.Column('label_class_id', sa.Integer(), nullable=True),
        sa.Column('votes', sa.Integer(), nullable=False),
        sa.Column('annotators', sa.Text(), nullable=False, server_default=''),
        sa.Column('status', sa.String(length=16), nullable=False, server_default='pending'),
        sa.Column('reviewed_by_id', sa.Integer(), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(), nullable=True),
        sa.Column('image_id', sa.Integer(), nullable=True),
        sa.Column('merged_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['image.id']),
        sa.ForeignKeyConstraint(['label_class_id'], ['label_class.id']),
        sa.ForeignKeyConstraint(['observation_id'], ['observation.id']),
        sa.ForeignKeyConstraint(['reviewed_by_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_landmark_observation', 'landmark', ['observation_id', 'status'])
    op.create_index('ix_landmark_image', 'landmark', ['image_id'])


def downgrade():
    op.drop_index('ix_landmark_image', table_name='landmark')
    op.drop_index('ix_landmark_observation', table_name='landmark')
    op.drop_table('landmark')
    op.drop_index('ix_box_tile', table_name='box')
    op.drop_index('ix_box_observation', table_name='box')
    op.drop_table('box')
    op.drop_index('ix_tile_done_user', table_name='tile_done')
    op.drop_table('tile_done')
    op.drop_index('ix_tile_lease_user', table_name='tile_lease')
    op.drop_table('tile_lease')
    op.drop_table('observation_tile')
    op.drop_index(op.f('ix_observation_project_id'), table_name='observation')
    op.drop_table('observation')
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuild of project below drops a table that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('landmark_min_votes')
        batch_op.drop_column('labelers_per_tile')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
