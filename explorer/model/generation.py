"""Token-by-token generation with the KV cache: step, force, rewind.

Sampling goes through transformers' own logits warpers and draws the way `model.generate` does
(`torch.multinomial` on the float32 softmax of the warped scores, one generator seeded once), so
with the same settings and seed a session samples the tokens `torch.manual_seed(seed);
model.generate(..., do_sample=True)` does. The generator's state before each draw is kept, so
rewinding and stepping again repeats the same choice.

The probabilities shown and exported are a float64 softmax of the same float32 logits: a
float32 softmax over a vocabulary is off by ~1e-5 (at p = 0.9955 over 8,192 tokens the sum is
1 + 9e-6), and more with GPT-2's 50,257.
"""

from __future__ import annotations

import contextlib
import math
import reprlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.model.capture import clean_text, display_tokens, tokenize
from explorer.model.loading import LoadedModel

TOP_K_SHOWN = 10
# Below this a temperature acts as 0: dividing logits by it would overflow to inf and NaN.
MIN_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class Sampling:
    """Sampling settings: temperature 0 (or below MIN_TEMPERATURE, or greedy) picks the most likely
    token; top_k 0 and top_p 1 turn those filters off.

    The defaults are `model.generate`'s own when neither the model nor the caller sets them
    (temperature 1, top-k 50, top-p 1), so the demo samples what transformers would. Top-k 50
    matters: with no filter, even a confident step leaves the long tail a chance (after "…, Alice
    handed a bag" ' to' has p = 0.98, and 6,648 tokens below 1e-6 share 0.16%), and the small demo
    model answers a tail token such as ' quarrel' (p = 8.6e-8) with a near-uniform distribution,
    12.99 of 13 bits, that later draws stay in: 11 of 20 runs of 200 tokens from the example
    prompts did with top-k 0, none with top-k 50.
    """

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    seed: int = 0
    greedy: bool = False


DEFAULT_SAMPLING = Sampling()


@dataclass(frozen=True)
class StepResult:
    position: int  # the new token's position in the sequence
    token_id: int
    text: str  # the token as decoded text
    display: str  # the token with whitespace made visible
    prob: float  # the model's probability for it (before the sampling settings)
    warped_prob: float  # its probability after temperature, top-k and top-p
    raw_top: pd.DataFrame  # token, token_id, prob: the model's distribution
    warped_top: pd.DataFrame  # the distribution actually sampled from
    entropy: float  # bits, of the model's distribution
    pattern: np.ndarray  # [layer, head, key] the new token's attention row
    forced: bool
    finished: str | None  # why generation cannot go on, or None


@dataclass(frozen=True)
class HistoryItem:
    position: int
    token_id: int
    display: str
    prob: float
    warped_prob: float
    entropy: float
    forced: bool


def _whole(value: Any, message: str) -> int:
    """`value` as an int if it is a whole number (3, 3.0, "3", "3.0"); otherwise ExplorerError."""
    if isinstance(value, (bool, np.bool_)):
        raise ExplorerError(message)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)  # exact for long digit strings, which float() would round
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ExplorerError(message) from None
    if not number.is_integer():  # NaN and ±inf are not either
        raise ExplorerError(message)
    return int(number)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _check_settings(temperature: Any, top_k: Any, top_p: Any, seed: Any, greedy: Any, vocab: int) -> Sampling:
    """The settings as a Sampling, or ExplorerError saying which value is wrong."""

    def got(value: Any) -> str:
        return f"; got {reprlib.repr(value)}."

    temperature_, top_p_ = _number(temperature), _number(top_p)
    if not math.isfinite(temperature_) or temperature_ < 0:
        raise ExplorerError("Temperature must be a number ≥ 0 (0 means greedy)" + got(temperature))
    if not 0 < top_p_ <= 1:  # NaN fails too
        raise ExplorerError("Top-p must be a number greater than 0 and at most 1 (1 means off)" + got(top_p))
    top_k_ = _whole(top_k, "Top-k must be a whole number ≥ 0 (0 means off)" + got(top_k))
    if top_k_ < 0:
        raise ExplorerError("Top-k must be a whole number ≥ 0 (0 means off)" + got(top_k))
    seed_ = 0 if seed is None else _whole(seed, "The seed must be a whole number" + got(seed))
    return Sampling(
        temperature=temperature_,
        top_k=min(top_k_, vocab),
        top_p=top_p_,
        seed=seed_,
        greedy=bool(greedy) or temperature_ < MIN_TEMPERATURE,
    )


