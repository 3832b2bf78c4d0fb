"""Figures of the Head types, Ablation, Logit lens and Compare tabs, composed from the families'
builders (analysis results in, figure out)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.analysis.ablation import head_name
from explorer.analysis.comparison import Comparison
from explorer.figures.base import HIGHLIGHT, OKABE_ITO, _esc, _esc_text, thin_ticks
from explorer.figures.generation import distribution_figure
from explorer.figures.heads import DETAIL_MAX_CELLS, DETAIL_TICK_LABELS, difference_figure
from explorer.figures.summaries import logit_lens_figure
from explorer.views import top_table

LENS_CELL_CHARS = 6  # characters of a guess written in its cell; the hover has it whole
IMPORTANCE_SHOWN = 15


def _rows_for(before: pd.DataFrame, after: pd.DataFrame, ids: list[int]) -> pd.DataFrame:
    """before's rows for `ids`, in that order; a token outside its table gets probability 0."""
    prob = dict(zip(before["token_id"].astype(int), before["prob"], strict=True))
    name = dict(zip(after["token_id"].astype(int), after["token"], strict=True))
    name |= dict(zip(before["token_id"].astype(int), before["token"], strict=True))
    return top_table([name[i] for i in ids], np.asarray(ids), np.asarray([prob.get(i, 0.0) for i in ids]))


def ablation_figure(result: Any, shown: int = 8) -> go.Figure:
    """Before and after bars for the top tokens of either side, the followed token outlined."""
    ids = list(
        dict.fromkeys(
            [*result.before["token_id"][:shown].astype(int), *result.after["token_id"][:shown].astype(int)]
        )
    )
    ids = sorted(ids, key=lambda i: -max(_prob(result.before, i), _prob(result.after, i)))
    before = _rows_for(result.before, result.after, ids)
    after = _rows_for(result.after, result.before, ids)
    fig = distribution_figure(before, after, result.target_id, title="Next token: before and after")
    fig.data[0].name, fig.data[1].name = "full model", "heads removed"
    for annotation in fig.layout.annotations:
        annotation.text = annotation.text.replace("chosen", "followed")
    fig.update_layout(height=140 + 20 * len(ids) * 2)
    fig.update_xaxes(tickformat=".0%" if max(before["prob"].max(), after["prob"].max()) >= 0.1 else ".1%")
    return fig


def _prob(table: pd.DataFrame, token_id: int) -> float:
    hit = table.loc[table["token_id"] == token_id, "prob"]
    return float(hit.iloc[0]) if len(hit) else 0.0


def importance_figure(ranked: pd.DataFrame, shown: int = IMPORTANCE_SHOWN) -> go.Figure:
    """The heads whose removal moves the target most, largest at top; blue where the head helped."""
    top = ranked.head(shown)
    delta = top["delta"].to_numpy(dtype=np.float32)
    target = _esc_text(str(ranked["target"].iloc[0]))
    fig = go.Figure(
        go.Bar(
            x=delta,
            y=np.arange(len(top)),
            orientation="h",
            customdata=top["name"].tolist(),
            marker={"color": [OKABE_ITO[0] if d < 0 else OKABE_ITO[1] for d in delta]},
            text=[f"{p:.1%}" for p in top["prob_after"]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{customdata}: Δ log p = %{x:+.3f}<br>p after = %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(top))),
        ticktext=top["name"].tolist(),
        autorange="reversed",
        showgrid=False,
        automargin=True,
    )
    lo, hi = min(0.0, float(delta.min())), max(0.0, float(delta.max()))
    pad = 0.18 * (hi - lo or 1.0)  # room for the labels beside the bars
    fig.update_xaxes(
        title=f"change in log p('{target}') when removed alone",
        range=[lo - pad * (lo < 0), hi + pad * (hi > 0 or lo == 0)],
        zeroline=True,
        zerolinecolor="#64748b",
        automargin=True,
    )
    p_before = float(ranked["prob_before"].iloc[0])
    fig.update_layout(
        template="plotly_white",
        title={
            "text": f"Which heads matter for '{target}' (now {p_before:.1%})?<br>"
            "<sup>blue: removing it lowers the token (the head helped) · labels: p after</sup>",
            "x": 0.01,
        },
        height=150 + 26 * len(top),
        margin={"l": 10, "r": 40, "t": 88, "b": 10},
        font={"size": 13},
        meta="head-importance",
    )
    return fig


def lens_figure(view: Any, pos: int) -> go.Figure:
    lens, lo = view.lens, view.lo
    n_rows, n_pos = lens.top_probs.shape[:2]
    guesses = lens.top_tokens[:, :, 0].tolist()
    fig = logit_lens_figure(guesses, lens.top_probs[:, :, 0], list(lens.tokens))
    heat = fig.data[0]
    # Long guesses are cut in the cells (the hover has them whole); cut before escaping, not inside an entity.
    heat.text = [
        _esc([t if len(t) <= LENS_CELL_CHARS else t[: LENS_CELL_CHARS - 1] + "…" for t in row])
        for row in guesses
    ]
    heat.x = np.arange(lo, lo + n_pos)
    if lo:  # the figure numbers positions from 0: put the window's own positions back
        heat.hovertext = [
            [h.replace(f", pos {j} ", f", pos {j + lo} ", 1) for j, h in enumerate(row)]
            for row in heat.hovertext
        ]
        fig.layout.xaxis.tickvals = [v + lo for v in fig.layout.xaxis.tickvals]
    fig.add_shape(
        type="rect",
        x0=pos - 0.5,
        x1=pos + 0.5,
        y0=-0.5,
        y1=n_rows - 0.5,
        line={"color": HIGHLIGHT, "width": 3},
    )
    total = view.n_pos
    if n_pos < total:
        fig.update_layout(
            title={
                "text": f"{fig.layout.title.text}<br><sup>positions {lo}–{lo + n_pos - 1} of {total}: "
                "pick a position to move the window</sup>"
            }
        )
    fig.update_layout(height=220 + 40 * n_rows, margin={"t": 106 if n_pos < total else 88})
    return fig


def compare_figure(comparison: Comparison, layer: int, head: int) -> go.Figure:
    diff = comparison.diff[layer, head]
    n = comparison.n_aligned
    lo = 0
    if n * n > DETAIL_MAX_CELLS:  # the last query rows, as the head detail does for long prompts
        lo = n - max(48, DETAIL_MAX_CELLS // n)
    title = f"{head_name(layer, head)}: attention in B minus attention in A"
    fig = difference_figure(diff[lo:], list(comparison.labels), title)
    fig.update_layout(height=560)
    return thin_ticks(fig, DETAIL_TICK_LABELS)
