"""Pure Plotly figure builders: numpy arrays and token strings in, `go.Figure` out.

Token strings come from users, and Plotly renders pseudo-HTML (`<b>`, `<br>`, `<a href>`) in
tick labels, titles, hover text and annotations, so every piece of user text passes through
`_esc` first. Caller-supplied titles and labels are plain text and are escaped too.

Arrays go in as float32 or small integers: Plotly serialises numpy arrays as base64, so the
payload stays compact. Each figure's `layout.meta` is a short slug for naming downloads.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


@cache
def _template_json() -> str:
    import plotly.io as pio

    return json.dumps(pio.templates["plotly_white"].to_plotly_json())


def _set_template(fig: go.Figure) -> None:
    """plotly_white, assigned the way Plotly assigns its default template: unvalidated.

    A validated assignment deep-copies and re-checks the whole template, ~30 ms a figure and
    most of a small figure's cost; this template is Plotly's own and already valid.
    """
    layout = fig.layout
    layout._validate = False  # type: ignore[attr-defined]
    try:
        layout.template = json.loads(_template_json())
    finally:
        layout._validate = True  # type: ignore[attr-defined]


def _style(fig: go.Figure, title: str, meta: str, **layout: Any) -> go.Figure:
    """Shared look: large fonts, white template, tight margins. `title` is already escaped."""
    _set_template(fig)
    fig.update_layout(
        title={
            "text": title,
            "x": 0.01,
            "xanchor": "left",
            "font": {"size": TITLE_SIZE},
        },
        font={"size": FONT_SIZE},
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        meta=meta,
    )
    fig.update_layout(**layout)
    fig.update_xaxes(automargin=True, showgrid=False, zeroline=False)
    fig.update_yaxes(automargin=True, zeroline=False)
    return fig


def _mask_future(mat: np.ndarray) -> np.ndarray:
    """float32 copy of a [query, key] matrix with causally masked keys set to NaN (blank)."""
    z = np.array(mat, dtype=np.float32)
    n_query, n_key = z.shape
    # With a KV cache the queries are the last n_query positions, hence the offset.
    z[np.triu(np.ones((n_query, n_key), dtype=bool), k=1 + n_key - n_query)] = np.nan
    return z


# --- overview ---------------------------------------------------------------------------


def downsample(mat: np.ndarray, size: int) -> np.ndarray:
    """Block max-pool the last two axes ([..., query, key]) to at most `size` cells each.

    Max rather than mean so that a one-token-wide diagonal (a previous-token head) survives.
    Blocks differ in length by at most one; axes already at most `size` are left alone.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = np.asarray(mat, dtype=np.float32)
    for axis in (-1, -2):  # key axis first: it is contiguous, which is ~10x faster
        n = out.shape[axis]
        if n > size:
            starts = np.arange(size) * n // size
            out = np.maximum.reduceat(out, starts, axis=axis)
    return out


def overview_tile(
    n_pos: int,
    n_layer: int,
    n_head: int,
    max_cells: int = 48,
    max_z_cells: int = OVERVIEW_MAX_Z_CELLS,
) -> int:
    """Cells per tile side in the overview: at most `max_cells` and `n_pos`, and small
    enough that the whole grid, one-cell gaps included, stays within `max_z_cells`."""
    tile = max(1, min(max_cells, n_pos))
    while tile > 1 and (n_layer * (tile + 1) - 1) * (n_head * (tile + 1) - 1) > max_z_cells:
        tile -= 1
    return tile


def overview_cell_to_head(
    x: float, y: float, n_layer: int, n_head: int, tile: int | Sequence[int]
) -> tuple[int, int] | None:
    """(layer, head) under a point of the overview, or None on a gap or outside.

    `x`, `y` are data coordinates, as in a Plotly click event (`points[0].x`, `.y`):
    the overview's axes count heads and layers, so tile (layer, head) is centred on
    (x=head, y=layer). `tile` is cells per tile side, or (query cells, key cells); the
    figure stores it in `fig.data[0].meta["tile"]`.
    """
    tile_q, tile_k = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    layer, head = math.floor(y + 0.5), math.floor(x + 0.5)
    if not (0 <= layer < n_layer and 0 <= head < n_head):
        return None
    # A tile spans tile/(tile+1) of its unit; the rest is the gap.
    if abs(x - head) > tile_k / (2 * (tile_k + 1)) or abs(y - layer) > tile_q / (2 * (tile_q + 1)):
        return None
    return layer, head


