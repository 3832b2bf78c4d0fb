"""Hugging Face Spaces entry point: `python app.py` serves Attention Explorer.

On a Space (SPACE_ID is set) it runs in hosted mode: listed models only, shorter prompts and
runs. The repository root goes on sys.path, so the `explorer` package needs no install.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from explorer.model.heap import prefer_huge_pages  # noqa: E402

prefer_huge_pages()  # before torch loads

from explorer.ui import build_app, launch  # noqa: E402

HOSTED = bool(os.environ.get("SPACE_ID")) or os.environ.get("EXPLORER_HOSTED", "") not in ("", "0", "false")

demo = build_app(model=os.environ.get("EXPLORER_MODEL") or None, hosted=HOSTED, load_in_background=True)

if __name__ == "__main__":
    launch(
        demo,
        host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if HOSTED else "127.0.0.1"),
        port=int(os.environ.get("GRADIO_SERVER_PORT", os.environ.get("PORT", "7860"))),
    )
