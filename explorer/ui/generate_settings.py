"""The Generate tab's sampling settings: read from the widgets (or the API), changed for the
next token, refused with the engine's reason (the widgets then show the settings in use again),
and reset to DEFAULT_SAMPLING, transformers' `generate` defaults."""

from __future__ import annotations

from typing import Any

from explorer.errors import ExplorerError
from explorer.figures import live
from explorer.i18n import say
from explorer.model.generation import DEFAULT_SAMPLING, GenerationSession, _check_settings
from explorer.ui.common import Context, localized, message, refused, status_error
from explorer.ui.generate_tab import GenerateTab
from explorer.ui.state import Session


def settings_of(greedy: bool, temperature: float, top_k: float, top_p: float, seed: Any) -> dict[str, Any]:
    return {
        "greedy": bool(greedy),
        "temperature": temperature,
        # The session checks them (NaN from the API); missing ones are the defaults.
        "top_k": DEFAULT_SAMPLING.top_k if top_k is None else top_k,
        "top_p": top_p,
        "seed": DEFAULT_SAMPLING.seed if seed is None else seed,
    }


# The settings' names in messages (English: the widgets' labels).
NAMES = {"temperature": "Temperature", "top_k": "Top-k", "top_p": "Top-p", "seed": "Seed"}


def refuse_typed(tab: GenerateTab, settings: dict[str, Any], typed: Any) -> None:
    """ExplorerError for a value typed out of its widget's range (the page sent it aside, see
    settings_check.js): the engine's reason where it has one, else the widget's range."""
    if not isinstance(typed, dict) or not typed:
        return
    widgets = {"temperature": tab.temperature, "top_k": tab.top_k, "top_p": tab.top_p, "seed": tab.seed}
    name, value = (
        next((k, v) for k, v in typed.items() if k in widgets) if typed.keys() & widgets else ("", None)
    )
    if not name:
        return
    try:
        _check_settings(**(settings | {name: value}), vocab=1 << 62)
    except ExplorerError as err:
        raise ExplorerError(f"{err} The previous settings stay.") from err
    widget: Any = widgets[name]
    raise ExplorerError(
        f"{NAMES[name]} goes from {widget.minimum} to {widget.maximum} here; got {value!r}. "
        "The previous settings stay."
    )


class SettingsHandlers:
    """The settings' events; each reply is a dict of the components it changes."""

    def __init__(self, ctx: Context, tab: GenerateTab) -> None:
        self.ctx, self.tab = ctx, tab

    def configure(
        self,
        session: Session,
        greedy: bool,
        temperature: float,
        top_k: float,
        top_p: float,
        seed: Any,
        typed: Any = None,
    ) -> dict[Any, Any]:
        """New settings for the next token. `typed` holds what the page refused as out of its
        widgets' range ({"temperature": -1}, from settings_check.js); the engine says why."""
        settings = settings_of(greedy, temperature, top_k, top_p, seed)
        gen = session.generation
        try:
            refuse_typed(self.tab, settings, typed)
            if gen is None:
                return {self.ctx.status: ""}
            gen.configure(**settings)
        except ExplorerError as err:
            refused("configure", err, session.lang)
            return {self.ctx.status: status_error(message(err, session.lang))} | self.widgets(gen)
        session.shown_position = len(gen.ids)
        return {
            self.ctx.status: "",
            self.tab.dist: localized(live.preview_figure(gen), session.lang),
            self.tab.step_md: say(
                session.lang, "Settings changed: the chart now shows the next token's distribution with them."
            ),
        }

    def widgets(self, gen: GenerationSession | None) -> dict[Any, Any]:
        """The settings' widgets showing `gen`'s settings (DEFAULT_SAMPLING's without one)."""
        s = gen.sampling if gen is not None else DEFAULT_SAMPLING
        tab = self.tab
        return {
            tab.greedy: s.greedy,
            tab.temperature: s.temperature,
            tab.top_k: s.top_k,
            tab.top_p: s.top_p,
            tab.seed: s.seed,
        }

    def reset(self, session: Session) -> dict[Any, Any]:
        d = DEFAULT_SAMPLING
        out = self.configure(session, d.greedy, d.temperature, d.top_k, d.top_p, d.seed)
        said = say(session.lang, "Sampling settings back to their defaults.")
        return out | self.widgets(None) | {self.ctx.status: said}
