"""The GPT-2 family's larger sizes (#20): gpt2-medium-, -large- and -xl-shaped models with random
weights at 128 and 1,024 tokens, each size and length in a fresh process (`python -m bench.sizes
--one NAME TOKENS`), so that its peak RSS is its own. `python -m bench.sizes` runs them all.

Per row: analyze (forward + capture, the overview and one head's detail as JSON) against the bare
forward pass `model(ids, output_attentions=True)`, CPU time in the same process; the peak RSS of
that analyze beyond the RSS before it (VmHWM reset through /proc/self/clear_refs) and beyond the
weights' bytes; one engine generation step (GenerationSession.step, greedy) against the time per
token that `model.generate` streams; the overview's canvas payload in JSON bytes; the
walk-through of a layer not yet computed again. At 128 tokens also head types (`head_scores` on
its probes), and at 1,024 the logit lens of one 32-position window (what the Logit lens tab
decodes) and head importance, timed on one layer's heads and scaled to all; "Why this token?"
(`attribute`) at the last position.

Then the app's own server process on each size (`--server NAME`: Gradio, its threads and malloc
arenas), driven over HTTP as the page drives it: its peak RSS through Analyze of 1,024 tokens.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import GPT2_VOCAB, SEED, Row, Settings, clocks, fmt_bytes, fmt_ratio, fmt_s, prompt

SHAPES = {"gpt2-medium": (24, 16, 1024), "gpt2-large": (36, 20, 1280), "gpt2-xl": (48, 25, 1600)}
LENGTHS = (128, 1024)
ANALYZE_GOAL = 1.3
STEP_GOAL = 1.2
EXTRA_GOAL = {"gpt2-medium": 1e9, "gpt2-large": 1.5e9, "gpt2-xl": 2e9}  # beyond the weights


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _settle() -> int:
    """Free what can be freed, reset the peak to now, and return the RSS."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
    return _status()["VmRSS"]


def _timed(run: Any) -> tuple[float, float]:
    w0, c0 = clocks()
    run()
    w1, c1 = clocks()
    return w1 - w0, c1 - c0


def build(name: str) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from bench.common import gpt2_tokenizer
    from explorer.model.loading import LoadedModel

    n_layer, n_head, n_embd = SHAPES[name]
    torch.manual_seed(SEED)
    config = GPT2Config(
        vocab_size=GPT2_VOCAB,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        attn_implementation="eager",  # type: ignore[call-arg]
    )
    model = GPT2LMHeadModel(config).eval()
    return LoadedModel(model, gpt2_tokenizer(), f"{name}-random", "bench", config=config.to_dict())


