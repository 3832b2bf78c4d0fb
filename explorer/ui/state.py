"""What the server keeps: the limits of a request, the models and the analyses shared by all
sessions (each within a bound), and one browser session's work (`Session`, in gr.State).
No gradio here."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from explorer.model.capture import Analysis
from explorer.model.generation import GenerationSession, StepResult
from explorer.model.loading import BUNDLED, LoadedModel, ModelPlan, Progress, load_model

log = logging.getLogger(__name__)

HOSTED_MODELS = (BUNDLED, "gpt2", "distilgpt2", "gpt2-medium")
MODEL_CHOICES = (
    ("bundled demo model", BUNDLED),
    ("gpt2", "gpt2"),
    ("distilgpt2", "distilgpt2"),
    ("gpt2-medium", "gpt2-medium"),
)
CONCURRENCY = 4  # requests of one kind served at once; the rest wait in the queue
KEPT_STEPS = 64  # recent generation steps kept, to show again after a rewind
FIGURES_PER_ANALYSIS = 48  # an analysis's figures kept for every session (AnalysisStore.figure)
NO_ROW = np.zeros((0, 0, 0), dtype=np.float32)  # a kept step's attention row, not kept (see remember)

# The tabs whose panels wait while hidden (see Session.shown_tab).
HEADS_TAB, STEPS_TAB, WALK_TAB = "heads", "steps", "walk"


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


# --- analyses shared by all sessions, within a memory budget ----------------------------------

ANALYSIS_BUDGET_ENV = "EXPLORER_ANALYSIS_BUDGET_MB"
IDLE_ENV = "EXPLORER_IDLE_SECONDS"
IDLE_SECONDS = 3600  # a session untouched this long is released (gr.State's time to live)


def default_analysis_budget() -> int:
    """Bytes all sessions' analyses may hold together: EXPLORER_ANALYSIS_BUDGET_MB, else an
    eighth of the machine's memory, between 256 MB and 4 GB (a gpt2 analysis of 1024 tokens
    is ~1.1 GB; the bundled model's of 256 tokens ~10 MB)."""
    if env := os.environ.get(ANALYSIS_BUDGET_ENV, "").strip():
        return int(float(env) * 2**20)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 8 * 2**30
    return int(np.clip(total // 8, 256 * 2**20, 4 * 2**30))


def idle_seconds() -> float:
    env = os.environ.get(IDLE_ENV, "").strip()
    return float(env) if env else IDLE_SECONDS


@dataclass(frozen=True)
class AnalysisKey:
    """What makes two analyses the same: the model (its cache key), the text, the token limit."""

    model: str
    text: str
    max_tokens: int | None


def analysis_bytes(analysis: Analysis) -> int:
    """The arrays an analysis holds, the layers it computed again included (not the model's
    weights, which it only refers to)."""
    return analysis.nbytes


def freeze(analysis: Analysis) -> None:
    """Make a shared analysis's arrays read-only: a session that wrote into one would change
    what every other session sees."""
    for value in [*vars(analysis).values(), getattr(analysis.pattern, "packed", None)]:
        if isinstance(value, np.ndarray):
            value.flags.writeable = False


class AnalysisStore:
    """Analyses by AnalysisKey, shared read-only by every session that asks for the same one, and
    held together within `budget` bytes, least recently used dropped first.

    Sessions keep only the key and a weak reference: an analysis dropped here is freed once no
    request is using it, and the session recomputes it on its next request (see
    common.require_analysis). The newest analysis always stays, even over the budget.
    """

    def __init__(self, budget: int | None = None) -> None:
        self.budget = default_analysis_budget() if budget is None else int(budget)
        self._items: OrderedDict[AnalysisKey, tuple[Analysis, int]] = OrderedDict()
        self._figures: dict[AnalysisKey, OrderedDict[Any, tuple[Any, int]]] = {}
        self._lock = threading.Lock()
        self._computing: dict[AnalysisKey, threading.Lock] = {}
        self.computed = 0  # analyses computed, for tests and logs
        self.figures_made = 0  # figures made (not served from the store), for tests and bench

    def figure(self, key: AnalysisKey | None, name: Any, make: Callable[[], tuple[Any, int]]) -> Any:
        """A figure of the stored analysis `key`, made once (`make()` gives it and its size in
        bytes) and then served to every session that shows it: a class that analyzes the same
        example is sent the same overview. Figures count against the budget and leave with their
        analysis; each analysis keeps its FIGURES_PER_ANALYSIS most recent ones."""
        with self._lock:
            held = self._figures.get(key) if key is not None and key in self._items else None
            if held is not None and name in held:
                held.move_to_end(name)
                return held[name][0]
        value, size = make()
        self.figures_made += 1
        with self._lock:
            if key is None or key not in self._items:
                return value
            held = self._figures.setdefault(key, OrderedDict())
            held[name] = (value, size)
            while len(held) > FIGURES_PER_ANALYSIS:
                held.popitem(last=False)
        self._shrink()
        return value

    def _total(self) -> int:
        figures = sum(s for held in self._figures.values() for _, s in held.values())
        return sum(s for _, s in self._items.values()) + figures

    def _shrink(self) -> None:
        with self._lock:
            total = self._total()
            while total > self.budget and len(self._items) > 1:
                dropped, (_, freed) = self._items.popitem(last=False)
                freed += sum(s for _, s in self._figures.pop(dropped, {}).values())
                total -= freed
                log.info(
                    "analysis budget: dropped %d MB (%s, %d chars)",
                    freed >> 20,
                    dropped.model,
                    len(dropped.text),
                )

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._total()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: AnalysisKey) -> Analysis | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: AnalysisKey, analysis: Analysis) -> Analysis:
        freeze(analysis)
        size = analysis_bytes(analysis)
        with self._lock:
            self._items[key] = (analysis, size)
            self._items.move_to_end(key)
        self._shrink()
        return analysis

    def compute(self, key: AnalysisKey, run: Callable[[], Analysis]) -> Analysis:
        """The analysis for `key`, run once however many sessions ask for it at the same time."""
        if (found := self.get(key)) is not None:
            return found
        with self._lock:
            lock = self._computing.setdefault(key, threading.Lock())
        with lock:
            try:
                if (found := self.get(key)) is not None:
                    return found
                analysis = run()
                self.computed += 1
                return self.put(key, analysis)
            finally:
                with self._lock:
                    self._computing.pop(key, None)


