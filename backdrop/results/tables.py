"""The results store's tables, as this code reads and writes them (SQLAlchemy Core).

The migrations (backdrop/results/migrations/versions/) create them; a test holds the schema the
migrations build at head to these definitions. Change both together: a new revision
(``python -m backdrop.results.migrations new "what changed" --autogenerate``) and this module.

    runs      one benchmark run (one results document), keyed by its id (the sha256 of the
              document's canonical JSON): its context, and the whole document as canonical
              JSON so that nothing in it is lost.
    results   one artifact timed in a run; ``position`` is its index in the document's
              ``results``.
    metrics   one metric (load, model, e2e) of one result: its statistics, recomputed from the
              raw samples on import, and the samples themselves (compare tests them). A metric
              measured with no samples has no row.
    parity_runs     one parity check of an export on a device (a parity document,
                    backdrop/results/parity.py), keyed by its id like ``runs`` (revision 0002).
    parity_results  one artifact checked in it: passed or not, its worst values, why it failed.

Times are UTC (timezone-naive columns, the same on SQLite and PostgreSQL); free text is TEXT
(no length that one dialect would enforce and the other not).
"""

from __future__ import annotations

import sqlalchemy as sa

METRICS = ("load", "model", "e2e")
"""The metrics of a result, in document order; the document's fields are ``<metric>_ms``."""

STATS_COLUMNS = ("n", "p50", "p90", "p99", "trimmed_mean", "min", "max", "mean", "cv", "median_ci_low", "median_ci_high")
"""The columns of a metric row that hold :class:`backdrop.bench.stats.Stats`, in its field order."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
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
    sa.Index(None, "started_at"),
    sa.Index(None, "device_tier", "started_at"),
    sa.Index(None, "device_name"),
    sa.Index(None, "target"),
)

results = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
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
    sa.UniqueConstraint("run_id", "position"),
    sa.Index(None, "artifact_key"),
    sa.Index(None, "sha256"),
)

metrics = sa.Table(
    "metrics", metadata,
    sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("metric", sa.String(8), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Double, nullable=False) for name in STATS_COLUMNS[1:]),
    sa.Column("samples", sa.JSON, nullable=False),
    sa.CheckConstraint("metric IN ('load', 'model', 'e2e')", name="metric"),
)

parity_runs = sa.Table(
    "parity_runs", metadata,
    sa.Column("parity_id", sa.String(64), primary_key=True),
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
    sa.Index(None, "device_tier", "started_at"),
    sa.Index(None, "started_at"),
)

parity_results = sa.Table(
    "parity_results", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("parity_id", sa.String(64), sa.ForeignKey("parity_runs.parity_id", ondelete="CASCADE"), nullable=False),
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
    sa.UniqueConstraint("parity_id", "position"),
    sa.Index(None, "artifact_key"),
    sa.Index(None, "sha256"),
)

__all__ = ["METRICS", "STATS_COLUMNS", "metadata", "metrics", "parity_results", "parity_runs", "results", "runs"]
