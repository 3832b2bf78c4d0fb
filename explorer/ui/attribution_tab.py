"""The 'Why this token?' tab: each head's, MLP's and the embeddings' direct share of the logit of
the token predicted (or picked) at the selected position, as a heads grid, the top parts and a
flow across layers. A click on a head opens it in Attention heads; a click on a token selects it.
"Explain the last generated token" analyzes the generated text and explains its last token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.analysis.attribution import attribute
from explorer.attribution_views import (
    attribution_summary,
    head_from_click,
    md_text,
    predictions,
    resolve_token,
    token_choices,
    token_from_click,
    why_figures,
)
from explorer.errors import ExplorerError
from explorer.i18n import say
from explorer.ui.analysis import AnalysisEvent, Selection, tokens_html
from explorer.ui.common import (
    I18N,
    Context,
    clamp,
    clamp_or_last,
    guarded,
    localized,
    message,
    placeholder,
    plot_click_bridge,
    progress_callback,
    require_analysis,
    status_error,
    tab_listener,
    warn,
)
from explorer.ui.prompt import SelectionBar
from explorer.ui.state import CONCURRENCY, HEADS_TAB, Session

WHY_TAB = "why"
THRESHOLD = 0.05  # the flow view's edges: at least this share of the largest
GENERATED = "**The last generated token.**"
TOP_PREDICTION, NOTHING = "the top prediction", "nothing"  # the token menus' first choices
HELP = (
    "**Why this token?** The last residual stream is a sum of parts: the embeddings, every head and "
    "every MLP. With the final layer norm's scale frozen at its real value each part has its own "
    "share of the logit, and the shares add up to the model's own number. Red pushes the token up, "
    "blue down. **Click a head** (a tile, a bar or an edge) to open it in Attention heads; **click a "
    "token** in the flow view to select it."
)
# customdata as a plain array (Plotly hands typed arrays, which JSON would make objects) or a string.
CLICK_FIELDS = (
    "x: p.x, data: p.customdata == null ? null : typeof p.customdata === 'string' ? "
    "p.customdata : Array.from(p.customdata)"
)


@dataclass(frozen=True)
class WhyTab:
    token: gr.Dropdown
    versus: gr.Dropdown
    threshold: gr.Slider
    explain_last: gr.Button
    summary: gr.Markdown
    heads: gr.Plot
    bars: gr.Plot
    flow: gr.Plot
    note: gr.State  # (text, position) of the last generated token explained, to say so
    clicks: tuple[gr.HTML, ...]  # the heads grid's, the bars' and the flow view's click bridges


def build_why_tab() -> WhyTab:
    with gr.Tab(I18N("Why this token?"), id=WHY_TAB, elem_id="ae-why-tab"):
        gr.Markdown(I18N(HELP), elem_classes=["ae-help"])
        with gr.Row(equal_height=True):
            token = gr.Dropdown(
                [(I18N(TOP_PREDICTION), "")],
                value="",
                label=I18N("Token to explain (a word inside a sentence starts with a space)"),
                allow_custom_value=True,
                elem_id="ae-why-token",
                scale=2,
            )
            versus = gr.Dropdown(
                [(I18N(NOTHING), "")],
                value="",
                label=I18N("versus (optional: a logit difference)"),
                allow_custom_value=True,
                elem_id="ae-why-versus",
                scale=2,
            )
            threshold = gr.Slider(
                0,
                0.5,
                value=THRESHOLD,
                step=0.01,
                label=I18N("Flow: hide edges below this × the largest"),
                elem_id="ae-why-threshold",
                scale=2,
            )
            explain_last = gr.Button(I18N("Explain the last generated token"), elem_id="ae-why-last", scale=1)
        summary = gr.Markdown("", elem_id="ae-why-summary")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=420):
                heads = gr.Plot(
                    placeholder("Each head's share appears here."), show_label=False, elem_id="ae-why-heads"
                )
            with gr.Column(scale=1, min_width=420):
                bars = gr.Plot(
                    placeholder("The largest parts appear here."), show_label=False, elem_id="ae-why-bars"
                )
        flow = gr.Plot(
            placeholder("The flow across layers appears here."), show_label=False, elem_id="ae-why-flow"
        )
        clicks = tuple(
            plot_click_bridge(f"#ae-why-{name}", CLICK_FIELDS) for name in ("heads", "bars", "flow")
        )
        # Inside the tab: a child of gr.Tabs that is not a tab shifts Gradio's tab buttons (after
        # the Walk-through opened, Export's button showed "Walk-through").
        note = gr.State(None)
    return WhyTab(token, versus, threshold, explain_last, summary, heads, bars, flow, note, clicks)


def _fraction(value: Any) -> float:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return THRESHOLD


def _click(evt: gr.EventData) -> tuple[Any, Any]:
    """The clicked point's customdata and x (see CLICK_FIELDS)."""
    return getattr(evt, "data", None), getattr(evt, "x", None)


def wire_why_tab(
    ctx: Context,
    tab: WhyTab,
    tabs: gr.Tabs,
    selection: Selection,
    bar: SelectionBar,
    analysis_event: AnalysisEvent,
) -> None:
    _wire_drawing(ctx, tab, tabs)
    _wire_clicks(ctx, tab, tabs, selection, bar)
    _wire_explain_last(ctx, tab, selection, bar, analysis_event)


def _problem(ctx: Context, tab: WhyTab, err: ExplorerError, lang: str = "en") -> dict[Any, Any]:
    """A message in the status line, a toast, and in the tab's summary where it is read."""
    said = message(err, lang)
    warn(said)
    return {ctx.status: status_error(said), tab.summary: f"⚠ {md_text(said)}"}


