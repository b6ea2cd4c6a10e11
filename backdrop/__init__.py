"""backdrop: ship real-time person-segmentation models to phones.

The core package holds what belongs to no single pipeline stage: the CLI, aspect-ratio
buckets, camera-frame conversion, errors and the small generic registry. The stages live in
subpackages mapped from the repository's top-level folders (``models/`` is
``backdrop.models``, and so on).
"""

__version__ = "0.1.0"
