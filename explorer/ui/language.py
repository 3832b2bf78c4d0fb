"""The page's language. The Language radio (lecture_bar) switches the whole page: in the browser,
every text built with gr.I18n (tabs, buttons, labels, help) through Gradio's own locale switch
(static/language.js); on the server, the session's language, in which every later message,
status line and figure is made, and what shows now made again in it. The first language is the
link's `lang`, else the browser's (view_state sets it with the rest of the link's view)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer.i18n import language
from explorer.ui.analysis import Selection, tokens_html
from explorer.ui.common import Context, clamp, current_analysis, guarded, static, status_in
from explorer.ui.generate_tab import GenerateTab
from explorer.ui.generate_view import generation_again
from explorer.ui.header import Header, model_text
from explorer.ui.lecture_bar import LectureBar
from explorer.ui.prompt import SelectionBar
from explorer.ui.state import Session


def wire_language(
    demo: gr.Blocks,
    ctx: Context,
    bar: LectureBar,
    header: Header,
    selected: SelectionBar,
    selection: Selection,
    gen: GenerateTab,
) -> None:
    js = static("language.js")
    # The link's language at once, before the page's first analysis (which sets the radio) is back.
    demo.load(None, None, None, js=js, api_visibility="private")
    bar.lang.change(None, [bar.lang], None, js=js, api_visibility="private")

    @guarded(ctx.status)
    def switch(
        lang: Any,
        session: Session,
        status: Any,
        layer: Any,
        head: Any,
        query: Any,
        mean: bool,
        gen_layer: Any,
        gen_head: Any,
    ) -> Any:
        """What the server made, made again in `lang`; nothing when the session speaks it already
        (the radio set on page load, after the page was made in its language)."""
        lang = language(lang)
        if lang == session.lang:
            return gr.skip()
        session.lang = lang
        out: dict[Any, Any] = {ctx.session: session}
        if (line := status_in(status, lang)) is not None:
            out[ctx.status] = line
        if ctx.models.ready(session.model):
            out[header.model_md] = model_text(ctx.models.get(session.model), ctx.limits, lang)
        out |= generation_again(gen, session, gen_layer, gen_head)
        analysis = current_analysis(ctx, session)
        if analysis is None:
            return out
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        query = clamp(query, analysis.n_pos)
        out[selected.tokens] = tokens_html(analysis, query, lang)
        return out | selection.outputs(session, layer, head, query, bool(mean))

    outputs = [ctx.session, ctx.status, header.model_md, selected.tokens, *selection.targets]
    outputs += [gen.text, gen.step_md, gen.dist, gen.attn, gen.timeline, gen.attn_head]
    inputs = [bar.lang, ctx.session, ctx.status, ctx.layer, ctx.head, ctx.query, ctx.mean]
    bar.lang.change(
        switch,
        [*inputs, gen.attn_layer, gen.attn_head],
        list(dict.fromkeys(outputs)),
        api_visibility="private",
        show_progress="hidden",
        trigger_mode="always_last",
    )
