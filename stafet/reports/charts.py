"""Charts as inline SVG, drawn by matplotlib in this process: no CDN, no JavaScript.

Used by the statistics report and the console's validation history. Each function
returns one ``<svg>`` element as text, ready to put in an HTML page; its text stays
text (not paths), and it carries ``role="img"`` and an ``aria-label`` so a screen
reader can say what it shows. The output is deterministic for the same input (no
date in the metadata, fixed ids), so reports can be compared and tested.

Example::

    svg = bar_svg({"Skive": 12, "Viborg": 30}, title="Afbrud pr. kommune", y_label="Antal")
    line_svg({"easy_a": [("2026-11-01", 120), ("2026-11-02", 131)]}, title="Rækker pr. nat")
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; set before anything imports pyplot

from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

_RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "stafet", "font.size": 9.0}
WIDTH_IN, HEIGHT_IN = 6.4, 3.0
_COLOURS = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6", "#a50021")


def _svg(fig: Figure, label: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG sits inside HTML
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate
    aria = html.escape(label, quote=True)
    return re.sub(r"<svg\b", f'<svg role="img" aria-label="{aria}"', text, count=1)


def _figure(title: str, y_label: str) -> tuple[Figure, Any]:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
        ax = fig.add_subplot()
        ax.set_title(title)
        ax.set_ylabel(y_label)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def bar_svg(values: Mapping[str, float], *, title: str, y_label: str = "") -> str:
    """One bar per key, in the mapping's order."""
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(title, y_label)
        names, heights = list(values), [float(v) for v in values.values()]
        ax.bar(range(len(names)), heights, color=_COLOURS[0])
        ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 6 else 0,
                      ha="right" if len(names) > 6 else "center")
        fig.tight_layout()
    return _svg(fig, title)


def line_svg(series: Mapping[str, Sequence[tuple[str, float]]], *, title: str, y_label: str = "") -> str:
    """One line per series; each point is ``(x label, value)``, x labels shared and sorted."""
    xs = sorted({x for points in series.values() for x, _ in points})
    pos = {x: i for i, x in enumerate(xs)}
    with matplotlib.rc_context(_RC):
        fig, ax = _figure(title, y_label)
        for n, (name, points) in enumerate(series.items()):
            pts = sorted(points, key=lambda p: pos[p[0]])
            ax.plot([pos[x] for x, _ in pts], [float(v) for _, v in pts], marker="o",
                    color=_COLOURS[n % len(_COLOURS)], label=name)
        step = max(1, len(xs) // 10)
        ax.set_xticks(range(0, len(xs), step), xs[::step], rotation=30, ha="right")
        if len(series) > 1:
            ax.legend(frameon=False)
        fig.tight_layout()
    return _svg(fig, title)
