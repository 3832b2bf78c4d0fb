"""Direct logit attribution: the heads as a grid, the top parts as bars, and the flow of the
logit from source tokens through the layers to the predicted position.

Inputs are `logit_attribution`'s parts table ([part] component, kind, layer, head,
contribution) and its per-key shares ([layer, head, key]); token strings are display strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.figures.base import DIVERGING, NEUTRAL, _esc, _esc_text, _figure, _token_ticks

POSITIVE = "#B2182B"  # the ends of DIVERGING (RdBu_r): red pushes the token up, blue down
NEGATIVE = "#2166AC"
# Edge widths in the flow view: one line trace per width and sign keeps the figure at a few traces.
FLOW_WIDTHS = (1.0, 2.5, 4.5, 7.0)


def _target(token: str, versus: str | None) -> str:
    """'␣Mary', or '␣Mary' − '␣John': escaped, for titles and hover text."""
    name = f"'{_esc_text(token)}'"
    return name if versus is None else f"{name} − '{_esc_text(versus)}'"


def attribution_heads_figure(
    parts: pd.DataFrame, token: str, *, versus: str | None = None, meta: str | None = None
) -> go.Figure:
    """Layer × head grid of each head's share of the logit, red up and blue down around 0.

    Each tile's customdata is [layer, head], so a click names the head (as do its x and y).
    """
    heads = parts[parts["kind"] == "head"]
    layers, head_ids = heads["layer"].to_numpy(np.int64), heads["head"].to_numpy(np.int64)
    n_layer, n_head = int(layers.max()) + 1, int(head_ids.max()) + 1
    z = np.full((n_layer, n_head), np.nan, dtype=np.float32)
    z[layers, head_ids] = heads["contribution"].to_numpy(np.float32)
    grid = np.indices((n_layer, n_head), dtype=np.int16).transpose(1, 2, 0)  # [layer, head, 2]
    target = _target(token, versus)
    heat = {
        "type": "heatmap",
        "z": z,
        "zmid": 0,
        "colorscale": DIVERGING,
        "colorbar": {"title": {"text": "share of<br>the logit"}},
        "customdata": grid,
        "xgap": 2,
        "ygap": 2,
        "hoverongaps": False,
        "hovertemplate": f"L%{{y}}H%{{x}}: %{{z:+.3f}} to the logit of {target}<extra></extra>",
    }
    return _figure(
        [heat],
        # Two lines: with a `versus` the title outgrows a half-width panel on one.
        f"Which heads push {target}<br>each head's direct share of the logit · click a head",
        meta or "attribution-heads",
        margin={"l": 10, "r": 10, "t": 92, "b": 10},
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(n_head)),
            "ticktext": [f"H{h}" for h in range(n_head)],
        },
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(n_layer)),
            "ticktext": [f"L{layer}" for layer in range(n_layer)],
            "autorange": "reversed",
            "scaleanchor": "x",
            "constrain": "domain",
            "showgrid": False,
        },
    )


def attribution_bars_figure(
    parts: pd.DataFrame,
    token: str,
    *,
    versus: str | None = None,
    top_n: int = 12,
    meta: str | None = None,
) -> go.Figure:
    """The `top_n` parts with the largest |share| as horizontal bars, the largest on top; red
    pushes the token up, blue down. customdata is the component's name ("L1H0", "L3 MLP")."""
    order = parts["contribution"].abs().sort_values(ascending=False, kind="stable").index
    top = parts.loc[order[: max(1, int(top_n))]].iloc[::-1]  # Plotly draws the first bar at the bottom
    values = top["contribution"].to_numpy(np.float32)
    names = _esc(top["component"].astype(str).tolist())
    bars = {
        "type": "bar",
        "orientation": "h",
        "x": values,
        "y": names,
        "customdata": top["component"].astype(str).tolist(),  # our own names, for a click to open
        "marker": {"color": [POSITIVE if v >= 0 else NEGATIVE for v in values.tolist()]},
        "hovertemplate": "%{y}: %{x:+.3f}<extra></extra>",
    }
    target = _target(token, versus)
    return _figure(
        [bars],
        f"The parts that move the logit of {target} most",
        meta or "attribution-top",
        xaxis={"title": {"text": "share of the logit"}, "zeroline": True},
        yaxis={"type": "category"},
        height=max(260, 60 + 26 * len(top)),
    )


def _edges(sources: np.ndarray, threshold: float, max_edges: int) -> tuple[np.ndarray, np.ndarray]:
    """(index [edge, 3] of layer, head, key; value [edge]): the strongest per-key shares, at least
    `threshold` × the largest |share| and at most `max_edges`, the largest first."""
    flat = np.abs(sources).ravel()
    top = float(flat.max()) if flat.size else 0.0
    if top == 0:
        return np.empty((0, 3), dtype=np.int64), np.empty(0, dtype=np.float32)
    keep = np.flatnonzero((flat >= threshold * top) & (flat > 0))
    keep = keep[np.argsort(-flat[keep], kind="stable")[:max_edges]]
    return np.stack(np.unravel_index(keep, sources.shape), axis=1), sources.ravel()[keep]


