"""Attention Explorer: a glass-box view of GPT-2's attention.

    from explorer import load_model, analyze, breakdown, GenerationSession

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
    "analyze",
    "breakdown",
    "build_app",
    "load_model",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:
    from explorer.app import build_app
    from explorer.arithmetic import STEPS, Breakdown, breakdown
    from explorer.capture import Analysis, analyze
    from explorer.errors import ExplorerError, ModelLoadError
    from explorer.generation import GenerationSession, StepResult
    from explorer.loading import LoadedModel, load_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
