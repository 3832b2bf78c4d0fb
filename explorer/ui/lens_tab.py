"""The Logit lens tab: what the model would predict if it stopped after each layer, for a window
of positions; the top 5 at every layer for one position. Drawn while it shows."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer.figures.insights import lens_figure
from explorer.insight_views import LensView, lens_for, lens_table, lens_window
from explorer.ui.common import (
    I18N,
    Context,
    clamp_or_last,
    guarded,
    localized,
    placeholder,
    plot_click_bridge,
    progress_callback,
    require_analysis,
    tab_listener,
)
from explorer.ui.state import CONCURRENCY, Session

LENS_TAB = "lens"


def add_lens_tab(ctx: Context, tabs: gr.Tabs) -> None:
    status = ctx.status
    with gr.Tab(I18N("Logit lens"), id=LENS_TAB, elem_id="ae-lens-tab"):
        gr.Markdown(
            I18N(
                "**What the model would predict if it stopped after each layer.** Each cell decodes the "
                "residual stream at that position with the final layer norm and the output matrix: its "
                "colour is the top guess's probability, its text the guess. **Click a column** (or pick a "
                "position) for the top 5 at every layer."
            ),
            elem_classes=["ae-help"],
        )
        plot = gr.Plot(placeholder("The logit lens appears here."), show_label=False, elem_id="ae-lens")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=240):
                pos = gr.Dropdown(
                    choices=[],
                    value=None,
                    label=I18N("Position"),
                    elem_id="ae-lens-pos",
                    allow_custom_value=True,
                )
            with gr.Column(scale=4, min_width=420):
                table = gr.HTML("", elem_id="ae-lens-table")
        cache = gr.State(None)
        click = plot_click_bridge("#ae-lens", "x: p.x")

    @guarded(status)
    def show(
        session: Session, position: Any, view: LensView | None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        analysis = require_analysis(ctx, session)
        position = clamp_or_last(position, analysis.n_pos)
        lo, hi = lens_window(analysis.n_layer + 1, analysis.n_pos, position)
        key = (analysis.model_name, analysis.tokens, lo, hi)
        if view is None or view.key != key:
            # gpt2-xl's 49 layers take seconds: a progress bar, in the session's language
            report = progress_callback(progress, session.lang)
            view = LensView(key, lo, analysis.n_pos, lens_for(analysis, lo, hi, report))
        return {
            cache: view,
            plot: localized(lens_figure(view, position), session.lang),
            table: lens_table(view, position, session.lang),
            pos: gr.update(
                choices=[(f"{i} · {t}", i) for i, t in enumerate(analysis.tokens)], value=position
            ),
        }

    outputs = [status, cache, plot, table, pos]
    common: dict[str, Any] = {
        "trigger_mode": "always_last",
        "concurrency_limit": CONCURRENCY,
        "concurrency_id": "lens",
        "show_progress_on": [plot],
    }

    tab_listener(
        ctx,
        tabs,
        LENS_TAB,
        "ae-lens-tab",
        [ctx.analyzed.change, ctx.query.change],
        show,
        [ctx.session, ctx.query, cache],
        outputs,
        progress=True,
        api_name="logit_lens",
        **common,
    )
    pos.input(show, [ctx.session, pos, cache], outputs, api_name="lens_position", **common)

    def clicked(
        session: Session, view: LensView | None, evt: gr.EventData, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        return show(session, getattr(evt, "x", None), view, progress)

    click.click(clicked, [ctx.session, cache], outputs, api_visibility="private", **common)
