"""Downloads: the analysis and the generation history as CSV, NPZ and JSON, and one offline report.

Pure functions from engine results to bytes (or a written file); no gradio here.

    head_csv(analysis, layer, head)       one head's attention (head None: the mean over the layer's
                                          heads), one row per (query, key ≤ query)
    attention_npz(analysis)               every head's pattern [layer, head, query, key] and the tokens
    write_attention_npz(analysis, path)   the same, written as it is made (one layer in memory at a time)
    breakdown_csv(bd, analysis) / breakdown_json(bd, analysis)  the Q/K/V arithmetic of one layer,
                                          head and query
    history_csv(items, tokenizer) / history_json(items, tokenizer, ...)  the generated tokens, one
                                          row per step
    export_report(analysis, path, ...)    one self-contained HTML file that opens with no network

Tokens are written twice. `token` (and `query_token`, `key_token`) is the token's exact text: its
bytes decoded as UTF-8, so " cat" is " cat" (a token holding only part of a character reads
U+FFFD, as the tokenizer decodes it alone). `display` (and `query_display`, `key_display`) is the
form the app shows: "␣cat", "↵" for a newline, "\\xe2\\x80" for part of a character. The columns:

    head CSV       layer, head, query, query_token, query_display, query_token_id,
                   key, key_token, key_display, key_token_id, weight
                   head is the head's number, or "mean" for the mean over the layer's heads; weight
                   is the model's float32 value, or for the mean the float64 mean of the heads' ones
    breakdown CSV  key, token, display, token_id, score, scaled, weight
    history CSV    position, token_id, token, display, prob, warped_prob, entropy_bits, forced

The breakdown JSON has `tokens` (exact), `displays` and `token_ids`, and its top-k `logits` rows a
token and a display each; the history JSON's steps have a token and a display each.

CSV text stays safe to open in a spreadsheet: a cell that would start a formula (=, +, -, @, a tab
or a carriage return, after any number of ') is written with one ' in front, as OWASP advises for
CSV injection. `cell_text` takes it off again: `pd.read_csv(f, converters={"token": cell_text})`
reads every token back exactly.

The offline report is in explorer/report.py.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from explorer.analysis.arithmetic import STEPS, Breakdown
from explorer.model.capture import Analysis, token_bytes
from explorer.model.generation import HistoryItem

HEAD_COLUMNS = (
    *("layer", "head"),
    *("query", "query_token", "query_display", "query_token_id"),
    *("key", "key_token", "key_display", "key_token_id"),
    "weight",
)
BREAKDOWN_COLUMNS = ("key", "token", "display", "token_id", "score", "scaled", "weight")
HISTORY_COLUMNS = (
    *("position", "token_id", "token", "display"),
    *("prob", "warped_prob", "entropy_bits", "forced"),
)
MEAN = "mean"  # the head column, and the name, of the mean over a layer's heads
NO_MEAN_STEPS = "a mean over heads has no steps of its own"

# What a spreadsheet reads as the start of a formula, after any ' (see spreadsheet_safe).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell no spreadsheet runs as a formula: one ' in front where it would."""
    return "'" + text if _FORMULA.match(text) else text


def cell_text(cell: str) -> str:
    """The exact text of a CSV cell written by `spreadsheet_safe`."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell) else cell


def token_texts(tokenizer: Any, ids: Any) -> tuple[str, ...]:
    """Each token's exact text: its bytes as UTF-8 (U+FFFD where they hold part of a character)."""
    return tuple(token_bytes(tokenizer, int(i)).decode("utf-8", "replace") for i in ids)


# --- tables ------------------------------------------------------------------------------


def head_pattern(analysis: Analysis, layer: int, head: int | None) -> np.ndarray:
    """[query, key]: one head's pattern as the model computed it (float32), or for head None the
    mean over the layer's heads of those patterns (float64)."""
    if head is None:
        return analysis.exact_pattern(layer).mean(axis=0, dtype=np.float64)
    return analysis.exact_pattern(layer, head)


