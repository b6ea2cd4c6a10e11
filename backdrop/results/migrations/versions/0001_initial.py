"""The first schema: runs, results, metrics (backdrop/results/tables.py describes them).

Revision 0001, the first. Names of constraints and indexes are spelled out here, as the naming
convention of tables.py gives them, so that this revision builds the same schema whatever later
code says.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATS = ("p50", "p90", "p99", "trimmed_mean", "min", "max", "mean", "cv", "median_ci_low", "median_ci_high")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("format_version", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("backdrop_version", sa.Text, nullable=False),
        sa.Column("git_commit", sa.Text, nullable=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=True),
        sa.Column("protocol", sa.Text, nullable=False),
        sa.Column("device_name", sa.Text, nullable=False),
        sa.Column("device_tier", sa.Text, nullable=False),
        sa.Column("emulated", sa.Boolean, nullable=False),
        sa.Column("results_count", sa.Integer, nullable=False),
        sa.Column("imported_at", sa.DateTime, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"])
    op.create_index(op.f("ix_runs_device_tier_started_at"), "runs", ["device_tier", "started_at"])
    op.create_index(op.f("ix_runs_device_name"), "runs", ["device_name"])
    op.create_index(op.f("ix_runs_target"), "runs", ["target"])

    op.create_table(
        "results",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("artifact_key", sa.Text, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("precision", sa.Text, nullable=False),
        sa.Column("state_form", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_sha256", sa.String(64), nullable=True),
        sa.Column("peer", sa.Boolean, nullable=False),
        sa.Column("file", sa.Text, nullable=True),
        sa.Column("threads", sa.Integer, nullable=False),
        sa.Column("peak_rss_mb", sa.Double, nullable=True),
        sa.Column("baseline_rss_mb", sa.Double, nullable=True),
        sa.Column("memory_kind", sa.Text, nullable=True),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("runtime_versions", sa.JSON, nullable=False),
        sa.Column("cores", sa.JSON, nullable=False),
        sa.Column("gate", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_results_run_id_runs"), ondelete="CASCADE"),
        sa.UniqueConstraint("run_id", "position", name=op.f("uq_results_run_id_position")),
    )
    op.create_index(op.f("ix_results_artifact_key"), "results", ["artifact_key"])
    op.create_index(op.f("ix_results_sha256"), "results", ["sha256"])

    op.create_table(
        "metrics",
        sa.Column("result_id", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(8), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        *(sa.Column(name, sa.Double, nullable=False) for name in _STATS),
        sa.Column("samples", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("result_id", "metric", name=op.f("pk_metrics")),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"], name=op.f("fk_metrics_result_id_results"), ondelete="CASCADE"),
        sa.CheckConstraint("metric IN ('load', 'model', 'e2e')", name=op.f("ck_metrics_metric")),
    )


def downgrade() -> None:
    op.drop_table("metrics")
    op.drop_index(op.f("ix_results_sha256"), table_name="results")
    op.drop_index(op.f("ix_results_artifact_key"), table_name="results")
    op.drop_table("results")
    op.drop_index(op.f("ix_runs_target"), table_name="runs")
    op.drop_index(op.f("ix_runs_device_name"), table_name="runs")
    op.drop_index(op.f("ix_runs_device_tier_started_at"), table_name="runs")
    op.drop_index(op.f("ix_runs_started_at"), table_name="runs")
    op.drop_table("runs")
