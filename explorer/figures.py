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
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.model.pattern import CausalPattern

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


def _figure(traces: Sequence[dict[str, Any]], title: str, meta: str, **layout: Any) -> go.Figure:
    """Shared look (large fonts, white template, tight margins) around plain-dict traces and
    layout. `title` is already escaped.

    Built as dicts and wrapped without Plotly's validation: validating costs ~25 ms a figure,
    most of a generation step's time, and these properties are fixed here and checked by the
    tests. The axis style applies to every axis (xaxis2, yaxis2, … too).
    """
    full: dict[str, Any] = {
        "template": _template(trace["type"] for trace in traces),
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": TITLE_SIZE}},
        "font": {"size": FONT_SIZE},
        "margin": {"l": 10, "r": 10, "t": 60, "b": 10},
        "meta": meta,
    }
    full.update(layout)
    axes = {"xaxis", "yaxis"} | {key for key in full if re.fullmatch(r"[xy]axis\d*", key)}
    for key in axes:
        full[key] = {**full.get(key, {}), **_AXIS_STYLE[key[0]]}
    return go.Figure({"data": list(traces), "layout": full}, _validate=False)


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
    pattern: np.ndarray | CausalPattern, max_cells: int = 48, *, max_z_cells: int = OVERVIEW_MAX_Z_CELLS
) -> go.Figure:
    """Every head of every layer in one heatmap: layer rows, head columns, each tile that
    head's [query, key] pattern max-pooled, with one-cell NaN gaps between tiles.

    pattern: [layer, head, query, key], an array or a CausalPattern (expanded one layer at a
    time). Axes are in head/layer units (see `overview_cell_to_head`); the trace's `meta` holds
    tile, n_layer and n_head.
    """
    n_layer, n_head, n_query, n_key = pattern.shape
    tile = overview_tile(max(n_query, n_key), n_layer, n_head, max_cells, max_z_cells)
    tiles = np.stack([downsample(pattern[layer], tile) for layer in range(n_layer)])  # [layer, head, q, k]
    tile_q, tile_k = tiles.shape[2:]
    grid = np.full((n_layer, tile_q + 1, n_head, tile_k + 1), np.nan, dtype=np.float32)
    grid[:, :tile_q, :, :tile_k] = tiles.transpose(0, 2, 1, 3)
    z = np.ascontiguousarray(grid.reshape(n_layer * (tile_q + 1), n_head * (tile_k + 1))[:-1, :-1])
    dx, dy = 1 / (tile_k + 1), 1 / (tile_q + 1)
    heat = {
        "type": "heatmap",
        "z": z,
        "x0": -(tile_k - 1) / 2 * dx,  # centres tile h on x = h, gaps on h + 0.5
        "dx": dx,
        "y0": -(tile_q - 1) / 2 * dy,
        "dy": dy,
        "zmin": 0,
        "zmax": 1,
        "colorscale": SEQUENTIAL,
        "colorbar": {"title": {"text": "attention<br>(block max)"}},
        "hoverongaps": False,
        "hovertemplate": "layer %{y:.0f}, head %{x:.0f}<br>block max %{z:.3f}<extra></extra>",
        "meta": {"tile": [tile_q, tile_k], "n_layer": n_layer, "n_head": n_head},
    }
    title = "All heads: layer rows × head columns (each tile: query ↓, key →). Click a tile."
    return _figure(
        [heat],
        title,
        "attention-overview",
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(n_head)),
            "ticktext": [f"H{h}" for h in range(n_head)],
            "range": [-0.5, n_head - 0.5],
        },
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(n_layer)),
            "ticktext": [f"L{layer}" for layer in range(n_layer)],
            "range": [n_layer - 0.5, -0.5],  # layer 0 at top
            "scaleanchor": "x",
            "constrain": "domain",
            "showgrid": False,
        },
    )


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


