"""The view as a link: on page load the link's view (prompt, model, selection, settings, language,
lecture mode) is restored and its prompt analyzed; on every change the address bar follows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import link, views
from explorer.ui.analysis import AnalysisEvent, Selection, tokens_html
from explorer.ui.common import Context, clamp, current_analysis, guarded, static
from explorer.ui.generate_tab import GenerateTab
from explorer.ui.header import Header, model_text, switch_model
from explorer.ui.lecture_bar import LectureBar
from explorer.ui.prompt import SelectionBar
from explorer.ui.state import HEADS_TAB, Session

# What restore sets at once; the selection waits for the analysis it needs.
AT_ONCE = ("greedy", "temperature", "top_k", "top_p", "seed", "lang", "lecture", "dark")


@dataclass(frozen=True)
class ViewPanels:
    """The components behind the keys of a link, and what a restored selection redraws."""

    header: Header
    bar: SelectionBar
    gen: GenerateTab
    lecture: LectureBar
    selection: Selection

    def by_key(self, ctx: Context) -> dict[str, Any]:
        """The component behind each key of a shared link (link.VIEW_KEYS), in that order."""
        return {
            "prompt": ctx.prompt,
            "model": self.header.model_dd,
            "layer": ctx.layer,
            "head": ctx.head,
            "query": ctx.query,
            "mean": ctx.mean,
            "greedy": self.gen.greedy,
            "temperature": self.gen.temperature,
            "top_k": self.gen.top_k,
            "top_p": self.gen.top_p,
            "seed": self.gen.seed,
            "lang": self.lecture.lang,
            "lecture": self.lecture.lecture,
            "dark": self.lecture.dark,
        }


def url_sync_js() -> str:
    """The page's function that writes the components' values (in link.VIEW_KEYS order) into the URL."""
    return (
        static("url_sync.js")
        .replace("__KEYS__", json.dumps(list(link.VIEW_KEYS)))
        .replace("__DEFAULTS__", json.dumps(dict(link.VIEW_DEFAULTS)))
    )


def wire_view_state(demo: gr.Blocks, ctx: Context, panels: ViewPanels, analysis: AnalysisEvent) -> None:
    """On page load: the link's view restored, then the prompt analyzed, then the link's
    selection shown. Replaces a plain analysis of the example prompt on load."""
    components = panels.by_key(ctx)
    assert tuple(components) == link.VIEW_KEYS
    pending = gr.State(None)  # the View, until the analysis it needs has run
    status, header = ctx.status, panels.header
    restored = [components[key] for key in ("prompt", *AT_ONCE)]

    def restore(prompt: str, session: Session, request: gr.Request) -> dict[Any, Any]:
        view = link.parse_view(dict(request.query_params) if request else {})
        session.shown_tab = HEADS_TAB  # a page opens on the heads tab: see Session.shown_tab
        out: dict[Any, Any] = {pending: view, ctx.session: session}
        if view.prompt is not None:
            out[ctx.prompt] = view.prompt
        for key in AT_ONCE:
            value = getattr(view, key)
            if value is not None:
                out[components[key]] = value
        if view.lang is None:
            accept = request.headers.get("accept-language") if request else None
            out[panels.lecture.lang] = link.language_from_header(accept)
        if view.model and view.model != session.model:
            out |= switch_model(ctx, header, session, view.model)
        return out

    @guarded(status)
    def current_model(session: Session) -> dict[Any, Any]:
        return {ctx.status: "", header.model_md: model_text(ctx.models.get(session.model), ctx.limits)}

    def analyze_if_prompt(*args: Any, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        prompt, session = args[0], args[1]
        if not ctx.models.ready(session.model):  # the server is still loading it (load_in_background)
            progress(0.1, desc="Loading the model …")
        # The page's header was built before the model loaded (see build_app): say what it is.
        out = current_model(session)
        if header.model_md not in out:  # the status line says why
            name = views.esc(session.model)
            return out | {header.model_md: f"**Model: {name}** · could not be loaded (see the message below)"}
        if isinstance(prompt, str) and prompt.strip():
            out |= analysis.fn(*args, progress=progress)
        return out

    @guarded(status)
    def select(session: Session, view: link.View | None, mean: bool) -> dict[Any, Any]:
        analysis = current_analysis(ctx, session)
        if analysis is None or view is None or (view.layer, view.head, view.query, view.mean) == (None,) * 4:
            return {pending: None}
        layer = clamp(view.layer or 0, analysis.n_layer)
        head = clamp(view.head or 0, analysis.n_head)
        query = clamp(analysis.n_pos - 1 if view.query is None else view.query, analysis.n_pos)
        mean = bool(mean if view.mean is None else view.mean)
        out: dict[Any, Any] = {ctx.layer: layer, ctx.head: head, ctx.mean: mean, ctx.query: query}
        out |= {panels.bar.tokens: tokens_html(analysis, query), pending: None}
        return out | panels.selection.outputs(session, layer, head, query, mean)

    demo.load(
        restore,
        [ctx.prompt, ctx.session],
        [pending, *restored, ctx.session, status, header.model_dd, header.model_md],
        api_visibility="private",
    ).then(
        analyze_if_prompt,
        analysis.inputs,
        [*analysis.outputs, header.model_md],
        api_visibility="private",
        **analysis.options,
    ).then(
        select,
        [ctx.session, pending, ctx.mean],
        [
            status,
            pending,
            ctx.layer,
            ctx.head,
            ctx.mean,
            ctx.query,
            panels.bar.tokens,
            *panels.selection.targets,
        ],
        api_visibility="private",
        show_progress="hidden",  # usually nothing to do; a shared link's selection is quick
    )
    values = list(components.values())
    gr.on([c.change for c in values], None, values, None, js=url_sync_js(), api_visibility="private")
