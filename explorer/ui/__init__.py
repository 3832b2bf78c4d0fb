"""The Gradio app, the only package that imports gradio: it lays out and wires, it computes nothing.

    build_app(model=None) -> gr.Blocks;  launch(demo) serves it with the theme, CSS and JS.

See README.md beside this file for where each tab lives and how to add one. The names load on
first use, so that importing one panel's module does not build the whole shell first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "build_app": "explorer.ui.shell",
    "launch": "explorer.ui.serving",
    "launch_options": "explorer.ui.serving",
}
__all__ = ["build_app", "launch", "launch_options"]

if TYPE_CHECKING:
    from explorer.ui.serving import launch, launch_options
    from explorer.ui.shell import build_app


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer.ui' has no attribute {name!r}")
