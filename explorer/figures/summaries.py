"""Analysis summaries: the logit lens and the head-types grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.analysis.heads import display_name
from explorer.figures.base import (
    HEAD_SCORES,
    NEUTRAL,
    OKABE_ITO,
    SEQUENTIAL,
    UNLABELLED,
    _esc,
    _esc_text,
    _figure,
    _token_ticks,
)

# --- analysis summaries --------------------------------------------------------------------


def logit_lens_figure(
    top_tokens: list[list[str]],
    top_probs: np.ndarray,
    tokens: list[str],
    *,
    meta: str | None = None,
) -> go.Figure:
    """[layer + 1, pos] grid of the top next-token guess read off the residual stream:
    colour is its probability, the cell's text the token. Rows top to bottom: "embed",
    then "L0", "L1", ... (after each layer), matching the overview's layer order."""
    p = np.asarray(top_probs, dtype=np.float32)
    n_rows, n_pos = p.shape
    row_names = ["embed"] + [f"L{i}" for i in range(n_rows - 1)]
    text = [_esc(row) for row in top_tokens]
    inputs = _esc(tokens)
    hover = [
        [f"{row_names[i]}, pos {j} '{inputs[j]}': top '{text[i][j]}'" for j in range(n_pos)]
        for i in range(n_rows)
    ]
    heat = {
        "type": "heatmap",
        "z": p,
        "zmin": 0,
        "zmax": 1,
        "colorscale": SEQUENTIAL,
        "colorbar": {"title": {"text": "top-token<br>probability"}},
        "text": text,
        "hovertext": hover,
        "hovertemplate": "%{hovertext}<br>p = %{z:.3f}<extra></extra>",
        "xgap": 1,
        "ygap": 1,
    }
    if p.size <= 600:  # text in cells only while it can be read
        heat |= {"texttemplate": "%{text}", "textfont": {"size": 12}}
    return _figure(
        [heat],
        "Logit lens: top next-token guess after each layer",
        meta or "logit-lens",
        xaxis={"title": {"text": "input token"}, **_token_ticks(tokens)},
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(n_rows)),
            "ticktext": row_names,
            "autorange": "reversed",
        },
    )


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """Okabe-Ito colours per label; grey for "none"/"other"-like labels, listed last."""
    named = sorted(label for label in labels if label.lower() not in UNLABELLED)
    rest = sorted(label for label in labels if label.lower() in UNLABELLED)
    colours = {label: OKABE_ITO[i % len(OKABE_ITO)] for i, label in enumerate(named)}
    return colours | {label: NEUTRAL for label in rest}


def head_types_figure(df: pd.DataFrame, *, meta: str | None = None) -> go.Figure:
    """Layer × head grid coloured by each head's label; every score in the hover.

    df: one row per (layer, head) with columns layer, head, label and `HEAD_SCORES`.
    """
    layers = df["layer"].to_numpy(dtype=np.int64)
    heads = df["head"].to_numpy(dtype=np.int64)
    n_layer, n_head = int(layers.max()) + 1, int(heads.max()) + 1
    colours = label_colours(df["label"].astype(str).unique().tolist())
    code = {label: i for i, label in enumerate(colours)}
    z = np.full((n_layer, n_head), np.nan, dtype=np.float32)
    z[layers, heads] = [code[str(label)] for label in df["label"]]
    scores = np.full((n_layer, n_head, len(HEAD_SCORES)), np.nan, dtype=np.float32)
    scores[layers, heads] = df[list(HEAD_SCORES)].to_numpy(dtype=np.float32)
    hover = np.full((n_layer, n_head), "", dtype=object)
    hover[layers, heads] = _esc([display_name(label) for label in df["label"].astype(str)])
    k = len(colours)
    stops = [[edge / k, c] for i, c in enumerate(colours.values()) for edge in (i, i + 1)]
    score_lines = "".join(
        f"<br>{display_name(name)}: %{{customdata[{i}]:.2f}}" for i, name in enumerate(HEAD_SCORES)
    )
    heat = {
        "type": "heatmap",
        "z": z,
        "zmin": -0.5,
        "zmax": k - 0.5,
        "colorscale": stops,
        "showscale": False,
        "xgap": 2,
        "ygap": 2,
        "customdata": scores,
        "hovertext": hover.tolist(),
        "hoverongaps": False,
        "hovertemplate": "layer %{y}, head %{x}: <b>%{hovertext}</b>" + score_lines + "<extra></extra>",
    }
    key = "   ".join(
        f"<span style='color:{c}'>■</span> {_esc_text(display_name(label))}" for label, c in colours.items()
    )
    note = {
        "text": key,
        "xref": "paper",
        "yref": "paper",
        "x": 0,
        "y": 1,
        "xanchor": "left",
        "yanchor": "bottom",
        "showarrow": False,
        "yshift": 4,
    }
    return _figure(
        [heat],
        "Head types: what each head mostly does",
        meta or "head-types",
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
        annotations=[note],
        margin={"l": 10, "r": 10, "t": 96, "b": 10},
    )
