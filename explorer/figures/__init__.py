"""Pure Plotly figure builders, one module per family (base, heads, steps, generation, summaries, attribution): numpy arrays and token strings in, `go.Figure` out.

Token strings come from users, and Plotly renders pseudo-HTML (`<b>`, `<br>`, `<a href>`) in
tick labels, titles, hover text and annotations, so every piece of user text passes through
`_esc` first. Caller-supplied titles and labels are plain text and are escaped too.

Arrays go in as float32 or small integers: Plotly serialises numpy arrays as base64, so the
payload stays compact. Each figure's `layout.meta` is a short slug for naming downloads.
"""

from __future__ import annotations

from explorer.figures.attribution import (
    attribution_bars_figure,
    attribution_flow_figure,
    attribution_heads_figure,
)
from explorer.figures.base import (
    DIVERGING,
    FONT_SIZE,
    HEAD_SCORES,
    HIGHLIGHT,
    HOVER_MAX_CELLS,
    MAX_TICK_LABELS,
    NEUTRAL,
    OKABE_ITO,
    OVERVIEW_MAX_Z_CELLS,
    SEQUENTIAL,
    TITLE_SIZE,
    UNLABELLED,
    message_figure,
    thin_ticks,
)
from explorer.figures.generation import (
    distribution_figure,
    timeline_figure,
)
from explorer.figures.heads import (
    DETAIL_MAX_CELLS,
    DETAIL_TICK_LABELS,
    analysis_overview,
    attention_row_figure,
    difference_figure,
    downsample,
    head_detail,
    head_figure,
    overview_cell_to_head,
    overview_figure,
    overview_tile,
)
from explorer.figures.steps import (
    scores_figure,
    vector_figure,
)
from explorer.figures.summaries import (
    head_types_figure,
    label_colours,
    logit_lens_figure,
)

__all__ = [
    "DETAIL_MAX_CELLS",
    "DETAIL_TICK_LABELS",
    "analysis_overview",
    "head_detail",
    "label_colours",
    "thin_ticks",
    "DIVERGING",
    "FONT_SIZE",
    "HEAD_SCORES",
    "HIGHLIGHT",
    "HOVER_MAX_CELLS",
    "MAX_TICK_LABELS",
    "NEUTRAL",
    "OKABE_ITO",
    "OVERVIEW_MAX_Z_CELLS",
    "SEQUENTIAL",
    "TITLE_SIZE",
    "UNLABELLED",
    "attention_row_figure",
    "attribution_bars_figure",
    "attribution_flow_figure",
    "attribution_heads_figure",
    "difference_figure",
    "distribution_figure",
    "downsample",
    "head_figure",
    "head_types_figure",
    "logit_lens_figure",
    "message_figure",
    "overview_cell_to_head",
    "overview_figure",
    "overview_tile",
    "scores_figure",
    "timeline_figure",
    "vector_figure",
]
