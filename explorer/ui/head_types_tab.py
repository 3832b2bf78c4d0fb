"""The Head types tab: what each head mostly does (previous token, induction, duplicate token,
first token), measured once per model on probe texts; a click opens a head on a probe."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from explorer import figures, views
from explorer.analysis.ablation import head_name
from explorer.analysis.heads import display_name, head_scores, probe_for
from explorer.errors import ExplorerError
from explorer.i18n import say, translate
from explorer.insight_views import head_card, head_types_legend
from explorer.model.loading import LoadedModel
from explorer.ui.common import (
    I18N,
    Context,
    clamp_or_last,
    guarded,
    localized,
    message,
    placeholder,
    plot_click_bridge,
    progress_callback,
    tab_listener,
)
from explorer.ui.state import CONCURRENCY, HEADS_TAB, Session

log = logging.getLogger(__name__)

TYPES_TAB = "head-types"
# Clicks the app's own Analyze button, so the probe runs through the app's full analysis.
ANALYZE_JS = "() => { document.querySelector('#ae-analyze')?.click(); }"


class HeadTypes:
    """head_scores by model key, shared by all sessions: they depend on the model alone."""

    def __init__(self, ctx: Context, capacity: int = 8) -> None:
        self._ctx = ctx
        self._capacity = capacity
        self._scores: OrderedDict[str, pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, loaded: LoadedModel, progress: Any = None, lang: str = "en") -> pd.DataFrame:
        with self._lock:  # one measurement at a time; a second asker waits and reads the first's
            if key not in self._scores:
                report = progress_callback(progress, lang) if progress is not None else None
                with self._ctx.models.lock(loaded):  # a large model's probes take seconds: reported
                    self._scores[key] = head_scores(loaded, progress=report)
                while len(self._scores) > self._capacity:
                    self._scores.popitem(last=False)
            self._scores.move_to_end(key)
            return self._scores[key]


def add_head_types_tab(ctx: Context, tabs: gr.Tabs, types: HeadTypes, back: gr.Button) -> None:
    """The tab, its grid and legend (drawn while it shows), and a click that opens a head on its
    probe; the prompt it replaces is kept, and `back` (beside Analyze) restores and analyzes it."""
    status = ctx.status
    with gr.Tab(I18N("Head types"), id=TYPES_TAB, elem_id="ae-types-tab"):
        own_prompt = gr.State("")  # the prompt a probe replaced; "" while the prompt is one's own
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                gr.Markdown(
                    I18N(
                        "**What each head mostly does**, measured once per model on probe texts (prose, and "
                        "random tokens repeated twice). Hover a tile for its scores; **click one** to open it "
                        "on a prompt where its pattern shows."
                    ),
                    elem_classes=["ae-help"],
                )
                plot = gr.Plot(placeholder("Head types appear here."), show_label=False, elem_id="ae-types")
            with gr.Column(scale=2, min_width=320):
                # Not gr.I18n: a switch of language would put this back over the legend drawn since.
                legend = gr.HTML(views.empty_html("The types and what they mean appear here."), padding=True)
                card = gr.Markdown("", elem_id="ae-types-card")
        click = plot_click_bridge("#ae-types", "x: p.x, y: p.y")

    def scores_for(session: Session, progress: Any = None) -> pd.DataFrame:
        loaded = ctx.models.get(session.model)
        if progress is not None:
            progress(0.2, desc=say(session.lang, "Measuring head types on probe texts (once per model) …"))
        return types.get(session.model, loaded, progress, session.lang)

    @guarded(status)
    def draw(session: Session, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        scores = scores_for(session, progress)
        fig = localized(figures.head_types_figure(scores), session.lang)
        n_layer, n_head = int(scores["layer"].max()) + 1, int(scores["head"].max()) + 1
        fig.update_layout(height=int(np.clip(130 + 520 * n_layer / max(n_head, 1), 300, 640)))
        return {plot: fig, legend: head_types_legend(scores, session.lang)}

    tab_listener(
        ctx,
        tabs,
        TYPES_TAB,
        "ae-types-tab",
        [ctx.analyzed.change],
        draw,
        [ctx.session],
        [status, plot, legend],
        progress=True,
        api_name="head_types",
        show_progress_on=[plot],
    )

    def open_head(session: Session, prompt: str, kept: str, evt: gr.EventData) -> dict[Any, Any]:
        try:
            scores = scores_for(session)
            n_layer, n_head = int(scores["layer"].max()) + 1, int(scores["head"].max()) + 1
            layer = clamp_or_last(round(float(evt.y)), n_layer)  # type: ignore[attr-defined]
            head = clamp_or_last(round(float(evt.x)), n_head)  # type: ignore[attr-defined]
            row = scores[(scores["layer"] == layer) & (scores["head"] == head)].iloc[0]
            probe = probe_for(str(row["label"]), ctx.models.get(session.model))
        except Exception as err:  # noqa: BLE001 - an error stops the chain: no probe is analyzed
            if not isinstance(err, ExplorerError):
                log.exception("opening a head from the head-types grid failed")
            said = message(err, session.lang) if isinstance(err, ExplorerError) else ""
            raise gr.Error(views.esc(said or say(session.lang, "That head could not be opened."))) from err
        session.shown_tab = HEADS_TAB  # selected from here, which fires no select event
        kind = translate(display_name(str(row["label"])), session.lang)
        gr.Info(
            views.esc(
                say(
                    session.lang,
                    "{head} ({kind}) opened on a probe prompt: see Attention heads.",
                    head=head_name(layer, head),
                    kind=kind,
                )
            )
        )
        return {
            ctx.prompt: probe,
            own_prompt: kept or prompt,  # a second probe keeps the first one's prompt
            back: gr.update(visible=True),
            ctx.layer: layer,
            ctx.head: head,
            ctx.mean: False,
            card: head_card(row, probe, session.lang),
            tabs: gr.Tabs(selected=HEADS_TAB),
        }

    click.click(
        open_head,
        [ctx.session, ctx.prompt, own_prompt],
        [ctx.prompt, own_prompt, back, ctx.layer, ctx.head, ctx.mean, card, tabs],
        api_visibility="private",
        show_progress="hidden",
        concurrency_limit=CONCURRENCY,
    ).success(None, js=ANALYZE_JS)

    def restore(kept: str) -> dict[Any, Any]:
        return {ctx.prompt: kept, own_prompt: "", back: gr.update(visible=False)}

    back.click(restore, [own_prompt], [ctx.prompt, own_prompt, back], api_visibility="private").success(
        None, js=ANALYZE_JS
    )
    # Typing a prompt of one's own: nothing to go back to.
    ctx.prompt.input(
        lambda: {own_prompt: "", back: gr.update(visible=False)},
        None,
        [own_prompt, back],
        api_visibility="private",
    )
