"""The Attention heads tab: every head at once (click a tile to open it) and one head in detail,
both drawn on a canvas in the page (figures/grid.py payloads, static/heatmap.js): the first view
needs no Plotly, so it draws without loading Plotly's bundle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.figures import grid
from explorer.ui.analysis import Selection, sent
from explorer.ui.common import I18N, Context, clamp, guarded, require_analysis, static
from explorer.ui.state import CONCURRENCY, Session

EVERY_HEAD = "**Every head at once.** Click a tile to open that head."
ONE_HEAD = (
    "**One head.** Rows: query tokens; columns: the keys they may attend to. Hover for "
    "the weight, click a row to pick that query, drag to zoom."
)
# Static (no ${value}): Gradio keeps these nodes across values, and the script fills them.
HEATMAP_TEMPLATE = (
    "<div class='ae-hm'><div class='ae-hm-head'><div class='ae-hm-titles'>"
    "<div class='ae-hm-title'></div><div class='ae-hm-sub'></div></div>"
    "<div class='ae-hm-tools'><span class='ae-hm-ranges'></span>"
    "<button type='button' class='ae-hm-reset' hidden>Zoom out</button>"
    "<button type='button' class='ae-hm-png' hidden title='Save as PNG'>PNG</button></div></div>"
    "<div class='ae-hm-msg'></div><canvas role='img'></canvas>"
    "<div class='ae-hm-band' hidden></div><div class='ae-hm-tip' role='tooltip' hidden></div></div>"
)


def heatmap(message: str, elem_id: str) -> gr.HTML:
    """A canvas heatmap panel showing `message` until a payload comes. Its `outline` prop
    ([layer, head or None]) outlines the open head in an overview."""
    return gr.HTML(
        grid.message(message),
        html_template=HEATMAP_TEMPLATE,
        js_on_load=static("heatmap.js"),
        elem_id=elem_id,
        elem_classes=["ae-heatmap"],
        apply_default_css=False,
        outline=None,
    )


@dataclass(frozen=True)
class HeadsTab:
    overview: gr.HTML
    detail: gr.HTML
    detail_note: gr.Markdown


def build_heads_tab() -> HeadsTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(
                I18N(EVERY_HEAD),
                elem_classes=["ae-help", "ae-heads-help"],
            )
            overview = heatmap("The overview of every head appears here.", "ae-overview")
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(
                I18N(ONE_HEAD),
                elem_classes=["ae-help", "ae-heads-help"],
            )
            detail = heatmap("One head in detail appears here.", "ae-detail")
            detail_note = gr.Markdown("", elem_classes=["ae-note"])
    return HeadsTab(overview, detail, detail_note)


def _index(value: Any) -> int | None:
    """A tile's layer or head as the page sends it; None for anything a page cannot send."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return int(value) if float(value).is_integer() and abs(value) < 2**31 else None


LAYERS_PER_RANGE = 12  # the overview of a deeper model offers its layers in ranges of this many


def layer_range(value: Any, n_layer: int) -> range | None:
    """The layers [lo, hi) a range button of the overview asks for; None for a range no page sends."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    lo, hi = _index(value[0]), _index(value[1])
    if lo is None or hi is None or not 0 <= lo < hi <= n_layer:
        return None
    return range(lo, hi)


def wire_overview_click(ctx: Context, tab: HeadsTab, selection: Selection) -> None:
    """A click on a tile of the overview opens that head; a click on a range button (deeper
    models) shows those layers alone, each tile drawn from more cells."""

    @guarded(ctx.status)
    def open_head(session: Session, query: Any, evt: gr.EventData) -> dict[Any, Any]:
        analysis = require_analysis(ctx, session)
        if getattr(evt, "layers", None) is not None:
            shown = layer_range(evt.layers, analysis.n_layer)  # type: ignore[attr-defined]
            if shown is None:
                return gr.skip()
            key = session.analysis_key
            payload = ctx.analyses.figure(
                key,
                ("overview", shown.start, shown.stop),
                lambda: sent(grid.analysis_overview_grid(analysis, shown)),
            )[0]
            return {ctx.status: "", tab.overview: gr.update(value=payload)}
        layer, head = _index(getattr(evt, "layer", None)), _index(getattr(evt, "head", None))
        if layer is None or head is None:  # a click the page cannot make: nothing to open
            return gr.skip()
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        query = clamp(query, analysis.n_pos)
        out = {ctx.status: "", ctx.layer: layer, ctx.head: head, ctx.mean: False}
        return out | selection.outputs(session, layer, head, query, False)

    tab.overview.click(
        open_head,
        [ctx.session, ctx.query],
        list(dict.fromkeys([ctx.status, ctx.layer, ctx.head, ctx.mean, *selection.targets, tab.overview])),
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress_on=[tab.detail],
    )
