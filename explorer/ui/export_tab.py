"""The Export tab: the selection's and the generation's data as CSV, NPZ and JSON, and an offline
HTML report. (Figures download from their own toolbars: see static/page.js.)"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from explorer import export, report
from explorer.analysis.arithmetic import breakdown
from explorer.errors import ExplorerError
from explorer.ui.common import I18N, Context, clamp, guarded, require_analysis
from explorer.ui.generate_events import model_key_of
from explorer.ui.state import CONCURRENCY, Session

EXPORT_KINDS = {  # kind -> (button label, file extension)
    "head_csv": ("Selected head (CSV)", "csv"),
    "attention_npz": ("All heads (NPZ)", "npz"),
    "breakdown_csv": ("Q/K/V steps (CSV)", "csv"),
    "breakdown_json": ("Q/K/V steps (JSON)", "json"),
    "history_csv": ("Generation (CSV)", "csv"),
    "history_json": ("Generation (JSON)", "json"),
    "report": ("Offline report (HTML)", "html"),
}
EXPORTS_KEPT = 32  # Gradio copies each file into its own cache on return; ours are scratch


@dataclass(frozen=True)
class ExportTab:
    buttons: dict[str, gr.Button]  # by kind
    file: gr.File


def build_export_tab() -> ExportTab:
    buttons: dict[str, gr.Button] = {}
    with gr.Tab(I18N("Export"), id="export", elem_id="ae-export-tab"):
        gr.Markdown(
            I18N(
                "**Figures:** hover a plot; its toolbar downloads it as PNG (camera) or SVG (arrow), named "
                "after what it shows. **Data** of the current selection and generation:"
            ),
            elem_classes=["ae-help"],
        )
        with gr.Row(elem_id="ae-export-buttons"):
            for kind, (label, _) in EXPORT_KINDS.items():
                buttons[kind] = gr.Button(
                    I18N(label),
                    variant="primary" if kind == "report" else "secondary",
                    elem_id=f"ae-export-{kind}",
                    size="md",
                    min_width=150,
                )
        file = gr.File(label=I18N("Download"), elem_id="ae-export-file", interactive=False)
    return ExportTab(buttons, file)


def _generation_settings(session: Session) -> dict[str, Any]:
    gen = session.generation
    if gen is None:
        return {}
    keys = ("temperature", "top_k", "top_p", "seed", "greedy")
    return {"model": model_key_of(gen), **{k: getattr(gen, k) for k in keys}}


def export_file(
    ctx: Context, kind: str, session: Session, layer: Any, head: Any, query: Any, mean: Any = False
) -> str:
    """Write one download for the session's analysis (or generation) and return its path.

    With `mean` the view shows the mean over the layer's heads, and so do the head CSV and the
    report's head; the Q/K/V steps stay the head's, as the Q/K/V tab shows them.
    """
    gen = session.generation
    history = list(gen.history) if gen is not None else []
    if kind.startswith("history"):
        if gen is None or not history:
            raise ExplorerError("Nothing to export yet: generate some tokens first.")
        stem = "generation-history"
        data: bytes = (
            export.history_csv(history, gen.tokenizer)
            if kind == "history_csv"
            else export.history_json(
                history, gen.tokenizer, prompt=session.gen_prompt, settings=_generation_settings(session)
            )
        )
    else:
        analysis = require_analysis(ctx, session)
        layer, head = clamp(layer, analysis.n_layer), clamp(head, analysis.n_head)
        query, mean = clamp(query, analysis.n_pos), bool(mean)
        if kind == "head_csv":
            stem = export.file_stem("attention", layer, head, mean=mean)
            data = export.head_csv(analysis, layer, None if mean else head)
        elif kind == "attention_npz":  # written as it is made: the whole square is 604 MB for gpt2 at 1024
            path = Path(export_folder()) / "attention-all.npz"
            export.write_attention_npz(analysis, path)
            return str(path)
        elif kind == "report":
            stem = export.file_stem("report", layer, head, query, mean=mean)
            data = report.report_html(
                analysis, layer=layer, head=head, query=query, history=history or None, mean=mean
            ).encode("utf-8")
        else:
            bd = breakdown(analysis, layer, head, query)
            stem = export.file_stem("breakdown", layer, head, query)
            write_steps = export.breakdown_csv if kind == "breakdown_csv" else export.breakdown_json
            data = write_steps(bd, analysis)
    return str(export.write(data, export_folder(), f"{stem}.{EXPORT_KINDS[kind][1]}"))


_exports: tempfile.TemporaryDirectory[str] | None = None
_exports_lock = threading.Lock()


def export_folder() -> str:
    """A fresh folder for one download, under one per-process folder removed at exit.

    The folder lives in Gradio's own cache, so Gradio serves the file from where it is instead
    of keeping a copy of every download for good. Each download gets its own folder, so that two
    users' files of the same name never meet; only the latest `EXPORTS_KEPT` are kept, so
    however many files anyone asks for, the disk holds at most that many.
    """
    global _exports
    with _exports_lock:
        if _exports is None:
            cache = Path(get_upload_folder())
            cache.mkdir(parents=True, exist_ok=True)
            _exports = tempfile.TemporaryDirectory(prefix="attention-explorer-", dir=cache)
        root = Path(_exports.name)
        folders = sorted(root.iterdir(), key=lambda f: f.stat().st_mtime)
        for old in folders[: max(0, len(folders) - EXPORTS_KEPT + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return tempfile.mkdtemp(dir=root)


def forget_removed(file: gr.File) -> None:
    """Drop files pruned by export_folder from the component's record of files it served
    (Gradio keeps one entry per download, and would otherwise keep them all)."""
    file.temp_files.difference_update([f for f in file.temp_files if not Path(f).exists()])


def wire_export_tab(ctx: Context, tab: ExportTab) -> None:
    guard = guarded(ctx.status)

    def handler(kind: str) -> Callable[..., dict[Any, Any]]:
        @guard
        def run(session: Session, layer: Any, head: Any, query: Any, mean: Any) -> dict[Any, Any]:
            path = export_file(ctx, kind, session, layer, head, query, mean)
            forget_removed(tab.file)
            return {ctx.status: "", tab.file: path}

        return run

    for kind, button in tab.buttons.items():
        button.click(
            handler(kind),
            [ctx.session, ctx.layer, ctx.head, ctx.query, ctx.mean],
            [ctx.status, tab.file],
            api_name=f"export_{kind}",
            concurrency_limit=CONCURRENCY,
        )