def overview_figure(
    pattern: np.ndarray, max_cells: int = 48, *, max_z_cells: int = OVERVIEW_MAX_Z_CELLS
) -> go.Figure:
    """Every head of every layer in one heatmap: layer rows, head columns, each tile that
    head's [query, key] pattern max-pooled, with one-cell NaN gaps between tiles.

    pattern: [layer, head, query, key]. Axes are in head/layer units (see
    `overview_cell_to_head`); the trace's `meta` holds tile, n_layer and n_head.
    """
    n_layer, n_head, n_query, n_key = pattern.shape
    tile = overview_tile(max(n_query, n_key), n_layer, n_head, max_cells, max_z_cells)
    tiles = downsample(pattern, tile)  # [layer, head, tile_q, tile_k]
    tile_q, tile_k = tiles.shape[2:]
    grid = np.full((n_layer, tile_q + 1, n_head, tile_k + 1), np.nan, dtype=np.float32)
    grid[:, :tile_q, :, :tile_k] = tiles.transpose(0, 2, 1, 3)
    z = np.ascontiguousarray(grid.reshape(n_layer * (tile_q + 1), n_head * (tile_k + 1))[:-1, :-1])
    dx, dy = 1 / (tile_k + 1), 1 / (tile_q + 1)
    heat = go.Heatmap(
        z=z,
        x0=-(tile_k - 1) / 2 * dx,  # centres tile h on x = h, gaps on h + 0.5
        dx=dx,
        y0=-(tile_q - 1) / 2 * dy,
        dy=dy,
        zmin=0,
        zmax=1,
        colorscale=SEQUENTIAL,
        colorbar={"title": {"text": "attention<br>(block max)"}},
        hoverongaps=False,
        hovertemplate="layer %{y:.0f}, head %{x:.0f}<br>block max %{z:.3f}<extra></extra>",
        meta={"tile": [tile_q, tile_k], "n_layer": n_layer, "n_head": n_head},
    )
    fig = go.Figure(heat)
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(n_head)),
        ticktext=[f"H{h}" for h in range(n_head)],
        range=[-0.5, n_head - 0.5],
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(n_layer)),
        ticktext=[f"L{layer}" for layer in range(n_layer)],
        range=[n_layer - 0.5, -0.5],  # layer 0 at top
        scaleanchor="x",
        constrain="domain",
        showgrid=False,
    )
    title = "All heads: layer rows × head columns (each tile: query ↓, key →). Click a tile."
    return _style(fig, title, "attention-overview")


# --- one head -----------------------------------------------------------------------------


def _pair_hover(tokens: Sequence[str], z: np.ndarray) -> list[list[str]]:
    """Per-cell "query i 'tok' → key j 'tok'"; empty where the cell is blank (NaN)."""
    esc = _esc(tokens)
    n_query, n_key = z.shape
    offset = n_key - n_query  # queries are the last positions
    blank = np.isnan(z)
    return [
        [
            "" if blank[i, j] else f"query {i + offset} '{esc[i + offset]}' → key {j} '{esc[j]}'"
            for j in range(n_key)
        ]
        for i in range(n_query)
    ]


def _token_heatmap_figure(
    z: np.ndarray, tokens: Sequence[str], value_format: str, **heatmap: Any
) -> go.Figure:
    """[query, key] heatmap with token-labelled axes, query top to bottom."""
    n_query, n_key = z.shape
    offset = n_key - n_query
    heat = go.Heatmap(z=z, y0=offset, hoverongaps=False, **heatmap)
    if z.size <= HOVER_MAX_CELLS:
        heat.hovertext = _pair_hover(tokens, z)
        heat.hovertemplate = f"%{{hovertext}}: %{{z:{value_format}}}<extra></extra>"
    else:
        heat.hovertemplate = f"query %{{y:.0f}} → key %{{x:.0f}}: %{{z:{value_format}}}<extra></extra>"
    fig = go.Figure(heat)
    fig.update_xaxes(title="key (attended to)", **_token_ticks(tokens[:n_key]))
    y_ticks = _token_ticks(tokens[offset:n_key])
    y_ticks["tickvals"] = [v + offset for v in y_ticks["tickvals"]]
    fig.update_yaxes(title="query (attending)", autorange="reversed", showgrid=False, **y_ticks)
    return fig