# --- per-session state -------------------------------------------------------------------


@dataclass
class Session:
    """One browser session's work. Lives in gr.State, never shared between users."""

    model: str
    # The analysis shown: its key, and a weak reference to it (the AnalysisStore holds it).
    analysis_key: AnalysisKey | None = None
    analysis_ref: weakref.ref[Analysis] | None = field(default=None, repr=False)
    note: str = ""  # a line for the status, said once (an analysis recomputed, say): a message's key
    lang: str = "en"  # what the server says is in this language (the page's, see lecture_bar)
    generation: GenerationSession | None = None
    gen_prompt: str = ""
    gen_cut: int = 0  # tokens of gen_prompt that did not fit
    steps: dict[int, StepResult] = field(default_factory=dict)  # recent steps by position
    # The tab a browser page shows; None for API callers, who see no tabs and get every panel.
    # A hidden tab's panels are filled when it opens, not with each analysis and selection: the
    # Q/K/V tab's ~20 cards and plots, and the logit lens decoding every layer, were most of the
    # server's and the browser's work after a click (see tab_hidden and common.tab_listener).
    shown_tab: str | None = None
    shown_position: int | None = None  # the position whose distribution the chart shows
    token_text: dict[int, str] = field(default_factory=dict)  # display string by token id

    @property
    def analysis(self) -> Analysis | None:
        """The session's analysis while the store (or a request) still holds it."""
        return self.analysis_ref() if self.analysis_ref is not None else None

    @analysis.setter
    def analysis(self, analysis: Analysis | None) -> None:
        self.analysis_ref = weakref.ref(analysis) if analysis is not None else None
        if analysis is None:
            self.analysis_key = None


def tab_hidden(session: Session, tab: str) -> bool:
    """Whether a browser page shows another tab than `tab`, so that its panels can wait until it opens."""
    return session.shown_tab is not None and session.shown_tab != tab


def remember(session: Session, result: StepResult) -> None:
    """Keep recent steps to show again after a rewind, without their attention rows: the row
    shown is always the newest token's, the generation's `last_pattern`, which a rewind
    computes again. (64 rows would grow with every token: 37 MB for GPT-2 small at 1024.)"""
    session.steps[result.position] = replace(result, pattern=NO_ROW)
    for position in sorted(session.steps)[:-KEPT_STEPS]:
        del session.steps[position]
