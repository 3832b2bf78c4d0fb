"""The Attention heads tab: every head at once (click a tile to open it) and one head in detail."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import figures
from explorer.ui.analysis import Selection
from explorer.ui.common import Context, clamp, guarded, placeholder, plot_click_bridge, require_analysis
from explorer.ui.state import CONCURRENCY, Session


@dataclass(frozen=True)
class HeadsTab:
    overview: gr.Plot
    detail: gr.Plot
    detail_note: gr.Markdown


def build_heads_tab() -> HeadsTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(
                "**Every head at once.** Click a tile to open that head.",
                elem_classes=["ae-help", "ae-heads-help"],
            )
            overview = gr.Plot(
                placeholder("The overview of every head appears here."),
                show_label=False,
                elem_id="ae-overview",
            )
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(
                "**One head.** Rows: query tokens; columns: the keys they may attend to. Hover for the weight.",
                elem_classes=["ae-help", "ae-heads-help"],
            )
            detail = gr.Plot(
                placeholder("One head in detail appears here."), show_label=False, elem_id="ae-detail"
            )
            detail_note = gr.Markdown("", elem_classes=["ae-note"])
    return HeadsTab(overview, detail, detail_note)


def wire_overview_click(ctx: Context, tab: HeadsTab, selection: Selection) -> None:
    """A click on a tile of the overview opens that head."""
    click = plot_click_bridge("#ae-overview", "x: p.x, y: p.y")

    @guarded(ctx.status)
    def open_head(session: Session, query: Any, evt: gr.EventData) -> dict[Any, Any]:
        analysis = require_analysis(ctx, session)
        try:
            x, y = float(evt.x), float(evt.y)  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return gr.skip()
        if not (math.isfinite(x) and math.isfinite(y)):  # a click the page cannot make: nothing to open
            return gr.skip()
        tile = figures.overview_tile(analysis.n_pos, analysis.n_layer, analysis.n_head)
        hit = figures.overview_cell_to_head(x, y, analysis.n_layer, analysis.n_head, tile)
        layer, head = hit if hit else (clamp(round(y), analysis.n_layer), clamp(round(x), analysis.n_head))
        query = clamp(query, analysis.n_pos)
        out = {ctx.status: "", ctx.layer: layer, ctx.head: head, ctx.mean: False}
        return out | selection.outputs(session, layer, head, query, False)

    click.click(
        open_head,
        [ctx.session, ctx.query],
        [ctx.status, ctx.layer, ctx.head, ctx.mean, *selection.targets],
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress_on=[tab.detail],
    )