def _warpers(sampling: Sampling) -> Any:
    """The warpers, in the order and with the arguments, that generate() builds for do_sample=True."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers: list[Any] = []
    if not sampling.greedy:
        if sampling.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_k:
            warpers.append(TopKLogitsWarper(top_k=sampling.top_k, min_tokens_to_keep=1))
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=sampling.top_p, min_tokens_to_keep=1))
    return LogitsProcessorList(warpers)


class GenerationSession:
    """One prompt being continued token by token, with the settings of `Sampling` (the defaults
    are DEFAULT_SAMPLING's); `seed` makes sampling repeatable."""

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: str,
        temperature: float = DEFAULT_SAMPLING.temperature,
        top_k: int = DEFAULT_SAMPLING.top_k,
        top_p: float = DEFAULT_SAMPLING.top_p,
        seed: int | None = DEFAULT_SAMPLING.seed,
        greedy: bool = DEFAULT_SAMPLING.greedy,
        max_new_tokens: int | None = None,
    ) -> None:
        import torch

        from explorer.model.kv_cache import BlockCache

        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.n_ctx = loaded.n_ctx
        self.vocab = int(self.model.config.vocab_size)
        self._torch = torch
        self._device = next(self.model.parameters()).device
        self.sampling = _check_settings(temperature, top_k, top_p, seed, greedy, self.vocab)
        self._warpers = _warpers(self.sampling)
        self._rng = self._generator(self.sampling.seed)
        if max_new_tokens is not None and (
            not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1
        ):
            raise ExplorerError(
                f"max_new_tokens must be a whole number ≥ 1 or None (got {reprlib.repr(max_new_tokens)})."
            )
        ids, cut = tokenize(loaded, prompt, max_tokens=self.n_ctx - 1)
        self.truncated = cut
        self.prompt_len = len(ids)
        self.ids: list[int] = []
        self.max_new_tokens = max_new_tokens
        self.history: list[HistoryItem] = []
        # Per history item: (seed, generator state) before its draw, or None if nothing was drawn.
        self._draws: list[tuple[int, Any] | None] = []
        self.eos_id = self.tokenizer.eos_token_id
        # DynamicCache without a new copy of itself per token (see kv_cache).
        self._cache = BlockCache(int(self.model.config.n_layer), self.n_ctx)
        self._logits: Any = None  # [vocab] float32 for the next position, on the model's device
        self._next: tuple[np.ndarray, np.ndarray, Any] | None = None  # see _distributions
        # [layer, head, key] the attention row of the last token fed: the newest token's, or after
        # a rewind the last kept token's (computed again, as rewinding feeds that token again).
        self.last_pattern = self._feed(ids)

    # ------------------------------------------------------------------ settings

    def configure(
        self,
        temperature: float = DEFAULT_SAMPLING.temperature,
        top_k: int = DEFAULT_SAMPLING.top_k,
        top_p: float = DEFAULT_SAMPLING.top_p,
        seed: int | None = DEFAULT_SAMPLING.seed,
        greedy: bool = DEFAULT_SAMPLING.greedy,
    ) -> None:
        """Change the sampling settings; they apply from the next step on. A new seed starts its
        random stream afresh; the same seed goes on with the stream as it is. Bad settings raise
        ExplorerError and leave the previous ones in place."""
        try:
            sampling = _check_settings(temperature, top_k, top_p, seed, greedy, self.vocab)
        except ExplorerError as err:
            raise ExplorerError(f"{err} The previous settings stay.") from err
        if sampling == self.sampling:
            return
        self._warpers = _warpers(sampling)
        if sampling.seed != self.sampling.seed:
            self._rng = self._generator(sampling.seed)
        self.sampling = sampling
        self._next = None

    @property
    def temperature(self) -> float:
        return self.sampling.temperature

    @property
    def top_k(self) -> int:
        return self.sampling.top_k

    @property
    def top_p(self) -> float:
        return self.sampling.top_p

    @property
    def seed(self) -> int:
        return self.sampling.seed

    @property
    def greedy(self) -> bool:
        return self.sampling.greedy

    # ------------------------------------------------------------------ state

    @property
    def generated(self) -> list[int]:
        return self.ids[self.prompt_len :]

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids)

    @property
    def finished(self) -> str | None:
        if len(self.ids) >= self.n_ctx:
            return f"the context window of {self.n_ctx} tokens is full"
        if self.generated and self.eos_id is not None and self.generated[-1] == self.eos_id:
            return "the model produced end-of-text"
        if self.max_new_tokens is not None and len(self.generated) >= self.max_new_tokens:
            return f"the maximum of {self.max_new_tokens} new tokens is reached"
        return None

    def distributions(self) -> tuple[np.ndarray, np.ndarray]:
        """(model's probabilities, probabilities after the sampling settings), each [vocab]
        float64, read-only."""
        raw, warped, _ = self._distributions()
        return raw, warped

    # ------------------------------------------------------------------ actions

    def step(self) -> StepResult:
        """Choose the next token with the current settings and append it."""
        self._check_open()
        torch = self._torch
        raw, warped, scores = self._distributions()
        if self.greedy:
            draw = None
            token = int(self._logits.argmax())  # what generate's do_sample=False picks
        else:
            draw = (self.seed, self._rng.get_state())
            # generate's own draw, in float32 as there: the float64 `warped` is for showing; drawing
            # from it would consume the random stream differently and break identity with generate.
            token = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=self._rng))
        return self._append(token, raw, warped, forced=False, draw=draw)

    def force(self, token: int | str) -> StepResult:
        """Append a token of your choice (an id, or text that is exactly one token)."""
        self._check_open()
        token_id = self._token_id(token)
        raw, warped, _ = self._distributions()
        return self._append(token_id, raw, warped, forced=True, draw=None)

    def rewind(self, n: int = 1) -> None:
        """Take back the last n generated tokens, to branch from there."""
        try:
            n = int(n)
        except (TypeError, ValueError, OverflowError) as err:
            raise ExplorerError("Rewind takes a whole number of steps.") from err
        n = max(0, min(n, len(self.generated)))
        if n == 0:
            return
        keep = len(self.ids) - n
        last = self.ids[keep - 1]
        self._rewind_generator(self._draws[len(self._draws) - n :])
        # Crop the cache to before the last kept token and feed it again: that recomputes the
        # logits for the next position, and that token's attention row, without storing them
        # for every step.
        self._cache.crop(-(n + 1))
        self.ids = self.ids[: keep - 1]
        self.history = self.history[: len(self.history) - n]
        self._draws = self._draws[: len(self._draws) - n]
        self.last_pattern = self._feed([last])

    # ------------------------------------------------------------------ internals

    def _generator(self, seed: int) -> Any:
        """A generator on the model's device seeded as torch.manual_seed(seed) seeds the default
        one (any whole number: torch takes [-2**63, 2**64), so reduce it)."""
        return self._torch.Generator(device=self._device).manual_seed(seed % 2**64)

    def _rewind_generator(self, removed: list[tuple[int, Any] | None]) -> None:
        """Put the generator back to before the first draw taken back, so that stepping again
        draws the same; if that draw was made with another seed, the current seed starts afresh."""
        first = next((d for d in removed if d is not None), None)
        if first is None:
            return
        seed, state = first
        if seed == self.seed:
            self._rng.set_state(state)
        else:
            self._rng = self._generator(self.seed)

    def _distributions(self) -> tuple[np.ndarray, np.ndarray, Any]:
        """(raw, warped, scores) for the next position: raw and warped as float64 numpy [vocab],
        scores the warped float32 logits [vocab] on the device that sampling draws from (None
        when greedy). Kept until the next token or settings change: the page shows a preview
        that the step then uses."""
        if self._next is None:
            torch = self._torch
            logits = self._logits
            raw = _softmax64(torch, logits)
            scores = None
            if self.greedy:
                warped = np.zeros_like(raw)
                warped[int(logits.argmax())] = 1.0
            elif len(self._warpers):
                ids = torch.tensor([self.ids], device=logits.device)
                scores = self._warpers(ids, logits[None].clone())[0]
                warped = _softmax64(torch, scores)
            else:
                scores, warped = logits, raw
            raw.flags.writeable = warped.flags.writeable = False
            self._next = raw, warped, scores
        return self._next

    def _check_open(self) -> None:
        reason = self.finished
        if reason:
            raise ExplorerError(f"Generation has stopped: {reason}. Rewind or start again.")

    def _token_id(self, token: int | str) -> int:
        if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            if not 0 <= int(token) < self.vocab:
                raise ExplorerError(f"Token id {token} is outside the vocabulary (0 to {self.vocab - 1}).")
            return int(token)
        if isinstance(token, str):
            ids = self.tokenizer(clean_text(token))["input_ids"]
            if len(ids) != 1:
                raise ExplorerError(
                    f"{reprlib.repr(token)} is {len(ids)} tokens, not one: choose a single token."
                )
            return int(ids[0])
        raise ExplorerError("A forced token is a token id or the text of one token.")

    def _feed(self, ids: list[int]) -> np.ndarray:
        """Run `ids` through the model with the cache; returns the last position's attention."""
        torch = self._torch
        with torch.inference_mode():
            out = self.model(
                torch.tensor([ids], device=self._device),
                cache=self._cache,
                use_cache=True,
                output_attentions=True,
            )
        self._cache = out.cache
        # generate's own copy: float32, whatever the model's dtype.
        self._logits = out.logits[0, -1].float()
        self._next = None
        self.ids.extend(int(i) for i in ids)
        # [layer, head, key] for the last fed token: one row per layer, never the whole matrix.
        return torch.stack([a[0, :, -1] for a in out.attentions]).float().cpu().numpy()

    def _table(self, probs: np.ndarray) -> pd.DataFrame:
        # Partition, then sort only the few shown: a full argsort of the vocabulary costs
        # milliseconds, twice a step.
        k = min(TOP_K_SHOWN, len(probs))
        top = np.argpartition(-probs, k - 1)[:k]
        top = top[np.argsort(-probs[top], kind="stable")]
        top = top[probs[top] > 0] if probs[top[0]] > 0 else top
        return pd.DataFrame(
            {"token": list(display_tokens(self.tokenizer, top)), "token_id": top, "prob": probs[top]}
        )

    def _append(
        self, token: int, raw: np.ndarray, warped: np.ndarray, forced: bool, draw: tuple[int, Any] | None
    ) -> StepResult:
        p = raw[raw > 0]
        entropy = float(-(p * np.log2(p)).sum())
        position = len(self.ids)
        prob, warped_prob = float(raw[token]), float(warped[token])
        raw_top, warped_top = self._table(raw), self._table(warped)
        pattern = self.last_pattern = self._feed([token])
        display = display_tokens(self.tokenizer, [token])[0]
        self.history.append(HistoryItem(position, token, display, prob, warped_prob, entropy, forced))
        self._draws.append(draw)
        return StepResult(
            position=position,
            token_id=token,
            text=self.tokenizer.decode([token]),
            display=display,
            prob=prob,
            warped_prob=warped_prob,
            raw_top=raw_top,
            warped_top=warped_top,
            entropy=entropy,
            pattern=pattern,
            forced=forced,
            finished=self.finished,
        )


def _softmax64(torch: Any, logits: Any) -> np.ndarray:
    """softmax in float64 of float32 logits [vocab], on the CPU (MPS has no float64). 0.16 ms for
    GPT-2's 50,257 tokens: skipping the −∞ of top-k costs more than it saves."""
    return torch.softmax(logits.detach().cpu().double(), -1).numpy()