def head_figure(
    pattern_lh: np.ndarray,
    tokens: list[str],
    layer: int,
    head: int | None,
    query: int | None = None,
    title: str | None = None,
    *,
    meta: str | None = None,
) -> go.Figure:
    """One head's [query, key] pattern; masked (future) keys blank.

    Colour runs from 0 to the data's max so weak heads stay visible. `head=None` (or a
    `title`) for a mean over heads. `query` outlines that row.
    """
    z = _mask_future(pattern_lh)
    zmax = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
    fig = _token_heatmap_figure(
        z,
        tokens,
        ".4f",
        zmin=0,
        zmax=zmax or 1.0,
        colorscale=SEQUENTIAL,
        colorbar={"title": {"text": f"attention<br>0 – {zmax:.2f}<br>(max of data)"}},
    )
    if query is not None:
        fig.add_shape(
            type="rect",
            x0=-0.5,
            x1=query + 0.5,  # the keys this query may see
            y0=query - 0.5,
            y1=query + 0.5,
            line={"color": HIGHLIGHT, "width": 3},
        )
    which = "mean over heads" if head is None else f"head {head}"
    default = f"Layer {layer}, {which}: where each query token looks"
    if query is not None and 0 <= query < len(tokens):
        default += f" (query {query} '{_esc_text(tokens[query])}' outlined)"
    slug = f"attention-L{layer}-" + ("mean" if head is None else f"H{head}")
    return _style(fig, _esc_text(title) if title else default, meta or slug)


def difference_figure(
    diff: np.ndarray, tokens: list[str], title: str, *, meta: str | None = None
) -> go.Figure:
    """[query, key] heatmap of a difference between two patterns, diverging around 0."""
    z = _mask_future(diff)
    fig = _token_heatmap_figure(
        z,
        tokens,
        "+.4f",
        zmid=0,
        colorscale=DIVERGING,
        colorbar={"title": {"text": "difference"}},
    )
    return _style(fig, _esc_text(title), meta or _slug(title, "difference"))


def attention_row_figure(
    row: np.ndarray,
    tokens: list[str],
    query: int,
    title: str | None = None,
    *,
    meta: str | None = None,
) -> go.Figure:
    """Bars of one query's attention over keys 0..query: which earlier tokens it read."""
    keys = np.arange(query + 1, dtype=np.int32)
    values = np.asarray(row, dtype=np.float32)[: query + 1]
    esc = _esc(tokens[: query + 1])
    bar = go.Bar(
        x=keys,
        y=values,
        marker_color=OKABE_ITO[0],
        hovertext=[f"key {j} '{t}'" for j, t in enumerate(esc)],
        hovertemplate="%{hovertext}: %{y:.4f}<extra></extra>",
    )
    if len(keys) <= 24:  # values on the bars while they still fit
        bar.texttemplate = "%{y:.2f}"
        bar.textposition = "outside"
        bar.cliponaxis = False
    fig = go.Figure(bar)
    fig.update_xaxes(title="key (earlier token)", **_token_ticks(tokens[: query + 1]))
    fig.update_yaxes(title="attention", rangemode="tozero")
    default = f"Query {query} '{esc[-1]}': attention over earlier tokens"
    return _style(fig, _esc_text(title) if title else default, meta or f"attention-row-q{query}")


# --- vectors and attention arithmetic ----------------------------------------------------


