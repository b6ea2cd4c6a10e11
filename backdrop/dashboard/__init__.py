"""The latency dashboard: the results store as a static site (``backdrop dashboard``)."""
