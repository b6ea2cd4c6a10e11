"""Export (``backdrop.export``): stateful wrappers, per-bucket artifacts per format, targets,
manifest, golden sequences, and the export pipeline that verifies and bundles them."""
