"""What every panel shares: the `Context` of shared components, error handling, the page's static
files, and small helpers for clamping values from the page or the API."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, wraps
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from explorer import figures, views
from explorer.errors import ExplorerError
from explorer.model.capture import Analysis, analyze
from explorer.model.loading import Progress
from explorer.ui.state import CONCURRENCY, AnalysisKey, AnalysisStore, Limits, ModelCache, Session
from explorer.walkthrough import UI_TEXT

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
I18N = gr.I18n(**{lang: dict(text) for lang, text in UI_TEXT.items()})


@cache
def static(name: str) -> str:
    """A file of the page's CSS or JavaScript (explorer/ui/static/), read once."""
    return (STATIC / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Context:
    """The shared components, for panels and for tabs added later with `extra_tabs`.

    `analyzed` is a counter that changes after each analysis: listen to `analyzed.change`
    and read `session.analysis`. Layer, head, query and mean change programmatically too,
    so `.change` sees every selection and `.input` only the user's own moves.
    """

    session: gr.State
    analyzed: gr.State
    prompt: gr.Textbox
    status: gr.Markdown
    layer: gr.Slider
    head: gr.Slider
    mean: gr.Checkbox
    query: gr.Dropdown
    models: ModelCache
    analyses: AnalysisStore
    limits: Limits
    page_tab: gr.Textbox  # hidden; kept as the last input of tab_listener fills, for the API's parameters
    bridges: gr.Column  # never shown: where tab_listener puts the bridges its page script clicks


# --- values from the page or the API ---------------------------------------------------------


def clamp(value: Any, top: int) -> int:
    """An index in 0..top−1; what does not read as a number is 0."""
    try:
        return int(np.clip(int(value), 0, max(0, top - 1)))
    except (TypeError, ValueError, OverflowError):
        return 0


def clamp_or_last(value: Any, top: int) -> int:
    """An index in 0..top−1; what does not read as a number is the last."""
    try:
        return int(np.clip(int(value), 0, max(0, top - 1)))
    except (TypeError, ValueError, OverflowError):
        return max(0, top - 1)


RECOMPUTED = "This prompt's analysis had been let go to save the server's memory; it was computed again."


def analysis_for(ctx: Context, key: AnalysisKey) -> Analysis:
    """The analysis of `key`: shared with every session that asked for the same, or run now."""
    loaded = ctx.models.get(key.model)

    def run() -> Analysis:
        with ctx.models.lock(loaded):
            return analyze(loaded, key.text, max_tokens=key.max_tokens)

    return ctx.analyses.compute(key, run)


def current_analysis(ctx: Context, session: Session) -> Analysis | None:
    """The session's analysis, computed again if the store let it go (the session keeps its
    prompt's key, so nothing it showed is lost); None before its first analysis."""
    if (analysis := session.analysis) is not None:
        return analysis
    key = session.analysis_key
    if key is None:
        return None
    analysis = ctx.analyses.get(key)
    if analysis is None:
        analysis = analysis_for(ctx, key)
        session.note = RECOMPUTED
    session.analysis = analysis
    return analysis


def require_analysis(ctx: Context, session: Session) -> Analysis:
    if (analysis := current_analysis(ctx, session)) is None:
        raise ExplorerError("Analyze a prompt first.")
    return analysis


def placeholder(message: str, height: int = 260) -> go.Figure:
    return figures.message_figure(message, height)


def progress_callback(progress: Any) -> Progress:
    """The engine's progress(fraction, message) as Gradio's progress bar."""
    return lambda fraction, message: progress(fraction, desc=message)


# --- errors become messages ----------------------------------------------------------------------


def message(err: BaseException) -> str:
    if isinstance(err, ExplorerError):
        return str(err)
    return (
        f"Something went wrong ({type(err).__name__}). What you typed is kept; "
        "try again, and if it keeps happening the server log has the details."
    )


def status_error(text: str) -> str:
    return f"<span class='ae-error'>⚠ {views.esc(text)}</span>"


def warn(text: str) -> None:
    """A warning toast. Gradio renders toast text as HTML, and messages quote what was typed."""
    gr.Warning(views.esc(text))


def refused(handler: str, err: BaseException) -> None:
    """A toast for the user; for the log one line for what was refused, a traceback for a bug."""
    if isinstance(err, ExplorerError):
        log.info("refused (%s): %s", handler, reprlib.repr(str(err)))
    else:
        log.exception("handler %s failed", handler)
    warn(message(err))


def with_note(status: gr.Markdown, args: tuple[Any, ...], out: Any) -> Any:
    """`out` with the session's pending note (see Session.note) as the status line."""
    session = next((a for a in args if isinstance(a, Session)), None)
    if session is None or not session.note or not isinstance(out, dict):
        return out
    note, session.note = session.note, ""
    return out | {status: f"<span class='ae-ok-text'>{views.esc(note)}</span>"}


def guarded(status: gr.Markdown) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn ExplorerError (and anything unexpected) into a status line and a toast."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                out = fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every error becomes a message
                refused(fn.__name__, err)
                return {status: status_error(message(err))}
            return with_note(status, args, out)

        return handler

    return wrap


def guarded_stream(
    status: gr.Markdown,
) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
    """`guarded` for a handler that yields its replies."""

    def wrap(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                for out in fn(*args, **kwargs):
                    yield with_note(status, args, out)
            except Exception as err:  # noqa: BLE001
                refused(fn.__name__, err)
                yield {status: status_error(message(err))}

        return handler

    return wrap


# --- panels that wait while their tab is hidden, and clicks on plots --------------------------


def tab_listener(
    ctx: Context,
    tabs: gr.Tabs,
    tab: str,
    panel: str,
    triggers: list[Any],
    fn: Callable[..., Any],
    inputs: list[Any],
    outputs: list[Any],
    progress: bool = False,
    **kwargs: Any,
) -> None:
    """Run `fn(*inputs)` on `triggers` while tab `tab` (elem_id `panel`) shows, and when it opens.

    Hidden, the tab's panels wait, and without a server call: the triggers run a page script
    that asks for the fill (a hidden bridge's click) only when the panel is visible, so an
    analysis or a selection costs no round trip for the tabs nobody looks at. The fill's API
    name and parameters are the event's own (kwargs); API callers always get `fn`.
    """
    with ctx.bridges:  # not inside gr.Tabs, where every child is taken for a tab
        bridge = gr.HTML("", visible="hidden", js_on_load=static("tab_fill.js").replace("__PANEL__", panel))
    gate = static("tab_gate.js").replace("__PANEL__", panel)
    gr.on(triggers, None, None, None, js=gate.replace("__DEFER__", "false"), api_visibility="private")
    tabs.select(None, None, None, js=gate.replace("__DEFER__", "true"), api_visibility="private")

    # Not named `run`: Gradio names an event by its function, and "run" is Generate's API.
    def fill(gr_progress: gr.Progress = gr.Progress(), *args: Any) -> Any:
        rest = args[:-1]  # the last is page_tab, kept so the API's parameters keep their places
        return fn(*rest, progress=gr_progress) if progress else fn(*rest)

    kwargs.setdefault("concurrency_limit", CONCURRENCY)
    kwargs.setdefault("trigger_mode", "always_last")
    bridge.click(fill, [*inputs, ctx.page_tab], outputs, **kwargs)


def plot_click_bridge(selector: str, fields: str) -> gr.HTML:
    """A hidden component whose click event fires with `fields` of a point clicked in the plot
    under `selector` (Plotly clicks have no Gradio event of their own)."""
    js = static("plot_click.js").replace("__SELECTOR__", selector).replace("__FIELDS__", fields)
    return gr.HTML("", visible="hidden", js_on_load=js)
