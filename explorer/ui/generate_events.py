"""The Generate tab's events: the session's generation (started afresh when the prompt or the
model changes), one step at a time, as replies of the components they change (the view of a
step is generate_view's)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr
import numpy as np

from explorer.errors import ExplorerError
from explorer.i18n import say, sentences
from explorer.model.capture import clean_text
from explorer.model.generation import GenerationSession, StepResult
from explorer.model.loading import LoadedModel
from explorer.ui.common import Context, clamp, guarded, guarded_stream, static
from explorer.ui.generate_run import PageRun, page_run, request_stop, seconds_per_token
from explorer.ui.generate_settings import SettingsHandlers, settings_of
from explorer.ui.generate_tab import GenerateTab
from explorer.ui.generate_view import attention_figure, attention_parts, generation_view, head_choices
from explorer.ui.serving import TRIM_EVERY, release_free_memory
from explorer.ui.state import CONCURRENCY, Session, remember

# --- the session's generation --------------------------------------------------------------------


def model_key_of(gen: GenerationSession) -> str | None:
    return getattr(gen, "app_model_key", None)


def run_length(n: Any, most: int) -> int:
    """Tokens for one Run: a whole number from 1 to `most` (an empty value is 1)."""
    try:
        count = float(n if n not in (None, "") else 1)
    except (TypeError, ValueError):
        count = math.nan
    if not math.isfinite(count):
        raise ExplorerError(f"The run length must be a whole number of tokens from 1 to {most}; got {n!r}.")
    return int(np.clip(int(count), 1, most))


def cut_prompt(loaded: LoadedModel, prompt: str, limit: int | None) -> tuple[str, int]:
    """The prompt cut to `limit` tokens (None: no limit), and how many tokens were cut.

    Cut by ids and decoded back to text, which the generation tokenizes again: where the cut
    splits a character (lone surrogates, half an emoji) the text can read back as more tokens
    than the limit, so the cut moves left until it reads back within it."""
    if limit is None or not isinstance(prompt, str):
        return prompt, 0
    ids = loaded.tokenizer(clean_text(prompt))["input_ids"]
    if len(ids) <= limit:
        return prompt, 0
    keep = limit
    text = loaded.tokenizer.decode(ids[:keep])
    while keep > 1 and len(loaded.tokenizer(text)["input_ids"]) > limit:
        keep -= max(1, len(loaded.tokenizer(text)["input_ids"]) - limit)
        text = loaded.tokenizer.decode(ids[:keep])
    return text, len(ids) - keep


def ensure_generation(
    ctx: Context, session: Session, prompt: str, settings: dict[str, Any]
) -> tuple[GenerationSession, bool]:
    """The session's generation, started afresh when the prompt or the model changed."""
    gen = session.generation
    if gen is not None and session.gen_prompt == prompt and model_key_of(gen) == session.model:
        return gen, False
    loaded = ctx.models.get(session.model)
    text, cut = cut_prompt(loaded, prompt, ctx.limits.max_prompt_tokens)
    with ctx.models.lock(loaded):
        gen = GenerationSession(loaded, text, max_new_tokens=ctx.limits.max_new_tokens, **settings)
    gen.app_model_key = session.model  # type: ignore[attr-defined]
    session.generation, session.gen_prompt, session.steps, session.token_text = gen, prompt, {}, {}
    session.gen_cut = cut + gen.truncated
    return gen, True


# --- wiring ----------------------------------------------------------------------------------------


