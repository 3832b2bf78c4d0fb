"""A model's weights as numpy float32 arrays, for the arithmetic that checks the model's numbers.

On a float32 CPU model they are views of the model's own parameters (no copy); otherwise each
block's are converted when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np


@dataclass(frozen=True)
class LayerWeights:
    """One block's parameters as numpy views (no copy on CPU). Conv1D weights are [in, out]."""

    ln_1_w: np.ndarray  # [d_model]
    ln_1_b: np.ndarray
    c_attn_w: np.ndarray  # [d_model, 3 * d_model]: W_Q | W_K | W_V
    c_attn_b: np.ndarray  # [3 * d_model]
    c_proj_w: np.ndarray  # [d_model, d_model]: W_O
    c_proj_b: np.ndarray
    ln_2_w: np.ndarray
    ln_2_b: np.ndarray
    fc_w: np.ndarray  # [d_model, d_mlp]
    fc_b: np.ndarray
    fc_proj_w: np.ndarray  # [d_mlp, d_model]
    fc_proj_b: np.ndarray
    scaling: float  # the factor on Q·K: 1/sqrt(d_head), and 1/(layer+1) where the config says so


@dataclass(frozen=True)
class ModelWeights:
    layers: Sequence[LayerWeights]
    ln_f_w: np.ndarray
    ln_f_b: np.ndarray
    unembed: np.ndarray  # [vocab, d_model]: the LM head (tied to the token embedding)
    lm_head_b: np.ndarray | None
    eps: float
    activation: str
    n_head: int
    d_head: int


def _np(t: Any) -> np.ndarray:
    return t.detach().to("cpu").float().numpy()


def _layer_weights(block: Any) -> LayerWeights:
    return LayerWeights(
        ln_1_w=_np(block.ln_1.weight),
        ln_1_b=_np(block.ln_1.bias),
        c_attn_w=_np(block.attn.c_attn.weight),
        c_attn_b=_np(block.attn.c_attn.bias),
        c_proj_w=_np(block.attn.c_proj.weight),
        c_proj_b=_np(block.attn.c_proj.bias),
        ln_2_w=_np(block.ln_2.weight),
        ln_2_b=_np(block.ln_2.bias),
        fc_w=_np(block.mlp.c_fc.weight),
        fc_b=_np(block.mlp.c_fc.bias),
        fc_proj_w=_np(block.mlp.c_proj.weight),
        fc_proj_b=_np(block.mlp.c_proj.bias),
        scaling=float(block.attn.scaling),
    )


class _LayersInFloat32(Sequence[LayerWeights]):
    """Each block's weights as float32 numpy arrays, converted when asked for, the last two kept:
    a bfloat16 model's weights all in float32 would take twice the memory the dtype saved."""

    def __init__(self, blocks: Any) -> None:
        self._blocks = blocks
        self._kept: dict[int, LayerWeights] = {}

    def __len__(self) -> int:
        return len(self._blocks)

    @overload
    def __getitem__(self, index: int) -> LayerWeights: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LayerWeights]: ...
    def __getitem__(self, index: int | slice) -> LayerWeights | Sequence[LayerWeights]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        index = range(len(self))[index]
        if index not in self._kept:
            while len(self._kept) >= 2:
                del self._kept[next(iter(self._kept))]
            self._kept[index] = _layer_weights(self._blocks[index])
        return self._kept[index]


def extract_weights(model: Any) -> ModelWeights:
    """The weights as numpy float32: views of the model's own on a float32 CPU model, converted
    per layer when asked for otherwise."""
    cfg = model.config
    param = next(model.parameters())
    views = str(param.dtype) == "torch.float32" and param.device.type == "cpu"
    blocks = model.transformer.h
    layers = tuple(map(_layer_weights, blocks)) if views else _LayersInFloat32(blocks)
    bias = getattr(model.lm_head, "bias", None)
    return ModelWeights(
        layers=layers,
        ln_f_w=_np(model.transformer.ln_f.weight),
        ln_f_b=_np(model.transformer.ln_f.bias),
        unembed=_np(model.lm_head.weight),
        lm_head_b=None if bias is None else _np(bias),
        eps=float(cfg.layer_norm_epsilon),
        activation=str(cfg.activation_function),
        n_head=int(cfg.n_head),
        d_head=int(cfg.n_embd // cfg.n_head),
    )


__all__ = ["LayerWeights", "ModelWeights", "extract_weights"]
