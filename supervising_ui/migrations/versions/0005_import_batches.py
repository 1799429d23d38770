"""import batches: one row per import run, images stamped with theirs, a priority batch

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00.000000

Images imported before this revision belong to no batch (import_batch_id stays NULL).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('import_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=512), nullable=False),
    sa.Column('image_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_batch_project_id'), ['project_id'], unique=False)

    # SQLite: a plain ADD COLUMN with its REFERENCES, no table rebuild (other tables refer
    # to image, and SQLite refuses to drop a referenced table with rows while foreign keys
    # are on). Elsewhere: the column, then its named constraint.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE image ADD COLUMN import_batch_id INTEGER '
                   'REFERENCES import_batch (id)')
    else:
        op.add_column('image', sa.Column('import_batch_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_image_import_batch_id', 'image', 'import_batch',
                              ['import_batch_id'], ['id'])
    op.create_index(op.f('ix_image_import_batch_id'), 'image', ['import_batch_id'], unique=False)
    op.add_column('project', sa.Column('priority_batch_id', sa.Integer(), nullable=True))


def downgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:  # the rebuild of image below drops a table that others refer to
        op.execute('PRAGMA foreign_keys=OFF')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_column('priority_batch_id')
    op.drop_index(op.f('ix_image_import_batch_id'), table_name='image')
    with op.batch_alter_table('image', schema=None) as batch_op:
        if not sqlite:
            batch_op.drop_constraint('fk_image_import_batch_id', type_='foreignkey')
        batch_op.drop_column('import_batch_id')
    with op.batch_alter_table('import_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_batch_project_id'))
    op.drop_table('import_batch')
    if sqlite:
        op.execute('PRAGMA foreign_keys=ON')
