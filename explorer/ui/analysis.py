"""One analysis feeds every tab: Analyze (the button, Enter, an example) runs the model once, and
the selection (layer, head, query token, mean) redraws the head detail and the Q/K/V steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from explorer import views
from explorer.analysis.arithmetic import breakdown
from explorer.figures import grid
from explorer.i18n import say, sentences
from explorer.model.capture import Analysis, clean_text, tokenize
from explorer.model.loading import BUNDLED
from explorer.ui.common import (
    Context,
    analysis_for,
    clamp,
    guarded,
    progress_callback,
    require_analysis,
    status_ok,
)
from explorer.ui.prompt import PromptPanel, SelectionBar
from explorer.ui.state import CONCURRENCY, STEPS_TAB, AnalysisKey, Session, tab_hidden
from explorer.ui.steps_tab import StepsTab, step_updates


@dataclass(frozen=True)
class Selection:
    """What shows the selected layer, head and query: the open head outlined in the overview,
    the head detail and the Q/K/V tab."""

    ctx: Context
    overview: gr.HTML
    detail: gr.HTML
    detail_note: gr.Markdown
    steps: StepsTab

    @property
    def targets(self) -> list[Any]:
        # The overview last: the API's breakdown keeps the order it had before the outline.
        return [
            self.detail,
            self.detail_note,
            self.steps.selection,
            *self.steps.step_components,
            self.overview,
        ]

    def outputs(self, session: Session, layer: int, head: int, query: int, mean: bool) -> dict[Any, Any]:
        analysis = require_analysis(self.ctx, session)
        which = None if mean else head
        fig, note = self.ctx.analyses.figure(
            session.analysis_key,
            ("detail", layer, which, query),
            lambda: sent(*grid.head_detail_grid(analysis, layer, which, query)),
        )
        bd = breakdown(analysis, layer, head, query)
        out: dict[Any, Any] = {
            self.overview: gr.update(outline=[layer, which]),
            self.detail: fig,
            self.detail_note: note,
            self.steps.selection: views.selection_markdown(bd, session.lang),
        }
        if not tab_hidden(session, STEPS_TAB):
            out |= step_updates(self.steps.steps, bd, session.lang)
        return out


@dataclass(frozen=True)
class AnalysisEvent:
    """The analysis as an event, for other chains to run again (a model switch, the page load)."""

    fn: Any
    inputs: list[Any]
    outputs: list[Any]
    options: dict[str, Any] = field(default_factory=dict)  # concurrency and progress settings


def sent(payload: dict[str, Any], *rest: Any) -> tuple[tuple[Any, ...], int]:
    """A heatmap payload (figures/grid.py) as AnalysisStore.figure keeps it, made once and sent
    to every session showing it, with what comes with it, and its size in bytes (the base64
    cells and the token strings are nearly all of it)."""
    size = len(payload.get("data", "")) + sum(len(t) + 4 for t in payload.get("tokens", ())) + 1024
    return (payload, *rest), size + sum(len(str(r)) for r in rest)


def tokens_html(analysis: Analysis, query: int, lang: str = "en") -> str:
    return views.tokens_html(analysis.tokens, analysis.token_ids.tolist(), query, analysis.truncated, lang)


def query_update(analysis: Analysis, query: int) -> Any:
    """The query dropdown for an analysis: its tokens as choices, `query` chosen."""
    return gr.update(choices=[(f"{i} · {t}", i) for i, t in enumerate(analysis.tokens)], value=query)


def analysis_status(analysis: Analysis, lang: str = "en") -> str:
    text = say(
        lang,
        "Analyzed {n} tokens with {model}: {n_layer} layers × {n_head} heads.",
        n=analysis.n_pos,
        model=analysis.model_name,
        n_layer=analysis.n_layer,
        n_head=analysis.n_head,
    )
    if analysis.truncated:
        cut = say(lang, "The prompt was cut: {cut} tokens did not fit.", cut=analysis.truncated)
        text = sentences(lang, text, cut)
    return status_ok(text)


def wire_analysis(
    ctx: Context, prompt: PromptPanel, bar: SelectionBar, selection: Selection
) -> AnalysisEvent:
    """Analyze on the button, on Enter and on an example; returns the event for other chains."""
    status = ctx.status
    # The overview where the API has always returned it, then the selection's panels.
    first = [
        status,
        ctx.session,
        ctx.analyzed,
        bar.tokens,
        selection.overview,
        ctx.layer,
        ctx.head,
        ctx.query,
    ]
    outputs = list(dict.fromkeys([*first, *selection.targets]))

    @guarded(status)
    def run_analysis(
        prompt: str,
        session: Session,
        analyzed: int,
        layer: Any,
        head: Any,
        mean: bool,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        lang = session.lang
        loaded = ctx.models.get(session.model, progress_callback(progress, lang))
        tokenize(loaded, prompt, ctx.limits.max_prompt_tokens)  # a bad prompt fails here, keeping the old one
        key = AnalysisKey(session.model, clean_text(prompt), ctx.limits.max_prompt_tokens)
        progress(0.5, desc=say(lang, "Running the model …"))
        analysis = analysis_for(ctx, key)  # shared: the same prompt on the same model runs once
        session.analysis, session.analysis_key = analysis, key
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        query = analysis.n_pos - 1
        out = {
            status: analysis_status(analysis, lang),
            ctx.session: session,
            ctx.analyzed: analyzed + 1,
            bar.tokens: tokens_html(analysis, query, lang),
            ctx.layer: gr.update(
                maximum=max(1, analysis.n_layer - 1), value=layer, interactive=analysis.n_layer > 1
            ),
            ctx.head: gr.update(
                maximum=max(1, analysis.n_head - 1), value=head, interactive=analysis.n_head > 1
            ),
            ctx.query: query_update(analysis, query),
        }
        out |= selection.outputs(session, layer, head, query, mean)
        grid_ = ctx.analyses.figure(key, "overview", lambda: sent(grid.analysis_overview_grid(analysis)))[0]
        out[selection.overview] = {**out[selection.overview], "value": grid_}  # with the open head outlined
        return out

    inputs = [ctx.prompt, ctx.session, ctx.analyzed, ctx.layer, ctx.head, ctx.mean]
    # Progress on the two figures only: Gradio otherwise lays a pending overlay over each of the
    # ~30 outputs, and drawing and removing those costs the browser more than the figures.
    options: dict[str, Any] = {
        "concurrency_limit": CONCURRENCY,
        "concurrency_id": "analyze",
        "show_progress_on": [selection.overview, selection.detail],
    }
    prompt.analyze.click(run_analysis, inputs, outputs, api_name="analyze", **options)
    ctx.prompt.submit(run_analysis, inputs, outputs, api_visibility="private", **options)
    if prompt.examples is not None:
        heads = prompt.example_heads

        def run_example(
            text: str,
            session: Session,
            analyzed: int,
            layer: Any,
            head: Any,
            mean: bool,
            progress: gr.Progress = gr.Progress(),
        ) -> dict[Any, Any]:
            """An example that names a head opens on it; the others keep the selection. The heads
            were found on the bundled model (its head types): on another model an example keeps
            the selection too, as that model's induction head is elsewhere."""
            shown = heads.get(text.strip())
            if shown is None or session.model != BUNDLED:
                return run_analysis(text, session, analyzed, layer, head, mean, progress)
            out = run_analysis(text, session, analyzed, *shown, False, progress)
            if ctx.layer in out:  # analyzed, not refused: the mean box clears for the one head
                out[ctx.mean] = False
            return out

        prompt.examples.load_input_event.then(
            run_example, inputs, [*outputs, ctx.mean], api_visibility="private", **options
        )
    # The example prompt (or a shared link's) is analyzed on page load: see view_state.
    return AnalysisEvent(run_analysis, inputs, outputs, options)


