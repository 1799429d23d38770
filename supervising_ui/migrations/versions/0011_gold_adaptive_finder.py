"""gold images, adaptive redundancy, the label-error finder: per project labels_max,
target_posterior, settle_preference, gold_share and retrain_min_posterior; per image its gold
answer and the labels adaptive redundancy wants; the finder's ranked label issues

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:00:00.000000

Existing projects keep a fixed count (labels_max null) and have no gold images; their share
of gold picks (0.05) only matters once an admin marks some.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None



def project_columns():
    """The new project columns (fresh objects: a Column belongs to one table)."""
    return (
        sa.Column('labels_max', sa.Integer(), nullable=True),
        sa.Column('target_posterior', sa.Float(), nullable=False, server_default='0.95'),
        sa.Column('settle_preference', sa.Float(), nullable=False, server_default='1'),
        sa.Column('gold_share', sa.Float(), nullable=False, server_default='0.05'),
        sa.Column('retrain_min_posterior', sa.Float(), nullable=False, server_default='0.7'),
    )


def upgrade():
    # Plain ADD COLUMNs (no table rebuild on SQLite: other tables refer to project and image).
    for column in project_columns():
        op.add_column('project', column)
    if op.get_bind().dialect.name == 'sqlite':  # ADD COLUMN may carry a REFERENCES clause
        op.execute('ALTER TABLE image ADD COLUMN gold_class_id INTEGER '
                   'REFERENCES label_class (id)')
    else:
        op.add_column('image', sa.Column('gold_class_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_image_gold_class', 'image', 'label_class',
                              ['gold_class_id'], ['id'])
    op.add_column('image', sa.Column('labels_wanted', sa.Integer(), nullable=True))
    op.create_index('ix_image_gold', 'image', ['project_id', 'gold_class_id'])
    op.create_index('ix_image_wanted', 'image', ['project_id', 'labels_wanted'])
    op.create_table(
        'label_issue',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('given_class_id', sa.Integer(), nullable=True),
        sa.Column('suggested_class_id', sa.Integer(), nullable=True),
        sa.Column('self_confidence', sa.Float(), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['given_class_id'], ['label_class.id']),
        sa.ForeignKeyConstraint(['image_id'], ['image.id']),
        sa.ForeignKeyConstraint(['project_id'], ['project.id']),
        sa.ForeignKeyConstraint(['suggested_class_id'], ['label_class.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('image_id'))
    op.create_index('ix_label_issue_project_rank', 'label_issue', ['project_id', 'rank'])


def downgrade():
    op.drop_index('ix_label_issue_project_rank', table_name='label_issue')
    op.drop_table('label_issue')
    op.drop_index('ix_image_wanted', table_name='image')
    op.drop_index('ix_image_gold', table_name='image')
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuilds below drop tables that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('image', schema=None) as batch_op:
        if not sqlite:
            batch_op.drop_constraint('fk_image_gold_class', type_='foreignkey')
        batch_op.drop_column('labels_wanted')
        batch_op.drop_column('gold_class_id')
    with op.batch_alter_table('project', schema=None) as batch_op:
        for column in reversed(project_columns()):
            batch_op.drop_column(column.name)
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
