"""The revisions of the results store's schema, oldest first (0001_initial.py creates it)."""
