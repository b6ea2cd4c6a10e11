"""Where artifacts run (``backdrop.device_tests``): one interface over this host's runtimes,
emulators and phones, and the parity check over golden sequences. Nothing in the export
path imports this package; the pipeline (backdrop/pipeline.py) hands artifacts to it."""

from backdrop.device_tests import host as _host  # noqa: E402,F401  (registers the "host" device)
