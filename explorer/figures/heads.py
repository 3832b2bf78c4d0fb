"""Attention patterns: every head at once, one head, a difference, one query's row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from explorer.figures.base import (
    DIVERGING,
    HIGHLIGHT,
    HOVER_MAX_CELLS,
    OKABE_ITO,
    OVERVIEW_MAX_Z_CELLS,
    SEQUENTIAL,
    _esc,
    _esc_text,
    _figure,
    _int_keys,
    _mask_future,
    _slug,
    _thin,
    _token_ticks,
)
from explorer.model.capture import Analysis
from explorer.model.pattern import CausalPattern

# --- overview ---------------------------------------------------------------------------


def downsample(mat: np.ndarray, size: int) -> np.ndarray:
    """Block max-pool the last two axes ([..., query, key]) to at most `size` cells each.

    Max rather than mean so that a one-token-wide diagonal (a previous-token head) survives.
    Blocks differ in length by at most one; axes already at most `size` are left alone.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = np.asarray(mat)
    out = out if out.dtype.kind == "u" else out.astype(np.float32, copy=False)  # levels pool as they are
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
    x: float, y: float, n_layer: int, n_head: int, tile: int | Sequence[int], first_layer: int = 0
) -> tuple[int, int] | None:
    """(layer, head) under a point of the overview, or None on a gap or outside.

    `x`, `y` are data coordinates, as in a Plotly click event (`points[0].x`, `.y`):
    the overview's axes count heads and layers, so tile (layer, head) is centred on
    (x=head, y=layer), in a zoomed overview too. `tile` is cells per tile side, or (query
    cells, key cells); the figure stores it in `fig.data[0].meta["tile"]`. The layers shown
    are first_layer … first_layer + n_layer − 1 (meta "first_layer" and "n_layer").
    """
    tile_q, tile_k = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    layer, head = math.floor(y + 0.5), math.floor(x + 0.5)
    if not (first_layer <= layer < first_layer + n_layer and 0 <= head < n_head):
        return None
    # A tile spans tile/(tile+1) of its unit; the rest is the gap.
    if abs(x - head) > tile_k / (2 * (tile_k + 1)) or abs(y - layer) > tile_q / (2 * (tile_q + 1)):
        return None
    return layer, head


def _layer_tiles(pattern: np.ndarray | CausalPattern, layer: int, tile: int) -> np.ndarray:
    """[head, q, k] block maxima of one layer, float32. A quantized pattern is pooled in its
    integer levels (max commutes with the scaling), a quarter of the bytes of expanding it."""
    if isinstance(pattern, CausalPattern) and not pattern.exact:
        return downsample(pattern.raw(layer), tile).astype(np.float32) / np.float32(pattern.levels)
    return downsample(pattern[layer], tile)


