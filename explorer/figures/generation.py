"""Generation: the next-token distribution and the confidence timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.figures.base import (
    HIGHLIGHT,
    OKABE_ITO,
    _esc,
    _esc_text,
    _figure,
    _int_keys,
    _slug,
    _thin,
    _token_ticks,
)

# --- generation ----------------------------------------------------------------------------


def _resolve_chosen(frames: Sequence[pd.DataFrame], chosen: str | int | None) -> int | None:
    """Token id of the chosen token, given as an id or as a display string."""
    if chosen is None or isinstance(chosen, bool):
        return None
    if isinstance(chosen, (int, np.integer)):
        return int(chosen)
    for df in frames:
        hits = df.loc[df["token"] == chosen, "token_id"]
        if len(hits):
            return int(hits.iloc[0])
    return None


def distribution_figure(
    raw: pd.DataFrame,
    warped: pd.DataFrame | None,
    chosen: str | int | None,
    title: str = "Next token",
    *,
    chosen_label: str | None = None,
    meta: str | None = None,
    **layout: Any,
) -> go.Figure:
    """Next-token probabilities as horizontal bars, largest at top: the raw model and
    (if given) after the sampling settings, side by side. The chosen token's bars are
    outlined and hatched, with an annotation. Each bar's customdata is its token_id,
    so a click can force that token. `chosen` is a token id, or a display string;
    `chosen_label` its display text (StepResult.display), for when it is not among the bars.
    `layout` is passed on (height, xaxis, …; an axis given replaces the default one's keys).
    """
    frames = {"model": raw}
    if warped is not None:
        frames["after sampling settings"] = warped
    ids = list(dict.fromkeys(int(t) for df in frames.values() for t in df["token_id"]))
    row_of = {token_id: i for i, token_id in enumerate(ids)}
    label_of = {
        int(i): str(t) for df in frames.values() for i, t in zip(df["token_id"], df["token"], strict=True)
    }
    chosen_id = _resolve_chosen(list(frames.values()), chosen)
    traces = []
    for k, (name, df) in enumerate(frames.items()):
        token_ids = df["token_id"].to_numpy(dtype=np.int32)
        is_chosen = token_ids == chosen_id
        traces.append(
            {
                "type": "bar",
                "name": name,
                "orientation": "h",
                "x": df["prob"].to_numpy(dtype=np.float32),
                "y": np.array([row_of[int(t)] for t in token_ids], dtype=np.int16),
                "customdata": token_ids,
                "hovertext": _esc(df["token"].astype(str).tolist()),
                "hovertemplate": "'%{hovertext}' (id %{customdata})<br>p = %{x:.2%}"
                "<extra>%{fullData.name}</extra>",
                "marker": {
                    "color": OKABE_ITO[k],
                    "line": {"color": "black", "width": np.where(is_chosen, 3, 0).astype(np.uint8)},
                    "pattern": {"shape": ["/" if c else "" for c in is_chosen]},
                },
            }
        )
    n_rows = len(ids)
    heading = _esc_text(title)
    annotations = []
    if chosen_id is not None and chosen_id in row_of:
        chosen_probs = [df.loc[df["token_id"] == chosen_id, "prob"] for df in frames.values()]
        annotations.append(
            {
                "x": max(float(p.max()) for p in chosen_probs if len(p)),
                "y": row_of[chosen_id],
                "text": f"◀ chosen '{_esc_text(label_of[chosen_id])}'",
                "showarrow": False,
                "xanchor": "left",
                "xshift": 6,
                "font": {"color": HIGHLIGHT},
            }
        )
    elif chosen_id is not None:
        # A token from the tail, or a forced one: named by its text whenever the caller has it.
        which = f"chosen id {chosen_id}"
        if chosen_label is not None:
            which = f"chosen '{_esc_text(chosen_label)}' (id {chosen_id})"
        heading += f"<br><sup>{which} is not among these bars</sup>"
    xaxis = {"title": {"text": "probability"}, "tickformat": ".0%", "rangemode": "tozero", "showgrid": True}
    yaxis = {
        "range": [n_rows - 0.5, -0.5],  # largest at top
        "showgrid": False,
        **_token_ticks([label_of[i] for i in ids]),
    }
    options: dict[str, Any] = {
        "barmode": "group",
        "height": 140 + 30 * n_rows * len(frames),
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        "annotations": annotations,
    }
    options |= layout
    options["xaxis"] = xaxis | options.get("xaxis", {})
    options["yaxis"] = yaxis | options.get("yaxis", {})
    return _figure(traces, heading, meta or _slug(title, "next-token"), **options)


def timeline_ticks(tokens: Sequence[str], max_labels: int | None = None) -> dict[str, Any]:
    """The timeline's x ticks: the generated tokens, every k-th once there are more than `max_labels`."""
    return _thin(_token_ticks(tokens), max_labels)


def timeline_figure(
    probs: Sequence[float],
    entropies: Sequence[float],
    tokens: Sequence[str],
    *,
    meta: str | None = None,
    max_labels: int | None = None,
    **layout: Any,
) -> go.Figure:
    """Per generation step: the chosen token's probability (left axis, 0..1) and the
    distribution's entropy in bits (right axis). x ticks are the generated tokens."""
    if not len(probs) == len(entropies) == len(tokens):
        raise ValueError("probs, entropies and tokens must have one entry per step")
    steps = _int_keys(len(tokens))
    esc = _esc(tokens)
    traces = [
        {
            "type": "scatter",
            "x": steps,
            "y": np.asarray(probs, dtype=np.float32),
            "name": "p(chosen token)",
            "mode": "lines+markers",
            "line": {"color": OKABE_ITO[0], "width": 3},
            "marker": {"symbol": "circle", "size": 9},
            "hovertext": esc,
            "hovertemplate": "step %{x} '%{hovertext}'<br>p = %{y:.3f}<extra></extra>",
        },
        {
            "type": "scatter",
            "x": steps,
            "y": np.asarray(entropies, dtype=np.float32),
            "name": "entropy (bits)",
            "yaxis": "y2",
            "mode": "lines+markers",
            "line": {"color": OKABE_ITO[1], "width": 3, "dash": "dash"},
            "marker": {"symbol": "diamond", "size": 9},
            "hovertext": esc,
            "hovertemplate": "step %{x} '%{hovertext}'<br>entropy %{y:.2f} bits<extra></extra>",
        },
    ]
    return _figure(
        traces,
        "Generation: confidence in each chosen token",
        meta or "generation-timeline",
        xaxis={"title": {"text": "generated token"}, **timeline_ticks(tokens, max_labels)},
        yaxis={"title": {"text": "p(chosen)"}, "range": [0, 1.05], "tickformat": ".0%"},
        yaxis2={
            "title": {"text": "entropy (bits)"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
            "automargin": True,
        },
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        **layout,
    )
