"""The Gradio app: lays out the panels and wires them to the engine; it computes nothing itself.

    build_app(model=None) -> gr.Blocks;  launch(demo) serves it with the theme, CSS and JS.

Each browser session keeps its own `Session` (model choice, analysis, generation) in gr.State;
loaded models live in a small `ModelCache` shared by all sessions. Every handler returns a dict
of the components it changes, and errors become a status line and a toast, never a traceback.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import wraps
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from explorer import export, figures, lecture, views
from explorer.analysis.arithmetic import STEPS, Breakdown, breakdown
from explorer.errors import ExplorerError, ModelLoadError
from explorer.model.capture import Analysis, analyze, clean_text, display_tokens, tokenize
from explorer.model.generation import TOP_K_SHOWN, GenerationSession, StepResult
from explorer.model.loading import (
    BUNDLED,
    LoadedModel,
    ModelPlan,
    Progress,
    assets_dir,
    load_model,
    plan_model,
)

log = logging.getLogger(__name__)

HOSTED_MODELS = (BUNDLED, "gpt2", "distilgpt2", "gpt2-medium")
MODEL_CHOICES = (
    ("bundled demo model", BUNDLED),
    ("gpt2", "gpt2"),
    ("distilgpt2", "distilgpt2"),
    ("gpt2-medium", "gpt2-medium"),
)
DETAIL_MAX_CELLS = 320 * 320  # beyond this the head detail shows a window of query rows
DETAIL_TICK_LABELS = 32  # token labels per axis that fit a half-width panel
STEP_TICK_LABELS = 40
GEN_TICK_LABELS = 18  # the generation panels are narrower
GEN_HOVER_KEYS = 256  # longer attention rows of a generated token hover without token text
KEPT_STEPS = 64  # recent generation steps kept, to show again after a rewind
NO_ROW = np.zeros((0, 0, 0), dtype=np.float32)  # a kept step's attention row, not kept (see _remember)
CONCURRENCY = 4


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; hosted mode (a public Space) is stricter."""

    hosted: bool = False
    max_prompt_tokens: int | None = None  # None: the model's context window
    max_run_tokens: int = 200
    max_new_tokens: int | None = None

    @classmethod
    def for_mode(cls, hosted: bool) -> Limits:
        if hosted:
            return cls(hosted=True, max_prompt_tokens=256, max_run_tokens=32, max_new_tokens=256)
        return cls()


# --- models shared by all sessions -------------------------------------------------------


class ModelCache:
    """Loaded models by key, at most `capacity`, least recently used dropped first.

    A model's forward passes hold its lock: capture hooks are registered on the shared model,
    so two passes on one model at once would see each other's tensors.
    """

    def __init__(
        self, device: str | None, capacity: int = 2, loader: Callable[..., LoadedModel] = load_model
    ) -> None:
        self.device = device
        self.capacity = capacity
        self._loader = loader
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._compute: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()

    def put(self, key: str, loaded: LoadedModel) -> None:
        with self._lock:
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)

    def get(self, key: str, progress: Progress | None = None, source: str | None = "") -> LoadedModel:
        """The model for `key`, loaded if it is not kept yet: from `source` where given (None is
        load_model's default model), else from `key`."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        with self._load_lock:  # one load at a time; another session may have loaded it meanwhile
            with self._lock:
                if key in self._models:
                    return self._models[key]
            loaded = self._loader(key if source == "" else source, device=self.device, progress=progress)
            self.put(key, loaded)  # before another waiting request looks again
        return loaded

    def lock(self, loaded: LoadedModel) -> threading.Lock:
        with self._lock:
            return self._compute.setdefault(loaded.model, threading.Lock())

    def ready(self, key: str) -> bool:
        with self._lock:
            return key in self._models

    def preload(self, key: str, source: str | None) -> threading.Thread:
        """Load `source` as `key` on a thread of its own; requests that need it wait for it."""

        def load() -> None:
            try:
                self.get(key, source=source)
            except Exception:  # noqa: BLE001 - the first request that needs it loads again and says why
                log.exception("loading %s in the background failed", key)

        thread = threading.Thread(target=load, name="ae-preload", daemon=True)
        thread.start()
        return thread


def model_key(loaded: LoadedModel | ModelPlan, asked: str | None) -> str:
    """The cache key and dropdown value for a model: what was asked for, or what it is."""
    if loaded.is_bundled:
        return BUNDLED
    return asked or loaded.name


# Apps whose first model loads once the server answers (build_app(load_in_background=True)),
# with the loading to start: see launch.
_PRELOADS: weakref.WeakKeyDictionary[gr.Blocks, Callable[[], Any]] = weakref.WeakKeyDictionary()


# --- per-session state -------------------------------------------------------------------


@dataclass
class Session:
    """One browser session's work. Lives in gr.State, never shared between users."""

    model: str
    analysis: Analysis | None = None
    generation: GenerationSession | None = None
    gen_prompt: str = ""
    gen_cut: int = 0  # tokens of gen_prompt that did not fit
    steps: dict[int, StepResult] = field(default_factory=dict)  # recent steps by position
    # The tab a browser page shows; None for API callers, who see no tabs and get every panel.
    # A hidden tab's panels are filled when it opens, not with each analysis and selection: the
    # Q/K/V tab's ~20 cards and plots, and the logit lens decoding every layer, were most of the
    # server's and the browser's work after a click (see tab_hidden and tab_listener).
    shown_tab: str | None = None
    shown_position: int | None = None  # the position whose distribution the chart shows
    token_text: dict[int, str] = field(default_factory=dict)  # display string by token id


HEADS_TAB, STEPS_TAB, WALK_TAB = "heads", "steps", "walk"


def tab_hidden(session: Session, tab: str) -> bool:
    """Whether a browser page shows another tab than `tab`, so that its panels can wait until it opens."""
    return session.shown_tab is not None and session.shown_tab != tab


