"""The shared look of every figure: fonts, colours, the template, escaping of token text."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np
import plotly.graph_objects as go

FONT_SIZE = 14
TITLE_SIZE = 18
MAX_TICK_LABELS = 60
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"  # blue negative, red positive; ColorBrewer rates RdBu colour-blind safe
# Okabe-Ito: distinguishable under the common colour-vision deficiencies.
OKABE_ITO = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
)
NEUTRAL = "#BBBBBB"
HIGHLIGHT = "#D55E00"
# Bounds the overview payload. 100k float32 cells are 530 kB of base64, and up to ~0.8 MB of
# JSON when values near 1 make many '/' that Plotly escapes as \u002f.
OVERVIEW_MAX_Z_CELLS = 100_000
# Above this many cells (~100 tokens) per-cell token hover text gets heavier than the heatmap.
HOVER_MAX_CELLS = 10_000
HEAD_SCORES = (
    "previous_token",
    "induction",
    "duplicate_token",
    "first_token",
    "entropy",
)
UNLABELLED = frozenset({"", "none", "other", "mixed", "unclear", "unknown"})


def _esc(tokens: Sequence[str]) -> list[str]:
    """HTML-escape user text so Plotly shows it literally and renders no markup from it.

    Quotes become numeric entities because Plotly decodes `&#39;` but prints `&quot;` as is.
    """
    return [html.escape(str(t), quote=False).replace('"', "&#34;").replace("'", "&#39;") for t in tokens]


def _esc_text(text: str) -> str:
    return _esc([text])[0]


def _slug(text: str, fallback: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or fallback


def _token_ticks(tokens: Sequence[str], max_labels: int = MAX_TICK_LABELS) -> dict[str, Any]:
    """Numeric-axis ticks labelled by token; every n-th label once there are too many."""
    step = max(1, math.ceil(len(tokens) / max_labels))
    vals = list(range(0, len(tokens), step))
    return {
        "tickmode": "array",
        "tickvals": vals,
        "ticktext": _esc([tokens[i] for i in vals]),
    }


# Template keys for plot types these figures never draw: dropping them saves ~2 kB a figure.
_NOT_CARTESIAN = ("polar", "ternary", "scene", "geo")
# ticklabeloverflow "allow": Plotly's default ("hide past div") measures every tick label's box
# after each draw (two thirds of a second for the overview and one head at 32 tokens); with
# automargin the labels stay inside the div anyway.
_AXIS_STYLE = {
    "x": {"automargin": True, "showgrid": False, "zeroline": False, "ticklabeloverflow": "allow"},
    "y": {"automargin": True, "zeroline": False, "ticklabeloverflow": "allow"},
}


@cache
def _template_parts() -> tuple[str, dict[str, str]]:
    """plotly_white as JSON: its layout, and its styles per trace type."""
    import plotly.io as pio

    template = pio.templates["plotly_white"].to_plotly_json()
    layout = {key: value for key, value in template["layout"].items() if key not in _NOT_CARTESIAN}
    return json.dumps(layout), {kind: json.dumps(styles) for kind, styles in template["data"].items()}


def _template(kinds: Iterable[str]) -> dict[str, Any]:
    """plotly_white, with trace styles only for the trace types drawn (a fresh copy each time)."""
    layout, styles = _template_parts()
    return {
        "layout": json.loads(layout),
        "data": {kind: json.loads(styles[kind]) for kind in sorted(set(kinds)) if kind in styles},
    }


MODEBAR_BAND = 30  # px above the title, where Plotly's mode bar shows on hover
TITLE_LINE = 26  # px for a title line; a subtitle line and a legend above the plot take as much


def _top_margin(subtitle: str | None, layout: dict[str, Any]) -> int:
    """Room above the plot for the mode bar, the title, its subtitle and a legend laid above the plot."""
    legend = layout.get("legend") or {}
    legend_above = layout.get("showlegend") is not False and float(legend.get("y", 0) or 0) >= 1
    return MODEBAR_BAND + TITLE_LINE * (1 + bool(subtitle) + legend_above) + 6


def _figure(
    traces: Sequence[dict[str, Any]], title: str, meta: str, subtitle: str | None = None, **layout: Any
) -> go.Figure:
    """Shared look (large fonts, white template, tight margins) around plain-dict traces and
    layout. `title` (and `subtitle`, a smaller second line for the details) is already escaped:
    keep titles short, they are not wrapped. The title sits below a band for the mode bar, a
    legend laid above the plot below the title; colour bars are of one thickness.

    Built as dicts and wrapped without Plotly's validation: validating costs ~25 ms a figure,
    most of a generation step's time, and these properties are fixed here and checked by the
    tests. The axis style applies to every axis (xaxis2, yaxis2, … too).
    """
    heading: dict[str, Any] = {
        "text": title,
        "x": 0.01,
        "xanchor": "left",
        "yref": "container",
        "y": 1,
        "yanchor": "top",
        "pad": {"t": MODEBAR_BAND},
        "font": {"size": TITLE_SIZE},
    }
    if subtitle:
        heading["subtitle"] = {"text": subtitle, "font": {"size": FONT_SIZE}}
    full: dict[str, Any] = {
        "template": _template(trace["type"] for trace in traces),
        "title": heading,
        "font": {"size": FONT_SIZE},
        "margin": {"l": 10, "r": 10, "t": _top_margin(subtitle, layout), "b": 10},
        "meta": meta,
    }
    full.update(layout)
    for trace in traces:
        if "colorbar" in trace:
            trace["colorbar"] = {"thickness": 14, "len": 1, "lenmode": "fraction", **trace["colorbar"]}
    axes = {"xaxis", "yaxis"} | {key for key in full if re.fullmatch(r"[xy]axis\d*", key)}
    for key in axes:
        full[key] = {**full.get(key, {}), **_AXIS_STYLE[key[0]]}
    return go.Figure({"data": list(traces), "layout": full}, _validate=False)


def _thin(ticks: dict[str, Any], max_labels: int | None) -> dict[str, Any]:
    """Keep every k-th of the tick labels so that at most `max_labels` remain (None: all)."""
    values, text = ticks["tickvals"], ticks["ticktext"]
    if max_labels is not None and len(values) > max_labels:
        step = -(-len(values) // max_labels)
        ticks = ticks | {"tickvals": values[::step], "ticktext": text[::step]}
    return ticks


def thin_ticks(fig: go.Figure, max_labels: int) -> go.Figure:
    """Keep every k-th token label so that labels do not overlap in a panel of the app's size."""
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        values, text = list(axis.tickvals or ()), list(axis.ticktext or ())
        if len(values) > max_labels and len(values) == len(text):
            step = -(-len(values) // max_labels)
            axis.update(tickvals=values[::step], ticktext=text[::step])
    return fig


def _int_keys(n: int) -> np.ndarray:
    """0..n-1 in the smallest integer type: Plotly sends typed arrays, int16 is half of int32."""
    return np.arange(n, dtype=np.int16 if n < 2**15 else np.int32)


def _mask_future(mat: np.ndarray) -> np.ndarray:
    """float32 copy of a [query, key] matrix with causally masked keys set to NaN (blank)."""
    z = np.array(mat, dtype=np.float32)
    n_query, n_key = z.shape
    # With a KV cache the queries are the last n_query positions, hence the offset.
    z[np.triu(np.ones((n_query, n_key), dtype=bool), k=1 + n_key - n_query)] = np.nan
    return z


def message_figure(message: str, height: int = 260) -> go.Figure:
    """An empty figure that says `message` (plain text, escaped) in its middle."""
    note = {
        "text": _esc_text(message),
        "showarrow": False,
        "x": 0.5,
        "y": 0.5,
        "xref": "paper",
        "yref": "paper",
        "font": {"size": 15, "color": "#64748b"},
    }
    layout = {
        "template": _template(()),
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "xaxis": {"visible": False},
        "yaxis": {"visible": False},
        "annotations": [note],
    }
    return go.Figure({"data": [], "layout": layout}, _validate=False)
