"""Export formats. Each is one module registering itself in FORMATS; import them here,
explicitly, so the registry is complete whenever the package is imported."""

from backdrop.export.formats.base import FORMATS, ExportError, ExportRequest, Format

__all__ = ["FORMATS", "ExportError", "ExportRequest", "Format"]
from backdrop.export.formats import executorch as _executorch  # noqa: E402,F401
from backdrop.export.formats import coreml as _coreml  # noqa: E402,F401
from backdrop.export.formats import onnx as _onnx  # noqa: E402,F401
from backdrop.export.formats import lite as _lite  # noqa: E402,F401
