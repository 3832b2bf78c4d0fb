"""Memory of the app's server process: its peak RSS through an analysis of 1024 tokens, and its
RSS over 200 generation steps in one session against the growth of the KV cache.

The server runs in a child process (`python -m bench.memory --serve PORT`) with the
GPT-2-small-sized model, driven over HTTP as a browser would; its RSS is read from /proc.
The 200 steps come first, so that their growth is not hidden in memory the big analysis freed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import Row, Settings, fmt_bytes, gpt2_small, gpt2_tokenizer, prompt
from bench.wire import Browserlike, free_port

PEAK_GOAL = 2e9
STEPS = 200
PEAK_TOKENS = 1024
FLAT_TOLERANCE = 5e6  # RSS may wander this much over the last 100 steps beyond the cache's growth


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def serve(port: int) -> None:
    from explorer.ui import build_app, launch

    demo = build_app(loaded=gpt2_small())
    launch(demo, port=port, quiet=True)


def engine_peak(n_tokens: int) -> None:
    """In a fresh process: load, analyze, build the overview and one head's figure; print the
    peak RSS (VmHWM) before and after the analysis.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a process started from a big
    one (`python -m bench` after its 1024-token runs) would report its parent's size.
    """

    from explorer.figures import head_figure, overview_figure
    from explorer.model.capture import analyze

    loaded = gpt2_small()
    loaded_peak = _status(os.getpid())["VmHWM"]
    analysis = analyze(loaded, prompt(loaded.tokenizer, n_tokens))
    overview_figure(analysis.pattern).to_json()
    last = analysis.n_pos - 1
    head_figure(analysis.pattern[0, 0], list(analysis.tokens), 0, 0, last).to_json()
    peak = _status(os.getpid())["VmHWM"]
    print(loaded_peak, peak)


def _engine_peak(n_tokens: int) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--engine-peak", str(n_tokens)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | _EXTRA_ENV,
    )
    loaded, peak = done.stdout.split()[-2:]
    return int(loaded), int(peak)


def _start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.memory", "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | _EXTRA_ENV,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError("the benchmark server exited")
        try:
            if httpx.get(url + "/config", timeout=2).status_code == 200:
                return child, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the benchmark server did not answer")


_EXTRA_ENV = dict(e.split("=", 1) for e in os.environ.get("BENCH_CHILD_ENV", "").split() if "=" in e)


def kv_cache_bytes(config: Any, n_tokens: int) -> int:
    """K and V of every layer for n tokens, float32: what the cache must hold. (The session's
    buffers have room for up to 127 more positions, but they are memory mapped: only the
    pages of positions written are resident.)"""
    return 2 * config.n_layer * n_tokens * config.n_embd * 4


def rows(settings: Settings) -> list[Row]:
    from transformers import GPT2Config

    config = GPT2Config()
    tokenizer = gpt2_tokenizer()
    loaded_peak, engine_peak = _engine_peak(PEAK_TOKENS)
    child, url = _start_server()
    try:
        tab = Browserlike(url)
        text = prompt(tokenizer, 32)
        rss = []
        for _ in range(STEPS):
            tab.call("step", {"ae-prompt": text})
            rss.append(_status(child.pid)["VmRSS"])
        tab.close()
        tab = Browserlike(url)
        tab.call("analyze", {"ae-prompt": prompt(tokenizer, PEAK_TOKENS)})
        peak = _status(child.pid)["VmHWM"]
        tab.close()
    finally:
        child.terminate()
        child.wait(timeout=30)

    n_prompt = 32
    cache = [kv_cache_bytes(config, n_prompt + i + 1) for i in range(STEPS)]
    growth, cache_growth = rss[-1] - rss[0], cache[-1] - cache[0]
    half = STEPS // 2
    late_excess = (rss[-1] - rss[half]) - (cache[-1] - cache[half])
    return [
        Row(
            "peak RSS: load the model, analyze, overview + one head",
            f"{PEAK_TOKENS} tokens",
            fmt_bytes(engine_peak),
            "—",
            "—",
            f"≤ {fmt_bytes(PEAK_GOAL)}",
            engine_peak <= PEAK_GOAL,
            f"VmHWM of a fresh process; {fmt_bytes(loaded_peak)} once the model is loaded",
        ),
        Row(
            "peak RSS: the app's server, analyze event",
            f"{PEAK_TOKENS} tokens",
            fmt_bytes(peak),
            "—",
            "—",
            f"≤ {fmt_bytes(PEAK_GOAL)}",
            peak <= PEAK_GOAL,
            "VmHWM of the app's process (Gradio, the model, 200 steps in one session, then this analysis)",
        ),
        Row(
            f"RSS over {STEPS} generation steps, one session",
            f"{n_prompt}→{n_prompt + STEPS} tokens",
            f"+{fmt_bytes(growth)} (steps {half}–{STEPS}: +{fmt_bytes(rss[-1] - rss[half])})",
            f"KV cache +{fmt_bytes(cache_growth)} (+{fmt_bytes(cache[-1] - cache[half])})",
            f"excess {late_excess / 1e6:+.1f} MB",
            f"flat: excess ≤ {fmt_bytes(FLAT_TOLERANCE)} over the last {STEPS - half}",
            late_excess <= FLAT_TOLERANCE,
            f"RSS after step 1 {fmt_bytes(rss[0])}, after step {STEPS} {fmt_bytes(rss[-1])}; "
            f"the excess is the growth beyond the cache's over steps {half}–{STEPS}",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int, help="serve the app on this port")
    parser.add_argument("--engine-peak", type=int, help="analyze this many tokens; print the peak RSS")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    elif args.engine_peak:
        engine_peak(args.engine_peak)
