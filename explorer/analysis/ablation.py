"""Ablation: remove heads and see what the model predicts without them.

A forward pre-hook on `transformer.h[L].attn.c_proj` edits its input, the heads' contexts laid
side by side ([batch, pos, head * d_head]), before W_O mixes them into the residual stream.
"zero" sets a head's slice to 0; "mean" sets it to that head's mean context over the positions
of the same prompt, taken from the clean run, so the head still adds its average output but
no longer depends on which tokens it attends to.

Each batch row can remove a different set of heads, which is how `head_importance` tries every
head alone in a few forward passes rather than one pass per head. Blocks before the first
edited layer are the same for every row, so they run once and the stream is copied per row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from explorer.errors import ExplorerError
from explorer.model.capture import display_tokens, tokenize
from explorer.model.loading import LoadedModel, Progress

MODES = ("zero", "mean")
Head = tuple[int, int]  # (layer, head)
# Forward passes take as many batch rows as keep their activations near this many bytes.
BATCH_BYTES = 256 * 2**20


@dataclass(frozen=True)
class AblationResult:
    heads: tuple[Head, ...]  # the heads removed, sorted
    mode: str  # "zero" or "mean"
    before: pd.DataFrame  # top-k next tokens of the full model: token, token_id, prob
    after: pd.DataFrame  # the same with the heads removed
    target_id: int  # the token followed: the model's top prediction unless one was chosen
    target: str  # its display string
    prob_before: float
    prob_after: float
    summary: str  # one plain sentence, e.g. "Removing L1H3 drops ' Mary' from 41.2% to 3.5%."

    @property
    def delta(self) -> float:
        return self.prob_after - self.prob_before


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ExplorerError(f"The ablation mode must be one of {', '.join(MODES)} (got {mode!r}).")
    return mode


def _check_heads(loaded: LoadedModel, heads: Iterable[Any], layer: int | None) -> tuple[Head, ...]:
    chosen: set[Head] = set()
    for item in heads:
        named = re.fullmatch(r"L(\d+)H(\d+)", item.strip()) if isinstance(item, str) else None
        try:
            layer_i, head_i = (int(x) for x in (named.groups() if named else item))
        except (TypeError, ValueError) as err:
            raise ExplorerError(f"A head is a (layer, head) pair of whole numbers (got {item!r}).") from err
        if not (0 <= layer_i < loaded.n_layer and 0 <= head_i < loaded.n_head):
            raise ExplorerError(
                f"There is no head {head_name(layer_i, head_i)}: layers go 0–{loaded.n_layer - 1}, "
                f"heads 0–{loaded.n_head - 1}."
            )
        chosen.add((layer_i, head_i))
    if layer is not None:
        if not 0 <= int(layer) < loaded.n_layer:
            raise ExplorerError(f"There is no layer {layer}: layers go 0–{loaded.n_layer - 1}.")
        chosen |= {(int(layer), h) for h in range(loaded.n_head)}
    return tuple(sorted(chosen))


def _clean_run(loaded: LoadedModel, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(next-token logits [vocab], each head's mean context over positions [layer, head, d_head])."""
    import torch

    model = loaded.model
    n_head = loaded.n_head
    means: list[Any] = [None] * loaded.n_layer

    def capture(layer: int):
        def hook(module: Any, args: Any) -> None:
            x = args[0][0]  # [pos, head * d_head]
            means[layer] = x.reshape(x.shape[0], n_head, -1).mean(0).float().cpu().numpy()

        return hook

    handles = [
        block.attn.c_proj.register_forward_pre_hook(capture(i)) for i, block in enumerate(model.transformer.h)
    ]
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            out = model(torch.tensor([ids], device=device), use_cache=False, logits_to_keep=1)
    finally:
        for handle in handles:
            handle.remove()
    return out.logits[0, -1].float().cpu().numpy(), np.stack(means)


