"""Export formats. Each is one module registering itself in FORMATS; import them here,
explicitly (the one discovery mechanism), so the registry is complete whenever the package is
imported. Adding a format: docs/architecture.md."""

from backdrop.export.formats.base import (
    FORMATS,
    ArtifactKind,
    ExportError,
    ExportRequest,
    Format,
    FrameRunner,
    OfflineCheck,
    package_versions,
)

__all__ = ["FORMATS", "ArtifactKind", "ExportError", "ExportRequest", "Format", "FrameRunner", "OfflineCheck", "package_versions"]

# The registry lines: one import per format module.
from backdrop.export.formats import coreml as _coreml  # noqa: E402,F401
from backdrop.export.formats import executorch as _executorch  # noqa: E402,F401
from backdrop.export.formats import lite as _lite  # noqa: E402,F401
from backdrop.export.formats import onnx as _onnx  # noqa: E402,F401
