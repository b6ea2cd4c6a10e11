"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}; created ${create_date}.
Keep backdrop/results/tables.py in step (tests/test_results_store.py holds the schema at head
to it) and add this revision's expected schema to the migration test.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
% if imports:
${imports}
% endif

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
