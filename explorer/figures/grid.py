"""The Attention heads tab's two heatmaps as compact payloads that the page draws on a canvas
(`ui/static/heatmap.js`): every head at once, and one head in detail.

Why not Plotly here: these two figures are the first thing a new user sees, and drawing them
with Plotly puts its 4.6 MB bundle (1.7 s of script evaluation on a laptop core) and its layout
work (~0.3 s a redraw) on the path from page open and from every click. A canvas draws the same
cells from a typed array in a few milliseconds. The other tabs keep Plotly.

A payload is a plain dict (JSON): titles and token strings as plain text (the page writes them
with textContent and fillText, never as HTML), cell values as base64 of a little-endian typed
array in row-major order. Every value shown is the model's own: the head detail sends float32
(NaN for masked keys); the overview sends each tile's block maximum as uint16 levels of 1/65535,
within 7.6e-6 of the float and shown to 3 decimals (a pattern kept quantized is pooled in its own
levels, as the Plotly overview did).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from explorer.figures.base import HIGHLIGHT, OVERVIEW_MAX_Z_CELLS, _mask_future
from explorer.figures.heads import _layer_tiles, detail_window, overview_tile
from explorer.model.capture import Analysis
from explorer.model.pattern import CausalPattern

# Plotly's Viridis, the sequential scale of every other figure: 0 → dark violet, 1 → yellow.
VIRIDIS = (
    (0.0, "#440154"),
    (1 / 9, "#482878"),
    (2 / 9, "#3e4989"),
    (3 / 9, "#31688e"),
    (4 / 9, "#26828e"),
    (5 / 9, "#1f9e89"),
    (6 / 9, "#35b779"),
    (7 / 9, "#6ece58"),
    (8 / 9, "#b5de2b"),
    (1.0, "#fde725"),
)
OVERVIEW_LEVELS = 65535


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(
        np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    ).decode()


def decode(payload: dict[str, Any]) -> np.ndarray:
    """The payload's cells as floats, shaped as the page reads them (for tests and exports)."""
    raw = base64.b64decode(payload["data"])
    if payload["dtype"] == "f32":
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:
        values = np.frombuffer(raw, dtype="<u2").astype(np.float32) * np.float32(payload["scale"])
    return values.reshape(payload["shape"])


def message(text: str) -> dict[str, Any]:
    """A panel that only says `text` (before the first analysis, while a model loads)."""
    return {"kind": "message", "text": str(text)}


def overview_grid(
    pattern: np.ndarray | CausalPattern,
    *,
    layers: range | None = None,
    max_cells: int = 48,
    max_z_cells: int = OVERVIEW_MAX_Z_CELLS,
    range_size: int = 12,
) -> dict[str, Any]:
    """Every head of every layer (or of `layers`): each tile that head's [query, key] pattern
    block-max-pooled to at most `max_cells` a side (see figures.overview_tile), sent as
    [layer, head, query cell, key cell] levels. Max rather than mean keeps a one-token diagonal."""
    n_all, n_head, n_query, n_key = pattern.shape
    shown = range(n_all) if layers is None else range(n_all)[layers.start : layers.stop]
    if not shown:
        raise ValueError(f"no layers in {layers} of {n_all}")
    tile = overview_tile(max(n_query, n_key), len(shown), n_head, max_cells, max_z_cells)
    tiles = np.stack([_layer_tiles(pattern, layer, tile) for layer in shown])  # [layer, head, q, k]
    levels = np.rint(np.clip(tiles, 0, 1) * OVERVIEW_LEVELS).astype(np.uint16)
    return {
        "kind": "overview",
        "title": "All heads · click a tile",
        "subtitle": "rows: layers · columns: heads · a tile: query ↓, key →",
        "colorbar": "attention (block max)",
        "shape": list(levels.shape),
        "dtype": "u16",
        "scale": 1 / OVERVIEW_LEVELS,
        "data": _b64(levels),
        "first_layer": shown.start,
        "n_layer_all": n_all,
        "ranges": [[lo, min(lo + range_size, n_all)] for lo in range(0, n_all, range_size)]
        if n_all > range_size
        else [],
        "zmax": 1.0,
        "colorscale": [list(stop) for stop in VIRIDIS],
        "highlight": HIGHLIGHT,
        "meta": "attention-overview",
    }


def head_grid(
    pattern_lh: np.ndarray,
    tokens: list[str],
    layer: int,
    head: int | None,
    query: int | None = None,
    *,
    row_offset: int = 0,
) -> dict[str, Any]:
    """One head's (None: the layer's mean) [query, key] pattern in float32, masked keys NaN.

    `pattern_lh` holds query rows row_offset … row_offset + rows − 1 (a window of a long prompt)
    and keys 0 … row_offset + rows − 1; `tokens` names every key. Colour runs from 0 to the
    data's max so weak heads stay visible; `query` is outlined."""
    rows, cols = pattern_lh.shape
    if cols != row_offset + rows:
        raise ValueError(f"{rows} query rows from {row_offset} need {row_offset + rows} keys, got {cols}")
    z = _mask_future(pattern_lh)  # its queries are the last `rows` positions, as here
    zmax = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
    which = "mean over heads" if head is None else f"head {head}"
    subtitle = "where each query token looks"
    if query is not None and 0 <= query < len(tokens):
        subtitle += f" · query {query} '{tokens[query]}' outlined"
    return {
        "kind": "head",
        "title": f"Layer {layer}, {which}",
        "subtitle": subtitle,
        "colorbar": f"attention 0 – {zmax:.2f}",
        "shape": [rows, cols],
        "dtype": "f32",
        "data": _b64(z),
        "row_offset": row_offset,
        "layer": layer,
        "head": head,
        "tokens": [str(t) for t in tokens[:cols]],
        "query": query,
        "zmax": zmax or 1.0,
        "colorscale": [list(stop) for stop in VIRIDIS],
        "highlight": HIGHLIGHT,
        "meta": f"attention-L{layer}-" + ("mean" if head is None else f"H{head}"),
    }


def analysis_overview_grid(analysis: Analysis, layers: range | None = None) -> dict[str, Any]:
    return overview_grid(analysis.pattern, layers=layers)


def head_detail_grid(
    analysis: Analysis, layer: int, head: int | None, query: int
) -> tuple[dict[str, Any], str]:
    """One head (None: the layer's mean) of an analysis, and a note when it shows a window of a
    long prompt (query rows around the selected query, each as long as the window's last)."""
    # The model's values, even where the analysis keeps the pattern quantized.
    pattern = analysis.exact_pattern(layer).mean(0) if head is None else analysis.exact_pattern(layer, head)
    lo, hi, note = detail_window(analysis.n_pos, query)
    grid = head_grid(pattern[lo:hi, :hi], list(analysis.tokens[:hi]), layer, head, query, row_offset=lo)
    return grid, note
