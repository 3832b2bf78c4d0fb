"""Token-by-token generation with the KV cache: step, force, rewind.

Sampling goes through transformers' own logits warpers, so the distribution shown is the one
`model.generate` samples from. Each step's random draw is seeded by (seed, position), so
rewinding and stepping again repeats the same choice.
"""

from __future__ import annotations

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
    entropy: float
    forced: bool


def _check_settings(temperature: float, top_k: int, top_p: float, vocab: int) -> tuple[float, int, float]:
    try:
        temperature, top_p = float(temperature), float(top_p)
        top_k = int(top_k)
    except (TypeError, ValueError, OverflowError) as err:
        raise ExplorerError("Temperature and top-p must be numbers and top-k a whole number.") from err
    if not math.isfinite(temperature) or temperature < 0:
        raise ExplorerError("Temperature must be a number ≥ 0 (0 means greedy).")
    if not math.isfinite(top_p) or not 0 < top_p <= 1:
        raise ExplorerError("Top-p must be greater than 0 and at most 1.")
    if top_k < 0:
        raise ExplorerError("Top-k must be ≥ 0 (0 means no limit).")
    return temperature, min(top_k, vocab), top_p


def _check_seed(seed: int | None) -> int:
    try:
        return 0 if seed is None else int(seed)
    except (TypeError, ValueError, OverflowError) as err:
        raise ExplorerError("The seed must be a whole number.") from err


class GenerationSession:
    """One prompt being continued token by token.

    temperature 0 (or below MIN_TEMPERATURE, or greedy=True) picks the most likely token; top_k 0
    and top_p 1 disable those filters. `seed` makes sampling repeatable.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: str,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = 0,
        greedy: bool = False,
        max_new_tokens: int | None = None,
    ) -> None:
        import torch

        from explorer.model.kv_cache import BlockCache

        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.n_ctx = loaded.n_ctx
        self.vocab = int(self.model.config.vocab_size)
        self.configure(temperature, top_k, top_p, seed, greedy)
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
        self.eos_id = self.tokenizer.eos_token_id
        self._device = next(self.model.parameters()).device
        self._torch = torch
        # DynamicCache without a new copy of itself per token (see kv_cache).
        self._cache = BlockCache(int(self.model.config.n_layer), self.n_ctx)
        self._logits: Any = None  # [vocab] for the next position
        # [layer, head, key] the attention row of the last token fed: the newest token's, or after
        # a rewind the last kept token's (computed again, as rewinding feeds that token again).
        self.last_pattern = self._feed(ids)

    # ------------------------------------------------------------------ settings

    def configure(
        self,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = 0,
        greedy: bool = False,
    ) -> None:
        """Change the sampling settings; they apply from the next step on."""
        from transformers import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        temperature, top_k, top_p = _check_settings(temperature, top_k, top_p, self.vocab)
        self.seed = _check_seed(seed)
        self.greedy = bool(greedy) or temperature < MIN_TEMPERATURE
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        # The same warpers, in the same order, that generate() builds for do_sample=True.
        warpers: list[Any] = []
        if not self.greedy:
            if temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(temperature))
            if top_k:
                warpers.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
            if top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
        self._warpers = LogitsProcessorList(warpers)

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
        """(model's probabilities, probabilities after the sampling settings), each [vocab]."""
        torch = self._torch
        logits = self._logits[None].float()
        raw = torch.softmax(logits, -1)[0]
        if self.greedy:
            warped = torch.zeros_like(raw)
            warped[int(raw.argmax())] = 1.0
        else:
            ids = torch.tensor([self.ids], device=logits.device)
            warped = torch.softmax(self._warpers(ids, logits.clone()), -1)[0]
        return raw.cpu().numpy(), warped.cpu().numpy()

    # ------------------------------------------------------------------ actions

    def step(self) -> StepResult:
        """Choose the next token with the current settings and append it."""
        self._check_open()
        raw, warped = self.distributions()
        if self.greedy:
            token = int(np.argmax(raw))
        else:
            torch = self._torch
            # Any whole-number seed: torch takes seeds in [0, 2**64), so reduce it.
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + len(self.ids)) % 2**63)
            token = int(torch.multinomial(torch.from_numpy(warped).double(), 1, generator=gen))
        return self._append(token, raw, warped, forced=False)

    def force(self, token: int | str) -> StepResult:
        """Append a token of your choice (an id, or text that is exactly one token)."""
        self._check_open()
        token_id = self._token_id(token)
        raw, warped = self.distributions()
        return self._append(token_id, raw, warped, forced=True)

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
        # Crop the cache to before the last kept token and feed it again: that recomputes the
        # logits for the next position, and that token's attention row, without storing them
        # for every step.
        self._cache.crop(-(n + 1))
        self.ids = self.ids[: keep - 1]
        self.history = self.history[: len(self.history) - n]
        self.last_pattern = self._feed([last])

    # ------------------------------------------------------------------ internals

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
        self._logits = out.logits[0, -1].float()
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
            {
                "token": list(display_tokens(self.tokenizer, top)),
                "token_id": top,
                "prob": probs[top].astype(np.float32),
            }
        )

    def _append(self, token: int, raw: np.ndarray, warped: np.ndarray, forced: bool) -> StepResult:
        p = raw[raw > 0]
        entropy = float(-(p * np.log2(p)).sum())
        position = len(self.ids)
        pattern = self.last_pattern = self._feed([token])
        display = display_tokens(self.tokenizer, [token])[0]
        self.history.append(HistoryItem(position, token, display, float(raw[token]), entropy, forced))
        return StepResult(
            position=position,
            token_id=token,
            text=self.tokenizer.decode([token]),
            display=display,
            prob=float(raw[token]),
            warped_prob=float(warped[token]),
            raw_top=self._table(raw),
            warped_top=self._table(warped),
            entropy=entropy,
            pattern=pattern,
            forced=forced,
            finished=self.finished,
        )