def head_table(analysis: Analysis, layer: int, head: int | None) -> pd.DataFrame:
    """One head's attention (head None: the layer's mean) in long form: every (query, key) pair
    with key ≤ query."""
    pattern = head_pattern(analysis, layer, head)
    query, key = np.tril_indices(analysis.n_pos)
    texts = np.asarray(token_texts(analysis.tokenizer, analysis.token_ids), dtype=object)
    displays = np.asarray(analysis.tokens, dtype=object)
    return pd.DataFrame(
        {
            "layer": layer,
            "head": MEAN if head is None else head,
            "query": query,
            "query_token": texts[query],
            "query_display": displays[query],
            "query_token_id": analysis.token_ids[query],
            "key": key,
            "key_token": texts[key],
            "key_display": displays[key],
            "key_token_id": analysis.token_ids[key],
            "weight": pattern[query, key],
        },
        columns=list(HEAD_COLUMNS),
    )


def breakdown_table(bd: Breakdown, analysis: Analysis) -> pd.DataFrame:
    """The attention row of one query (Breakdown.table), each key's token as text and as shown."""
    _check_same(bd, analysis)
    n = bd.query + 1
    ids = analysis.token_ids[:n]
    table = bd.table().rename(columns={"token": "display"})
    table.insert(1, "token", token_texts(analysis.tokenizer, ids))
    table.insert(3, "token_id", ids)
    return table[list(BREAKDOWN_COLUMNS)]


def _check_same(bd: Breakdown, analysis: Analysis) -> None:
    if bd.tokens != analysis.tokens:
        raise ValueError("The breakdown was not made from this analysis: their tokens differ.")


def history_table(items: Sequence[HistoryItem], tokenizer: Any | None = None) -> pd.DataFrame:
    """The generated tokens, one row per step: position, id, token, display, model p, p after the
    sampling settings, entropy, forced; without a tokenizer, no exact token text (the report shows
    the display). The numbers are GenerationSession's float64 ones; CSV and JSON write each in full
    (the shortest repr that reads back to the same float)."""
    ids = [h.token_id for h in items]
    columns = {
        "position": [h.position for h in items],
        "token_id": ids,
        "token": None if tokenizer is None else list(token_texts(tokenizer, ids)),
        "display": [h.display for h in items],
        "prob": [h.prob for h in items],
        "warped_prob": [h.warped_prob for h in items],
        "entropy_bits": [h.entropy for h in items],
        "forced": [h.forced for h in items],
    }
    return pd.DataFrame({name: values for name, values in columns.items() if values is not None})


def _csv(table: pd.DataFrame) -> bytes:
    text = {c: _safe_cells(table[c]) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])}
    return table.assign(**text).to_csv(index=False, lineterminator="\n").encode("utf-8")


def _safe_cells(cells: pd.Series) -> pd.Series:
    """`spreadsheet_safe` on every text cell, each distinct text once (a head CSV of 1,024 tokens
    has 525k rows)."""
    changed = {v: spreadsheet_safe(v) for v in cells.unique() if isinstance(v, str) and _FORMULA.match(v)}
    return cells.mask(cells.isin(list(changed)), cells.map(changed)) if changed else cells


def head_csv(analysis: Analysis, layer: int, head: int | None) -> bytes:
    return _csv(head_table(analysis, layer, head))


def breakdown_csv(bd: Breakdown, analysis: Analysis) -> bytes:
    """The attention row of one query (see breakdown_table); `analysis` is the one `bd` was made from."""
    return _csv(breakdown_table(bd, analysis))


def history_csv(items: Sequence[HistoryItem], tokenizer: Any) -> bytes:
    return _csv(history_table(items, tokenizer))


# --- arrays and JSON -----------------------------------------------------------------------


def attention_npz(analysis: Analysis) -> bytes:
    """Every head's attention as a compressed NPZ (see write_attention_npz)."""
    buffer = io.BytesIO()
    write_attention_npz(analysis, buffer)
    return buffer.getvalue()


