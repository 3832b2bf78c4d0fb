"""The attention arithmetic: vectors and the scores of one query."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from explorer import views
from explorer.analysis.arithmetic import Breakdown
from explorer.figures.base import DIVERGING, OKABE_ITO, _esc, _esc_text, _figure, _slug, _thin, _token_ticks
from explorer.figures.heads import attention_row_figure

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
        "colorbar": {"title": {"text": "value", "side": "right"}},
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
        height=210 + 40 * len(v),
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


# --- the Q/K/V tab's pictures, one per step that has one ----------------------------------------

STEP_TICK_LABELS = 40


def _title(name: str) -> str:
    return views.STEP_BY_NAME[name].title


def _top_keys(bd: Breakdown, n: int) -> np.ndarray:
    return views.shown_keys(bd, n)


def _keys_figure(bd: Breakdown) -> go.Figure:
    keys = _top_keys(bd, 4)
    rows = np.vstack([bd.q[None], bd.k[keys]])
    labels = [f"Q_{bd.query} '{bd.tokens[bd.query]}'"] + [f"K_{j} '{bd.tokens[j]}'" for j in keys]
    return vector_figure(rows, labels, "The query and the keys it weights most")


STEP_FIGURES: dict[str, Callable[[Breakdown], go.Figure]] = {
    "ln_1": lambda bd: vector_figure(
        np.vstack([bd.x, bd.ln_1]),
        [views.symbol("x"), views.symbol("ln_1")],
        "Before and after the layer norm",
    ),
    "k": _keys_figure,
    "scaled": lambda bd: scores_figure(
        {_title("scores"): bd.scores[: bd.query + 1], _title("scaled"): bd.scaled[: bd.query + 1]},
        list(bd.tokens),
        bd.query,
        lower=(),
        max_labels=STEP_TICK_LABELS,
        height=320,
    ),
    "pattern": lambda bd: attention_row_figure(
        bd.pattern, list(bd.tokens), bd.query, max_labels=STEP_TICK_LABELS, height=320
    ),
    "context": lambda bd: vector_figure(bd.context[None], [views.symbol("context")], _title("context")),
    "heads_concat": lambda bd: vector_figure(
        bd.heads_concat.reshape(-1, len(bd.context)),
        [
            f"head {h}" + (" ◀" if h == bd.head else "")
            for h in range(len(bd.heads_concat) // len(bd.context))
        ],
        "Each head's context (one row per head)",
    ),
}
