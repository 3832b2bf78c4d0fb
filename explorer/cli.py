"""The `attention-explorer` command: load a model and serve the app."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="attention-explorer",
        description="Serve Attention Explorer, a glass-box view of GPT-2's attention, in the browser.",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="bundled, a hub id (gpt2, distilgpt2, gpt2-medium, …) or a local checkpoint folder "
        "(default: gpt2 if it is in the local cache, else the bundled demo model)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default auto)")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="the weights' dtype (default float32); bfloat16 or float16 halve a large model's memory, "
        "and the Q/K/V breakdown then reports its deviations against the model in that dtype",
    )
    parser.add_argument(
        "--hosted",
        action="store_true",
        help="public-server limits: listed models only, no local paths, shorter prompts and runs "
        "(on automatically when SPACE_ID is set)",
    )
    parser.add_argument(
        "--analysis-budget-mb",
        type=float,
        default=None,
        help="memory all sessions' analyses may hold together, in MB (default: EXPLORER_ANALYSIS_BUDGET_MB, "
        "else an eighth of this machine's memory, 256 MB to 4 GB)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from explorer.model.heap import prefer_huge_pages

    prefer_huge_pages()  # before torch loads
    args = parse_args(argv)
    hosted = args.hosted or bool(os.environ.get("SPACE_ID"))
    if args.dtype:  # every model the app loads reads it (load_model's default)
        os.environ["EXPLORER_DTYPE"] = args.dtype

    from explorer.errors import ExplorerError
    from explorer.ui import build_app, launch

    try:
        options: dict[str, Any] = {"model": args.model, "device": args.device, "hosted": hosted}
        if args.analysis_budget_mb is not None:  # passed on only when given: build_app's default applies
            options["analysis_budget"] = int(args.analysis_budget_mb * 2**20)
        demo = build_app(**options, load_in_background=True)
    except ExplorerError as err:
        print(f"attention-explorer: {err}", file=sys.stderr)
        return 2
    launch(demo, host=args.host, port=args.port, share=args.share)
    return 0
