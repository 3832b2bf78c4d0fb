"""Run as the page shows it: the model goes as fast as asked, the page is sent at most
DISPLAY_HZ small frames a second, each carrying the tokens since the one before, and
static/run_stream.js draws them in place: the new tokens appended to the text; the distribution,
the new token's attention and the timeline on canvases laid over their plots (a few ms each,
where a Plotly redraw took 90–210 ms). The Run's last frame carries the full figures of the step
it ended on, which the page draws into the plots one per task; the last reply has the rest of
the full view (text, summary, selectors), exactly what Step shows. Stop marks the session (a tiny handler
outside the queue) and the loop reads the mark before each token, so the server stops at once.

API callers (gradio_client) send no run number and get one full reply per token, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.io.json as plotly_json

from explorer.figures import live
from explorer.i18n import say, translate
from explorer.model.generation import GenerationSession, StepResult
from explorer.ui.state import Session

DISPLAY_HZ = 20  # frames a second at most: the display's pace, not the model's
MAX_SPEED = 100.0  # tokens a second that a paced Run may ask for
STOP_POLL_S = 0.02  # how often a paced Run's wait looks for a Stop


@dataclass
class RunMarks:
    """The page's Run numbers for a session: a Run stops once Stop has marked its number."""

    stop_upto: int = 0
    # When a Stop reached the server and how many tokens the session had then (bench/run.py).
    stop_seen: tuple[float, int] | None = None


def marks(session: Session) -> RunMarks:
    found = getattr(session, "app_run_marks", None)
    if found is None:
        found = RunMarks()
        session.app_run_marks = found  # type: ignore[attr-defined]
    return found


def page_run(run_of: Any) -> int | None:
    """The page's number for this Run ("page:<n>", from run_start.js); None from API callers."""
    if not isinstance(run_of, str) or not run_of.startswith("page:"):
        return None
    try:
        return max(1, int(run_of.removeprefix("page:")))
    except ValueError:
        return None


def request_stop(session: Session, run_of: Any) -> None:
    """Stop the page's Run `run_of` (and any before it), running or still queued."""
    run_id = page_run(run_of)
    if run_id is not None and isinstance(session, Session):
        mark = marks(session)
        mark.stop_upto = max(mark.stop_upto, run_id)
        gen = session.generation
        mark.stop_seen = (time.time(), len(gen.generated) if gen is not None else 0)


def seconds_per_token(speed: Any) -> float:
    """0 (as fast as possible) for no speed or a speed that is not a positive number."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        return 0.0
    return 1.0 / min(value, MAX_SPEED) if value > 0 else 0.0


def wait_until(deadline: float, stopped: Callable[[], bool]) -> bool:
    """Sleep until `deadline` (time.monotonic), looking for a Stop; False if one came."""
    while (left := deadline - time.monotonic()) > 0:
        if stopped():
            return False
        time.sleep(min(left, STOP_POLL_S))
    return not stopped()


@dataclass
class Progress:
    """One page Run so far: what its frames carry."""

    run_id: int
    base: int  # tokens generated before this Run
    count: int  # tokens asked for
    started: float
    prompt: str | None  # the prompt's text, when the page's text must start afresh
    frames: int = 0
    covered: int = 0  # tokens since the last frame
    lang: str = "en"  # the session's language, for the frames' lines and titles


def _json(payload: dict[str, Any]) -> str:
    # "<" escaped: a frame is an HTML component's value, and token text can be anything.
    return str(plotly_json.to_json_plotly(payload)).replace("<", "\\u003c")


def frame(run: Progress, gen: GenerationSession, result: StepResult, attention: tuple[Any, ...]) -> str:
    """A frame for run_stream.js, as JSON: this Run's tokens (text, forced), the newest step's
    distribution and attention row and the timeline as data for the page's canvas (live.py),
    and a line for the page. Cumulative over the Run, so that a frame the page never drew loses
    nothing."""
    made = len(gen.generated) - run.base
    elapsed = max(time.monotonic() - run.started, 1e-6)
    covers = "1 token" if run.covered == 1 else "{each} tokens"
    line = say(
        run.lang,
        "Running: {made} of {count} tokens, {speed} tokens/s; this update covers "
        + covers
        + " (the page is drawn at most {hz} times a second).",
        made=made,
        count=run.count,
        speed=f"{made / elapsed:.1f}",
        each=run.covered,
        hz=DISPLAY_HZ,
    )
    pieces = [gen.tokenizer.decode([i]) for i in gen.generated[run.base :]]
    return _json(
        {
            "run": run.run_id,
            "line": line,
            "done": False,
            "base": run.base,
            "tokens": [[p, h.forced] for p, h in zip(pieces, gen.history[run.base :], strict=True)],
            "prompt": run.prompt,
            "dist": _titled(live.live_distribution(result, len(gen.generated)), run.lang),
            "attn": _titled(live.live_attention(*attention), run.lang),
            "timeline": live.live_timeline(gen),
        }
    )


def _titled(panel: dict[str, Any], lang: str) -> dict[str, Any]:
    """A live panel's title, subtitle and note (plain text, drawn on a canvas) in `lang`."""
    if lang == "en":
        return panel
    return panel | {k: translate(panel[k], lang) for k in ("title", "subtitle", "note") if panel.get(k)}