def rows_per_pass(n_head: int, n_pos: int, d_model: int) -> int:
    """Batch rows per forward pass: attention scores and pattern, and the MLP, near BATCH_BYTES."""
    row_bytes = 4 * n_pos * (3 * n_head * n_pos + 8 * d_model)
    return max(1, BATCH_BYTES // row_bytes)


def ablated_logits(
    loaded: LoadedModel,
    ids: Sequence[int],
    keep: np.ndarray,
    fill: np.ndarray,
    progress: Progress | None = None,
) -> np.ndarray:
    """Next-token logits with heads removed: one batch row per row of `keep`.

    keep: [row, layer, head] bool, False where that row removes the head. fill: [layer, head,
    d_head], what a removed head's context becomes. Returns [row, vocab] float32. `progress`
    hears of each forward pass (gpt2-xl's 1,200 heads take minutes on a CPU).
    """
    out = []
    for done in ablated_passes(loaded, ids, keep, fill):
        out.append(done.logits)
        if progress is not None:
            progress(done.share, f"{done.rows.stop} of {len(keep)} heads removed one by one …")
    return np.concatenate(out)


@dataclass(frozen=True)
class AblatedPass:
    rows: slice  # the rows of `keep` this forward pass ran
    logits: np.ndarray  # [row, vocab] float32: their next-token logits
    share: float  # of the whole work (batch rows × blocks run), done with this pass


def ablated_passes(
    loaded: LoadedModel, ids: Sequence[int], keep: np.ndarray, fill: np.ndarray
) -> Iterator[AblatedPass]:
    """The forward passes of `ablated_logits`, one at a time.

    The hooks are on the model only while a pass runs, so a caller may stop between passes, or
    let another request use the model (an analysis, a generation step) before the next one:
    gpt2-xl's 1,200 heads on a long prompt take many minutes."""
    import torch

    model = loaded.model
    device = next(model.parameters()).device
    n_head, n_layer, n_pos = loaded.n_head, loaded.n_layer, len(ids)
    keep = np.asarray(keep, dtype=bool)
    keep_t = torch.as_tensor(keep, device=device)
    fill_t = torch.as_tensor(np.asarray(fill, dtype=np.float32), device=device)
    # At most a layer's heads a pass, however many memory allows: a caller hears of each layer
    # (gpt2-medium's 384 heads at a short prompt would fit in 2 passes, its first update minutes away).
    chunk = min(rows_per_pass(n_head, n_pos, n_head * fill_t.shape[2]), n_head)
    passes = []
    for begin in range(0, len(keep), chunk):
        rows = slice(begin, min(begin + chunk, len(keep)))
        edited = np.flatnonzero(~keep[rows].all(axis=(0, 2)))
        passes.append((rows, int(edited[0]) if len(edited) else n_layer - 1))
    # A pass costs about its rows × the blocks from its first edited one, plus the shared ones.
    work = np.array([(r.stop - r.start) * (n_layer - first) + first for r, first in passes], dtype=float)
    shares = np.cumsum(work) / work.sum()

    def widen(layer: int, n: int, first: int):
        # Blocks before `first` are the same for every row: run them once, then copy the stream.
        def hook(module: Any, args: Any) -> tuple | None:
            x = args[0]
            if layer != first or x.shape[0] == n:
                return None
            return (x.expand(n, -1, -1).contiguous(), *args[1:])

        return hook

    def edit(layer: int, rows: slice, first: int):
        def hook(module: Any, args: Any) -> tuple | None:
            if layer < first:
                return None
            x = args[0]
            b, t, d = x.shape
            heads = x.view(b, t, n_head, d // n_head)
            kept = keep_t[rows, layer][:, None, :, None]  # [row, 1, head, 1]
            heads = torch.where(kept, heads, fill_t[layer].to(x.dtype))
            return (heads.reshape(b, t, d), *args[1:])

        return hook

    batch = torch.tensor([list(ids)], device=device)
    for (rows, first), share in zip(passes, shares, strict=True):
        handles = []
        try:
            for layer, block in enumerate(model.transformer.h):
                handles.append(block.register_forward_pre_hook(widen(layer, rows.stop - rows.start, first)))
                handles.append(block.attn.c_proj.register_forward_pre_hook(edit(layer, rows, first)))
            with torch.inference_mode():
                logits = model(batch, use_cache=False, logits_to_keep=1).logits[:, -1].float().cpu().numpy()
        finally:
            for handle in handles:
                handle.remove()
        yield AblatedPass(rows, logits, float(share))


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    top = x.max(-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))


def _target_id(loaded: LoadedModel, target: int | str | None, logits: np.ndarray) -> int:
    """The token to follow: None is the top prediction, an int an id, a string one token's text."""
    vocab = logits.shape[-1]
    if target is None:
        return int(np.argmax(logits))
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < vocab:
            raise ExplorerError(f"The token id must be from 0 to {vocab - 1} (got {target}).")
        return int(target)
    if isinstance(target, str) and target:
        text = target.replace("␣", " ")  # the display form of a space, as tables show it
        ids = loaded.tokenizer(text)["input_ids"]
        if len(ids) == 1:
            return int(ids[0])
        hint = (
            ""
            if text.startswith(" ")
            else f" (words inside a sentence usually start with a space: ' {text}')"
        )
        raise ExplorerError(f"{target!r} is {len(ids)} tokens, not one{hint}.")
    raise ExplorerError(f"The target must be a token id or one token's text (got {target!r}).")


def top_table(loaded: LoadedModel, logits: np.ndarray, top_k: int) -> pd.DataFrame:
    """token, token_id, prob for the top-k of one logits vector."""
    probs = np.exp(_log_softmax(logits))
    top = np.argsort(-probs, kind="stable")[:top_k]
    return pd.DataFrame(
        {
            "token": list(display_tokens(loaded.tokenizer, top)),
            "token_id": top.astype(np.int64),
            "prob": probs[top].astype(np.float32),
        }
    )


def _percent(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2g}%"


def _quoted(loaded: LoadedModel, token_id: int) -> str:
    text = loaded.tokenizer.decode([token_id])
    return repr(text) if text.isprintable() else repr(display_tokens(loaded.tokenizer, [token_id])[0])


def _removed(loaded: LoadedModel, heads: tuple[Head, ...]) -> str:
    layers = {layer for layer, _ in heads}
    if len(layers) == 1 and len(heads) == loaded.n_head > 1:
        return f"all {loaded.n_head} heads of layer {next(iter(layers))}"
    names = [head_name(*h) for h in heads]
    if len(names) > 4:
        return f"{len(names)} heads ({', '.join(names[:3])}, …)"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def summarise(
    loaded: LoadedModel,
    heads: tuple[Head, ...],
    target_id: int,
    before: float,
    after: float,
    top_after: int,
    top_after_prob: float,
) -> str:
    """The effect of an ablation in one or two plain sentences."""
    token = _quoted(loaded, target_id)
    if not heads:
        return f"No heads were removed: {token} stays at {_percent(before)}."
    was, now = _percent(before), _percent(after)
    if was == now:
        sentence = f"Removing {_removed(loaded, heads)} leaves {token} at {was}."
    else:
        verb = "drops" if after < before else "raises"
        sentence = f"Removing {_removed(loaded, heads)} {verb} {token} from {was} to {now}."
    if top_after != target_id:
        sentence += f" The top prediction becomes {_quoted(loaded, top_after)} ({_percent(top_after_prob)})."
    return sentence


def ablate(
    loaded: LoadedModel,
    text: str,
    heads: Iterable[Any] = (),
    layer: int | None = None,
    mode: str = "zero",
    target: int | str | None = None,
    top_k: int = 10,
) -> AblationResult:
    """Remove `heads` (and every head of `layer`, if given) and compare the next-token distribution.

    target: the token to follow; None follows the full model's top prediction.
    """
    mode = _check_mode(mode)
    chosen = _check_heads(loaded, heads, layer)
    ids, _ = tokenize(loaded, text)
    clean, means = _clean_run(loaded, ids)
    keep = np.ones((1, loaded.n_layer, loaded.n_head), dtype=bool)
    for layer_i, head_i in chosen:
        keep[0, layer_i, head_i] = False
    fill = means if mode == "mean" else np.zeros_like(means)
    ablated = ablated_logits(loaded, ids, keep, fill)[0]
    target_id = _target_id(loaded, target, clean)
    p_before, p_after = np.exp(_log_softmax(clean)), np.exp(_log_softmax(ablated))
    top_after = int(np.argmax(p_after))
    return AblationResult(
        heads=chosen,
        mode=mode,
        before=top_table(loaded, clean, top_k),
        after=top_table(loaded, ablated, top_k),
        target_id=target_id,
        target=display_tokens(loaded.tokenizer, [target_id])[0],
        prob_before=float(p_before[target_id]),
        prob_after=float(p_after[target_id]),
        summary=summarise(
            loaded,
            chosen,
            target_id,
            float(p_before[target_id]),
            float(p_after[target_id]),
            top_after,
            float(p_after[top_after]),
        ),
    )


def head_importance(
    loaded: LoadedModel,
    text: str,
    target: int | str | None = None,
    mode: str = "zero",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Every head ranked by how much removing it alone moves the target token's log-probability.

    One batch row per head, so this costs a few forward passes, not one per head. Columns:
    layer, head, name ("L1H3"), delta (log-prob after − before, in nats: negative where the
    head helped the target), prob_before, prob_after, target, target_id. Sorted by |delta|.
    `progress(fraction, message)` hears of each forward pass.
    """
    ranked = pd.DataFrame()
    for step in head_importance_steps(loaded, text, target, mode):
        ranked = step.ranked
        if progress is not None:
            progress(step.share, f"{step.measured} of {step.total} heads removed one by one …")
    return ranked


@dataclass(frozen=True)
class ImportanceSoFar:
    ranked: pd.DataFrame  # the heads measured so far (layer by layer), ranked as head_importance ranks
    measured: int  # heads measured so far
    total: int  # heads in the model
    share: float  # of the whole work done (later layers' passes cost less)


def head_importance_steps(
    loaded: LoadedModel, text: str, target: int | str | None = None, mode: str = "zero"
) -> Iterator[ImportanceSoFar]:
    """head_importance after each forward pass: its last step is head_importance's ranking.

    The model is free between steps (see ablated_passes), so a caller can draw the ranking as
    it grows, stop it, and let other requests run: gpt2-xl's 1,200 heads take minutes."""
    mode = _check_mode(mode)
    ids, _ = tokenize(loaded, text)
    clean, means = _clean_run(loaded, ids)
    target_id = _target_id(loaded, target, clean)
    n_layer, n_head = loaded.n_layer, loaded.n_head
    keep = ~np.eye(n_layer * n_head, dtype=bool).reshape(-1, n_layer, n_head)  # row b removes head b
    fill = means if mode == "mean" else np.zeros_like(means)
    before = float(_log_softmax(clean)[target_id])
    target_text = display_tokens(loaded.tokenizer, [target_id])[0]
    after = np.empty(len(keep))
    for done in ablated_passes(loaded, ids, keep, fill):
        after[done.rows] = _log_softmax(done.logits)[:, target_id]
        n = done.rows.stop
        layer, head = np.divmod(np.arange(n), n_head)
        df = pd.DataFrame(
            {
                "layer": layer,
                "head": head,
                "name": [head_name(int(a), int(b)) for a, b in zip(layer, head, strict=True)],
                "delta": (after[:n] - before).astype(np.float32),
                "prob_before": np.float32(np.exp(before)),
                "prob_after": np.exp(after[:n]).astype(np.float32),
                "target": target_text,
                "target_id": target_id,
            }
        )
        order = np.argsort(-np.abs(df["delta"].to_numpy()), kind="stable")
        yield ImportanceSoFar(df.iloc[order].reset_index(drop=True), n, len(keep), done.share)


__all__ = [
    "MODES",
    "AblatedPass",
    "AblationResult",
    "ImportanceSoFar",
    "ablate",
    "ablated_logits",
    "ablated_passes",
    "head_importance",
    "head_importance_steps",
    "head_name",
    "top_table",
]
