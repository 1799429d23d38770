"""accounts hardening: session versions, token expiry and labels, login attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

Tokens issued before this revision had no expiry: they get one API_TOKEN_DAYS's default
(90 days) after the upgrade, so that scripts keep working for a while and then stop.
"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

EXISTING_TOKEN_DAYS = 90


def upgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), server_default="1",
                                      nullable=False))

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=120), server_default="",
                                      nullable=False))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
    api_token = sa.table("api_token", sa.column("expires_at", sa.DateTime()))
    expiry = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=EXISTING_TOKEN_DAYS)
    op.execute(api_token.update().values(expires_at=expiry))
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.alter_column("expires_at", existing_type=sa.DateTime(), nullable=False)

    op.create_table("login_attempt",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("username", sa.String(length=80), nullable=False),
                    sa.Column("client_address", sa.String(length=64), nullable=False),
                    sa.Column("attempted_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id"))
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempt_address", ["client_address", "attempted_at"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempt_attempted_at"), ["attempted_at"],
                              unique=False)
        batch_op.create_index("ix_login_attempt_username", ["username", "attempted_at"],
                              unique=False)


def downgrade():
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempt_username")
        batch_op.drop_index(batch_op.f("ix_login_attempt_attempted_at"))
        batch_op.drop_index("ix_login_attempt_address")
    op.drop_table("login_attempt")

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("label")

    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("session_version")