def vector_figure(
    vectors: np.ndarray, labels: list[str], title: str, *, meta: str | None = None
) -> go.Figure:
    """A few vectors (e.g. Q_i, K_j, V_j) as heatmap rows, diverging colours centred on 0."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    esc = _esc(labels)
    heat = go.Heatmap(
        z=v,
        zmid=0,
        colorscale=DIVERGING,
        colorbar={"title": {"text": "value"}},
        hovertext=[[f"{label}[{j}]" for j in range(v.shape[1])] for label in esc],
        hovertemplate="%{hovertext}: %{z:.3f}<extra></extra>",
    )
    fig = go.Figure(heat)
    fig.update_xaxes(title="dimension")
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(esc))),
        ticktext=esc,
        autorange="reversed",
        showgrid=False,
    )
    return _style(fig, _esc_text(title), meta or _slug(title, "vectors"), height=140 + 45 * len(v))


def scores_figure(
    values: Mapping[str, np.ndarray],
    tokens: list[str],
    query: int,
    *,
    lower: Sequence[str] = ("pattern",),
    meta: str | None = None,
) -> go.Figure:
    """Grouped bars per key for the named steps of one attention row (e.g. scores, scaled,
    pattern). Masked entries (-inf, NaN) are skipped. Steps named in `lower` (probabilities)
    go to a second panel below, sharing the key axis."""
    bottom = [name for name in values if name in lower]
    two_panels = bool(bottom) and len(bottom) < len(values)
    fig = make_subplots(rows=2 if two_panels else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    esc = _esc(tokens)
    n_key = 0
    for i, (name, row) in enumerate(values.items()):
        v = np.asarray(row, dtype=np.float32)
        keys = np.flatnonzero(np.isfinite(v)).astype(np.int32)
        n_key = max(n_key, len(v))
        bar = go.Bar(
            name=_esc_text(name),
            x=keys,
            y=v[keys],
            marker_color=OKABE_ITO[i % len(OKABE_ITO)],
            hovertext=[f"key {j} '{esc[j]}'" for j in keys],
            hovertemplate="%{fullData.name}<br>%{hovertext}: %{y:.4f}<extra></extra>",
        )
        fig.add_trace(bar, row=2 if two_panels and name in lower else 1, col=1)
    fig.update_xaxes(**_token_ticks(tokens[:n_key]))
    fig.update_xaxes(title="key", row=2 if two_panels else 1, col=1)
    fig.update_yaxes(title="score", row=1, col=1)
    if two_panels:
        fig.update_yaxes(title="pattern", rangemode="tozero", row=2, col=1)
    steps = " → ".join(_esc(list(values)))
    q_tok = _esc_text(tokens[query]) if 0 <= query < len(tokens) else ""
    return _style(
        fig,
        f"Query {query} '{q_tok}': {steps}",
        meta or f"scores-q{query}",
        barmode="group",
        legend={
            "orientation": "h",
            "y": 1.02,
            "yanchor": "bottom",
            "x": 1,
            "xanchor": "right",
        },
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
    meta: str | None = None,
) -> go.Figure:
    """Next-token probabilities as horizontal bars, largest at top: the raw model and
    (if given) after the sampling settings, side by side. The chosen token's bars are
    outlined and hatched, with an annotation. Each bar's customdata is its token_id,
    so a click can force that token. `chosen` is a token id, or a display string.
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
    fig = go.Figure()
    for k, (name, df) in enumerate(frames.items()):
        token_ids = df["token_id"].to_numpy(dtype=np.int32)
        is_chosen = token_ids == chosen_id
        fig.add_bar(
            name=name,
            orientation="h",
            x=df["prob"].to_numpy(dtype=np.float32),
            y=np.array([row_of[int(t)] for t in token_ids], dtype=np.int32),
            customdata=token_ids,
            hovertext=_esc(df["token"].astype(str).tolist()),
            hovertemplate="'%{hovertext}' (id %{customdata})<br>p = %{x:.2%}<extra>%{fullData.name}</extra>",
            marker={
                "color": OKABE_ITO[k],
                "line": {
                    "color": "black",
                    "width": np.where(is_chosen, 3, 0).astype(np.uint8),
                },
                "pattern": {"shape": ["/" if c else "" for c in is_chosen]},
            },
        )
    n_rows = len(ids)
    fig.update_yaxes(
        range=[n_rows - 0.5, -0.5],  # largest at top
        showgrid=False,
        **_token_ticks([label_of[i] for i in ids]),
    )
    fig.update_xaxes(title="probability", tickformat=".0%", rangemode="tozero", showgrid=True)
    heading = _esc_text(title)
    if chosen_id is not None and chosen_id in row_of:
        chosen_probs = [df.loc[df["token_id"] == chosen_id, "prob"] for df in frames.values()]
        fig.add_annotation(
            x=max(float(p.max()) for p in chosen_probs if len(p)),
            y=row_of[chosen_id],
            text=f"◀ chosen '{_esc_text(label_of[chosen_id])}'",
            showarrow=False,
            xanchor="left",
            xshift=6,
            font={"color": HIGHLIGHT},
        )
    elif chosen_id is not None:
        label = label_of.get(chosen_id, str(chosen) if chosen is not None else "")
        heading += f"<br><sup>chosen '{_esc_text(label)}' (id {chosen_id}) is not among these bars</sup>"
    return _style(
        fig,
        heading,
        meta or _slug(title, "next-token"),
        barmode="group",
        height=140 + 30 * n_rows * len(frames),
        legend={
            "orientation": "h",
            "y": 1.0,
            "yanchor": "bottom",
            "x": 1,
            "xanchor": "right",
        },
    )


