"""The view as a link: on page load the link's view (prompt, model, selection, settings, language,
lecture mode, the open tab) is restored and its prompt analyzed, in one server event; on every
change the address bar follows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import link, views
from explorer.i18n import say
from explorer.ui.analysis import AnalysisEvent, Selection, query_update, tokens_html
from explorer.ui.common import Context, clamp, current_analysis, guarded, static
from explorer.ui.generate_tab import GenerateTab
from explorer.ui.generate_view import generation_placeholders
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
    tabs: gr.Tabs
    tab_ids: tuple[str, ...]  # the tabs a link may open
    open_tab: gr.Textbox  # hidden: the open tab's id, kept by the page (OPEN_TAB_JS)

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
            "tab": self.open_tab,
        }


# The selected tab's id once the tab bar has switched, as the value of `open_tab`.
OPEN_TAB_JS = (
    "() => new Promise((done) => setTimeout(() => done([(document.querySelector("
    "'#ae-tabs button[role=tab][aria-selected=true]') || {dataset: {}}).dataset.tabId || 'heads']), 30))"
)


def url_sync_js() -> str:
    """The page's function that writes the components' values (in link.VIEW_KEYS order) into the URL."""
    return (
        static("url_sync.js")
        .replace("__KEYS__", json.dumps(list(link.VIEW_KEYS)))
        .replace("__DEFAULTS__", json.dumps(dict(link.VIEW_DEFAULTS)))
    )


def _restored(ctx: Context, panels: ViewPanels, view: link.View, session: Session, request: Any) -> dict:
    """The link's prompt, settings, language, lecture mode, model and open tab."""
    components = panels.by_key(ctx)
    out: dict[Any, Any] = {}
    if view.prompt is not None:
        out[ctx.prompt] = view.prompt
    for key in AT_ONCE:
        value = getattr(view, key)
        if value is not None:
            out[components[key]] = value
    if view.lang is None:
        accept = request.headers.get("accept-language") if request else None
        out[panels.lecture.lang] = link.language_from_header(accept)
    session.lang = out[panels.lecture.lang]  # what the server says from now on (see language.py)
    if session.lang != "en":  # the Generate tab's figures, built in English before any language
        out |= generation_placeholders(panels.gen, session.lang)
    tab = view.tab if view.tab in panels.tab_ids else HEADS_TAB
    session.shown_tab = tab  # a programmatic switch fires no select event: see Session.shown_tab
    if tab != HEADS_TAB:
        out |= {panels.tabs: gr.Tabs(selected=tab), panels.open_tab: tab}
    if view.model and view.model != session.model:
        out |= switch_model(ctx, panels.header, session, view.model)
    return out


def wire_view_state(demo: gr.Blocks, ctx: Context, panels: ViewPanels, analysis: AnalysisEvent) -> None:
    """On page load, in one server event: the link's view restored, its prompt (or the example)
    analyzed, and its selection shown. Then the address bar follows every change."""
    components = panels.by_key(ctx)
    assert tuple(components) == link.VIEW_KEYS
    status, header = ctx.status, panels.header

    @guarded(status)
    def current_model(session: Session) -> dict[Any, Any]:
        loaded = ctx.models.get(session.model)
        return {ctx.status: "", header.model_md: model_text(loaded, ctx.limits, session.lang)}

    def open_page(
        prompt: str,
        session: Session,
        analyzed: int,
        layer: Any,
        head: Any,
        mean: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        view = link.parse_view(dict(request.query_params) if request else {})
        out = _restored(ctx, panels, view, session, request)
        prompt = out.get(ctx.prompt, prompt)
        if not ctx.models.ready(session.model):  # the server is still loading it (load_in_background)
            progress(0.1, desc=say(session.lang, "Loading the model …"))
        # The page's header was built before the model loaded (see build_app): say what it is.
        out |= current_model(session)
        if header.model_md not in out:  # the status line says why
            said = say(
                session.lang,
                "**Model: {name}** · could not be loaded (see the message below)",
                name=views.esc(session.model),
            )
            return out | {header.model_md: said}
        if not (isinstance(prompt, str) and prompt.strip()):
            return out
        mean = bool(mean if view.mean is None else view.mean)
        layer = layer if view.layer is None else view.layer
        head = head if view.head is None else view.head
        out |= analysis.fn(prompt, session, analyzed, layer, head, mean, progress=progress)
        return out | _select(session, view, mean)

    def _select(session: Session, view: link.View, mean: bool) -> dict[Any, Any]:
        """The link's query token (the analysis selects the last one), and the mean."""
        found = current_analysis(ctx, session)
        if found is None or (view.query is None and view.mean is None):
            return {}
        layer_, head_ = clamp(view.layer or 0, found.n_layer), clamp(view.head or 0, found.n_head)
        query = clamp(found.n_pos - 1 if view.query is None else view.query, found.n_pos)
        out: dict[Any, Any] = {ctx.mean: mean, ctx.query: query_update(found, query)}
        out[panels.bar.tokens] = tokens_html(found, query, session.lang)
        return out | panels.selection.outputs(session, layer_, head_, query, mean)

    restored = [components[key] for key in ("prompt", *AT_ONCE)]
    outputs = list(
        dict.fromkeys(
            [
                *restored,
                *analysis.outputs,
                ctx.mean,
                header.model_dd,
                header.model_md,
                panels.tabs,
                panels.open_tab,
                panels.gen.dist,  # the Generate tab's figures, in a language other than English
                panels.gen.timeline,
                panels.gen.attn,
            ]
        )
    )
    demo.load(open_page, analysis.inputs, outputs, api_visibility="private", **analysis.options)
    panels.tabs.select(None, None, [panels.open_tab], js=OPEN_TAB_JS, api_visibility="private")
    values = list(components.values())
    gr.on([c.change for c in values], None, values, None, js=url_sync_js(), api_visibility="private")
