"""What every panel shares: the `Context` of shared components, error handling, the page's static
files, and small helpers for clamping values from the page or the API."""

from __future__ import annotations

import html
import logging
import re
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
from explorer.i18n import UI_TEXT, say, translate
from explorer.model.capture import Analysis, analyze
from explorer.model.loading import Progress
from explorer.ui.state import CONCURRENCY, AnalysisKey, AnalysisStore, Limits, ModelCache, Session

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


def empty_note(message: str) -> str:
    """A panel's message as the page is built: the page shows it in its language (gr.I18n). A
    switch of language writes it again over whatever the panel shows by then: only for panels
    that language.py sends again."""
    return f'<div class="ae-empty">{I18N(message)}</div>'


def placeholder(message: str, height: int = 260, lang: str = "en") -> go.Figure:
    """An empty figure saying `message` (an English key of the messages) in `lang`."""
    return figures.message_figure(say(lang, message), height)


def localized(fig: go.Figure, lang: str) -> go.Figure:
    """`fig` with its title, subtitle, axis titles, legend names and notes in `lang` (the figure
    builders write English; see i18n.translate). The figure is changed in place and returned."""
    if lang == "en":
        return fig
    layout = fig.layout
    if layout.title.text:
        layout.title.text = _figure_text(layout.title.text, lang)
    if layout.title.subtitle and layout.title.subtitle.text:
        layout.title.subtitle.text = _figure_text(layout.title.subtitle.text, lang)
    for name in [key for key in layout.to_plotly_json() if re.fullmatch(r"[xy]axis\d*", key)]:
        axis = layout[name]
        if axis.title and axis.title.text:
            axis.title.text = _figure_text(axis.title.text, lang)
    for trace in fig.data:
        if getattr(trace, "name", None):
            trace.name = _figure_text(trace.name, lang)
        colorbar = getattr(trace, "colorbar", None)
        if colorbar is not None and colorbar.title and colorbar.title.text:
            colorbar.title.text = _figure_text(colorbar.title.text, lang)
    for note in layout.annotations or ():
        if note.text:
            note.text = _figure_text(note.text, lang)
    return fig


def _plotly_esc(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "&#34;").replace("'", "&#39;")


def _figure_text(text: str, lang: str) -> str:
    """A figure's text in `lang` (see between_tags), escaped as the figure builders escape (figures.base._esc)."""
    return between_tags(text, lang, _plotly_esc)


def localized_html(text: str, lang: str) -> str:
    """An HTML panel made in English (a legend, a table's headings) in `lang`, run by run of text
    between its tags; a table's cells (tokens, numbers) and what is not one of the app's texts
    stay as they were."""
    return text if lang == "en" else between_tags(text, lang, views.esc, cells=False)


def between_tags(text: str, lang: str, escape: Callable[[str], str], cells: bool = True) -> str:
    """`text` with each run of text between its tags (<br>, <sup>, <span>, <th>) read as plain
    text, translated, and escaped again with `escape`; a run that is not a message stays as it
    was, and so does one inside a table cell (<td>) unless `cells`."""
    out, in_cell = [], False
    for part in re.split(r"(<[^>]*>)", text):
        if re.match(r"</?td\b", part):
            in_cell = not part.startswith("</")
        edge = re.fullmatch(r"(\s*)(.*?)(\s*)", part, re.DOTALL)
        if part.startswith("<") or edge is None or not edge.group(2) or (in_cell and not cells):
            out.append(part)
            continue
        english = html.unescape(edge.group(2))
        plain = translate(english, lang)
        out.append(part if plain == english else edge.group(1) + escape(plain) + edge.group(3))
    return "".join(out)


def progress_callback(progress: Any, lang: str = "en") -> Progress:
    """The engine's progress(fraction, message) as Gradio's progress bar, in `lang`."""
    return lambda fraction, message: progress(fraction, desc=translate(message, lang))


# --- errors become messages ----------------------------------------------------------------------


def message(err: BaseException, lang: str = "en") -> str:
    """What the person reads about `err`, in `lang`: an ExplorerError's own message, or a
    general one for a bug (whose details are for the log)."""
    if isinstance(err, ExplorerError):
        return translate(str(err), lang)
    return say(lang, SOMETHING_WRONG, kind=type(err).__name__)


SOMETHING_WRONG = (
    "Something went wrong ({kind}). What you typed is kept; "
    "try again, and if it keeps happening the server log has the details."
)
# A status line: its kind (the class of its span) and sign, then its escaped text.
STATUS = re.compile(r"<span class='(ae-ok-text|ae-error)'>(✓ |⚠ )?(.*)</span>", re.DOTALL)


def status_error(text: str) -> str:
    return f"<span class='ae-error'>⚠ {views.esc(text)}</span>"


def status_ok(text: str, mark: bool = True) -> str:
    return f"<span class='ae-ok-text'>{'✓ ' if mark else ''}{views.esc(text)}</span>"


def status_in(line: Any, lang: str) -> str | None:
    """A status line remade in `lang` (it was said in another); None when it stays as it is."""
    if not isinstance(line, str) or not line:
        return None
    found = STATUS.fullmatch(line)
    if found is None:  # a plain line (a generation step's): it has no user text
        remade = translate(line, lang)
        return remade if remade != line else None
    kind, sign, text = found.groups()
    remade = translate(html.unescape(text), lang)
    if remade == html.unescape(text):
        return None
    return f"<span class='{kind}'>{sign or ''}{views.esc(remade)}</span>"


def lang_of(args: tuple[Any, ...]) -> str:
    """The language of the session among a handler's arguments; English without one."""
    session = next((a for a in args if isinstance(a, Session)), None)
    return session.lang if session is not None else "en"


def warn(text: str) -> None:
    """A warning toast. Gradio renders toast text as HTML, and messages quote what was typed."""
    gr.Warning(views.esc(text))


def refused(handler: str, err: BaseException, lang: str = "en") -> None:
    """A toast for the user; for the log one line for what was refused, a traceback for a bug."""
    if isinstance(err, ExplorerError):
        log.info("refused (%s): %s", handler, reprlib.repr(str(err)))
    else:
        log.exception("handler %s failed", handler)
    warn(message(err, lang))


def with_note(status: gr.Markdown, args: tuple[Any, ...], out: Any) -> Any:
    """`out` with the session's pending note (see Session.note) as the status line."""
    session = next((a for a in args if isinstance(a, Session)), None)
    if session is None or not session.note or not isinstance(out, dict):
        return out
    note, session.note = session.note, ""
    return out | {status: status_ok(say(session.lang, note), mark=False)}


def guarded(status: gr.Markdown) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn ExplorerError (and anything unexpected) into a status line and a toast."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                out = fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every error becomes a message
                lang = lang_of(args)
                refused(fn.__name__, err, lang)
                return {status: status_error(message(err, lang))}
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
                lang = lang_of(args)
                refused(fn.__name__, err, lang)
                yield {status: status_error(message(err, lang))}

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
