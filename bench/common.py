"""What the benchmarks share: the GPT-2-small-sized model, prompts of an exact length,
interleaved timing and the rows of the table."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = (32, 128, 512, 1024)
SEED = 0
GPT2_VOCAB = 50257
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"  # gitignored: scratch, caches and latest.md
MODEL_NOTE = (
    "GPT-2 small architecture (12 layers, 12 heads, d_model 768, vocab 50257, 124M parameters) with "
    "random weights (torch seed 0, saved once as a checkpoint and loaded with load_model), eager attention, "
    "float32 on the CPU: the cost of real gpt2, which "
    "is not in the local cache here. Its tokenizer is the bundled 8192-token BPE with 42065 placeholder "
    "tokens added so that every id the model can emit has a name; prompts use only the BPE ids."
)


@dataclass(frozen=True)
class Settings:
    quick: bool = False
    sizes: tuple[int, ...] = SIZES
    threads: int = 1  # torch threads: the cores are shared, and oversubscribing them is what is noisy

    def repeats(self, n_tokens: int) -> int:
        """Interleaved pairs per figure: fewer where one run takes seconds."""
        if n_tokens >= 512:
            return 2 if self.quick else 3
        return 3 if self.quick else 5


@dataclass(frozen=True)
class Row:
    figure: str
    size: str
    candidate: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: not measured, or no goal to meet
    note: str = ""


# --- the model -----------------------------------------------------------------------------


@cache
def gpt2_tokenizer() -> Any:
    """The bundled BPE, padded with placeholder tokens to GPT-2's 50257 ids."""
    from transformers import AutoTokenizer

    from explorer.model.loading import bundled_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_path()))
    tokenizer.add_tokens([f"<|pad{i}|>" for i in range(GPT2_VOCAB - len(tokenizer))])
    assert len(tokenizer) == GPT2_VOCAB
    return tokenizer


def _build_gpt2_small() -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(SEED)
    # Eager attention, as load_model asks for: SDPA returns no attention weights.
    config = GPT2Config(vocab_size=GPT2_VOCAB, attn_implementation="eager")  # type: ignore[call-arg]
    return GPT2LMHeadModel(config).eval()


@cache
def gpt2_small_checkpoint() -> Path:
    """GPT-2 small's shape with seeded random weights, saved once as a safetensors checkpoint
    (bench/results/cache, gitignored) with the padded tokenizer."""
    folder = RESULTS_DIR / "cache" / f"gpt2-small-random-seed{SEED}"
    if not (folder / "model.safetensors").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _build_gpt2_small().save_pretrained(str(folder), safe_serialization=True)
        gpt2_tokenizer().save_pretrained(str(folder))
    return folder


@cache
def gpt2_small() -> Any:
    """The benchmark model, loaded by the explorer's own load_model like any checkpoint."""
    from explorer.model.loading import load_model

    return load_model(str(gpt2_small_checkpoint()), device="cpu")


_WORDS_TEXT = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have "
    "an they you were her she there one all we their been has when who will more no if out so said what up "
    "its about into than them can only other new some could time these two may then do first any my now "
    "such like our over man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good very make world"
)


def prompt(tokenizer: Any, n_tokens: int, seed: int = SEED) -> str:
    """English-like text that the tokenizer cuts into exactly `n_tokens` tokens."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = [str(w) for w in rng.choice(_WORDS_TEXT.split(), size=n_tokens * 2)]
    words[0] = words[0].capitalize()
    for cut in range(n_tokens, n_tokens + 8):
        ids = tokenizer(" ".join(words))["input_ids"][:cut]
        text = tokenizer.decode(ids[:n_tokens])
        if len(tokenizer(text)["input_ids"]) == n_tokens:
            return text
    raise RuntimeError(f"no prompt of exactly {n_tokens} tokens")


# --- timing --------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Timing:
    """Median seconds of one run: wall clock, and CPU time of this whole process (every thread).
    With one torch thread the CPU time is the work done, whatever else the machine is running,
    so it is what the in-process ratios use; wall clock is reported beside it."""

    wall: float
    cpu: float


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def interleave(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Medians of each run, the runs alternated (a b, b a, a b, ...) so that drift hits all."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            gc.collect()
            w0, c0 = clocks()
            runs[name]()
            w1, c1 = clocks()
            wall[name].append(w1 - w0)
            cpu[name].append(c1 - c0)
    return {name: Timing(statistics.median(wall[name]), statistics.median(cpu[name])) for name in names}


# --- formatting ----------------------------------------------------------------------------


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n < 100 * size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if ratio < 0.01:
        return f"1/{1 / ratio:,.0f}"
    return f"{ratio:.2f}×" if ratio < 100 else f"{ratio:.0f}×"


def markdown(rows: Sequence[Row]) -> str:
    lines = [
        "| figure | size | candidate | baseline | ratio | goal | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(
            f"| {row.figure} | {row.size} | {row.candidate} | {row.baseline} | {row.ratio} | {row.goal} | {met} |"
        )
    notes = [f"- {row.figure}, {row.size}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + ([""] + notes if notes else []))
