"""Attention Explorer: a glass-box view of GPT-2's attention.

    from explorer import load_model, analyze, breakdown, GenerationSession
    from explorer import head_scores, ablate, head_importance, logit_lens, compare  # issue #7

`import explorer` stays cheap: torch, transformers and gradio load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "explorer.loading",
    "LoadedModel": "explorer.loading",
    "analyze": "explorer.capture",
    "Analysis": "explorer.capture",
    "breakdown": "explorer.arithmetic",
    "Breakdown": "explorer.arithmetic",
    "STEPS": "explorer.arithmetic",
    "GenerationSession": "explorer.generation",
    "StepResult": "explorer.generation",
    "ExplorerError": "explorer.errors",
    "ModelLoadError": "explorer.errors",
    "build_app": "explorer.app",
    "head_scores": "explorer.heads",
    "ablate": "explorer.ablation",
    "head_importance": "explorer.ablation",
    "logit_lens": "explorer.lens",
    "compare": "explorer.comparison",
}

__all__ = [
    "STEPS",
    "Analysis",
    "Breakdown",
    "ExplorerError",
    "GenerationSession",
    "LoadedModel",
    "ModelLoadError",
    "StepResult",
    "ablate",
    "analyze",
    "breakdown",
    "build_app",
    "compare",
    "head_importance",
    "head_scores",
    "load_model",
    "logit_lens",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:
    from explorer.ablation import ablate, head_importance
    from explorer.app import build_app
    from explorer.arithmetic import STEPS, Breakdown, breakdown
    from explorer.capture import Analysis, analyze
    from explorer.comparison import compare
    from explorer.errors import ExplorerError, ModelLoadError
    from explorer.generation import GenerationSession, StepResult
    from explorer.heads import head_scores
    from explorer.lens import logit_lens
    from explorer.loading import LoadedModel, load_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
