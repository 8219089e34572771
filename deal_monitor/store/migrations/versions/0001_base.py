"""Base: the state DB schema as it was at commit d458347 (the release before migrations).

A DB made by any earlier commit has no version table; this step fills in what it lacks (found
by reflection): missing tables, missing columns (``inbox.lease_owner``/``lease_until``,
``deal_history.code``/``params``), indexes whose columns changed. On an empty DB it creates
everything. The tables are a frozen copy on purpose: later changes go into later steps, never
here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

base = sa.MetaData()

sa.Table(
    "inbox",
    base,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("deal_id", sa.BigInteger),
    sa.Column("handler_id", sa.String(24), nullable=False, server_default=""),
    sa.Column("ts", sa.BigInteger),
    sa.Column("dedup_key", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("remote_addr", sa.String(64), nullable=False, server_default=""),
    sa.Column("payload", sa.Text),
    sa.Column("offline_process_id", sa.String(64)),
    sa.Column("offline_message_id", sa.String(64)),
    sa.Column("done_at", sa.DateTime),
    sa.Column("lease_owner", sa.String(40)),
    sa.Column("lease_until", sa.DateTime),
    sa.Index("ix_inbox_status_due", "status", "next_attempt_at"),
    sa.Index("ix_inbox_deal", "deal_id", "status"),
    sa.Index(
        "ux_inbox_pending_dedup",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("status = 'queued'"),
        postgresql_where=sa.text("status = 'queued'"),
    ),
)

sa.Table(
    "rejection",
    base,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("remote_addr", sa.String(64), nullable=False),
    sa.Column("http_status", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
)

sa.Table(
    "deal_state",
    base,
    sa.Column("deal_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("stage_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("category_id", sa.Integer, nullable=False, server_default="0"),
    sa.Column("amount", sa.String(40), nullable=False, server_default="0"),
    sa.Column("currency_id", sa.String(8), nullable=False, server_default=""),
    sa.Column("close_date", sa.Date),
    sa.Column("date_modify", sa.DateTime),
    sa.Column("synced_at", sa.DateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("in_target", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("fields", sa.Text, nullable=False, server_default="{}"),
    sa.Column("fields_hash", sa.String(40), nullable=False, server_default=""),
)

sa.Table(
    "deal_history",
    base,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deal_id", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("changes", sa.Text, nullable=False, server_default="[]"),
    sa.Column("code", sa.String(32), nullable=False, server_default=""),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_history_deal", "deal_id", "id"),
)

sa.Table(
    "kv",
    base,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in base.sorted_tables:
        if table.name not in existing:
            table.create(bind)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in have]
        if missing:
            with op.batch_alter_table(table.name) as batch:
                for column in missing:
                    default = column.server_default.arg if column.server_default else None
                    batch.add_column(sa.Column(column.name, column.type, nullable=column.nullable,
                                               server_default=default))
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            wanted = [c.name for c in index.columns]
            if indexes.get(index.name) == wanted:
                continue
            if index.name in indexes:
                op.drop_index(index.name, table_name=table.name)
            index.create(bind)


def downgrade() -> None:
    raise NotImplementedError("the base schema has no earlier version to go back to")