def _wire_drawing(ctx: Context, tab: WhyTab, tabs: gr.Tabs) -> None:
    """The summary and the three figures, for the selected position, while the tab shows."""
    status = ctx.status

    @guarded(status)
    def show(
        session: Session,
        query: Any,
        token: Any,
        versus: Any,
        threshold: Any,
        note: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        try:
            analysis = require_analysis(ctx, session)
            position = clamp_or_last(query, analysis.n_pos)
            top = predictions(analysis, position)
            target, other = resolve_token(analysis, token, top), resolve_token(analysis, versus, top)
            # A large model's layers are computed again, one by one: seconds, so a progress bar.
            report = progress_callback(progress, session.lang)
            attr = attribute(analysis, position, target, versus=other, progress=report)
        except ExplorerError as err:
            return _problem(ctx, tab, err, session.lang)
        lang = session.lang
        figs = why_figures(analysis, attr, _fraction(threshold))
        lead = say(lang, GENERATED) + " " if note == (analysis.text, position) else ""
        choices = token_choices(top)
        return {
            tab.summary: attribution_summary(analysis, attr, lead, lang),
            tab.heads: localized(figs.heads, lang),
            tab.bars: localized(figs.bars, lang),
            tab.flow: localized(figs.flow, lang),
            tab.token: gr.update(choices=[(say(lang, TOP_PREDICTION), ""), *choices]),
            tab.versus: gr.update(choices=[(say(lang, NOTHING), ""), *choices]),
        }

    tab_listener(
        ctx,
        tabs,
        WHY_TAB,
        "ae-why-tab",
        [ctx.analyzed.change, ctx.query.change, tab.token.input, tab.versus.input, tab.threshold.release],
        show,
        [ctx.session, ctx.query, tab.token, tab.versus, tab.threshold, tab.note],
        [status, tab.summary, tab.heads, tab.bars, tab.flow, tab.token, tab.versus],
        progress=True,
        api_name="attribution",
        concurrency_id="attribution",
        show_progress_on=[tab.heads, tab.flow],
    )


def _wire_clicks(ctx: Context, tab: WhyTab, tabs: gr.Tabs, selection: Selection, bar: SelectionBar) -> None:
    """A head (tile, bar, edge) opens in Attention heads with the query kept; a token node selects it."""

    @guarded(ctx.status)
    def clicked(session: Session, layer: Any, head: Any, query: Any, mean: bool, evt: gr.EventData) -> Any:
        analysis = require_analysis(ctx, session)
        data, x = _click(evt)
        hit = head_from_click(data, analysis.n_layer, analysis.n_head)
        if hit is not None:
            layer, head = hit
            query = clamp_or_last(query, analysis.n_pos)
            session.shown_tab = HEADS_TAB  # switched from here, which fires no select event
            out: dict[Any, Any] = {ctx.status: "", ctx.layer: layer, ctx.head: head, ctx.mean: False}
            out[tabs] = gr.Tabs(selected=HEADS_TAB)
            return out | selection.outputs(session, layer, head, query, False)
        pos = token_from_click(data, x, analysis.n_pos)
        if pos is None:
            return gr.skip()
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        out = {ctx.status: "", ctx.query: pos, bar.tokens: tokens_html(analysis, pos, session.lang)}
        return out | selection.outputs(session, layer, head, pos, bool(mean))

    outputs = [ctx.status, ctx.layer, ctx.head, ctx.mean, tabs, ctx.query, bar.tokens, *selection.targets]
    for click in tab.clicks:
        click.click(
            clicked,
            [ctx.session, ctx.layer, ctx.head, ctx.query, ctx.mean],
            outputs,
            api_visibility="private",
            concurrency_limit=CONCURRENCY,
            show_progress="hidden",
        )


def _wire_explain_last(
    ctx: Context, tab: WhyTab, selection: Selection, bar: SelectionBar, analysis_event: AnalysisEvent
) -> None:
    """The generated text analyzed like a prompt (the prompt box keeps the user's), and its last
    token explained at the position before it; the analysis then redraws the tab."""

    @guarded(ctx.status)
    def explain_last(
        session: Session,
        analyzed: int,
        layer: Any,
        head: Any,
        mean: bool,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        gen = session.generation
        if gen is None or not gen.generated:
            nothing = "Nothing is generated yet: press Step or Run in the Generate tab, then come back."
            return _problem(ctx, tab, ExplorerError(nothing), session.lang)
        limit = min(gen.n_ctx, ctx.limits.max_prompt_tokens or gen.n_ctx)
        text = gen.tokenizer.decode(gen.ids[-limit:])
        out = analysis_event.fn(text, session, analyzed, layer, head, mean, progress=progress)
        if ctx.session not in out:
            return dict(out)  # the analysis failed: its message is in the status line
        analysis = require_analysis(ctx, session)
        if analysis.n_pos < 2:
            one = "The generated text is one token: there is no position before it to explain."
            return _problem(ctx, tab, ExplorerError(one), session.lang)
        query = analysis.n_pos - 2
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        out[ctx.query] = {**out[ctx.query], "value": query}
        out[bar.tokens] = tokens_html(analysis, query, session.lang)
        note = (analysis.text, query)
        return (
            out
            | selection.outputs(session, layer, head, query, bool(mean))
            | {
                tab.token: analysis.tokens[-1],
                tab.versus: "",
                tab.note: note,
            }
        )

    tab.explain_last.click(
        explain_last,
        [ctx.session, ctx.analyzed, ctx.layer, ctx.head, ctx.mean],
        [*analysis_event.outputs, tab.summary, tab.token, tab.versus, tab.note],
        api_name="explain_last_generated",
        concurrency_limit=CONCURRENCY,
        concurrency_id="analyze",
        show_progress_on=[tab.summary],
    )