def _edge_lines(index: np.ndarray, values: np.ndarray, position: int, top: float) -> list[dict[str, Any]]:
    """Edges from (key, layer) to (position, layer + 1) as a few line traces, one per sign and
    width class; NaN between segments breaks the line."""
    traces = []
    width_class = np.minimum((np.abs(values) / top * len(FLOW_WIDTHS)).astype(np.int64), len(FLOW_WIDTHS) - 1)
    for sign, colour in ((1, POSITIVE), (-1, NEGATIVE)):
        for k, width in enumerate(FLOW_WIDTHS):
            picked = index[(np.sign(values) == sign) & (width_class == k)]
            if not len(picked):
                continue
            x = np.full((len(picked), 3), np.nan, dtype=np.float32)
            y = np.full((len(picked), 3), np.nan, dtype=np.float32)
            x[:, 0], x[:, 1] = picked[:, 2], position
            y[:, 0], y[:, 1] = picked[:, 0], picked[:, 0] + 1
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": x.ravel(),
                    "y": y.ravel(),
                    "line": {"color": colour, "width": width},
                    "opacity": 0.35 + 0.15 * k,
                    "hoverinfo": "skip",
                    "showlegend": False,
                }
            )
    return traces


def attribution_flow_figure(
    sources: np.ndarray,
    tokens: Sequence[str],
    position: int,
    *,
    parts: pd.DataFrame | None = None,
    threshold: float = 0.05,
    max_edges: int = 300,
    token: str | None = None,
    versus: str | None = None,
    meta: str | None = None,
) -> go.Figure:
    """How the logit at `position` is assembled across layers, in the spirit of the LLM
    Transparency Tool's graph: nodes are (token, layer), x the token's position and y the
    stream's depth (0 the embeddings, L + 1 after block L); each head is an edge from the key
    it read at its layer's input to `position` at its output, coloured by sign and as wide as
    its share through that key. Only edges with |share| ≥ `threshold` × the largest show (at most
    `max_edges`). With `parts`, the nodes at `position` are sized by the embedding's (row 0) and
    each MLP's (row L + 1) share.

    sources: [layer, head, key] from `attribute(...).sources`.
    """
    src = np.asarray(sources, dtype=np.float32)
    n_layer, n_head, n_pos = src.shape
    index, values = _edges(src, threshold, max_edges)
    top = float(np.abs(values).max()) if len(values) else 1.0
    traces = _edge_lines(index, values, position, top)
    safe = _esc(tokens)
    names = [f"L{layer}H{head}" for layer, head in index[:, :2].tolist()]
    middles = {
        # One invisible marker per edge, at its middle: the hover and click target of the edge.
        "type": "scatter",
        "mode": "markers",
        "x": ((index[:, 2] + position) / 2).astype(np.float32),
        "y": (index[:, 0] + 0.5).astype(np.float32),
        "marker": {"size": 10, "opacity": 0},
        "customdata": index.astype(np.int16),
        "hovertext": [
            f"{name}: pos {key} '{safe[key]}' → pos {position}: {value:+.3f}"
            for name, key, value in zip(names, index[:, 2].tolist(), values.tolist(), strict=True)
        ],
        "hovertemplate": "%{hovertext}<extra></extra>",
        "showlegend": False,
    }
    keys = np.unique(index[:, [2, 0]], axis=0) if len(index) else np.empty((0, 2), dtype=np.int64)
    read = {
        "type": "scatter",
        "mode": "markers",
        "x": keys[:, 0].astype(np.float32),
        "y": keys[:, 1].astype(np.float32),
        "marker": {"size": 7, "color": NEUTRAL},
        "hovertext": [f"pos {key} '{safe[key]}', read at layer {layer}" for key, layer in keys.tolist()],
        "hovertemplate": "%{hovertext}<extra></extra>",
        "showlegend": False,
    }
    traces += [middles, read, _stream_nodes(parts, n_layer, position, safe[position])]
    title = "How the logit is assembled: heads carry it from source tokens, layer by layer"
    if token is not None:
        title = f"How the logit of {_target(token, versus)} at pos {position} is assembled, layer by layer"
    return _figure(
        traces,
        title,
        meta or "attribution-flow",
        xaxis={"title": {"text": "token"}, **_token_ticks(tokens), "range": [-0.5, n_pos - 0.5]},
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(n_layer + 1)),
            "ticktext": ["embed"] + [f"after L{layer}" for layer in range(n_layer)],
            "range": [-0.5, n_layer + 0.5],
        },
        showlegend=False,
    )


def _stream_nodes(parts: pd.DataFrame | None, n_layer: int, position: int, safe_token: str) -> dict[str, Any]:
    """The predicted position's column: row 0 the embedding, row L + 1 block L's MLP, sized and
    coloured by that part's share (plain grey without `parts`)."""
    rows = np.arange(n_layer + 1)
    share = np.zeros(n_layer + 1, dtype=np.float32)
    if parts is not None:
        share[0] = parts.loc[parts["kind"] == "embed", "contribution"].sum()
        mlp = parts[parts["kind"] == "mlp"]
        share[mlp["layer"].to_numpy(np.int64) + 1] = mlp["contribution"].to_numpy(np.float32)
    largest = float(np.abs(share).max()) or 1.0
    labels = ["embed"] + [f"L{layer} MLP" for layer in range(n_layer)]
    return {
        "type": "scatter",
        "mode": "markers",
        "x": np.full(n_layer + 1, position, dtype=np.float32),
        "y": rows.astype(np.float32),
        "marker": {
            "size": (10 + 20 * np.abs(share) / largest).astype(np.float32),
            "color": [NEUTRAL if parts is None else POSITIVE if v >= 0 else NEGATIVE for v in share.tolist()],
            "line": {"color": "#333333", "width": 1},
        },
        "hovertext": [
            f"pos {position} '{safe_token}', {label}" + ("" if parts is None else f": {v:+.3f}")
            for label, v in zip(labels, share.tolist(), strict=True)
        ],
        "hovertemplate": "%{hovertext}<extra></extra>",
        "showlegend": False,
    }


__all__ = ["attribution_bars_figure", "attribution_flow_figure", "attribution_heads_figure"]
