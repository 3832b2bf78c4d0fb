"""The Walk-through tab: the attention arithmetic explained stage by stage beside the live numbers
of the selected layer, head and query, in English or Chinese. Filled while it shows."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import walkthrough
from explorer.analysis.arithmetic import breakdown
from explorer.ui.common import I18N, Context, clamp, current_analysis, guarded, tab_listener
from explorer.ui.generate_tab import GenerateTab
from explorer.ui.state import WALK_TAB, Session


def build_walkthrough_tab() -> gr.HTML:
    with gr.Tab(I18N("Walk-through"), id=WALK_TAB, elem_id="ae-walk-tab"):
        return gr.HTML(walkthrough.walkthrough_html(None, None), elem_id="ae-walk", padding=True)


def walkthrough_for(
    ctx: Context,
    session: Session,
    layer: Any,
    head: Any,
    query: Any,
    lang: str,
    greedy: bool,
    temperature: float,
    top_k: float,
    top_p: float,
) -> str:
    analysis = current_analysis(ctx, session)
    if analysis is None:
        return walkthrough.walkthrough_html(None, None, lang)
    layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
    bd = breakdown(analysis, layer, head, clamp(query, analysis.n_pos))
    try:
        sampling = walkthrough.Sampling(float(temperature), int(top_k or 0), float(top_p), bool(greedy))
    except (TypeError, ValueError):
        sampling = walkthrough.Sampling()
    gen = session.generation
    last = (gen.history[-1].display, gen.history[-1].prob) if gen is not None and gen.history else None
    return walkthrough.walkthrough_html(analysis, bd, lang, sampling, last)


def wire_walkthrough(ctx: Context, walk: gr.HTML, lang: gr.Radio, gen: GenerateTab, tabs: gr.Tabs) -> None:
    settings = [gen.greedy, gen.temperature, gen.top_k, gen.top_p]
    triggers: list[Any] = [ctx.analyzed, ctx.layer, ctx.head, ctx.query, lang, gen.text, *settings]
    inputs = [ctx.session, ctx.layer, ctx.head, ctx.query, lang, *settings]

    @guarded(ctx.status)
    def show(session: Session, *args: Any) -> dict[Any, Any]:
        return {walk: walkthrough_for(ctx, session, *args)}

    tab_listener(
        ctx,
        tabs,
        WALK_TAB,
        "ae-walk-tab",
        [component.change for component in triggers],
        show,
        inputs,
        [ctx.status, walk],
        api_visibility="private",
    )