def unchanged(outputs: list[Any]) -> dict[Any, Any]:
    """A reply that changes none of `outputs` (Gradio takes an empty dict for a missing value)."""
    return {outputs[0]: gr.skip()}


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

    Hidden, the tab's panels wait. Whether it shows is read in the page as each trigger fires
    (another listener's record of the open tab could lag behind), and an opening from the select
    event's own data. One listener for both, so that an opening and a selection made right after
    it are answered in that order. API calls, which run no page script, always get `fn`.
    """
    panel_js = json.dumps(panel)
    page_js = (
        f"(...args) => {{ const el = document.getElementById({panel_js}); "
        "args[args.length - 1] = el && el.offsetParent !== null ? 'shown' : 'hidden'; return args; }"
    )

    def run(evt: gr.EventData, gr_progress: gr.Progress = gr.Progress(), *args: Any) -> Any:
        rest, shown = args[:-1], args[-1]  # last, so the API's parameters keep their places
        if getattr(evt, "target", None) is tabs:
            opened = evt._data.get("id") if isinstance(evt._data, dict) else None
            if opened != tab:
                return unchanged(outputs)
        elif shown == "hidden":
            return unchanged(outputs)
        return fn(*rest, progress=gr_progress) if progress else fn(*rest)

    kwargs.setdefault("concurrency_limit", CONCURRENCY)
    kwargs.setdefault("trigger_mode", "always_last")
    gr.on([*triggers, tabs.select], run, [*inputs, ctx.page_tab], outputs, js=page_js, **kwargs)


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
    limits: Limits
    page_tab: gr.Textbox  # hidden: "shown"/"hidden" from the page's script, "" from API callers


# --- error handling ----------------------------------------------------------------------


def _message(err: BaseException) -> str:
    if isinstance(err, ExplorerError):
        return str(err)
    return (
        f"Something went wrong ({type(err).__name__}). What you typed is kept; "
        "try again, and if it keeps happening the server log has the details."
    )


def _status_error(text: str) -> str:
    return f"<span class='ae-error'>⚠ {views.esc(text)}</span>"


def _warn(text: str) -> None:
    """A warning toast. Gradio renders toast text as HTML, and messages quote what was typed."""
    gr.Warning(views.esc(text))


def guarded(status: gr.Markdown) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn ExplorerError (and anything unexpected) into a status line and a toast."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every error becomes a message
                if not isinstance(err, ExplorerError):
                    log.exception("handler %s failed", fn.__name__)
                _warn(_message(err))
                return {status: _status_error(_message(err))}

        return handler

    return wrap


def guarded_stream(
    status: gr.Markdown,
) -> Callable[[Callable[..., Iterator[Any]]], Callable[..., Iterator[Any]]]:
    def wrap(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001
                if not isinstance(err, ExplorerError):
                    log.exception("handler %s failed", fn.__name__)
                _warn(_message(err))
                yield {status: _status_error(_message(err))}

        return handler

    return wrap


def _progress(progress: Any) -> Progress:
    return lambda fraction, message: progress(fraction, desc=message)


# --- figures the engine's builders do not cover -----------------------------------------


def placeholder(message: str, height: int = 260) -> go.Figure:
    return figures.message_figure(message, height)


def overview(analysis: Analysis) -> go.Figure:
    fig = figures.overview_figure(analysis.pattern)
    fig.layout.height = int(np.clip(150 + 42 * analysis.n_layer, 380, 660))
    return fig


def detail(analysis: Analysis, layer: int, head: int | None, query: int) -> tuple[go.Figure, str]:
    """The head detail figure, and a note when it shows a window of a long prompt."""
    pattern = analysis.pattern[layer].mean(0) if head is None else analysis.pattern[layer, head]
    n = analysis.n_pos
    note = ""
    lo, hi = 0, n
    if n * n > DETAIL_MAX_CELLS:  # a window of query rows (each as long as its last) keeps it light
        rows = max(48, DETAIL_MAX_CELLS // n)
        lo = int(np.clip(query - rows // 2, 0, n - rows))
        hi = lo + rows
        note = (
            f"Showing query rows {lo}–{hi - 1} of {n} (around the selected query) so the figure stays "
            "light; pick another query token to move the window."
        )
    fig = figures.head_figure(
        pattern[lo:hi, :hi],
        list(analysis.tokens[:hi]),
        layer,
        head,
        query,
        max_labels=DETAIL_TICK_LABELS,
        height=620,
    )
    return fig, note


def thin_ticks(fig: go.Figure, max_labels: int) -> go.Figure:
    """Keep every k-th token label so that labels do not overlap in a panel of this app's size."""
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        values, text = list(axis.tickvals or ()), list(axis.ticktext or ())
        if len(values) > max_labels and len(values) == len(text):
            step = -(-len(values) // max_labels)
            axis.update(tickvals=values[::step], ticktext=text[::step])
    return fig


def _mean_or_head(pattern_lh: np.ndarray, head: int | None) -> np.ndarray:
    return pattern_lh.mean(0) if head is None else pattern_lh[head]


# --- Q/K/V step pictures -----------------------------------------------------------------


def _title(name: str) -> str:
    return views.STEP_BY_NAME[name].title


def _top_keys(bd: Breakdown, n: int) -> np.ndarray:
    return views.shown_keys(bd, n)


def _keys_figure(bd: Breakdown) -> go.Figure:
    keys = _top_keys(bd, 4)
    rows = np.vstack([bd.q[None], bd.k[keys]])
    labels = [f"Q_{bd.query} '{bd.tokens[bd.query]}'"] + [f"K_{j} '{bd.tokens[j]}'" for j in keys]
    return figures.vector_figure(rows, labels, "The query and the keys it weights most")


STEP_FIGURES: dict[str, Callable[[Breakdown], go.Figure]] = {
    "ln_1": lambda bd: figures.vector_figure(
        np.vstack([bd.x, bd.ln_1]),
        [views.symbol("x"), views.symbol("ln_1")],
        "Before and after the layer norm",
    ),
    "k": _keys_figure,
    "scaled": lambda bd: figures.scores_figure(
        {_title("scores"): bd.scores[: bd.query + 1], _title("scaled"): bd.scaled[: bd.query + 1]},
        list(bd.tokens),
        bd.query,
        lower=(),
        max_labels=STEP_TICK_LABELS,
        height=320,
    ),
    "pattern": lambda bd: figures.attention_row_figure(
        bd.pattern, list(bd.tokens), bd.query, max_labels=STEP_TICK_LABELS, height=320
    ),
    "context": lambda bd: figures.vector_figure(
        bd.context[None], [views.symbol("context")], _title("context")
    ),
    "heads_concat": lambda bd: figures.vector_figure(
        bd.heads_concat.reshape(-1, len(bd.context)),
        [
            f"head {h}" + (" ◀" if h == bd.head else "")
            for h in range(len(bd.heads_concat) // len(bd.context))
        ],
        "Each head's context (one row per head)",
    ),
}


@dataclass(frozen=True)
class StepPanel:
    name: str
    card: gr.HTML
    table: gr.HTML
    plot: gr.Plot | None


def step_updates(panels: Sequence[StepPanel], bd: Breakdown) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for number, panel in enumerate(panels, start=1):
        step = views.STEP_BY_NAME[panel.name]
        out[panel.card] = views.step_card(
            number, step, bd.deviation.get(panel.name), views.step_note(bd, panel.name)
        )
        out[panel.table] = views.table_html(views.step_table(bd, panel.name))
        if panel.plot is not None:
            out[panel.plot] = STEP_FIGURES[panel.name](bd)
    return out


# --- the app ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panels:
    """Every component the handlers write, grouped by panel."""

    model_md: gr.Markdown
    model_dd: gr.Dropdown
    tokens: gr.HTML
    overview: gr.Plot
    overview_click: gr.HTML  # a bridge: fires click with x, y of a click on the overview
    detail: gr.Plot
    detail_note: gr.Markdown
    selection: gr.Markdown
    steps: tuple[StepPanel, ...]
    gen_text: gr.HTML
    gen_step: gr.Markdown
    dist: gr.Plot
    gen_attn: gr.Plot
    timeline: gr.Plot
    bar_click: gr.HTML  # a bridge: fires click with the token_id of a clicked bar
    force_text: gr.Textbox


def build_app(
    model: str | None = None,
    device: str | None = None,
    hosted: bool = False,
    *,
    loaded: LoadedModel | None = None,
    cache_size: int = 2,
    extra_tabs: Sequence[Callable[[Context], None]] = (),
    load_in_background: bool = False,
) -> gr.Blocks:
    """The app, with `model` (see load_model) loaded and serving.

    `loaded` reuses an already loaded model; `extra_tabs` are called with the Context inside
    the tab bar, after the built-in tabs, to add their own `gr.Tab`s. `load_in_background`
    (a local model on the CPU or the automatic device) checks the model's folder now and loads
    it once `launch` has the server answering: importing torch and transformers and reading the
    weights take longer than building and serving the page, and a request that needs the model
    waits for it.
    """
    limits = Limits.for_mode(hosted)
    if hosted and model not in (None, *HOSTED_MODELS):
        raise ModelLoadError(f"In hosted mode only these models can be loaded: {', '.join(HOSTED_MODELS)}.")
    models = ModelCache(device, capacity=cache_size, loader=load_model)
    plan = plan_model(model) if load_in_background and loaded is None else None
    first: LoadedModel | ModelPlan
    # A device named outright may not exist here (only torch can tell): that load fails now.
    if plan is not None and plan.is_local and device in (None, "auto", "cpu"):
        first = plan
        key = model_key(plan, model)
    else:
        first = loaded or load_model(model, device=device)
        key = model_key(first, model)
        models.put(key, first)

    with gr.Blocks(title="Attention Explorer", fill_width=True) as demo:
        session = gr.State(Session(model=key))
        analyzed = gr.State(0)
        model_md, model_dd = _header(first, key, limits)
        bar = _lecture_bar()
        prompt, analyze_btn, examples = _prompt_panel()
        status = gr.Markdown("", elem_id="ae-status", elem_classes=["ae-status"])
        tokens, layer, head, mean, query = _selection_panel()
        ctx = Context(
            session=session,
            analyzed=analyzed,
            prompt=prompt,
            status=status,
            layer=layer,
            head=head,
            mean=mean,
            query=query,
            models=models,
            limits=limits,
            page_tab=gr.Textbox("", visible=False),
        )
        with gr.Tabs(elem_id="ae-tabs") as tabs:
            with gr.Tab("Attention heads", id=HEADS_TAB):
                overview_plot, detail_plot, detail_note = _heads_tab()
            with gr.Tab("Q/K/V step by step", id=STEPS_TAB):
                selection, steps = _steps_tab()
            with gr.Tab("Generate", id="generate", elem_id="ae-gen-tab"):
                gen = _generation_tab(limits)
            from explorer.insights_ui import build_insights_tabs  # imports this module: here, not on top

            build_insights_tabs(ctx, tabs)
            walk = _walkthrough_tab()
            exports = _export_tab()
            for extra in extra_tabs:
                extra(ctx)
        gr.Markdown(_footer(), elem_classes=["ae-footer"])
        tabs.select(None, js=SELECTION_VISIBILITY_JS)
        overview_click = plot_click_bridge("#ae-overview", "x: p.x, y: p.y")
        bar_click = plot_click_bridge("#ae-dist", "token_id: p.customdata")
        gen["timeline_click"] = plot_click_bridge("#ae-timeline", "step: p.x")

        panels = Panels(
            model_md=model_md,
            model_dd=model_dd,
            tokens=tokens,
            overview=overview_plot,
            overview_click=overview_click,
            detail=detail_plot,
            detail_note=detail_note,
            selection=selection,
            steps=steps,
            gen_text=gen["text"],
            gen_step=gen["step_md"],
            dist=gen["dist"],
            gen_attn=gen["attn"],
            timeline=gen["timeline"],
            bar_click=bar_click,
            force_text=gen["force_text"],
        )
        analysis_event = _wire_analysis(demo, ctx, panels, analyze_btn, examples)
        _wire_steps_tab(ctx, panels, tabs)
        _wire_generation(ctx, panels, gen)
        _wire_model(ctx, panels, analysis_event)
        _wire_export(ctx, exports)
        _wire_walkthrough(ctx, panels, gen, walk, bar["lang"], tabs)
        _wire_view_state(demo, ctx, panels, gen, bar, analysis_event)
        _free_on_close(demo)
    if not models.ready(key):
        _PRELOADS[demo] = lambda: models.preload(key, model)
    return demo


def _free_on_close(demo: gr.Blocks) -> None:
    """Drop a session's state as soon as its tab closes.

    Gradio would keep it for an hour, and one session's analysis and KV cache can take hundreds
    of MB (a 1024-token gpt2 analysis holds 576 MB of attention alone).
    """

    def free(request: gr.Request) -> None:
        holder = getattr(demo, "state_holder", None)
        state = holder.session_data.get(request.session_hash) if holder is not None else None
        if holder is None or state is None:
            return
        # A step still running when the tab closed writes the state back after this; with no time
        # to live once closed, Gradio's own sweep (every second) then drops it too.
        state.is_closed, state.STATE_TTL_WHEN_CLOSED = True, 0
        holder.delete_state(request.session_hash)

    demo.unload(free)


# --- layout -------------------------------------------------------------------------------


def _header(loaded: LoadedModel | ModelPlan, key: str, limits: Limits) -> tuple[gr.Markdown, gr.Dropdown]:
    with gr.Row(elem_id="ae-header", equal_height=True):
        with gr.Column(scale=3, min_width=360):
            gr.HTML(
                "<div class='ae-brand'><h1>Attention Explorer</h1><p>Watch GPT-2 read your prompt: every "
                "head, the attention arithmetic with the model's own numbers, and generation token by "
                "token.</p></div>"
            )
            model_md = gr.Markdown(_model_text(loaded, limits), elem_id="ae-model", elem_classes=["ae-model"])
        with gr.Column(scale=1, min_width=240):
            choices = list(MODEL_CHOICES)
            if key not in dict((v, v) for _, v in choices):
                choices.append((key, key))
            hint = (
                "Loading takes a moment" if limits.hosted else "Pick one, or type a hub id or folder + Enter"
            )
            model_dd = gr.Dropdown(
                choices=choices,
                value=key,
                label="Model",
                info=hint,
                allow_custom_value=not limits.hosted,
                elem_id="ae-model-picker",
            )
    return model_md, model_dd


def _model_text(loaded: LoadedModel | ModelPlan, limits: Limits) -> str:
    return views.model_markdown(
        loaded.name,
        loaded.reason,
        loaded.n_layer,
        loaded.n_head,
        loaded.n_ctx,
        loaded.device if isinstance(loaded, LoadedModel) else "loading …",
        loaded.is_bundled,
        limits.hosted,
    )


def load_examples() -> list[dict[str, str]]:
    path = assets_dir() / "examples.json"
    try:
        return [e for e in json.loads(path.read_text()) if e.get("prompt")]
    except (OSError, ValueError):
        log.warning("no examples at %s", path)
        return []


def _prompt_panel() -> tuple[gr.Textbox, gr.Button, Any]:
    examples = load_examples()
    with gr.Row(elem_id="ae-prompt-row", equal_height=True):
        prompt = gr.Textbox(
            value=examples[2]["prompt"] if len(examples) > 2 else "",
            label="Prompt",
            placeholder="Type some text for GPT-2 to read …",
            lines=2,
            max_lines=4,
            scale=6,
            elem_id="ae-prompt",
        )
        analyze_btn = gr.Button("Analyze", variant="primary", scale=1, min_width=140, elem_id="ae-analyze")
    ex = None
    if examples:
        ex = gr.Examples(
            examples=[[e["prompt"]] for e in examples],
            inputs=[prompt],
            example_labels=[e.get("label", e["prompt"][:30]) for e in examples],
            label="Examples (click one to analyze it)",
            elem_id="ae-examples",
        )
    return prompt, analyze_btn, ex


def _selection_panel() -> tuple[gr.HTML, gr.Slider, gr.Slider, gr.Checkbox, gr.Dropdown]:
    with gr.Group(elem_id="ae-selection"):
        tokens = gr.HTML(
            views.empty_html("Press Analyze to see the prompt's tokens."),
            elem_id="ae-tokens",
            js_on_load=TOKEN_CLICK_JS,
            padding=True,
        )
        with gr.Row(equal_height=True):
            layer = gr.Slider(0, 1, value=0, step=1, label="Layer", elem_id="ae-layer", min_width=200)
            head = gr.Slider(0, 1, value=0, step=1, label="Head", elem_id="ae-head", min_width=200)
            mean = gr.Checkbox(
                value=False, label="Mean over the layer's heads", elem_id="ae-mean", min_width=180
            )
            # Custom values let API clients pass any position; handlers clamp it to the prompt.
            query = gr.Dropdown(
                choices=[],
                value=None,
                label="Query token (the one doing the looking)",
                elem_id="ae-query",
                min_width=240,
                scale=2,
                allow_custom_value=True,
            )
    return tokens, layer, head, mean, query


def _heads_tab() -> tuple[gr.Plot, gr.Plot, gr.Markdown]:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(
                "**Every head at once.** Click a tile to open that head on the right.",
                elem_classes=["ae-help"],
            )
            overview_plot = gr.Plot(
                placeholder("The overview of every head appears here."),
                show_label=False,
                elem_id="ae-overview",
            )
        with gr.Column(scale=1, min_width=420):
            gr.Markdown(
                "**One head.** Each row is a query token, each column a key it may attend to; hover "
                "for the weight.",
                elem_classes=["ae-help"],
            )
            detail_plot = gr.Plot(
                placeholder("One head in detail appears here."), show_label=False, elem_id="ae-detail"
            )
            detail_note = gr.Markdown("", elem_classes=["ae-note"])
    return overview_plot, detail_plot, detail_note


def _steps_tab() -> tuple[gr.Markdown, tuple[StepPanel, ...]]:
    selection = gr.Markdown(
        "Analyze a prompt, then pick a layer, head and query token.",
        elem_id="ae-selection-line",
        elem_classes=["ae-selection-line"],
    )
    gr.HTML(views.steps_nav(), elem_id="ae-steps-nav")
    panels: list[StepPanel] = []
    for step in STEPS:
        with gr.Row(equal_height=False, elem_classes=["ae-step-row"], elem_id=f"ae-step-{step.name}"):
            with gr.Column(scale=2, min_width=300):
                card = gr.HTML(views.step_card(len(panels) + 1, step, None), elem_classes=["ae-card"])
            with gr.Column(scale=5, min_width=380):
                plot = None
                if step.name in STEP_FIGURES:
                    plot = gr.Plot(show_label=False, elem_classes=["ae-step-plot"])
                table = gr.HTML("", elem_classes=["ae-step-table"])
        panels.append(StepPanel(step.name, card, table, plot))
    return selection, tuple(panels)


def _generation_tab(limits: Limits) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            with gr.Row(elem_id="ae-gen-buttons"):
                c["step"] = gr.Button("Step", variant="primary", elem_id="ae-step", min_width=80)
                c["run"] = gr.Button("Run", variant="primary", elem_id="ae-run", min_width=80)
                c["stop"] = gr.Button("Stop", variant="stop", elem_id="ae-stop", min_width=80)
                c["rewind"] = gr.Button("⟲ Rewind", elem_id="ae-rewind", min_width=100)
                c["restart"] = gr.Button("↺ Restart", elem_id="ae-restart", min_width=100)
            c["text"] = gr.HTML(
                views.empty_html("Press Step to add one token to the prompt, or Run to add several."),
                elem_id="ae-gen-text",
                padding=True,
            )
            c["step_md"] = gr.Markdown("", elem_id="ae-gen-step")
            c["dist"] = gr.Plot(
                placeholder("The next-token distribution appears here."), show_label=False, elem_id="ae-dist"
            )
            gr.Markdown(
                "**Click a bar** to take that token instead of the chosen one, or type a token to add next:",
                elem_classes=["ae-help"],
            )
            with gr.Row(equal_height=True):
                c["force_text"] = gr.Textbox(
                    label="Force a token",
                    show_label=False,
                    placeholder="a token to add next, e.g. ␣Paris",
                    scale=4,
                    elem_id="ae-force-text",
                )
                c["force"] = gr.Button("Force", scale=1, min_width=90, elem_id="ae-force")
            c["timeline"] = gr.Plot(
                placeholder("Confidence per step appears here."), show_label=False, elem_id="ae-timeline"
            )
            gr.Markdown(
                "**Click a point** of the timeline to go back to that step.", elem_classes=["ae-help"]
            )
        with gr.Column(scale=2, min_width=340):
            with gr.Group():
                c["greedy"] = gr.Checkbox(
                    value=False, label="Greedy (always the most likely token)", elem_id="ae-greedy"
                )
                c["temperature"] = gr.Slider(
                    0,
                    2,
                    value=1.0,
                    step=0.05,
                    label="Temperature",
                    info="< 1 sharpens, > 1 flattens; 0 is greedy",
                    elem_id="ae-temp",
                )
                c["top_k"] = gr.Slider(
                    0,
                    100,
                    value=0,
                    step=1,
                    label="Top-k",
                    info="keep the k likeliest; 0 = off",
                    elem_id="ae-topk",
                )
                c["top_p"] = gr.Slider(
                    0.05,
                    1,
                    value=1.0,
                    step=0.05,
                    label="Top-p",
                    info="keep the likeliest until they sum to p; 1 = off",
                    elem_id="ae-topp",
                )
                with gr.Row():
                    c["seed"] = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="ae-seed")
                    c["n"] = gr.Slider(
                        1,
                        limits.max_run_tokens,
                        value=min(20, limits.max_run_tokens),
                        step=1,
                        label="Run length",
                        info="tokens per Run",
                        elem_id="ae-n",
                    )
            gr.Markdown("**Where the new token looked**", elem_classes=["ae-subhead"])
            with gr.Group(), gr.Row():
                c["attn_layer"] = gr.Slider(0, 1, value=0, step=1, label="Layer", elem_id="ae-gen-layer")
                c["attn_head"] = gr.Dropdown(
                    choices=[("mean over heads", -1)],
                    value=-1,
                    label="Head",
                    elem_id="ae-gen-head",
                    min_width=140,
                )
            c["attn"] = gr.Plot(
                placeholder("Where the new token looked."), show_label=False, elem_id="ae-gen-attn"
            )
    return c


def _footer() -> str:
    return (
        "Attention weights are the model's own, captured with hooks; every number in the step-by-step "
        "view is recomputed from the weights and checked against the model's tensors."
    )


# --- wiring: analysis ------------------------------------------------------------------


def _clamp(value: Any, top: int) -> int:
    try:
        return int(np.clip(int(value), 0, max(0, top - 1)))
    except (TypeError, ValueError):
        return 0


def _selection_outputs(
    panels: Panels, session: Session, layer: int, head: int, query: int, mean: bool
) -> dict[Any, Any]:
    analysis = _require_analysis(session)
    fig, note = detail(analysis, layer, None if mean else head, query)
    bd = breakdown(analysis, layer, head, query)
    out: dict[Any, Any] = {
        panels.detail: fig,
        panels.detail_note: note,
        panels.selection: views.selection_markdown(bd),
    }
    if not tab_hidden(session, STEPS_TAB):
        out |= step_updates(panels.steps, bd)
    return out


def _tokens(analysis: Analysis, query: int) -> str:
    return views.tokens_html(analysis.tokens, analysis.token_ids.tolist(), query, analysis.truncated)


def _require_analysis(session: Session) -> Analysis:
    if session.analysis is None:
        raise ExplorerError("Analyze a prompt first.")
    return session.analysis


def _wire_analysis(
    demo: gr.Blocks, ctx: Context, panels: Panels, analyze_btn: gr.Button, examples: Any
) -> dict[str, Any]:
    """Wire the analysis; returns the analysis event (fn, inputs, outputs, …) for a page-load chain."""
    status = ctx.status
    guard = guarded(status)
    selectors = [ctx.layer, ctx.head, ctx.query]
    analysis_outputs = [
        status,
        ctx.session,
        ctx.analyzed,
        panels.tokens,
        panels.overview,
        *selectors,
        *_selection_targets(panels),
    ]

    @guard
    def run_analysis(
        prompt: str,
        session: Session,
        analyzed: int,
        layer: Any,
        head: Any,
        mean: bool,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        loaded = ctx.models.get(session.model, _progress(progress))
        tokenize(loaded, prompt, ctx.limits.max_prompt_tokens)  # a bad prompt fails here, before…
        # …the old analysis is let go: two analyses of 1024 tokens would peak at 2.4 GB together.
        session.analysis = None
        progress(0.5, desc="Running the model …")
        with ctx.models.lock(loaded):
            analysis = analyze(loaded, prompt, max_tokens=ctx.limits.max_prompt_tokens)
        session.analysis = analysis
        layer, head = _clamp(layer, analysis.n_layer), _clamp(head, analysis.n_head)
        query = analysis.n_pos - 1
        out = {
            status: _analysis_status(analysis),
            ctx.session: session,
            ctx.analyzed: analyzed + 1,
            panels.tokens: _tokens(analysis, query),
            panels.overview: overview(analysis),
            ctx.layer: gr.update(
                maximum=max(1, analysis.n_layer - 1), value=layer, interactive=analysis.n_layer > 1
            ),
            ctx.head: gr.update(
                maximum=max(1, analysis.n_head - 1), value=head, interactive=analysis.n_head > 1
            ),
            ctx.query: gr.update(
                choices=[(f"{i} · {t}", i) for i, t in enumerate(analysis.tokens)], value=query
            ),
        }
        return out | _selection_outputs(panels, session, layer, head, query, mean)

    inputs = [ctx.prompt, ctx.session, ctx.analyzed, ctx.layer, ctx.head, ctx.mean]
    # Progress on the two figures only: Gradio otherwise lays a pending overlay over each of the
    # ~30 outputs, and drawing and removing those costs the browser more than the figures.
    busy = [panels.overview, panels.detail]
    common: dict[str, Any] = {
        "outputs": analysis_outputs,
        "concurrency_limit": CONCURRENCY,
        "concurrency_id": "analyze",
        "show_progress_on": busy,
    }
    analyze_btn.click(run_analysis, inputs, api_name="analyze", **common)
    ctx.prompt.submit(run_analysis, inputs, api_visibility="private", **common)
    if examples is not None:
        examples.load_input_event.then(run_analysis, inputs, api_visibility="private", **common)
    # The example prompt (or a shared link's) is analyzed on page load: see _wire_view_state.

    selection_outputs = [status, panels.tokens, *_selection_targets(panels)]

    @guard
    def select(session: Session, layer: Any, head: Any, query: Any, mean: bool) -> dict[Any, Any]:
        analysis = _require_analysis(session)
        layer, head, query = (
            _clamp(layer, analysis.n_layer),
            _clamp(head, analysis.n_head),
            _clamp(query, analysis.n_pos),
        )
        out = {status: "", panels.tokens: _tokens(analysis, query)}
        return out | _selection_outputs(panels, session, layer, head, query, bool(mean))

    sel_inputs = [ctx.session, ctx.layer, ctx.head, ctx.query, ctx.mean]
    sel: dict[str, Any] = {
        "outputs": selection_outputs,
        "concurrency_limit": CONCURRENCY,
        "trigger_mode": "always_last",
        "show_progress_on": [panels.detail],
    }
    ctx.query.input(select, sel_inputs, api_name="breakdown", **sel)
    for component in (ctx.layer, ctx.head, ctx.mean):
        component.input(select, sel_inputs, api_visibility="private", **sel)

    @guard
    def open_head(session: Session, query: Any, evt: gr.EventData) -> dict[Any, Any]:
        analysis = _require_analysis(session)
        try:
            x, y = float(evt.x), float(evt.y)  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return gr.skip()
        tile = figures.overview_tile(analysis.n_pos, analysis.n_layer, analysis.n_head)
        hit = figures.overview_cell_to_head(x, y, analysis.n_layer, analysis.n_head, tile)
        layer, head = hit if hit else (_clamp(round(y), analysis.n_layer), _clamp(round(x), analysis.n_head))
        query = _clamp(query, analysis.n_pos)
        out = {status: "", ctx.layer: layer, ctx.head: head, ctx.mean: False}
        return out | _selection_outputs(panels, session, layer, head, query, False)

    panels.overview_click.click(
        open_head,
        [ctx.session, ctx.query],
        [status, ctx.layer, ctx.head, ctx.mean, *_selection_targets(panels)],
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress_on=[panels.detail],
    )

    @guard
    def pick_token(session: Session, layer: Any, head: Any, mean: bool, evt: gr.EventData) -> dict[Any, Any]:
        analysis = _require_analysis(session)
        query = _clamp(getattr(evt, "pos", None) if evt else None, analysis.n_pos)
        layer, head = _clamp(layer, analysis.n_layer), _clamp(head, analysis.n_head)
        out = {status: "", ctx.query: query, panels.tokens: _tokens(analysis, query)}
        return out | _selection_outputs(panels, session, layer, head, query, bool(mean))

    panels.tokens.click(
        pick_token,
        [ctx.session, ctx.layer, ctx.head, ctx.mean],
        [status, ctx.query, panels.tokens, *_selection_targets(panels)],
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress_on=[panels.detail],
    )

    return {"fn": run_analysis, "inputs": inputs, **common}


def _wire_steps_tab(ctx: Context, panels: Panels, tabs: gr.Tabs) -> None:
    """Record which tab shows, and fill the Q/K/V tab when it opens."""
    step_targets = [t for step in panels.steps for t in (step.card, step.table, step.plot) if t is not None]

    @guarded(ctx.status)
    def on_tab(session: Session, layer: Any, head: Any, query: Any, evt: gr.SelectData) -> dict[Any, Any]:
        session.shown_tab = str(getattr(evt, "id", None))
        out: dict[Any, Any] = {ctx.session: session}
        analysis = session.analysis
        if session.shown_tab != STEPS_TAB or analysis is None:
            return out
        layer, head = _clamp(layer, analysis.n_layer), _clamp(head, analysis.n_head)
        return out | step_updates(
            panels.steps, breakdown(analysis, layer, head, _clamp(query, analysis.n_pos))
        )

    tabs.select(
        on_tab,
        [ctx.session, ctx.layer, ctx.head, ctx.query],
        [ctx.status, ctx.session, *step_targets],
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress="hidden",
    )


def _selection_targets(panels: Panels) -> list[Any]:
    targets: list[Any] = [panels.detail, panels.detail_note, panels.selection]
    for step in panels.steps:
        targets += [step.card, step.table] + ([step.plot] if step.plot is not None else [])
    return targets


def _analysis_status(analysis: Analysis) -> str:
    text = (
        f"Analyzed {analysis.n_pos} tokens with {views.esc(analysis.model_name)}: "
        f"{analysis.n_layer} layers × {analysis.n_head} heads."
    )
    if analysis.truncated:
        text += f" The prompt was cut: {analysis.truncated} tokens did not fit."
    return f"<span class='ae-ok-text'>✓ {text}</span>"


# --- wiring: generation --------------------------------------------------------------------


def _settings(greedy: bool, temperature: float, top_k: float, top_p: float, seed: Any) -> dict[str, Any]:
    return {
        "greedy": bool(greedy),
        "temperature": temperature,
        "top_k": 0 if top_k is None else top_k,  # the session checks it (NaN from the API)
        "top_p": top_p,
        "seed": 0 if seed is None else seed,
    }


def _ensure_generation(
    ctx: Context, session: Session, prompt: str, settings: dict[str, Any]
) -> tuple[GenerationSession, bool]:
    """The session's generation, started afresh when the prompt or the model changed."""
    gen = session.generation
    if gen is not None and session.gen_prompt == prompt and model_key_of(gen) == session.model:
        return gen, False
    loaded = ctx.models.get(session.model)
    text, cut = _cut_prompt(loaded, prompt, ctx.limits.max_prompt_tokens)
    with ctx.models.lock(loaded):
        gen = GenerationSession(loaded, text, max_new_tokens=ctx.limits.max_new_tokens, **settings)
    gen.app_model_key = session.model  # type: ignore[attr-defined]
    session.generation, session.gen_prompt, session.steps, session.token_text = gen, prompt, {}, {}
    session.gen_cut = cut + gen.truncated
    return gen, True


def model_key_of(gen: GenerationSession) -> str | None:
    return getattr(gen, "app_model_key", None)


def _cut_prompt(loaded: LoadedModel, prompt: str, limit: int | None) -> tuple[str, int]:
    """The prompt cut to `limit` tokens (None: no limit), and how many tokens were cut."""
    if limit is None or not isinstance(prompt, str):
        return prompt, 0
    ids = loaded.tokenizer(clean_text(prompt))["input_ids"]
    if len(ids) <= limit:
        return prompt, 0
    return loaded.tokenizer.decode(ids[:limit]), len(ids) - limit


def _attention_figure(
    session: Session, gen: GenerationSession, result: StepResult, layer: Any, head: Any
) -> go.Figure:
    """The attention row of the step shown, always the newest token (see `_remember`)."""
    pattern = gen.last_pattern  # [layer, head, key]
    layer = _clamp(layer, pattern.shape[0])
    head_i = None if head in (None, -1, "-1") else _clamp(head, pattern.shape[1])
    row = _mean_or_head(pattern[layer], head_i)
    which = "mean over heads" if head_i is None else f"head {head_i}"
    return figures.attention_row_figure(
        row,
        _display(session, gen, gen.ids[: result.position + 1]),
        result.position,
        title=f"New token '{result.display}': layer {layer}, {which}",
        max_labels=GEN_TICK_LABELS,
        hover_tokens=GEN_HOVER_KEYS,  # per-bar token hover text would dominate a long step's update
        height=300,
    )


def _display(session: Session, gen: GenerationSession, ids: Sequence[int]) -> list[str]:
    """Display strings of token ids, remembered per id: a step names up to n_ctx tokens."""
    known = session.token_text
    missing = [i for i in dict.fromkeys(ids) if i not in known]
    if missing:
        known.update(zip(missing, display_tokens(gen.tokenizer, missing), strict=True))
    return [known[i] for i in ids]


def _preview_figure(gen: GenerationSession) -> go.Figure:
    raw, warped = gen.distributions()
    frames = []
    for probs in (raw, warped):
        top = np.argpartition(-probs, TOP_K_SHOWN)[:TOP_K_SHOWN]  # no full sort of the vocabulary
        top = top[np.argsort(-probs[top])]
        top = top[probs[top] > 0]
        frames.append(views.top_table(display_tokens(gen.tokenizer, top), top, probs[top]))
    return distribution(frames[0], frames[1], None, "Next token: not chosen yet")


def distribution(raw: Any, warped: Any, chosen: int | None, title: str) -> go.Figure:
    """figures.distribution_figure, a little shorter, with ticks fine enough for small probabilities."""
    top = max(
        float(raw["prob"].max()) if len(raw) else 0.0, float(warped["prob"].max()) if len(warped) else 0.0
    )
    rows = len(set(raw["token_id"]) | set(warped["token_id"]))
    return figures.distribution_figure(
        raw,
        warped,
        chosen,
        title=title,
        xaxis={"tickformat": ".0%" if top >= 0.1 else ".1%" if top >= 0.01 else ".2%"},
        height=130 + 21 * rows * 2,
    )


def _timeline(gen: GenerationSession) -> go.Figure:
    if not gen.history:
        return placeholder("Confidence per step appears here.", height=300)
    items = gen.history
    return figures.timeline_figure(
        [h.prob for h in items],
        [h.entropy for h in items],
        [h.display for h in items],
        max_labels=GEN_TICK_LABELS,
        height=300,
    )


def _generation_view(
    panels: Panels,
    session: Session,
    gen: GenerationSession,
    result: StepResult | None,
    layer: Any,
    head: Any,
) -> dict[Any, Any]:
    prompt_text = gen.tokenizer.decode(gen.ids[: gen.prompt_len])
    pieces = [gen.tokenizer.decode([i]) for i in gen.generated]
    forced = [h.forced for h in gen.history]
    out: dict[Any, Any] = {
        panels.gen_text: views.generation_html(prompt_text, pieces, forced),
        panels.timeline: _timeline(gen),
    }
    if result is None:
        out[panels.dist] = _preview_figure(gen)
        out[panels.gen_attn] = placeholder("Step to see where the new token looks.", height=300)
        out[panels.gen_step] = (
            f"{len(gen.generated)} tokens generated. The chart shows the distribution "
            "for the next token; press **Step** to choose it."
        )
    else:
        step_no = len(gen.generated)
        out[panels.dist] = distribution(
            result.raw_top, result.warped_top, result.token_id, f"Step {step_no}: the next-token distribution"
        )
        out[panels.gen_attn] = _attention_figure(session, gen, result, layer, head)
        out[panels.gen_step] = views.step_summary(
            result.position,
            result.display,
            result.prob,
            result.warped_prob,
            result.entropy,
            result.forced,
            result.finished,
            greedy=gen.greedy,
        )
    return out


def _remember(session: Session, result: StepResult) -> None:
    """Keep recent steps to show again after a rewind, without their attention rows: the row
    shown is always the newest token's, the generation's `last_pattern`, which a rewind
    computes again. (64 rows would grow with every token: 37 MB for GPT-2 small at 1024.)"""
    session.steps[result.position] = replace(result, pattern=NO_ROW)
    for position in sorted(session.steps)[:-KEPT_STEPS]:
        del session.steps[position]


def _wire_generation(ctx: Context, panels: Panels, c: dict[str, Any]) -> None:
    status = ctx.status
    guard, guard_stream = guarded(status), guarded_stream(status)
    settings = [c["greedy"], c["temperature"], c["top_k"], c["top_p"], c["seed"]]
    view = [c["attn_layer"], c["attn_head"]]
    outputs = [
        status,
        ctx.session,
        panels.gen_text,
        panels.gen_step,
        panels.dist,
        panels.gen_attn,
        panels.timeline,
        c["attn_layer"],
        c["attn_head"],
    ]

    def attn_selectors(gen: GenerationSession, layer: Any, head: Any) -> dict[Any, Any]:
        n_layer, n_head = gen.loaded.n_layer, gen.loaded.n_head
        return {
            c["attn_layer"]: gr.update(maximum=max(1, n_layer - 1), value=_clamp(layer, n_layer)),
            c["attn_head"]: gr.update(
                choices=[("mean over heads", -1)] + [(f"head {h}", h) for h in range(n_head)]
            ),
        }

    def one_step(
        prompt: str, session: Session, settings_values: Sequence[Any], force: int | str | None = None
    ) -> tuple[GenerationSession, StepResult, bool]:
        gen, fresh = _ensure_generation(ctx, session, prompt, _settings(*settings_values))
        gen.configure(**_settings(*settings_values))
        with ctx.models.lock(gen.loaded):
            result = gen.step() if force is None else gen.force(force)
        _remember(session, result)
        if result.position % TRIM_EVERY == 0:
            release_free_memory()
        return gen, result, fresh

    def respond(
        session: Session,
        gen: GenerationSession,
        result: StepResult | None,
        layer: Any,
        head: Any,
        fresh: bool,
        message: str = "",
    ) -> dict[Any, Any]:
        if fresh and not message:
            message = f"Generating from the prompt ({gen.prompt_len} tokens)."
            if session.gen_cut:
                message += f" The prompt was cut: {session.gen_cut} tokens did not fit."
        session.shown_position = len(gen.ids) if result is None else result.position
        out = {status: message, ctx.session: session}
        # Values, not an omitted output, once the ranges are set: Gradio treats an omitted output
        # as an empty update and keeps a new copy of that component in the session for each one
        # (two per step, for good, as these are inputs too).
        kept = {c["attn_layer"]: _clamp(layer, gen.loaded.n_layer), c["attn_head"]: head}
        out |= attn_selectors(gen, layer, head) if fresh else kept
        return out | _generation_view(panels, session, gen, result, layer, head)

    @guard
    def step(
        prompt: str,
        session: Session,
        greedy: bool,
        temperature: float,
        top_k: float,
        top_p: float,
        seed: Any,
        layer: Any,
        head: Any,
    ) -> dict[Any, Any]:
        gen, result, fresh = one_step(prompt, session, (greedy, temperature, top_k, top_p, seed))
        return respond(session, gen, result, layer, head, fresh)

    @guard_stream
    def run(
        prompt: str,
        session: Session,
        n: Any,
        greedy: bool,
        temperature: float,
        top_k: float,
        top_p: float,
        seed: Any,
        layer: Any,
        head: Any,
    ) -> Iterator[dict[Any, Any]]:
        count = int(np.clip(int(n or 1), 1, ctx.limits.max_run_tokens))
        for i in range(count):
            gen, result, fresh = one_step(prompt, session, (greedy, temperature, top_k, top_p, seed))
            yield respond(session, gen, result, layer, head, fresh and i == 0)
            if result.finished:
                break

    @guard
    def force(
        token: str,
        prompt: str,
        session: Session,
        greedy: bool,
        temperature: float,
        top_k: float,
        top_p: float,
        seed: Any,
        layer: Any,
        head: Any,
    ) -> dict[Any, Any]:
        if not token:
            raise ExplorerError("Type the token to force, or click a bar of the distribution.")
        token = token.replace("␣", " ").replace("↵", "\n")
        gen, result, fresh = one_step(prompt, session, (greedy, temperature, top_k, top_p, seed), token)
        return respond(session, gen, result, layer, head, fresh)

    @guard
    def force_id(
        prompt: str,
        session: Session,
        greedy: bool,
        temperature: float,
        top_k: float,
        top_p: float,
        seed: Any,
        layer: Any,
        head: Any,
        evt: gr.EventData,
    ) -> dict[Any, Any]:
        try:
            token_id = int(evt.token_id)  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError) as err:
            raise ExplorerError("That bar has no token to force.") from err
        # The chart shows the distribution a token was drawn from: a bar there replaces that token.
        gen, shown = session.generation, session.shown_position
        message = ""
        if gen is not None and shown is not None and session.gen_prompt == prompt and shown < len(gen.ids):
            take_back(session, gen, len(gen.ids) - shown)
            message = "Replaced the chosen token with the one you clicked."
        gen, result, fresh = one_step(prompt, session, (greedy, temperature, top_k, top_p, seed), token_id)
        return respond(session, gen, result, layer, head, fresh, message)

    def take_back(session: Session, gen: GenerationSession, n: int) -> None:
        with ctx.models.lock(gen.loaded):
            gen.rewind(n)
        for position in [p for p in session.steps if p >= len(gen.ids)]:
            del session.steps[position]

    @guard
    def rewind(session: Session, layer: Any, head: Any) -> dict[Any, Any]:
        gen = session.generation
        if gen is None or not gen.generated:
            raise ExplorerError("Nothing to rewind: no tokens have been generated yet.")
        return back_to(session, gen, len(gen.generated) - 1, layer, head)

    def back_to(session: Session, gen: GenerationSession, keep: int, layer: Any, head: Any) -> dict[Any, Any]:
        """Keep the first `keep` generated tokens and show the last kept step again."""
        removed = len(gen.generated) - keep
        take_back(session, gen, removed)
        result = session.steps.get(len(gen.ids) - 1) if gen.generated else None
        noun = "token" if removed == 1 else "tokens"
        message = f"Took back {removed} {noun}; {len(gen.generated)} generated tokens remain."
        return respond(session, gen, result, layer, head, False, message)

    @guard
    def rewind_to(session: Session, layer: Any, head: Any, evt: gr.EventData) -> dict[Any, Any]:
        gen = session.generation
        try:
            step = int(round(float(evt.step)))  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return gr.skip()
        if gen is None or not 0 <= step < len(gen.generated) - 1:
            return gr.skip()  # the last point: nothing to take back
        return back_to(session, gen, step + 1, layer, head)

    @guard
    def restart(
        prompt: str,
        session: Session,
        greedy: bool,
        temperature: float,
        top_k: float,
        top_p: float,
        seed: Any,
        layer: Any,
        head: Any,
    ) -> dict[Any, Any]:
        session.generation = None
        gen, fresh = _ensure_generation(
            ctx, session, prompt, _settings(greedy, temperature, top_k, top_p, seed)
        )
        return respond(session, gen, None, layer, head, True, "Starting again from the prompt.")

    @guard
    def configure(
        session: Session, greedy: bool, temperature: float, top_k: float, top_p: float, seed: Any
    ) -> dict[Any, Any]:
        gen = session.generation
        if gen is None:
            return {status: ""}
        gen.configure(**_settings(greedy, temperature, top_k, top_p, seed))
        session.shown_position = len(gen.ids)
        return {
            status: "",
            panels.dist: _preview_figure(gen),
            panels.gen_step: "Settings changed: the chart now shows the next token's distribution with them.",
        }

    @guard
    def show_attention(session: Session, layer: Any, head: Any) -> dict[Any, Any]:
        gen = session.generation
        result = session.steps.get(len(gen.ids) - 1) if gen is not None else None
        if gen is None or result is None:
            return gr.skip()
        return {panels.gen_attn: _attention_figure(session, gen, result, layer, head)}

    gen_inputs = [ctx.prompt, ctx.session, *settings, *view]
    limit: dict[str, Any] = {"concurrency_limit": CONCURRENCY, "concurrency_id": "generate"}
    c["step"].click(step, gen_inputs, outputs, api_name="step", **limit)
    run_event = c["run"].click(
        run, [ctx.prompt, ctx.session, c["n"], *settings, *view], outputs, api_name="run", **limit
    )
    c["stop"].click(None, None, None, cancels=[run_event], api_visibility="private")
    c["force"].click(force, [c["force_text"], *gen_inputs], outputs, api_name="force", **limit)
    c["force_text"].submit(force, [c["force_text"], *gen_inputs], outputs, api_visibility="private", **limit)
    panels.bar_click.click(force_id, gen_inputs, outputs, api_visibility="private", **limit)
    c["rewind"].click(rewind, [ctx.session, *view], outputs, api_name="rewind", **limit)
    c["timeline_click"].click(rewind_to, [ctx.session, *view], outputs, api_visibility="private", **limit)
    c["restart"].click(restart, gen_inputs, outputs, api_name="restart", **limit)
    for component in settings:
        component.input(
            configure,
            [ctx.session, *settings],
            [status, panels.dist, panels.gen_step],
            api_visibility="private",
            trigger_mode="always_last",
        )
    for component in view:
        component.input(
            show_attention,
            [ctx.session, *view],
            [panels.gen_attn],
            api_visibility="private",
            trigger_mode="always_last",
        )


# --- wiring: model picker ------------------------------------------------------------------


def _wire_model(ctx: Context, panels: Panels, analysis_event: dict[str, Any]) -> None:
    """The model picker: load (the previous model keeps serving on failure), then analyze again."""
    status = ctx.status

    def load(choice: str, session: Session, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        choice = (choice or "").strip()
        previous = session.model
        try:
            if not choice:
                raise ModelLoadError("Choose a model.")
            if ctx.limits.hosted and choice not in HOSTED_MODELS:
                raise ModelLoadError(f"This hosted app can load only {', '.join(HOSTED_MODELS)}.")
            loaded = ctx.models.get(choice, _progress(progress))
        except Exception as err:  # noqa: BLE001
            if not isinstance(err, ExplorerError):
                log.exception("loading %r failed", choice)
            message = _message(err) + " The previous model keeps serving."
            _warn(message)
            return {status: _status_error(message), panels.model_dd: gr.update(value=previous)}
        key = model_key(loaded, choice)
        if key != choice:
            ctx.models.put(key, loaded)
        session.model, session.generation, session.analysis = key, None, None
        return {
            status: f"<span class='ae-ok-text'>✓ {views.esc(loaded.name)} is loaded.</span>",
            ctx.session: session,
            panels.model_md: _model_text(loaded, ctx.limits),
            panels.model_dd: gr.update(value=key),
            panels.gen_text: views.empty_html(
                "Press Step to add one token to the prompt, or Run to add several."
            ),
            panels.gen_step: "",
        }

    def reanalyze(*args: Any, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        prompt, session = args[0], args[1]
        if session.analysis is not None or not isinstance(prompt, str) or not prompt.strip():
            return gr.skip()  # the load failed (the old analysis stands), or there is nothing to analyze
        return analysis_event["fn"](*args, progress=progress)

    panels.model_dd.input(
        load,
        [panels.model_dd, ctx.session],
        [status, ctx.session, panels.model_md, panels.model_dd, panels.gen_text, panels.gen_step],
        api_name="load_model",
        concurrency_limit=2,
    ).then(
        reanalyze,
        analysis_event["inputs"],
        analysis_event["outputs"],
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress_on=analysis_event["show_progress_on"],
    )


# --- lecture mode, the walk-through, shareable links and exports (#8) ----------------------

I18N = gr.I18n(**{lang: dict(text) for lang, text in lecture.UI_TEXT.items()})
EXPORT_KINDS = {  # kind -> (button label, file extension)
    "head_csv": ("Selected head (CSV)", "csv"),
    "attention_npz": ("All heads (NPZ)", "npz"),
    "breakdown_csv": ("Q/K/V steps (CSV)", "csv"),
    "breakdown_json": ("Q/K/V steps (JSON)", "json"),
    "history_csv": ("Generation (CSV)", "csv"),
    "history_json": ("Generation (JSON)", "json"),
    "report": ("Offline report (HTML)", "html"),
}


def _lecture_bar() -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row(elem_id="ae-lecture-bar", equal_height=True):
        c["lecture"] = gr.Checkbox(
            False, label=I18N("Lecture mode"), elem_id="ae-lecture", container=False, scale=0, min_width=0
        )
        c["dark"] = gr.Checkbox(
            False, label=I18N("Dark"), elem_id="ae-dark", container=False, scale=0, min_width=0
        )
        c["lang"] = gr.Radio(
            list(lecture.LANGUAGE_CHOICES),
            value="en",
            label=I18N("Walk-through language"),
            show_label=False,
            container=False,
            elem_id="ae-lang",
            scale=0,
            min_width=0,
        )
        c["copy"] = gr.Button(I18N("Copy link"), elem_id="ae-copy-link", size="sm", scale=0, min_width=0)
    return c


def _walkthrough_tab() -> gr.HTML:
    with gr.Tab(I18N("Walk-through"), id=WALK_TAB, elem_id="ae-walk-tab"):
        return gr.HTML(lecture.walkthrough_html(None, None), elem_id="ae-walk", padding=True)


def _export_tab() -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Tab(I18N("Export"), id="export", elem_id="ae-export-tab"):
        gr.Markdown(
            "**Figures:** hover a plot; its toolbar downloads it as PNG (camera) or SVG (arrow), named "
            "after what it shows. **Data** of the current selection and generation:",
            elem_classes=["ae-help"],
        )
        with gr.Row(elem_id="ae-export-buttons"):
            for kind, (label, _) in EXPORT_KINDS.items():
                c[kind] = gr.Button(
                    label,
                    variant="primary" if kind == "report" else "secondary",
                    elem_id=f"ae-export-{kind}",
                    size="md",
                    min_width=150,
                )
        c["file"] = gr.File(label="Download", elem_id="ae-export-file", interactive=False)
    return c


def _generation_settings(session: Session) -> dict[str, Any]:
    gen = session.generation
    if gen is None:
        return {}
    keys = ("temperature", "top_k", "top_p", "seed", "greedy")
    return {"model": model_key_of(gen), **{k: getattr(gen, k) for k in keys}}


def export_file(kind: str, session: Session, layer: Any, head: Any, query: Any) -> str:
    """Write one download for the session's analysis (or generation) and return its path."""
    gen = session.generation
    history = list(gen.history) if gen is not None else []
    if kind.startswith("history"):
        if not history:
            raise ExplorerError("Nothing to export yet: generate some tokens first.")
        stem = "generation-history"
        data: bytes = (
            export.history_csv(history)
            if kind == "history_csv"
            else export.history_json(
                history, prompt=session.gen_prompt, settings=_generation_settings(session)
            )
        )
    else:
        analysis = _require_analysis(session)
        layer, head = _clamp(layer, analysis.n_layer), _clamp(head, analysis.n_head)
        query = _clamp(query, analysis.n_pos)
        if kind == "head_csv":
            stem, data = export.file_stem("attention", layer, head), export.head_csv(analysis, layer, head)
        elif kind == "attention_npz":  # written as it is made: the whole square is 604 MB for gpt2 at 1024
            path = Path(_export_folder()) / "attention-all.npz"
            export.write_attention_npz(analysis, path)
            return str(path)
        elif kind == "report":
            stem = export.file_stem("report", layer, head, query)
            data = export.report_html(
                analysis, layer=layer, head=head, query=query, history=history or None
            ).encode("utf-8")
        else:
            bd = breakdown(analysis, layer, head, query)
            stem = export.file_stem("breakdown", layer, head, query)
            data = export.breakdown_csv(bd) if kind == "breakdown_csv" else export.breakdown_json(bd)
    return str(export.write(data, _export_folder(), f"{stem}.{EXPORT_KINDS[kind][1]}"))


_EXPORTS_KEPT = 32  # Gradio copies each file into its own cache on return; ours are scratch
_exports: tempfile.TemporaryDirectory[str] | None = None
_exports_lock = threading.Lock()


def _export_folder() -> str:
    """A fresh folder for one download, under one per-process folder removed at exit.

    Each download gets its own folder so that two users' files of the same name never meet;
    only the latest `_EXPORTS_KEPT` are kept, so a long-running server does not fill its disk.
    """
    global _exports
    with _exports_lock:
        if _exports is None:
            _exports = tempfile.TemporaryDirectory(prefix="attention-explorer-")
        root = Path(_exports.name)
        folders = sorted(root.iterdir(), key=lambda f: f.stat().st_mtime)
        for old in folders[: max(0, len(folders) - _EXPORTS_KEPT + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return tempfile.mkdtemp(dir=root)


def _wire_export(ctx: Context, c: dict[str, Any]) -> None:
    guard = guarded(ctx.status)

    def handler(kind: str) -> Callable[..., dict[Any, Any]]:
        @guard
        def run(session: Session, layer: Any, head: Any, query: Any) -> dict[Any, Any]:
            path = export_file(kind, session, layer, head, query)
            return {ctx.status: "", c["file"]: path}

        return run

    for kind in EXPORT_KINDS:
        c[kind].click(
            handler(kind),
            [ctx.session, ctx.layer, ctx.head, ctx.query],
            [ctx.status, c["file"]],
            api_name=f"export_{kind}",
            concurrency_limit=CONCURRENCY,
        )


def _walkthrough(
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
    analysis = session.analysis
    if analysis is None:
        return lecture.walkthrough_html(None, None, lang)
    layer, head = _clamp(layer, analysis.n_layer), _clamp(head, analysis.n_head)
    bd = breakdown(analysis, layer, head, _clamp(query, analysis.n_pos))
    try:
        sampling = lecture.Sampling(float(temperature), int(top_k or 0), float(top_p), bool(greedy))
    except (TypeError, ValueError):
        sampling = lecture.Sampling()
    gen = session.generation
    last = (gen.history[-1].display, gen.history[-1].prob) if gen is not None and gen.history else None
    return lecture.walkthrough_html(analysis, bd, lang, sampling, last)


def _wire_walkthrough(
    ctx: Context, panels: Panels, gen: dict[str, Any], walk: gr.HTML, lang: gr.Radio, tabs: gr.Tabs
) -> None:
    settings = [gen["greedy"], gen["temperature"], gen["top_k"], gen["top_p"]]
    triggers = [ctx.analyzed, ctx.layer, ctx.head, ctx.query, lang, panels.gen_text, *settings]
    inputs = [ctx.session, ctx.layer, ctx.head, ctx.query, lang, *settings]

    @guarded(ctx.status)
    def show(session: Session, *args: Any) -> dict[Any, Any]:
        return {walk: _walkthrough(session, *args)}

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


def _view_components(
    ctx: Context, panels: Panels, gen: dict[str, Any], bar: dict[str, Any]
) -> dict[str, Any]:
    """The component behind each key of a shared link (lecture.VIEW_KEYS)."""
    return {
        "prompt": ctx.prompt,
        "model": panels.model_dd,
        "layer": ctx.layer,
        "head": ctx.head,
        "query": ctx.query,
        "mean": ctx.mean,
        "greedy": gen["greedy"],
        "temperature": gen["temperature"],
        "top_k": gen["top_k"],
        "top_p": gen["top_p"],
        "seed": gen["seed"],
        "lang": bar["lang"],
        "lecture": bar["lecture"],
        "dark": bar["dark"],
    }


def _wire_view_state(
    demo: gr.Blocks,
    ctx: Context,
    panels: Panels,
    gen: dict[str, Any],
    bar: dict[str, Any],
    analysis_event: dict[str, Any],
) -> None:
    """On page load: the link's view (prompt, model, selection, settings) restored; on every change:
    the link updated. Replaces a plain analysis of the example prompt on load."""
    components = _view_components(ctx, panels, gen, bar)
    assert tuple(components) == lecture.VIEW_KEYS
    pending = gr.State(None)  # the View, until the analysis it needs has run
    status = ctx.status
    at_once = ("greedy", "temperature", "top_k", "top_p", "seed", "lang", "lecture", "dark")
    restored = [components[key] for key in ("prompt", *at_once)]

    def restore(prompt: str, session: Session, request: gr.Request) -> dict[Any, Any]:
        view = lecture.parse_view(dict(request.query_params) if request else {})
        session.shown_tab = HEADS_TAB  # a page opens on the heads tab: see Session.shown_tab
        out: dict[Any, Any] = {pending: view, ctx.session: session}
        if view.prompt is not None:
            out[ctx.prompt] = view.prompt
        for key in at_once:
            value = getattr(view, key)
            if value is not None:
                out[components[key]] = value
        if view.lang is None:
            accept = request.headers.get("accept-language") if request else None
            out[bar["lang"]] = lecture.language_from_header(accept)
        if view.model and view.model != session.model:
            out |= _switch_model(ctx, panels, session, view.model)
        return out

    def analyze_if_prompt(*args: Any, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        prompt, session = args[0], args[1]
        if not ctx.models.ready(session.model):  # the server is still loading it (load_in_background)
            progress(0.1, desc="Loading the model …")
        # The page's header was built before the model loaded (see build_app): say what it is.
        out = model_text(session)
        if panels.model_md not in out:  # the status line says why
            name = views.esc(session.model)
            return out | {panels.model_md: f"**Model: {name}** · could not be loaded (see the message below)"}
        if isinstance(prompt, str) and prompt.strip():
            out |= analysis_event["fn"](*args, progress=progress)
        return out

    @guarded(status)
    def model_text(session: Session) -> dict[Any, Any]:
        return {ctx.status: "", panels.model_md: _model_text(ctx.models.get(session.model), ctx.limits)}

    @guarded(status)
    def select(session: Session, view: lecture.View | None, mean: bool) -> dict[Any, Any]:
        analysis = session.analysis
        if analysis is None or view is None or (view.layer, view.head, view.query, view.mean) == (None,) * 4:
            return {pending: None}
        layer = _clamp(view.layer or 0, analysis.n_layer)
        head = _clamp(view.head or 0, analysis.n_head)
        query = _clamp(analysis.n_pos - 1 if view.query is None else view.query, analysis.n_pos)
        mean = bool(mean if view.mean is None else view.mean)
        out: dict[Any, Any] = {ctx.layer: layer, ctx.head: head, ctx.mean: mean, ctx.query: query}
        out |= {panels.tokens: _tokens(analysis, query), pending: None}
        return out | _selection_outputs(panels, session, layer, head, query, mean)

    event = analysis_event
    demo.load(
        restore,
        [ctx.prompt, ctx.session],
        [pending, *restored, ctx.session, status, panels.model_dd, panels.model_md],
        api_visibility="private",
    ).then(
        analyze_if_prompt,
        event["inputs"],
        [*event["outputs"], panels.model_md],
        api_visibility="private",
        concurrency_limit=event["concurrency_limit"],
        concurrency_id=event["concurrency_id"],
        show_progress_on=event["show_progress_on"],
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
            panels.tokens,
            *_selection_targets(panels),
        ],
        api_visibility="private",
        show_progress="hidden",  # usually nothing to do; a shared link's selection is quick
    )
    values = list(components.values())
    gr.on([c.change for c in values], None, values, None, js=lecture.url_sync_js(), api_visibility="private")
    bar["copy"].click(None, js=lecture.COPY_LINK_JS, api_visibility="private")
    bar["lecture"].change(
        None, [bar["lecture"]], None, js=lecture.LECTURE_TOGGLE_JS, api_visibility="private"
    )
    bar["dark"].change(None, [bar["dark"]], None, js=lecture.DARK_TOGGLE_JS, api_visibility="private")


def _switch_model(ctx: Context, panels: Panels, session: Session, choice: str) -> dict[Any, Any]:
    """Load the model a link names; if it cannot be loaded here, say so and keep the current one."""
    try:
        if ctx.limits.hosted and choice not in HOSTED_MODELS:
            raise ModelLoadError(f"This hosted app can load only {', '.join(HOSTED_MODELS)}.")
        loaded = ctx.models.get(choice)
    except Exception as err:  # noqa: BLE001 - a bad link must not stop the page
        message = f"The link's model could not be loaded: {_message(err)} The current model is kept."
        _warn(message)  # a toast too: the analysis that follows on page load replaces the status line
        return {ctx.status: _status_error(message), panels.model_dd: gr.update(value=session.model)}
    key = model_key(loaded, choice)
    ctx.models.put(key, loaded)
    session.model, session.generation, session.analysis = key, None, None
    return {
        ctx.session: session,
        panels.model_md: _model_text(loaded, ctx.limits),
        panels.model_dd: gr.update(value=key),
    }


# --- serving ------------------------------------------------------------------------------

THEME = gr.themes.Soft(
    primary_hue="indigo",
    secondary_hue="emerald",
    neutral_hue="slate",
    font=["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)

CSS = """
.gradio-container { max-width: min(1600px, 100%) !important; margin: 0 auto; }
.ae-step-row .column { min-width: 0 !important; }
.ae-step-table { max-width: 100%; overflow-x: auto; }
.ae-brand h1 { font-size: 1.7rem; margin: 0 0 .2rem 0; font-weight: 700; letter-spacing: -.01em; }
.ae-brand p { margin: 0; color: var(--body-text-color-subdued); }
.ae-model { font-size: .92rem; }
.ae-muted { color: var(--body-text-color-subdued); }
.ae-status { min-height: 1.4em; font-size: .95rem; }
.ae-error { color: #b91c1c; font-weight: 600; }
.ae-ok-text { color: #047857; }
.ae-subhead { margin-top: .6rem; }
.ae-help { color: var(--body-text-color-subdued); font-size: .9rem; }
.ae-note { color: var(--body-text-color-subdued); font-size: .85rem; }
.ae-footer { color: var(--body-text-color-subdued); font-size: .8rem; text-align: center; margin-top: 1rem; }
.ae-empty { color: var(--body-text-color-subdued); padding: .6rem .2rem; }
.ae-tok-head { font-size: .8rem; color: var(--body-text-color-subdued); margin-bottom: .35rem; }
.ae-tok-list { display: flex; flex-wrap: wrap; gap: 4px; max-height: 128px; overflow-y: auto;
  position: relative; padding: 2px; }
.ae-tok { display: inline-flex; flex-direction: column; align-items: center; padding: 2px 6px 1px;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--background-fill-primary);
  cursor: pointer; font: inherit; line-height: 1.15; }
.ae-tok:hover { border-color: var(--color-accent); background: var(--color-accent-soft); }
.ae-tok b { font-family: var(--font-mono); font-size: .9rem; font-weight: 500; white-space: pre; }
.ae-tok i { font-style: normal; font-size: .62rem; color: var(--body-text-color-subdued); }
.ae-tok.ae-sel { background: #D55E00; border-color: #D55E00; color: white; }
.ae-tok.ae-sel i { color: #ffe8d6; }
.ae-chip { font-family: var(--font-mono); background: var(--color-accent-soft); padding: 0 .35em; border-radius: 4px;
  white-space: pre; }
.ae-step-row { border-top: 1px solid var(--border-color-primary); padding-top: .6rem; }
.ae-step-title { font-weight: 700; font-size: 1.05rem; margin-bottom: .3rem; }
.ae-step-n { display: inline-block; min-width: 1.6em; height: 1.6em; line-height: 1.6em; text-align: center;
  border-radius: 999px; background: var(--color-accent); color: white; font-size: .8rem; margin-right: .45em; }
.ae-formula { display: block; font-size: .95rem; padding: .35rem .5rem; margin: .2rem 0 .4rem;
  background: var(--background-fill-secondary); border-radius: 6px; white-space: pre-wrap; }
.ae-step-why { font-size: .92rem; margin-bottom: .4rem; }
.ae-badge { display: inline-block; font-size: .8rem; padding: .1rem .5rem; border-radius: 999px;
  border: 1px solid var(--border-color-primary); color: var(--body-text-color-subdued); }
.ae-nav { display: flex; flex-wrap: wrap; gap: 5px; align-items: center; font-size: .8rem; margin: .2rem 0 .4rem; }
.ae-nav b { color: var(--color-accent); }
.ae-nav a { text-decoration: none; padding: .15rem .55rem; border-radius: 999px; color: inherit;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary); }
.ae-nav a:hover { border-color: var(--color-accent); background: var(--color-accent-soft); }
.ae-nav .ae-arrow { color: var(--body-text-color-subdued); }
.ae-badge.ae-ok { background: #d1fae5; color: #065f46; border-color: #a7f3d0; }
.ae-badge.ae-bad { background: #fee2e2; color: #991b1b; border-color: #fecaca; }
.ae-step-note { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: .35rem; }
.ae-text { font-size: 1.05rem; line-height: 1.6; white-space: pre-wrap; word-break: break-word; }
.ae-prompt { color: var(--body-text-color-subdued); }
.ae-gen { background: #e0e7ff; border-radius: 3px; }
.ae-gen.ae-new { background: #D55E00; color: white; }
.ae-gen.ae-forced { text-decoration: underline dashed; text-underline-offset: 3px; }
#ae-analyze { height: 100%; min-height: 3.2rem; font-size: 1.05rem; }
.ae-table { max-height: 280px; overflow: auto; border: 1px solid var(--border-color-primary);
  border-radius: 8px; background: var(--background-fill-primary); }
.ae-table { width: fit-content; max-width: 100%; }
.ae-table table { border-collapse: collapse; font-size: .8rem; width: max-content; margin: 0 !important;
  border: none !important; }
.ae-table thead, .ae-table tbody, .ae-table tr { border: none !important; }
.ae-table th, .ae-table td { border: none !important; border-bottom: 1px solid var(--border-color-primary) !important; }
.ae-table th { position: sticky; top: 0; background: var(--background-fill-secondary) !important; font-weight: 600;
  text-align: right; padding: 4px 7px !important; white-space: nowrap; }
.ae-table td { padding: 2px 7px !important; background: transparent !important; }
.ae-table tr:last-child td { border-bottom: none !important; }
.ae-table tbody tr:hover td { background: var(--color-accent-soft) !important; }
.ae-table .ae-num { text-align: right; font-variant-numeric: tabular-nums; font-family: var(--font-mono); }
.ae-table .ae-tokcell { font-family: var(--font-mono); white-space: pre; text-align: left; }
"""

TOKEN_CLICK_JS = """
element.addEventListener('click', (event) => {
  const chip = event.target.closest('[data-pos]');
  if (chip) trigger('click', {pos: Number(chip.dataset.pos)});
});
const reveal = () => {  // keep the selected token in view inside the scrolling strip
  const list = element.querySelector('.ae-tok-list');
  const chip = element.querySelector('.ae-sel');
  if (list && chip) list.scrollTop = chip.offsetTop - list.offsetTop - list.clientHeight / 2;
};
watch('value', reveal);
reveal();
"""

# The token strip and layer/head/query belong to the analysis tabs, not to Generate.
SELECTION_VISIBILITY_JS = """
() => setTimeout(() => {
  const gen = document.getElementById('ae-gen-tab');
  const box = document.getElementById('ae-selection');
  if (box) box.style.display = gen && gen.offsetParent !== null ? 'none' : '';
}, 30)
"""

# Plotly clicks have no gradio event. A hidden gr.HTML polls for its plot's div, binds
# plotly_click once per Plotly emitter (Gradio redraws with Plotly.react, which keeps listeners),
# and fires its own click event with the fields that `fields` picks from the clicked point.
PLOT_CLICK_JS = """
const bind = () => {
  for (const gd of document.querySelectorAll('%(selector)s .js-plotly-plot')) {
    if (typeof gd.on !== 'function' || gd.__aeEmitter === gd._ev) continue;
    gd.on('plotly_click', (ev) => {
      const p = ev && ev.points && ev.points[0];
      if (p) trigger('click', {%(fields)s});
    });
    gd.__aeEmitter = gd._ev;
  }
};
bind();
setInterval(bind, 300);
"""


def plot_click_bridge(selector: str, fields: str) -> gr.HTML:
    return gr.HTML("", visible="hidden", js_on_load=PLOT_CLICK_JS % {"selector": selector, "fields": fields})


def launch_options() -> dict[str, Any]:
    """The look and the browser's side; pass to `demo.launch(**launch_options())`."""
    return {
        "theme": THEME,
        "css": CSS + lecture.CSS,
        "head": lecture.HEAD_HTML,
        "i18n": I18N,
        # Gradio's run history would JSON-encode every reply (figures included, ~1 MB) into
        # localStorage on each call: seconds per Analyze in the browser, and prompts kept on disk.
        "run_history": False,
    }


M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX=2 does, before the server's threads start.

    glibc gives each thread that allocates its own arena, up to 8 per core, and Gradio runs
    handlers on a pool of threads: every step then leaves a little memory in another arena and
    RSS keeps climbing (57 MB over 100 steps measured, 16 MB with two arenas). Applies only to
    arenas made after the call; a no-op off glibc or where MALLOC_ARENA_MAX is already set.
    """
    import ctypes
    import os

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


TRIM_EVERY = 16  # generation steps between handing free heap memory back to the system


def release_free_memory() -> bool:
    """Hand the free pages inside glibc's heaps back to the system (malloc_trim); False off glibc.

    What one generation step frees is not all reused by the next: handlers run on a pool of
    threads with an arena each, and the arrays a step makes grow with the text. RSS crept up
    5–7 MB per 100 steps beyond the KV cache without this, 1–3 MB with it every 16 steps. A
    call takes about half a millisecond. (A fixed mmap threshold would do it too, but costs an analysis of 1024
    tokens 20% more CPU: its temporaries would all be mapped and faulted in afresh.)
    """
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def launch(
    demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **kwargs: Any
) -> Any:
    limit_malloc_arenas()
    demo.queue(default_concurrency_limit=CONCURRENCY)
    # Our handlers turn their own errors into messages; this shows Gradio's own (an API call with
    # a setting that is not a number, say) as their text instead of a generic "see the server log".
    kwargs.setdefault("show_error", True)
    preload = _PRELOADS.pop(demo, None)
    if preload is None:
        return demo.launch(server_name=host, server_port=port, share=share, **launch_options(), **kwargs)
    # The model loads once the server answers, so that the browser builds the page meanwhile.
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        **launch_options(),
        **kwargs,
    )
    preload()
    if block:
        demo.block_thread()
    return result