def write_attention_npz(analysis: Analysis, target: str | Path | BinaryIO) -> None:
    """Every head's attention as a compressed NPZ, written to a file or a binary stream.

    pattern [layer, head, query, key] float32, token_ids [pos], tokens [pos] (display strings),
    text and model_name (0-d strings). Loads with `np.load(f)`, no pickle needed. What
    `np.savez_compressed` writes, but the pattern goes out one layer at a time: the whole square
    is 604 MB for gpt2 at 1024 tokens, a layer 50 MB (the analysis keeps only the triangle), each
    layer the model's float32 values even where the analysis keeps a quantized copy.
    """
    pattern = analysis.pattern
    exact = analysis.exact_pattern  # a layer's float32 values, computed again if kept quantized
    others = {
        "token_ids": analysis.token_ids,
        "tokens": np.asarray(analysis.tokens, dtype=str),
        "text": np.asarray(analysis.text, dtype=str),
        "model_name": np.asarray(analysis.model_name, dtype=str),
    }
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        with archive.open("pattern.npy", "w", force_zip64=True) as out:
            header = {"descr": "<f4", "fortran_order": False, "shape": tuple(pattern.shape)}
            np.lib.format.write_array_header_1_0(out, header)
            for layer in range(pattern.shape[0]):
                out.write(np.ascontiguousarray(exact(layer), dtype="<f4").data)
        for name, array in others.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array, allow_pickle=False)


def _jsonable(value: Any) -> Any:
    """Arrays as nested lists, with −∞ and NaN (a masked score) as None: JSON has no infinity."""
    if isinstance(value, pd.DataFrame):
        return [_jsonable(row) for row in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def breakdown_dict(bd: Breakdown, analysis: Analysis) -> dict[str, Any]:
    """Every step of the breakdown by its name, plus where it is and how it was checked; tokens as
    exact text, as shown and as ids. `analysis` is the one `bd` was made from."""
    _check_same(bd, analysis)
    steps = {step.name: _jsonable(getattr(bd, step.name)) for step in STEPS}
    top = bd.logits
    texts = token_texts(analysis.tokenizer, top["token_id"])
    steps["logits"] = [
        {"token": text, "display": row.pop("token")} | row
        for text, row in zip(texts, _jsonable(top), strict=True)
    ]
    return {
        "layer": bd.layer,
        "head": bd.head,
        "query": bd.query,
        "tokens": list(token_texts(analysis.tokenizer, analysis.token_ids)),
        "displays": list(bd.tokens),
        "token_ids": analysis.token_ids.tolist(),
        "scaling": bd.scaling,
        "is_final": bd.is_final,
        "steps": steps,
        "deviation": _jsonable(dict(bd.deviation)),
        "dtype": bd.dtype,  # the model's weights, whose numbers the deviations are measured against
    }


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def breakdown_json(bd: Breakdown, analysis: Analysis) -> bytes:
    return _json(breakdown_dict(bd, analysis))


def history_json(
    items: Sequence[HistoryItem],
    tokenizer: Any,
    *,
    prompt: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> bytes:
    """The generated tokens (HistoryItem fields and each token's exact text), with the prompt and
    sampling settings if given."""
    texts = token_texts(tokenizer, [h.token_id for h in items])
    steps = [
        {"position": h.position, "token_id": h.token_id, "token": text} | _jsonable(asdict(h))
        for h, text in zip(items, texts, strict=True)
    ]
    return _json({"prompt": prompt, "settings": _jsonable(dict(settings or {})), "steps": steps})


def write(data: bytes | str, folder: Path | str, name: str) -> Path:
    """Write `data` to folder/name (folders made as needed); returns the path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def file_stem(
    kind: str,
    layer: int | None = None,
    head: int | None = None,
    query: int | None = None,
    *,
    mean: bool = False,
) -> str:
    """A download's name without extension, saying what it holds: 'attention-L2-H3-q7', or with
    `mean` (the mean over the layer's heads, in place of the head) 'attention-L2-mean'."""
    parts = [kind]
    parts += [] if layer is None else [f"L{layer}"]
    parts += [MEAN] if mean else [] if head is None else [f"H{head}"]
    parts += [] if query is None else [f"q{query}"]
    return "-".join(parts)


__all__ = [
    "BREAKDOWN_COLUMNS",
    "HEAD_COLUMNS",
    "HISTORY_COLUMNS",
    "MEAN",
    "attention_npz",
    "breakdown_csv",
    "breakdown_dict",
    "breakdown_json",
    "breakdown_table",
    "cell_text",
    "file_stem",
    "head_csv",
    "head_pattern",
    "head_table",
    "history_csv",
    "history_json",
    "history_table",
    "spreadsheet_safe",
    "token_texts",
    "write",
    "write_attention_npz",
]