def overview_figure(
    pattern: np.ndarray | CausalPattern,
    max_cells: int = 48,
    *,
    max_z_cells: int = OVERVIEW_MAX_Z_CELLS,
    layers: range | None = None,
) -> go.Figure:
    """Every head of every layer in one heatmap: layer rows, head columns, each tile that
    head's [query, key] pattern max-pooled, with one-cell NaN gaps between tiles.

    pattern: [layer, head, query, key], an array or a CausalPattern (expanded one layer at a
    time). `layers` zooms into a range of layers: the same cell budget over fewer tiles, so
    each is drawn larger (gpt2-xl's 1,200 heads get 8 × 8 cells each, 12 of its layers 17 × 17).
    Axes are in head/layer units (see `overview_cell_to_head`); the trace's `meta` holds tile,
    n_layer (the layers shown), first_layer and n_head.
    """
    shown = range(pattern.shape[0]) if layers is None else range(pattern.shape[0])[layers.start : layers.stop]
    if not shown:
        raise ValueError(f"no layers in {layers} of {pattern.shape[0]}")
    _, n_head, n_query, n_key = pattern.shape
    n_layer, first = len(shown), shown.start
    tile = overview_tile(max(n_query, n_key), n_layer, n_head, max_cells, max_z_cells)
    tiles = np.stack([_layer_tiles(pattern, layer, tile) for layer in shown])  # [layer, head, q, k]
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
        "y0": first - (tile_q - 1) / 2 * dy,
        "dy": dy,
        "zmin": 0,
        "zmax": 1,
        "colorscale": SEQUENTIAL,
        "colorbar": {"title": {"text": "attention<br>(block max)"}},
        "hoverongaps": False,
        "hovertemplate": "layer %{y:.0f}, head %{x:.0f}<br>block max %{z:.3f}<extra></extra>",
        "meta": {"tile": [tile_q, tile_k], "n_layer": n_layer, "first_layer": first, "n_head": n_head},
    }
    return _figure(
        [heat],
        "All heads · click a tile",
        "attention-overview",
        "rows: layers · columns: heads · a tile: query ↓, key →",
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(n_head)),
            "ticktext": [f"H{h}" for h in range(n_head)],
            "range": [-0.5, n_head - 0.5],
        },
        yaxis={
            "tickmode": "array",
            "tickvals": list(shown),
            "ticktext": [f"L{layer}" for layer in shown],
            "range": [shown[-1] + 0.5, first - 0.5],  # the first layer at top
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
        colorbar={"title": {"text": f"attention<br>0 – {zmax:.2f}"}},
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
    default = f"Layer {layer}, {which}"
    subtitle = "where each query token looks"
    if query is not None and 0 <= query < len(tokens):
        subtitle += f" · query {query} '{_esc_text(tokens[query])}' outlined"
    slug = f"attention-L{layer}-" + ("mean" if head is None else f"H{head}")
    return _figure(
        [heat],
        _esc_text(title) if title else default,
        meta or slug,
        None if title else subtitle,
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
    subtitle: str | None = None,
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
        _esc_text(subtitle) if subtitle else None,
        xaxis={"title": {"text": "key (earlier token)"}, **_thin(_token_ticks(tokens[:n]), max_labels)},
        yaxis={"title": {"text": "attention"}, "rangemode": "tozero"},
        **layout,
    )


# --- the Attention heads tab's two figures, from an analysis -----------------------------------

DETAIL_MAX_CELLS = 320 * 320  # beyond this the head detail shows a window of query rows
DETAIL_TICK_LABELS = 32  # token labels per axis that fit a half-width panel


def analysis_overview(analysis: Analysis, layers: range | None = None) -> go.Figure:
    """Every head of an analysis (or of a range of its layers), sized to the layers shown: up to
    900 px for the 24–48 layers of gpt2-medium to -xl, so that each layer's row stays ~18 px."""
    fig = overview_figure(analysis.pattern, layers=layers)
    n = fig.data[0].meta["n_layer"]
    fig.layout.height = int(np.clip(150 + 42 * n, 380, 660 if n <= 12 else 900))
    return fig


def detail_window(n: int, query: int) -> tuple[int, int, str]:
    """The query rows lo … hi − 1 a head detail of `n` tokens shows (keys 0 … hi − 1), and a
    note when that is a window around `query`: beyond DETAIL_MAX_CELLS a window of query rows
    (each as long as its last) keeps the figure light."""
    if n * n <= DETAIL_MAX_CELLS:
        return 0, n, ""
    rows = max(48, DETAIL_MAX_CELLS // n)
    lo = int(np.clip(query - rows // 2, 0, n - rows))
    hi = lo + rows
    note = (
        f"Showing query rows {lo}–{hi - 1} of {n} (around the selected query) so the figure stays "
        "light; pick another query token to move the window."
    )
    return lo, hi, note


def head_detail(analysis: Analysis, layer: int, head: int | None, query: int) -> tuple[go.Figure, str]:
    """One head (None: the layer's mean) in detail, and a note when it shows a window of a long prompt."""
    # The model's values for the hover, even where the analysis keeps the pattern quantized.
    pattern = analysis.exact_pattern(layer).mean(0) if head is None else analysis.exact_pattern(layer, head)
    lo, hi, note = detail_window(analysis.n_pos, query)
    fig = head_figure(
        pattern[lo:hi, :hi],
        list(analysis.tokens[:hi]),
        layer,
        head,
        query,
        max_labels=DETAIL_TICK_LABELS,
        height=620,
    )
    return fig, note
