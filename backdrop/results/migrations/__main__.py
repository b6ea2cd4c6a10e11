"""``python -m backdrop.results.migrations new "what changed" [--autogenerate]`` writes a new
revision; ``... revisions`` lists them (backdrop/results/migrate.py)."""

from backdrop.results.migrate import main

main()
