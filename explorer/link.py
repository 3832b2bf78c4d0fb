"""The view as URL state: what a shared link restores, parsed and validated. No gradio here.

parse_view(query_params) -> View    a link's view; values that do not parse are dropped
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from explorer.model.generation import DEFAULT_SAMPLING
from explorer.walkthrough import LANGS

MAX_URL_PROMPT = 20_000  # characters of a prompt taken from a link


@dataclass(frozen=True)
class View:
    """What a shared link restores. None: not in the link (or not valid), keep the default."""

    prompt: str | None = None
    model: str | None = None
    layer: int | None = None
    head: int | None = None
    query: int | None = None
    mean: bool | None = None
    greedy: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    lang: str | None = None
    lecture: bool | None = None
    dark: bool | None = None
    tab: str | None = None  # the open tab's id (the UI knows which ids exist)


VIEW_KEYS = tuple(f.name for f in fields(View))
# Left out of a link when they have these values, to keep links short.
VIEW_DEFAULTS: Mapping[str, Any] = {
    "layer": 0,
    "head": 0,
    "mean": False,
    # The engine's own defaults: a link with top-k 0 keeps it, one without restores 50.
    "greedy": DEFAULT_SAMPLING.greedy,
    "temperature": DEFAULT_SAMPLING.temperature,
    "top_k": DEFAULT_SAMPLING.top_k,
    "top_p": DEFAULT_SAMPLING.top_p,
    "seed": DEFAULT_SAMPLING.seed,
    "lang": "en",
    "lecture": False,
    "dark": False,
    "tab": "heads",
}


def _int(text: str, low: int = 0, high: int = 1 << 31) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


def _float(text: str, low: float, high: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and low <= value <= high else None


def _bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    return False if lowered in ("0", "false", "no", "off") else None


def parse_view(params: Mapping[str, str]) -> View:
    """A View from a link's query parameters; values that do not parse are dropped, not errors."""
    get = {key: str(params[key]) for key in VIEW_KEYS if key in params and params[key] is not None}
    prompt = get.get("prompt")
    model = get.get("model", "").strip()
    return View(
        prompt=prompt[:MAX_URL_PROMPT] if prompt and prompt.strip() else None,
        model=model[:200] or None,
        layer=_int(get["layer"]) if "layer" in get else None,
        head=_int(get["head"]) if "head" in get else None,
        query=_int(get["query"]) if "query" in get else None,
        mean=_bool(get["mean"]) if "mean" in get else None,
        greedy=_bool(get["greedy"]) if "greedy" in get else None,
        temperature=_float(get["temperature"], 0, 2) if "temperature" in get else None,
        top_k=_int(get["top_k"], 0, 100) if "top_k" in get else None,
        top_p=_float(get["top_p"], 0.05, 1) if "top_p" in get else None,
        seed=_int(get["seed"]) if "seed" in get else None,
        lang=get["lang"] if get.get("lang") in LANGS else None,
        lecture=_bool(get["lecture"]) if "lecture" in get else None,
        dark=_bool(get["dark"]) if "dark" in get else None,
        tab=get["tab"] if re.fullmatch(r"[a-z][a-z-]{0,23}", get.get("tab", "")) else None,
    )


def language_from_header(accept_language: str | None) -> str:
    """'zh' when the browser prefers Chinese over English, else 'en'."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"