def one(name: str, n: int, threads: int) -> dict[str, Any]:
    import torch

    from bench.steps import _generate_intervals
    from explorer.analysis.ablation import _clean_run, ablated_logits
    from explorer.analysis.heads import head_scores
    from explorer.figures.grid import analysis_overview_grid, head_detail_grid
    from explorer.insight_views import lens_for
    from explorer.model.capture import analyze, tokenize
    from explorer.model.generation import GenerationSession

    torch.set_num_threads(threads)
    loaded = build(name)
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    text = prompt(loaded.tokenizer, n)
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    out: dict[str, Any] = {"name": name, "n": n, "weights": weights}

    def bare() -> None:
        with torch.inference_mode():
            loaded.model(ids, output_attentions=True)

    held: dict[str, Any] = {}

    def server() -> None:
        held.clear()
        a = held["a"] = analyze(loaded, text)
        held["overview"] = json.dumps(analysis_overview_grid(a))  # the canvas payloads the page gets
        json.dumps(head_detail_grid(a, 0, 0, a.n_pos - 1)[0])

    repeats = 1 if n >= 1024 else 2
    bare()  # warm-up
    bare_cpu = min(_timed(bare)[1] for _ in range(repeats))
    out["rss_before"] = _settle()
    wall, cpu = _timed(server)
    out["peak"] = _status()["VmHWM"]
    out["analyze_cpu"] = min([cpu] + [_timed(server)[1] for _ in range(repeats - 1)])
    out["analyze_wall"], out["bare_cpu"] = wall, bare_cpu
    a = held["a"]
    out["overview_bytes"] = len(held["overview"].encode())
    out["kept_bytes"], out["storage"] = a.nbytes, str(a.pattern.packed.dtype)

    # A few tokens short of the window, so that there is room to generate.
    room = prompt(loaded.tokenizer, min(n, loaded.n_ctx - 8))
    session = GenerationSession(loaded, room, greedy=True)
    session.step()  # reads the prompt
    steps = [_timed(session.step)[1] for _ in range(3)]
    room_ids = loaded.tokenizer(room)["input_ids"]
    gaps = _generate_intervals(loaded, room_ids, None, 3, {"do_sample": False})
    out["step_cpu"], out["generate_cpu"] = min(steps), min(g[1] for g in gaps)
    del session

    # The walk-through (and the Q/K/V tab) of a layer not yet computed again: its breakdown
    # recomputes the layer where the analysis does not keep it, then the page's HTML.
    from explorer import walkthrough
    from explorer.analysis.arithmetic import breakdown

    def walk() -> None:
        last = loaded.n_layer - 1
        walkthrough.walkthrough_html(a, breakdown(a, last, 0, n - 1))

    out["walkthrough_wall"] = _timed(walk)[0]
    # "Why this token?" at the last position: every layer's shares (each layer computed again once).
    from explorer.analysis.attribution import attribute

    out["attribution_wall"] = _timed(lambda: attribute(a, n - 1))[0]

    if n <= 128:
        out["head_types_wall"] = _timed(lambda: head_scores(loaded))[0]
    else:
        out["lens_wall"] = _timed(lambda: lens_for(a, n - 32, n))[0]
        short, _ = tokenize(loaded, prompt(loaded.tokenizer, 32))
        n_layer, n_head = loaded.n_layer, loaded.n_head
        _, means = _clean_run(loaded, short)
        import numpy as np

        keep = np.ones((n_head, n_layer, n_head), dtype=bool)
        keep[np.arange(n_head), n_layer // 2, np.arange(n_head)] = False  # the middle layer's heads
        wall = _timed(lambda: ablated_logits(loaded, short, keep, np.zeros_like(means)))[0]
        out["importance_wall_est"] = wall * n_layer
    return out


def rows(settings: Settings) -> list[Row]:
    results = []
    for name in SHAPES:
        for n in LENGTHS:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.sizes",
                    "--one",
                    name,
                    str(n),
                    "--threads",
                    str(settings.threads),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {name} {n}: {results[-1]}", file=sys.stderr, flush=True)
    out = [row for r in results for row in _rows(r)]
    for name in SHAPES:
        done = subprocess.run(
            [sys.executable, "-m", "bench.sizes", "--server", name],
            capture_output=True,
            text=True,
            check=True,
        )
        s = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {name} server: {s}", file=sys.stderr, flush=True)
        beyond, goal = s["first_peak"] - s["weights"], EXTRA_GOAL[name]
        out.append(
            Row(
                "peak RSS of the app's server through Analyze, beyond the weights",
                f"{name}, {s['n']} tokens",
                fmt_bytes(beyond),
                f"weights {fmt_bytes(s['weights'])}",
                "—",
                f"≤ {fmt_bytes(goal)}",
                beyond <= goal,
                f"{fmt_bytes(s['rss_before'] - s['weights'])} before it (Gradio, torch, the tokenizer); a "
                f"second Analyze while the store keeps the first: {fmt_bytes(s['second_peak'] - s['weights'])}",
            )
        )
    return out


def _rows(r: dict[str, Any]) -> list[Row]:
    size = f"{r['name']}, {r['n']} tokens"
    ratio = r["analyze_cpu"] / r["bare_cpu"]
    step = r["step_cpu"] / r["generate_cpu"]
    beyond, extra = r["peak"] - r["weights"], r["peak"] - r["rss_before"]
    goal = EXTRA_GOAL[r["name"]] if r["n"] >= 1024 else None
    out = [
        Row(
            "analyze vs bare forward (CPU time)",
            size,
            fmt_s(r["analyze_cpu"]),
            fmt_s(r["bare_cpu"]),
            fmt_ratio(ratio),
            f"≤ {ANALYZE_GOAL}×",
            ratio <= ANALYZE_GOAL,
            f"wall clock {fmt_s(r['analyze_wall'])}",
        ),
        Row(
            "peak RSS of analyze beyond the weights",
            size,
            fmt_bytes(beyond),
            f"weights {fmt_bytes(r['weights'])}",
            "—",
            "—" if goal is None else f"≤ {fmt_bytes(goal)}",
            None if goal is None else beyond <= goal,
            f"{fmt_bytes(extra)} beyond the RSS before analyze (model and libraries loaded); the analysis "
            f"holds {fmt_bytes(r['kept_bytes'])}, pattern kept as {r['storage']}",
        ),
        Row(
            "one generation step vs generate per token (CPU time)",
            size,
            fmt_s(r["step_cpu"]),
            fmt_s(r["generate_cpu"]),
            fmt_ratio(step),
            f"≤ {STEP_GOAL}×",
            step <= STEP_GOAL,
        ),
        Row(
            "overview bytes (canvas payload JSON)",
            size,
            fmt_bytes(r["overview_bytes"]),
            "—",
            "—",
            "≤ 1 MB" if r["n"] <= 256 else "≤ 2 MB",
            r["overview_bytes"] <= (1e6 if r["n"] <= 256 else 2e6),
        ),
    ]
    for key, figure in (
        ("walkthrough_wall", f"walk-through of the last layer's head 0, last query, {r['n']} tokens, wall"),
        ("attribution_wall", f"why this token? (every layer's shares), last position, {r['n']} tokens, wall"),
        ("head_types_wall", "head types (head_scores on the probes), wall clock"),
        ("lens_wall", "logit lens of one 32-position window, wall clock"),
        ("importance_wall_est", "head importance at 32 tokens, every head (one layer timed × layers), wall"),
    ):
        if key in r:
            out.append(Row(figure, r["name"], fmt_s(r[key]), "—", "—", "—", None))
    return out


def serve(name: str, port: int) -> None:
    """The app's server on this size's random model, as `attention-explorer` would serve it."""
    from explorer.ui import build_app, launch

    launch(build_app(loaded=build(name)), port=port, quiet=True)


def served_peak(name: str, n: int = 1024) -> dict[str, Any]:
    """The app's server process (Gradio, its threads and malloc arenas) through two Analyze events
    of `n` tokens in one tab, over HTTP as the page sends them: its RSS before, its peak (VmHWM)
    through the first and through the second, while the first analysis is still held."""
    import httpx

    from bench.common import gpt2_tokenizer
    from bench.memory import _status as status_of
    from bench.wire import Browserlike, free_port

    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.sizes", "--serve", name, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start")
            try:
                if httpx.get(url + "/config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        n_layer, n_head, n_embd = SHAPES[name]
        config = GPT2Config(vocab_size=GPT2_VOCAB, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        with torch.device("meta"):  # the parameters' count, without their memory
            weights = sum(p.numel() * 4 for p in GPT2LMHeadModel(config).parameters())
        text = prompt(gpt2_tokenizer(), n)
        tab = Browserlike(url)
        out: dict[str, Any] = {
            "name": name,
            "n": n,
            "weights": weights,
            "rss_before": status_of(child.pid)["VmRSS"],
        }
        started = time.perf_counter()
        reply = tab.call("analyze", {"ae-prompt": text})
        out["first_wall"] = time.perf_counter() - started
        out["first_peak"] = status_of(child.pid)["VmHWM"]
        out["rss_after"] = status_of(child.pid)["VmRSS"]
        tab.call("analyze", {"ae-prompt": prompt(gpt2_tokenizer(), n, seed=SEED + 1)})
        out["second_peak"] = status_of(child.pid)["VmHWM"]
        out["stream_bytes"] = reply.stream_bytes
        tab.close()
        return out
    finally:
        child.terminate()
        child.wait(timeout=60)


if __name__ == "__main__":
    from explorer.model.heap import prefer_huge_pages

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    prefer_huge_pages()  # as the app's entry points do, before torch loads
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("NAME", "TOKENS"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--serve", nargs=2, metavar=("NAME", "PORT"), help="serve the app on this size")
    parser.add_argument(
        "--server", metavar="NAME", help="the served app's peak RSS through Analyze, 1,024 tokens"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
    elif args.server:
        print(json.dumps(served_peak(args.server)))
    elif args.one:
        started = time.perf_counter()
        result = one(args.one[0], int(args.one[1]), args.threads)
        result["seconds"] = time.perf_counter() - started
        print(json.dumps(result))
    else:  # every size and length, one process each; the table on stdout
        from bench.common import markdown

        print(markdown(rows(Settings(threads=args.threads))))
