"""Plot helpers shared by every report: matplotlib's Agg canvas on a bare Figure (no pyplot,
no global backend switch). matplotlib is imported when a figure is made, so that modules
which only sometimes plot do not pay its import time."""

from __future__ import annotations


def new_figure(width: float, height: float):
    """A bare matplotlib Figure (``width`` x ``height`` inches, 100 dpi, constrained layout) on
    an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


__all__ = ["new_figure"]