def _thin(ticks: dict[str, Any], max_labels: int | None) -> dict[str, Any]:
    """Keep every k-th of the tick labels so that at most `max_labels` remain (None: all)."""
    values, text = ticks["tickvals"], ticks["ticktext"]
    if max_labels is not None and len(values) > max_labels:
        step = -(-len(values) // max_labels)
        ticks = ticks | {"tickvals": values[::step], "ticktext": text[::step]}
    return ticks


def _token_heatmap(
    z: np.ndarray,
    tokens: Sequence[str],
    value_format: str,
    max_labels: int | None,
    **heatmap: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """[query, key] heatmap trace with token-labelled axes, query top to bottom: (trace, xaxis, yaxis)."""
    n_query, n_key = z.shape
    offset = n_key - n_query
    heat = {"type": "heatmap", "z": z, "y0": offset, "hoverongaps": False, **heatmap}
    if z.size <= HOVER_MAX_CELLS:
        heat["hovertext"] = _pair_hover(tokens, z)
        heat["hovertemplate"] = f"%{{hovertext}}: %{{z:{value_format}}}<extra></extra>"
    else:
        heat["hovertemplate"] = f"query %{{y:.0f}} → key %{{x:.0f}}: %{{z:{value_format}}}<extra></extra>"
    xaxis = {"title": {"text": "key (attended to)"}, **_thin(_token_ticks(tokens[:n_key]), max_labels)}
    y_ticks = _token_ticks(tokens[offset:n_key])
    y_ticks["tickvals"] = [v + offset for v in y_ticks["tickvals"]]
    yaxis = {
        "title": {"text": "query (attending)"},
        "autorange": "reversed",
        "showgrid": False,
        **_thin(y_ticks, max_labels),
    }
    return heat, xaxis, yaxis


def head_figure(
    pattern_lh: np.ndarray,
    tokens: list[str],
    layer: int,
    head: int | None,
    query: int | None = None,
    title: str | None = None,
    *,
    meta: str | None = None,
    max_labels: int | None = None,
    **layout: Any,
) -> go.Figure:
    """One head's [query, key] pattern; masked (future) keys blank.

    Colour runs from 0 to the data's max so weak heads stay visible. `head=None` (or a
    `title`) for a mean over heads. `query` outlines that row. `max_labels` thins the token
    labels further; `layout` is passed on (height, …).
    """
    z = _mask_future(pattern_lh)
    zmax = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
    heat, xaxis, yaxis = _token_heatmap(
        z,
        tokens,
        ".4f",
        max_labels,
        zmin=0,
        zmax=zmax or 1.0,
        colorscale=SEQUENTIAL,
        colorbar={"title": {"text": f"attention<br>0 – {zmax:.2f}<br>(max of data)"}},
    )
    shapes = []
    if query is not None:
        shapes.append(
            {
                "type": "rect",
                "x0": -0.5,
                "x1": query + 0.5,  # the keys this query may see
                "y0": query - 0.5,
                "y1": query + 0.5,
                "line": {"color": HIGHLIGHT, "width": 3},
            }
        )
    which = "mean over heads" if head is None else f"head {head}"
    default = f"Layer {layer}, {which}: where each query token looks"
    if query is not None and 0 <= query < len(tokens):
        default += f" (query {query} '{_esc_text(tokens[query])}' outlined)"
    slug = f"attention-L{layer}-" + ("mean" if head is None else f"H{head}")
    return _figure(
        [heat],
        _esc_text(title) if title else default,
        meta or slug,
        xaxis=xaxis,
        yaxis=yaxis,
        shapes=shapes,
        **layout,
    )


def difference_figure(
    diff: np.ndarray, tokens: list[str], title: str, *, meta: str | None = None
) -> go.Figure:
    """[query, key] heatmap of a difference between two patterns, diverging around 0."""
    z = _mask_future(diff)
    heat, xaxis, yaxis = _token_heatmap(
        z,
        tokens,
        "+.4f",
        None,
        zmid=0,
        colorscale=DIVERGING,
        colorbar={"title": {"text": "difference"}},
    )
    return _figure([heat], _esc_text(title), meta or _slug(title, "difference"), xaxis=xaxis, yaxis=yaxis)


def attention_row_figure(
    row: np.ndarray,
    tokens: list[str],
    query: int,
    title: str | None = None,
    *,
    meta: str | None = None,
    max_labels: int | None = None,
    hover_tokens: int | None = None,
    **layout: Any,
) -> go.Figure:
    """Bars of one query's attention over keys 0..query: which earlier tokens it read.

    Hover names each key's token up to `hover_tokens` keys (None: always); longer rows hover
    with the key's position only, which keeps a long row's figure small.
    """
    n = query + 1
    values = np.asarray(row, dtype=np.float32)[:n]
    esc = _esc(tokens[:n])
    bar: dict[str, Any] = {
        "type": "bar",
        "x": _int_keys(n),
        "y": values,
        "marker": {"color": OKABE_ITO[0]},
    }
    if hover_tokens is None or n <= hover_tokens:
        bar["hovertext"] = [f"key {j} '{t}'" for j, t in enumerate(esc)]
        bar["hovertemplate"] = "%{hovertext}: %{y:.4f}<extra></extra>"
    else:
        bar["hovertemplate"] = "key %{x}: %{y:.4f}<extra></extra>"
    if n <= 24:  # values on the bars while they still fit
        bar |= {"texttemplate": "%{y:.2f}", "textposition": "outside", "cliponaxis": False}
    default = f"Query {query} '{esc[-1]}': attention over earlier tokens"
    return _figure(
        [bar],
        _esc_text(title) if title else default,
        meta or f"attention-row-q{query}",
        xaxis={"title": {"text": "key (earlier token)"}, **_thin(_token_ticks(tokens[:n]), max_labels)},
        yaxis={"title": {"text": "attention"}, "rangemode": "tozero"},
        **layout,
    )


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
    **layout: Any,
) -> go.Figure:
    """Next-token probabilities as horizontal bars, largest at top: the raw model and
    (if given) after the sampling settings, side by side. The chosen token's bars are
    outlined and hatched, with an annotation. Each bar's customdata is its token_id,
    so a click can force that token. `chosen` is a token id, or a display string.
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
        label = label_of.get(chosen_id, str(chosen) if chosen is not None else "")
        heading += f"<br><sup>chosen '{_esc_text(label)}' (id {chosen_id}) is not among these bars</sup>"
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
        xaxis={"title": {"text": "generated token"}, **_thin(_token_ticks(tokens), max_labels)},
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
    key = "   ".join(f"<span style='color:{c}'>■</span> {_esc_text(label)}" for label, c in colours.items())
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
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
    )