def timeline_figure(
    probs: Sequence[float],
    entropies: Sequence[float],
    tokens: Sequence[str],
    *,
    meta: str | None = None,
) -> go.Figure:
    """Per generation step: the chosen token's probability (left axis, 0..1) and the
    distribution's entropy in bits (right axis). x ticks are the generated tokens."""
    if not len(probs) == len(entropies) == len(tokens):
        raise ValueError("probs, entropies and tokens must have one entry per step")
    steps = np.arange(len(tokens), dtype=np.int32)
    esc = _esc(tokens)
    fig = go.Figure()
    fig.add_scatter(
        x=steps,
        y=np.asarray(probs, dtype=np.float32),
        name="p(chosen token)",
        mode="lines+markers",
        line={"color": OKABE_ITO[0], "width": 3},
        marker={"symbol": "circle", "size": 9},
        hovertext=esc,
        hovertemplate="step %{x} '%{hovertext}'<br>p = %{y:.3f}<extra></extra>",
    )
    fig.add_scatter(
        x=steps,
        y=np.asarray(entropies, dtype=np.float32),
        name="entropy (bits)",
        yaxis="y2",
        mode="lines+markers",
        line={"color": OKABE_ITO[1], "width": 3, "dash": "dash"},
        marker={"symbol": "diamond", "size": 9},
        hovertext=esc,
        hovertemplate="step %{x} '%{hovertext}'<br>entropy %{y:.2f} bits<extra></extra>",
    )
    fig.update_xaxes(title="generated token", **_token_ticks(tokens))
    return _style(
        fig,
        "Generation: confidence in each chosen token",
        meta or "generation-timeline",
        yaxis={"title": {"text": "p(chosen)"}, "range": [0, 1.05], "tickformat": ".0%"},
        yaxis2={
            "title": {"text": "entropy (bits)"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
            "automargin": True,
        },
        legend={
            "orientation": "h",
            "y": 1.0,
            "yanchor": "bottom",
            "x": 1,
            "xanchor": "right",
        },
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
    heat = go.Heatmap(
        z=p,
        zmin=0,
        zmax=1,
        colorscale=SEQUENTIAL,
        colorbar={"title": {"text": "top-token<br>probability"}},
        text=text,
        hovertext=hover,
        hovertemplate="%{hovertext}<br>p = %{z:.3f}<extra></extra>",
        xgap=1,
        ygap=1,
    )
    if p.size <= 600:  # text in cells only while it can be read
        heat.texttemplate = "%{text}"
        heat.textfont = {"size": 12}
    fig = go.Figure(heat)
    fig.update_xaxes(title="input token", **_token_ticks(tokens))
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(n_rows)),
        ticktext=row_names,
        autorange="reversed",
    )
    return _style(fig, "Logit lens: top next-token guess after each layer", meta or "logit-lens")


def _label_colours(labels: Sequence[str]) -> dict[str, str]:
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
    colours = _label_colours(df["label"].astype(str).unique().tolist())
    code = {label: i for i, label in enumerate(colours)}
    z = np.full((n_layer, n_head), np.nan, dtype=np.float32)
    z[layers, heads] = [code[str(label)] for label in df["label"]]
    scores = np.full((n_layer, n_head, len(HEAD_SCORES)), np.nan, dtype=np.float32)
    scores[layers, heads] = df[list(HEAD_SCORES)].to_numpy(dtype=np.float32)
    hover = np.full((n_layer, n_head), "", dtype=object)
    hover[layers, heads] = _esc(df["label"].astype(str).tolist())
    k = len(colours)
    stops = [[edge / k, c] for i, c in enumerate(colours.values()) for edge in (i, i + 1)]
    score_lines = "".join(f"<br>{name}: %{{customdata[{i}]:.2f}}" for i, name in enumerate(HEAD_SCORES))
    heat = go.Heatmap(
        z=z,
        zmin=-0.5,
        zmax=k - 0.5,
        colorscale=stops,
        showscale=False,
        xgap=2,
        ygap=2,
        customdata=scores,
        hovertext=hover.tolist(),
        hoverongaps=False,
        hovertemplate="layer %{y}, head %{x}: <b>%{hovertext}</b>" + score_lines + "<extra></extra>",
    )
    fig = go.Figure(heat)
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(n_head)),
        ticktext=[f"H{h}" for h in range(n_head)],
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(n_layer)),
        ticktext=[f"L{layer}" for layer in range(n_layer)],
        autorange="reversed",
        scaleanchor="x",
        constrain="domain",
        showgrid=False,
    )
    key = "   ".join(f"<span style='color:{c}'>■</span> {_esc_text(label)}" for label, c in colours.items())
    fig.add_annotation(
        text=key,
        xref="paper",
        yref="paper",
        x=0,
        y=1,
        xanchor="left",
        yanchor="bottom",
        showarrow=False,
        yshift=4,
    )
    return _style(
        fig,
        "Head types: what each head mostly does",
        meta or "head-types",
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
    )