class _Handlers:
    """The tab's event handlers; each reply is a dict of the components it changes."""

    def __init__(self, ctx: Context, tab: GenerateTab) -> None:
        self.ctx, self.tab = ctx, tab
        self.outputs = [
            ctx.status,
            ctx.session,
            tab.text,
            tab.step_md,
            tab.dist,
            tab.attn,
            tab.timeline,
            tab.attn_layer,
            tab.attn_head,
        ]

    def one_step(
        self, prompt: str, session: Session, settings: Sequence[Any], force: int | str | None = None
    ) -> tuple[GenerationSession, StepResult, bool]:
        gen, fresh = ensure_generation(self.ctx, session, prompt, settings_of(*settings))
        gen.configure(**settings_of(*settings))
        with self.ctx.models.lock(gen.loaded):
            result = gen.step() if force is None else gen.force(force)
        remember(session, result)
        if result.position % TRIM_EVERY == 0:
            release_free_memory()
        return gen, result, fresh

    def respond(
        self,
        session: Session,
        gen: GenerationSession,
        result: StepResult | None,
        layer: Any,
        head: Any,
        fresh: bool,
        message: str = "",
    ) -> dict[Any, Any]:
        tab = self.tab
        lang = session.lang
        if fresh and not message:
            message = say(lang, "Generating from the prompt ({n} tokens).", n=gen.prompt_len)
            if session.gen_cut:
                cut = say(lang, "The prompt was cut: {cut} tokens did not fit.", cut=session.gen_cut)
                message = sentences(lang, message, cut)
        session.shown_position = len(gen.ids) if result is None else result.position
        out = {self.ctx.status: message, self.ctx.session: session}
        n_layer, n_head = gen.loaded.n_layer, gen.loaded.n_head
        if fresh:
            out |= {
                tab.attn_layer: gr.update(maximum=max(1, n_layer - 1), value=clamp(layer, n_layer)),
                tab.attn_head: gr.update(choices=head_choices(n_head, lang)),
            }
        else:
            # Values, not an omitted output, once the ranges are set: Gradio treats an omitted output
            # as an empty update and keeps a new copy of that component in the session for each one
            # (two per step, for good, as these are inputs too).
            out |= {tab.attn_layer: clamp(layer, n_layer), tab.attn_head: head}
        return out | generation_view(tab, session, gen, result, layer, head)

    # Explicit parameters: Gradio reads them for the API's names and to pass gr.EventData.
    def step(
        self,
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
        gen, result, fresh = self.one_step(prompt, session, (greedy, temperature, top_k, top_p, seed))
        return self.respond(session, gen, result, layer, head, fresh)

    def run(
        self,
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
        speed: Any = 0,
        run_of: Any = "",
    ) -> Iterator[dict[Any, Any]]:
        count = run_length(n, self.ctx.limits.max_run_tokens)
        settings, pace = (greedy, temperature, top_k, top_p, seed), seconds_per_token(speed)
        run_id = page_run(run_of)
        if run_id is not None:  # the page: frames at the display's pace, then the full view
            yield from PageRun(self, attention_parts)(
                prompt, session, settings, count, (layer, head), pace, run_id
            )
            return
        started = time.monotonic()
        for i in range(count):  # API callers: one full reply per token
            if pace and i:
                time.sleep(max(0.0, started + i * pace - time.monotonic()))
            gen, result, fresh = self.one_step(prompt, session, settings)
            yield self.respond(session, gen, result, layer, head, fresh and i == 0)
            if result.finished:
                break

    async def stop(self, session: Session, run_of: Any) -> None:
        # On the server's event loop, not a worker thread: while a Run streams, the thread pool
        # is where the delay was, and setting the mark needs no thread.
        request_stop(session, run_of)

    def force(
        self,
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
        settings = (greedy, temperature, top_k, top_p, seed)
        gen, result, fresh = self.one_step(prompt, session, settings, token)
        return self.respond(session, gen, result, layer, head, fresh)

    def force_id(
        self,
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
            self.take_back(session, gen, len(gen.ids) - shown)
            message = say(session.lang, "Replaced the chosen token with the one you clicked.")
        settings = (greedy, temperature, top_k, top_p, seed)
        gen, result, fresh = self.one_step(prompt, session, settings, token_id)
        return self.respond(session, gen, result, layer, head, fresh, message)

    def take_back(self, session: Session, gen: GenerationSession, n: int) -> None:
        with self.ctx.models.lock(gen.loaded):
            gen.rewind(n)
        for position in [p for p in session.steps if p >= len(gen.ids)]:
            del session.steps[position]

    def rewind(self, session: Session, layer: Any, head: Any) -> dict[Any, Any]:
        gen = session.generation
        if gen is None or not gen.generated:
            raise ExplorerError("Nothing to rewind: no tokens have been generated yet.")
        return self.back_to(session, gen, len(gen.generated) - 1, layer, head)

    def back_to(
        self, session: Session, gen: GenerationSession, keep: int, layer: Any, head: Any
    ) -> dict[Any, Any]:
        """Keep the first `keep` generated tokens and show the last kept step again."""
        removed = len(gen.generated) - keep
        self.take_back(session, gen, removed)
        result = session.steps.get(len(gen.ids) - 1) if gen.generated else None
        template = (
            "Took back {n} token; {left} generated tokens remain."
            if removed == 1
            else "Took back {n} tokens; {left} generated tokens remain."
        )
        message = say(session.lang, template, n=removed, left=len(gen.generated))
        return self.respond(session, gen, result, layer, head, False, message)

    def rewind_to(self, session: Session, layer: Any, head: Any, evt: gr.EventData) -> dict[Any, Any]:
        gen = session.generation
        try:
            step = int(round(float(evt.step)))  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return gr.skip()
        if gen is None or not 0 <= step < len(gen.generated) - 1:
            return gr.skip()  # the last point: nothing to take back
        return self.back_to(session, gen, step + 1, layer, head)

    def restart(
        self,
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
        settings = settings_of(greedy, temperature, top_k, top_p, seed)
        gen, _ = ensure_generation(self.ctx, session, prompt, settings)
        said = say(session.lang, "Starting again from the prompt.")
        return self.respond(session, gen, None, layer, head, True, said)

    def show_attention(self, session: Session, layer: Any, head: Any) -> dict[Any, Any]:
        gen = session.generation
        result = session.steps.get(len(gen.ids) - 1) if gen is not None else None
        if gen is None or result is None:
            return gr.skip()
        return {self.tab.attn: attention_figure(session, gen, result, layer, head)}


def wire_generate_tab(ctx: Context, tab: GenerateTab) -> None:
    h, settings = _Handlers(ctx, tab), SettingsHandlers(ctx, tab)
    guard, guard_stream = guarded(ctx.status), guarded_stream(ctx.status)
    outputs = h.outputs
    view: list[Any] = [tab.attn_layer, tab.attn_head]
    gen_inputs = [ctx.prompt, ctx.session, *tab.settings, *view]
    limit: dict[str, Any] = {"concurrency_limit": CONCURRENCY, "concurrency_id": "generate"}
    tab.step.click(guard(h.step), gen_inputs, outputs, api_name="step", **limit)
    run_inputs = [ctx.prompt, ctx.session, tab.n, *tab.settings, *view]
    # API callers keep "run" as it was: one full reply per token. The page's Run numbers itself
    # (run_start.js), may be paced, and streams frames (generate_run); raw requests, which get no
    # defaults for missing values, are why the two are separate events.
    tab.api_run.click(
        guard_stream(h.run), run_inputs, outputs, api_name="run", api_visibility="public", **limit
    )
    plots = {tab.dist, tab.attn, tab.timeline}  # the page's Run draws these itself (generate_run)
    run_event = tab.run.click(
        guard_stream(h.run),
        [*run_inputs, tab.speed, tab.run_of],
        [*(c for c in outputs if c not in plots), tab.stream],
        js=static("run_start.js"),
        api_visibility="private",
        show_progress="hidden",
        **limit,
    )
    run_event.then(None, js="() => window.aeRun && window.aeRun.end()")
    # Outside the queue, so that it is never behind a step; the Run reads the mark before each token.
    tab.stop.click(
        h.stop,
        [ctx.session, tab.run_of],
        None,
        js=static("run_stop.js"),
        queue=False,
        api_visibility="private",
    )
    force_inputs = [tab.force_text, *gen_inputs]
    tab.force.click(guard(h.force), force_inputs, outputs, api_name="force", **limit)
    tab.force_text.submit(guard(h.force), force_inputs, outputs, api_visibility="private", **limit)
    tab.bar_click.click(guard(h.force_id), gen_inputs, outputs, api_visibility="private", **limit)
    tab.rewind.click(guard(h.rewind), [ctx.session, *view], outputs, api_name="rewind", **limit)
    tab.timeline_click.click(
        guard(h.rewind_to), [ctx.session, *view], outputs, api_visibility="private", **limit
    )
    tab.restart.click(guard(h.restart), gen_inputs, outputs, api_name="restart", **limit)
    settings_out = [ctx.status, tab.dist, tab.step_md, *tab.settings]
    for component in tab.settings:
        component.input(
            guard(settings.configure),
            [ctx.session, *tab.settings, tab.typed],
            settings_out,
            js=static("settings_check.js"),
            api_visibility="private",
            trigger_mode="always_last",
        )
    tab.reset.click(guard(settings.reset), [ctx.session], settings_out, api_visibility="private")
    for component in view:
        component.input(
            guard(h.show_attention),
            [ctx.session, *view],
            [tab.attn],
            api_visibility="private",
            trigger_mode="always_last",
        )