def last_frame(run: Progress, gen: GenerationSession, figures: dict[str, Any]) -> str:
    """The frame that ends a Run: the line, and the full figures of the step it ended on, which
    the page draws in place of its canvas (Plotly.react, one plot per task). The Run's last reply
    carries the text and the step's summary but not these figures: Gradio would redraw all three
    in one task (0.5–0.8 s in Chromium), after Stop."""
    made = len(gen.generated) - run.base
    elapsed = max(time.monotonic() - run.started, 1e-6)
    line = say(
        run.lang,
        "Run: {made} tokens in {seconds} s ({speed} tokens/s), {frames} updates.",
        made=made,
        seconds=f"{elapsed:.1f}",
        speed=f"{made / elapsed:.1f}",
        frames=run.frames,
    )
    shown = {name: fig.to_plotly_json() for name, fig in figures.items()}
    return _json({"run": run.run_id, "line": line, "done": True, "figures": shown})


class PageRun:
    """The page's Run loop, around the Generate tab's handlers (generate_events._Handlers)."""

    def __init__(self, handlers: Any, attention: Callable[..., Any]) -> None:
        self.h, self.attention = handlers, attention

    def __call__(
        self,
        prompt: str,
        session: Session,
        settings: Sequence[Any],
        count: int,
        view: tuple[Any, Any],
        pace: float,
        run_id: int,
    ) -> Iterator[dict[Any, Any]]:
        h, tab, mark = self.h, self.h.tab, marks(session)

        def stopped() -> bool:
            return mark.stop_upto >= run_id

        gen = session.generation
        run: Progress | None = None
        result: StepResult | None = None
        fresh_run = False
        sent = 0.0
        for i in range(count):
            if stopped() or (pace and run is not None and not wait_until(run.started + i * pace, stopped)):
                break
            gen, result, fresh = h.one_step(prompt, session, settings)
            if run is None:
                fresh_run = fresh
                run = self.start(session, gen, run_id, count, fresh)
            run.covered += 1
            last = result.finished or i == count - 1
            if not last and time.monotonic() - sent >= 1.0 / DISPLAY_HZ:
                yield self.update(session, gen, result, view, run, fresh and i == 0)
                sent, run.frames, run.covered = time.monotonic(), run.frames + 1, 0
            if result.finished:
                break
        if gen is None:
            yield {h.ctx.status: say(session.lang, "Stopped before the first token.")}
            return
        if result is None:  # stopped before its first token: the step shown before
            result = session.steps.get(len(gen.ids) - 1) if gen.generated else None
        out = h.respond(session, gen, result, *view, fresh_run)
        # The plots are not this event's outputs (fewer outputs, less of Gradio's work per event):
        # the last frame carries their figures; stopped before a token, they show that step already.
        figures = {"dist": out.pop(tab.dist), "attn": out.pop(tab.attn), "timeline": out.pop(tab.timeline)}
        if run is not None:
            out[tab.stream] = last_frame(run, gen, figures)
        yield out

    def start(
        self, session: Session, gen: GenerationSession, run_id: int, count: int, fresh: bool
    ) -> Progress:
        base = len(gen.generated) - 1
        text = gen.tokenizer.decode(gen.ids[: gen.prompt_len]) if fresh or base == 0 else None
        return Progress(run_id, base, count, time.monotonic(), prompt=text, lang=session.lang)

    def update(
        self,
        session: Session,
        gen: GenerationSession,
        result: StepResult,
        view: tuple[Any, Any],
        run: Progress,
        first_of_fresh: bool,
    ) -> dict[Any, Any]:
        h, tab = self.h, self.h.tab
        layer, head = view
        attention = self.attention(session, gen, result, layer, head)
        out: dict[Any, Any] = {tab.stream: frame(run, gen, result, attention)}
        if first_of_fresh:  # a new generation: the selectors' ranges, and the status says so
            full = h.respond(session, gen, result, layer, head, True)
            out |= {k: full[k] for k in (h.ctx.status, tab.attn_layer, tab.attn_head)}
        session.shown_position = result.position
        return out
