"""Serving: the theme, CSS and script the page gets, glibc's memory tuning, freeing a closed tab's
state, and `launch`, which answers before a background-loaded model is in."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import gradio as gr

from explorer.ui.common import I18N, static
from explorer.ui.state import CONCURRENCY

THEME = gr.themes.Soft(
    primary_hue="indigo",
    secondary_hue="emerald",
    neutral_hue="slate",
    font=["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
).set(
    # Text at 4.5:1 or more (WCAG AA, #18): Soft's greys (slate 400, ~2.5:1) and indigo 500
    # (4.3:1 as text, 4.47:1 under white text) fall short. Darker greys and indigo 600 keep its look.
    body_text_color_subdued="*neutral_600",  # 7.2:1 on the page, 6.2:1 on a group
    body_text_color_subdued_dark="#a9b5c7",  # between slate 400 and 300: 5.0:1 on a group (slate 700)
    input_placeholder_color="*neutral_500",  # 4.8:1 on a text box, still lighter than what is typed
    input_placeholder_color_dark="#a9b5c7",  # 5.0:1 on a dark text box (slate 700)
    block_label_text_color="*primary_600",  # 5.1:1 on its indigo 100 label
    block_title_text_color="*primary_600",
    color_accent="*primary_600",  # the selected tab's name: 6.0:1 (dark mode: lecture.css)
    button_primary_background_fill="*primary_600",  # white on it: 6.3:1
    button_primary_background_fill_dark="*primary_600",
    button_primary_background_fill_hover="*primary_700",  # was lighter (indigo 400, 3.0:1)
    button_primary_background_fill_hover_dark="*primary_700",
    button_primary_border_color="*primary_600",
    button_primary_border_color_dark="*primary_600",
    checkbox_label_background_fill_selected="*primary_600",  # a chosen radio: white on it
    checkbox_label_background_fill_selected_dark="*primary_600",
)

# Apps whose first model loads once the server answers (build_app(load_in_background=True)),
# with the loading to start: see launch.
PRELOADS: weakref.WeakKeyDictionary[gr.Blocks, Callable[[], Any]] = weakref.WeakKeyDictionary()


def launch_options() -> dict[str, Any]:
    """The look and the browser's side; pass to `demo.launch(**launch_options())`."""
    return {
        "theme": THEME,
        "css": static("app.css") + static("lecture.css"),
        "head": f"<script>{static('page.js')}</script>",
        "i18n": I18N,
        # Gradio's run history would JSON-encode every reply (figures included, ~1 MB) into
        # localStorage on each call: seconds per Analyze in the browser, and prompts kept on disk.
        "run_history": False,
    }


def free_on_close(demo: gr.Blocks) -> None:
    """Drop a session's state as soon as its tab closes.

    Gradio would keep it for an hour, and one session's analysis and KV cache can take hundreds
    of MB (a 1024-token gpt2 analysis holds 576 MB of attention alone).
    """

    def free(request: gr.Request) -> None:
        holder = getattr(demo, "state_holder", None)
        state = holder.session_data.get(request.session_hash) if holder is not None else None
        if holder is None or state is None:
            return
        # A step still running when the tab closed writes the state back after this; with no time
        # to live once closed, Gradio's own sweep (every second) then drops it too.
        state.is_closed, state.STATE_TTL_WHEN_CLOSED = True, 0
        holder.delete_state(request.session_hash)

    demo.unload(free)


M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX=2 does, before the server's threads start.

    glibc gives each thread that allocates its own arena, up to 8 per core, and Gradio runs
    handlers on a pool of threads: every step then leaves a little memory in another arena and
    RSS keeps climbing (57 MB over 100 steps measured, 16 MB with two arenas). Applies only to
    arenas made after the call; a no-op off glibc or where MALLOC_ARENA_MAX is already set.
    """
    import ctypes
    import os

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


TRIM_EVERY = 16  # generation steps between handing free heap memory back to the system


def release_free_memory() -> bool:
    """Hand the free pages inside glibc's heaps back to the system (malloc_trim); False off glibc.

    What one generation step frees is not all reused by the next: handlers run on a pool of
    threads with an arena each, and the arrays a step makes grow with the text. RSS crept up
    5–7 MB per 100 steps beyond the KV cache without this, 1–3 MB with it every 16 steps. A
    call takes about half a millisecond. (A fixed mmap threshold would do it too, but costs an analysis of 1024
    tokens 20% more CPU: its temporaries would all be mapped and faulted in afresh.)
    """
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def launch(
    demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, **kwargs: Any
) -> Any:
    limit_malloc_arenas()
    demo.queue(default_concurrency_limit=CONCURRENCY)
    # Our handlers turn their own errors into messages; this shows Gradio's own (an API call with
    # a setting that is not a number, say) as their text instead of a generic "see the server log".
    kwargs.setdefault("show_error", True)
    # No component takes files: refuse every upload rather than store what anyone sends.
    kwargs.setdefault("max_file_size", 0)
    preload = PRELOADS.pop(demo, None)
    if preload is None:
        return demo.launch(server_name=host, server_port=port, share=share, **launch_options(), **kwargs)
    # The model loads once the server answers, so that the browser builds the page meanwhile.
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        **launch_options(),
        **kwargs,
    )
    preload()
    if block:
        demo.block_thread()
    return result
