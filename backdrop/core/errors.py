"""Typed errors. Every error a user can cause derives from :class:`BackdropError`.

Messages say what failed, why, and what to do next. The CLI prints a known error as one line
(set ``BACKDROP_DEBUG=1`` for the traceback).
"""


class BackdropError(Exception):
    """Base class of every error backdrop raises on bad input or a failed stage."""


class ConfigError(BackdropError, ValueError):
    """A configuration value is invalid (unknown name, out-of-range number, bad file)."""


class RegistryError(ConfigError, KeyError):
    """A name is not in a registry. The message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(BackdropError):
    """A checkpoint file is missing, corrupt, or does not match its architecture."""


class BucketError(BackdropError, ValueError):
    """A frame size or bucket definition cannot be used."""


class FrameError(BackdropError, ValueError):
    """A camera buffer or image does not have the size or layout it claims."""


class OutputPathError(ConfigError):
    """An output path (``--out``, ``--overlay``, ...) cannot be written: it is the wrong kind
    (a folder where a file is wanted, or the reverse), lies under a file, or its folder does not
    accept new files. Raised by :func:`backdrop.core.fsutil.check_writable` before any work."""


class InputError(BackdropError):
    """An input video, image or folder is missing or unreadable."""


class EvalError(BackdropError, ValueError):
    """Predictions, labels, frames or metadata given to ``backdrop eval`` do not fit together
    (frame counts, sizes, video names) or a label is not binary. The message names the files."""
