"""One generation step: the app's `step` event against `model.generate`'s time per token.

The goal's candidate is the app's own Step handler run in this process as Gradio runs it, minus
the queue and the wire: the KV-cache forward with attention, the distributions, the
next-token, attention-row and timeline figures and the generated text, then each output's
`postprocess` and JSON encoding (bench.wire.InProcess). The same event over HTTP, in its own
session, is timed alongside as information, and its event stream gives the bytes sent per step.
The first step of each session (it reads the prompt) is not timed. The baseline is the time
between the tokens that `model.generate` streams with the page's default sampling settings,
continuing from a KV cache of the same prompt so that neither side pays for reading it.
Blocks of `k` steps alternate.
"""

from __future__ import annotations

import copy
import statistics
from typing import Any

from bench.common import Row, Settings, clocks, fmt_bytes, fmt_ratio, fmt_s, prompt
from bench.wire import Browserlike, InProcess, Served

STEP_GOAL = 1.2
STEP_BYTES_GOAL = 50_000


class _Stamps:
    """A generate() streamer that only notes when each token arrives (wall, CPU)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def put(self, value: Any) -> None:
        self.times.append(clocks())

    def end(self) -> None:
        pass


def _sampling(tab: Browserlike) -> dict[str, Any]:
    """generate()'s arguments for the sampling settings the page starts with."""
    ui = {}
    for elem_id in ("ae-greedy", "ae-temp", "ae-topk", "ae-topp"):
        ui[elem_id] = tab.components[tab.component_id(elem_id)]["props"]["value"]
    if bool(ui["ae-greedy"]) or float(ui["ae-temp"]) == 0:
        return {"do_sample": False}
    return {
        "do_sample": True,
        "temperature": float(ui["ae-temp"]),
        "top_k": int(ui["ae-topk"] or 0),
        "top_p": float(ui["ae-topp"]),
    }


def _generate_intervals(
    loaded: Any, ids: list[int], cache: Any, k: int, sampling: dict[str, Any]
) -> list[tuple[float, float]]:
    import torch

    stamps = _Stamps()
    with torch.inference_mode():
        loaded.model.generate(
            torch.tensor([ids]),
            cache=copy.deepcopy(cache),
            max_new_tokens=k + 1,
            min_new_tokens=k + 1,
            streamer=stamps,
            pad_token_id=loaded.tokenizer.eos_token_id,
            **sampling,
        )
    gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps.times, stamps.times[1:], strict=False)]
    return gaps[1:]  # the first gap also feeds the prompt's last token


def rows(settings: Settings, loaded: Any, served: Served) -> list[Row]:
    import torch

    k = 3 if settings.quick else 4
    out = []
    for n in settings.sizes:
        blocks = settings.repeats(n)
        n_prompt = n - k * blocks - 1
        text = prompt(loaded.tokenizer, n_prompt)
        ids = loaded.tokenizer(text)["input_ids"]
        with torch.inference_mode():
            cache = loaded.model(torch.tensor([ids[:-1]]), use_cache=True).cache
        tab, local = Browserlike(served.url), InProcess(served.demo)
        sampling = _sampling(tab)
        values = {"ae-prompt": text}
        tab.call("step", values)  # each reads the prompt first: not timed
        local.call("step", values)
        times: dict[str, list[tuple[float, float]]] = {"base": [], "server": [], "http": []}
        sent: list[int] = []
        for b in range(blocks):
            for side in ("server", "http", "base") if b % 2 == 0 else ("base", "http", "server"):
                if side == "base":
                    times["base"] += _generate_intervals(loaded, ids, cache, k, sampling)
                for _ in range(k if side != "base" else 0):
                    w0, c0 = clocks()
                    if side == "http":
                        sent.append(tab.call("step", values).stream_bytes)
                    else:
                        local.call("step", values)
                    w1, c1 = clocks()
                    times[side].append((w1 - w0, c1 - c0))
        tab.close()
        wall = {side: statistics.median(w for w, _ in v) for side, v in times.items()}
        cpu = {side: statistics.median(c for _, c in v) for side, v in times.items()}
        size = f"{n_prompt}→{n_prompt + k * blocks + 1} tokens"
        ratio = cpu["server"] / cpu["base"]
        out += [
            Row(
                "generation step, server side: forward, row, distributions, UI update (CPU time)",
                size,
                fmt_s(cpu["server"]),
                fmt_s(cpu["base"]),
                fmt_ratio(ratio),
                f"≤ {STEP_GOAL}×",
                ratio <= STEP_GOAL,
                f"wall clock {fmt_s(wall['server'])} vs {fmt_s(wall['base'])}: "
                f"{fmt_ratio(wall['server'] / wall['base'])}",
            ),
            Row(
                "generation step over HTTP, wall clock (info)",
                size,
                fmt_s(wall["http"]),
                fmt_s(wall["base"]),
                fmt_ratio(wall["http"] / wall["base"]),
                "—",
                None,
            ),
            Row(
                "generation step, bytes sent",
                size,
                f"{fmt_bytes(statistics.median(sent))} (max {fmt_bytes(max(sent))})",
                "—",
                "—",
                f"≤ {fmt_bytes(STEP_BYTES_GOAL)}",
                max(sent) <= STEP_BYTES_GOAL,
            ),
        ]
    return out
