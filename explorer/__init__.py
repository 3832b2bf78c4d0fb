"""Attention Explorer: a glass-box view of GPT-2's attention.

    from explorer import load_model, analyze, breakdown, GenerationSession
    from explorer import head_scores, ablate, head_importance, logit_lens, compare  # issue #7

`import explorer` stays cheap: torch, transformers and gradio load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "explorer.model.loading",
    "LoadedModel": "explorer.model.loading",
    "analyze": "explorer.model.capture",
    "Analysis": "explorer.model.capture",
    "breakdown": "explorer.analysis.arithmetic",
    "Breakdown": "explorer.analysis.arithmetic",
    "STEPS": "explorer.analysis.arithmetic",
    "GenerationSession": "explorer.model.generation",
    "StepResult": "explorer.model.generation",
    "ExplorerError": "explorer.errors",
    "ModelLoadError": "explorer.errors",
    "build_app": "explorer.ui",
    "export_report": "explorer.report",
    "head_scores": "explorer.analysis.heads",
    "ablate": "explorer.analysis.ablation",
    "head_importance": "explorer.analysis.ablation",
    "logit_lens": "explorer.analysis.lens",
    "logit_attribution": "explorer.analysis.attribution",
    "attribute": "explorer.analysis.attribution",
    "head_source_attribution": "explorer.analysis.attribution",
    "Attribution": "explorer.analysis.attribution",
    "compare": "explorer.analysis.comparison",
}

__all__ = [
    "STEPS",
    "Analysis",
    "Attribution",
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
    "export_report",
    "head_importance",
    "head_scores",
    "head_source_attribution",
    "load_model",
    "logit_attribution",
    "attribute",
    "logit_lens",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:
    from explorer.analysis.ablation import ablate, head_importance
    from explorer.analysis.arithmetic import STEPS, Breakdown, breakdown
    from explorer.analysis.attribution import (
        Attribution,
        attribute,
        head_source_attribution,
        logit_attribution,
    )
    from explorer.analysis.comparison import compare
    from explorer.analysis.heads import head_scores
    from explorer.analysis.lens import logit_lens
    from explorer.errors import ExplorerError, ModelLoadError
    from explorer.model.capture import Analysis, analyze
    from explorer.model.generation import GenerationSession, StepResult
    from explorer.model.loading import LoadedModel, load_model
    from explorer.report import export_report
    from explorer.ui import build_app


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
