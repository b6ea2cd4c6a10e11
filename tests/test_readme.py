"""The README stays true: every make target with a help line is in its table, and no row names a
target the Makefile lacks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_make_target_is_in_the_readme_table():
    targets = set(re.findall(r"^([a-z0-9-]+):[^\n]*## ", (ROOT / "Makefile").read_text(), re.M)) - {"help"}
    rows = set(re.findall(r"^\| `make ([a-z0-9-]+)", (ROOT / "README.md").read_text(), re.M))
    assert targets - rows == set(), "make targets missing from the README's table"
    assert rows - targets == set(), "README rows for targets the Makefile does not have"
