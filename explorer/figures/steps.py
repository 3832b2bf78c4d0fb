"""The attention arithmetic: vectors and the scores of one query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from explorer.figures.base import DIVERGING, OKABE_ITO, _esc, _esc_text, _figure, _slug, _thin, _token_ticks

# --- vectors and attention arithmetic ----------------------------------------------------


def vector_figure(
    vectors: np.ndarray, labels: list[str], title: str, *, meta: str | None = None
) -> go.Figure:
    """A few vectors (e.g. Q_i, K_j, V_j) as heatmap rows, diverging colours centred on 0."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    esc = _esc(labels)
    heat = {
        "type": "heatmap",
        "z": v,
        "zmid": 0,
        "colorscale": DIVERGING,
        "colorbar": {"title": {"text": "value"}},
        "hovertext": [[f"{label}[{j}]" for j in range(v.shape[1])] for label in esc],
        "hovertemplate": "%{hovertext}: %{z:.3f}<extra></extra>",
    }
    return _figure(
        [heat],
        _esc_text(title),
        meta or _slug(title, "vectors"),
        xaxis={"title": {"text": "dimension"}},
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(len(esc))),
            "ticktext": esc,
            "autorange": "reversed",
            "showgrid": False,
        },
        height=140 + 45 * len(v),
    )


def scores_figure(
    values: Mapping[str, np.ndarray],
    tokens: list[str],
    query: int,
    *,
    lower: Sequence[str] = ("pattern",),
    meta: str | None = None,
    max_labels: int | None = None,
    **layout: Any,
) -> go.Figure:
    """Grouped bars per key for the named steps of one attention row (e.g. scores, scaled,
    pattern). Masked entries (-inf, NaN) are skipped. Steps named in `lower` (probabilities)
    go to a second panel below, sharing the key axis."""
    bottom = [name for name in values if name in lower]
    two_panels = bool(bottom) and len(bottom) < len(values)
    esc = _esc(tokens)
    n_key = 0
    traces = []
    for i, (name, row) in enumerate(values.items()):
        v = np.asarray(row, dtype=np.float32)
        keys = np.flatnonzero(np.isfinite(v)).astype(np.int32)
        n_key = max(n_key, len(v))
        below = two_panels and name in lower
        traces.append(
            {
                "type": "bar",
                "name": _esc_text(name),
                "x": keys,
                "y": v[keys],
                "marker": {"color": OKABE_ITO[i % len(OKABE_ITO)]},
                "hovertext": [f"key {j} '{esc[j]}'" for j in keys],
                "hovertemplate": "%{fullData.name}<br>%{hovertext}: %{y:.4f}<extra></extra>",
                "xaxis": "x2" if below else "x",
                "yaxis": "y2" if below else "y",
            }
        )
    ticks = _thin(_token_ticks(tokens[:n_key]), max_labels)
    axes: dict[str, Any]
    if two_panels:  # what make_subplots(rows=2, shared_xaxes=True, vertical_spacing=0.08) lays out
        axes = {
            "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "matches": "x2", "showticklabels": False, **ticks},
            "yaxis": {"anchor": "x", "domain": [0.54, 1.0], "title": {"text": "score"}},
            "xaxis2": {"anchor": "y2", "domain": [0.0, 1.0], "title": {"text": "key"}, **ticks},
            "yaxis2": {
                "anchor": "x2",
                "domain": [0.0, 0.46],
                "title": {"text": "pattern"},
                "rangemode": "tozero",
            },
        }
    else:
        axes = {
            "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": "key"}, **ticks},
            "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": "score"}},
        }
    steps = " → ".join(_esc(list(values)))
    q_tok = _esc_text(tokens[query]) if 0 <= query < len(tokens) else ""
    return _figure(
        traces,
        f"Query {query} '{q_tok}': {steps}",
        meta or f"scores-q{query}",
        barmode="group",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        **axes,
        **layout,
    )
