"""The header: the app's name, the model line, and the model picker (load, then analyze again;
on failure the previous model keeps serving)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import views
from explorer.errors import ExplorerError, ModelLoadError
from explorer.i18n import say
from explorer.model.loading import LoadedModel, ModelPlan
from explorer.ui.analysis import AnalysisEvent
from explorer.ui.common import I18N, Context, message, progress_callback, status_error, status_ok, warn
from explorer.ui.state import CONCURRENCY, HOSTED_MODELS, MODEL_CHOICES, Limits, Session, model_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Header:
    model_md: gr.Markdown  # the model line: name, size, device, where it came from
    model_dd: gr.Dropdown  # the picker


def model_text(loaded: LoadedModel | ModelPlan, limits: Limits, lang: str = "en") -> str:
    return views.model_markdown(
        loaded.name,
        loaded.reason,
        loaded.n_layer,
        loaded.n_head,
        loaded.n_ctx,
        loaded.device if isinstance(loaded, LoadedModel) else say(lang, "loading …"),
        loaded.is_bundled,
        limits.hosted,
        lang,
    )


def build_header(loaded: LoadedModel | ModelPlan, key: str, limits: Limits) -> Header:
    """One line: the name, the model (its note folds out), the picker. shell.py puts the lecture bar beside it."""
    with gr.Row(elem_id="ae-header", equal_height=True):
        gr.HTML(
            "<div class='ae-brand'><h1>Attention Explorer</h1></div>",
            elem_id="ae-brand",
            min_height=0,
            padding=False,
        )
        model_md = gr.Markdown(
            model_text(loaded, limits), elem_id="ae-model", elem_classes=["ae-model"], min_height=0
        )
        choices: list[tuple[Any, str]] = [
            (I18N(name) if name != value else name, value) for name, value in MODEL_CHOICES
        ]
        if key not in [value for _, value in choices]:
            choices.append((key, key))
        model_dd = gr.Dropdown(
            choices=choices,
            value=key,
            label=I18N("Model"),
            show_label=False,
            container=False,
            allow_custom_value=not limits.hosted,
            elem_id="ae-model-picker",
            scale=0,
            min_width=220,
        )
    return Header(model_md, model_dd)


def _allowed(ctx: Context, choice: str) -> None:
    if ctx.limits.hosted and choice not in HOSTED_MODELS:
        raise ModelLoadError(f"This hosted app can load only {', '.join(HOSTED_MODELS)}.")


def switch_model(ctx: Context, header: Header, session: Session, choice: str) -> dict[Any, Any]:
    """Load the model a link names; if it cannot be loaded here, say so and keep the current one."""
    try:
        _allowed(ctx, choice)
        loaded = ctx.models.get(choice)
    except Exception as err:  # noqa: BLE001 - a bad link must not stop the page
        text = say(
            session.lang,
            "The link's model could not be loaded: {why} The current model is kept.",
            why=message(err, session.lang),
        )
        warn(text)  # a toast too: the analysis that follows on page load replaces the status line
        return {ctx.status: status_error(text), header.model_dd: gr.update(value=session.model)}
    key = model_key(loaded, choice)
    ctx.models.put(key, loaded)
    session.model, session.generation, session.analysis = key, None, None
    return {
        ctx.session: session,
        header.model_md: model_text(loaded, ctx.limits, session.lang),
        header.model_dd: gr.update(value=key),
    }


def wire_model_picker(
    ctx: Context, header: Header, analysis: AnalysisEvent, gen_text: gr.HTML, gen_step: gr.Markdown
) -> None:
    """The picker loads the model, clears the generation, then analyzes the prompt again."""
    status = ctx.status

    def load(choice: str, session: Session, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        choice = (choice or "").strip()
        previous, lang = session.model, session.lang
        try:
            if not choice:
                raise ModelLoadError("Choose a model.")
            _allowed(ctx, choice)
            loaded = ctx.models.get(choice, progress_callback(progress, lang))
        except Exception as err:  # noqa: BLE001
            if not isinstance(err, ExplorerError):
                log.exception("loading %r failed", choice)
            text = say(lang, "{why} The previous model keeps serving.", why=message(err, lang))
            warn(text)
            return {status: status_error(text), header.model_dd: gr.update(value=previous)}
        key = model_key(loaded, choice)
        if key != choice:
            ctx.models.put(key, loaded)
        session.model, session.generation, session.analysis = key, None, None
        return {
            status: status_ok(say(lang, "{model} is loaded.", model=loaded.name)),
            ctx.session: session,
            header.model_md: model_text(loaded, ctx.limits, lang),
            header.model_dd: gr.update(value=key),
            gen_text: views.empty_html(
                "Press Step to add one token to the prompt, or Run to add several.", lang
            ),
            gen_step: "",
        }

    def reanalyze(*args: Any, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        prompt, session = args[0], args[1]
        if session.analysis is not None or not isinstance(prompt, str) or not prompt.strip():
            return gr.skip()  # the load failed (the old analysis stands), or there is nothing to analyze
        return analysis.fn(*args, progress=progress)

    header.model_dd.input(
        load,
        [header.model_dd, ctx.session],
        [status, ctx.session, header.model_md, header.model_dd, gen_text, gen_step],
        api_name="load_model",
        concurrency_limit=2,
    ).then(
        reanalyze,
        analysis.inputs,
        analysis.outputs,
        api_visibility="private",
        concurrency_limit=CONCURRENCY,
        show_progress_on=analysis.options["show_progress_on"],
    )
