"""Parity checks: parity_runs, parity_results (backdrop/results/tables.py describes them).

Revision 0002, after 0001. Adds two tables and touches none of 0001's: the benchmark runs
stored before stay as they were. Names of constraints and indexes are spelled out, as the
naming convention of tables.py gives them, so that this revision builds the same schema
whatever later code says.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parity_runs",
        sa.Column("parity_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("backdrop_version", sa.Text, nullable=False),
        sa.Column("git_commit", sa.Text, nullable=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=True),
        sa.Column("device_name", sa.Text, nullable=False),
        sa.Column("device_tier", sa.Text, nullable=False),
        sa.Column("emulated", sa.Boolean, nullable=False),
        sa.Column("frames_limit", sa.Integer, nullable=True),
        sa.Column("checked_count", sa.Integer, nullable=False),
        sa.Column("passed_count", sa.Integer, nullable=False),
        sa.Column("imported_at", sa.DateTime, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("parity_id", name=op.f("pk_parity_runs")),
    )
    op.create_index(op.f("ix_parity_runs_device_tier_started_at"), "parity_runs", ["device_tier", "started_at"])
    op.create_index(op.f("ix_parity_runs_started_at"), "parity_runs", ["started_at"])

    op.create_table(
        "parity_results",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("parity_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("artifact_key", sa.Text, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("precision", sa.Text, nullable=False),
        sa.Column("state_form", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("frames", sa.Integer, nullable=True),
        sa.Column("min_iou", sa.Double, nullable=True),
        sa.Column("min_boundary_iou", sa.Double, nullable=True),
        sa.Column("max_abs_error", sa.Double, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parity_results")),
        sa.ForeignKeyConstraint(
            ["parity_id"], ["parity_runs.parity_id"], name=op.f("fk_parity_results_parity_id_parity_runs"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("parity_id", "position", name=op.f("uq_parity_results_parity_id_position")),
    )
    op.create_index(op.f("ix_parity_results_artifact_key"), "parity_results", ["artifact_key"])
    op.create_index(op.f("ix_parity_results_sha256"), "parity_results", ["sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_parity_results_sha256"), table_name="parity_results")
    op.drop_index(op.f("ix_parity_results_artifact_key"), table_name="parity_results")
    op.drop_table("parity_results")
    op.drop_index(op.f("ix_parity_runs_started_at"), table_name="parity_runs")
    op.drop_index(op.f("ix_parity_runs_device_tier_started_at"), table_name="parity_runs")
    op.drop_table("parity_runs")