def wire_selection(ctx: Context, bar: SelectionBar, selection: Selection) -> None:
    """Layer, head, query and mean from their controls and from a click on the token strip."""
    status = ctx.status

    @guarded(status)
    def select(session: Session, layer: Any, head: Any, query: Any, mean: bool) -> dict[Any, Any]:
        analysis = require_analysis(ctx, session)
        layer, head, query = (
            clamp(layer, analysis.n_layer),
            clamp(head, analysis.n_head),
            clamp(query, analysis.n_pos),
        )
        out = {status: "", bar.tokens: tokens_html(analysis, query, session.lang)}
        return out | selection.outputs(session, layer, head, query, bool(mean))

    sel_inputs = [ctx.session, ctx.layer, ctx.head, ctx.query, ctx.mean]
    sel: dict[str, Any] = {
        "outputs": [status, bar.tokens, *selection.targets],
        "concurrency_limit": CONCURRENCY,
        "trigger_mode": "always_last",
        "show_progress_on": [selection.detail],
    }
    ctx.query.input(select, sel_inputs, api_name="breakdown", **sel)
    for component in (ctx.layer, ctx.head, ctx.mean):
        component.input(select, sel_inputs, api_visibility="private", **sel)

    @guarded(status)
    def pick_token(session: Session, layer: Any, head: Any, mean: bool, evt: gr.EventData) -> dict[Any, Any]:
        analysis = require_analysis(ctx, session)
        # The token strip sends the token's position, the head detail the row clicked.
        picked = getattr(evt, "pos", getattr(evt, "query", None)) if evt else None
        query = clamp(picked, analysis.n_pos)
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        out = {status: "", ctx.query: query, bar.tokens: tokens_html(analysis, query, session.lang)}
        return out | selection.outputs(session, layer, head, query, bool(mean))

    for clicked in (bar.tokens, selection.detail):
        clicked.click(
            pick_token,
            [ctx.session, ctx.layer, ctx.head, ctx.mean],
            [status, ctx.query, bar.tokens, *selection.targets],
            api_visibility="private",
            concurrency_limit=CONCURRENCY,
            show_progress_on=[selection.detail],
        )
