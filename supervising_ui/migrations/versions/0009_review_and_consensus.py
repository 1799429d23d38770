"""review and consensus: a project's consensus method, each image's stored consensus and
posterior, each project's last consensus run, and reviewers' decisions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:00:00.000000

Every existing project keeps the majority rule (consensus_method defaults to "majority"); the
stored consensus fills in at the project's first consensus job.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN on SQLite too (no table rebuild): other tables refer to project.
    op.add_column('project', sa.Column('consensus_method', sa.String(length=16), nullable=False,
                                       server_default='majority'))
    op.create_table(
        'image_consensus',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('label_class_id', sa.Integer(), nullable=True),
        sa.Column('posterior', sa.Float(), nullable=False),
        sa.Column('n_labels', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['image.id']),
        sa.ForeignKeyConstraint(['label_class_id'], ['label_class.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('image_id'))
    op.create_index('ix_image_consensus_project', 'image_consensus', ['project_id', 'image_id'])
    op.create_table(
        'consensus_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.Column('last_label_id', sa.Integer(), nullable=False),
        sa.Column('last_review_id', sa.Integer(), nullable=False),
        sa.Column('label_total', sa.Integer(), nullable=False),
        sa.Column('confusions', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project_id'))
    op.create_table(
        'review',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('decision', sa.String(length=8), nullable=False),
        sa.Column('label_class_id', sa.Integer(), nullable=True),
        sa.Column('labeler_id', sa.Integer(), nullable=True),
        sa.Column('labeler_class_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['image.id']),
        sa.ForeignKeyConstraint(['label_class_id'], ['label_class.id']),
        sa.ForeignKeyConstraint(['labeler_class_id'], ['label_class.id']),
        sa.ForeignKeyConstraint(['labeler_id'], ['user.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.ForeignKeyConstraint(['reviewer_id'], ['user.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_review_project_image', 'review', ['project_id', 'image_id'])
    op.create_index(op.f('ix_review_reviewer_id'), 'review', ['reviewer_id'])
    op.create_index(op.f('ix_review_labeler_id'), 'review', ['labeler_id'])


def downgrade():
    op.drop_index(op.f('ix_review_labeler_id'), table_name='review')
    op.drop_index(op.f('ix_review_reviewer_id'), table_name='review')
    op.drop_index('ix_review_project_image', table_name='review')
    op.drop_table('review')
    op.drop_table('consensus_run')
    op.drop_index('ix_image_consensus_project', table_name='image_consensus')
    op.drop_table('image_consensus')
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuild of project below drops a table that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('consensus_method')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
