"""Downloads: CSV, NPZ and JSON hold exactly the analysis' numbers; the report is one safe file."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer import analyze, breakdown
from explorer.analysis.arithmetic import STEP_NAMES
from explorer.export import (
    BREAKDOWN_COLUMNS,
    HEAD_COLUMNS,
    HISTORY_COLUMNS,
    attention_npz,
    breakdown_csv,
    breakdown_json,
    cell_text,
    file_stem,
    head_csv,
    history_csv,
    history_json,
    spreadsheet_safe,
    token_texts,
)
from explorer.model.capture import token_bytes
from explorer.model.generation import GenerationSession
from explorer.report import export_report

TEXT = 'When Mary and John went to the store, "John" gave a drink to <b>Mary</b> 1,2'
XSS = "<img src=x onerror=alert(1)> </script><script>alert(2)</script> and more"
# Tokens a spreadsheet would run (=, +, -, @, a tab, a CR), a quote before =, whitespace, and an
# emoji and an ï the bundled tokenizer splits into bytes that are no whole character.
TRICKY = "=SUM(A1) +1 -2 @x\t\"tab\" '=q 's cat\nnew line \r\n end 🙂 naïve"
TEXT_COLUMNS = ("query_token", "query_display", "key_token", "key_display", "token", "display")


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, TEXT)


@pytest.fixture(scope="module")
def history(tiny):
    gen = GenerationSession(tiny, TEXT, seed=3, temperature=0.8, top_k=20)
    for _ in range(3):
        gen.step()
    gen.force(" the")
    return gen.history


def read_csv(data: bytes) -> pd.DataFrame:
    """A CSV as written, its text read back exactly: no NA guessing ("nan" and "1" stay text), and
    the ' that keeps a spreadsheet from running a cell as a formula taken off (cell_text)."""
    header = pd.read_csv(io.BytesIO(data), nrows=0).columns
    texts = {c: cell_text for c in TEXT_COLUMNS if c in header}
    return pd.read_csv(io.BytesIO(data), keep_default_na=False, converters=texts)


def test_head_csv_has_every_visible_pair_with_the_models_weight(analysis) -> None:
    table = read_csv(head_csv(analysis, 1, 2))
    n = analysis.n_pos
    assert tuple(table.columns) == HEAD_COLUMNS
    assert len(table) == n * (n + 1) // 2  # key ≤ query only
    assert (table["layer"] == 1).all() and (table["head"] == 2).all()
    q, k = table["query"].to_numpy(), table["key"].to_numpy()
    assert (k <= q).all()
    weights = table["weight"].to_numpy().astype(np.float32)
    np.testing.assert_array_equal(weights, analysis.pattern[1, 2][q, k])  # float32 round-trips exactly
    assert list(table["query_display"]) == [analysis.tokens[i] for i in q]
    assert list(table["key_display"]) == [analysis.tokens[j] for j in k]
    np.testing.assert_array_equal(table["key_token_id"], analysis.token_ids[k])
    sums = table.groupby("query")["weight"].sum().to_numpy()
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)  # every row is a whole attention row


def test_the_mean_over_heads_is_exported_as_the_mean_of_the_heads_exact_patterns(analysis) -> None:
    table = read_csv(head_csv(analysis, 1, None))
    assert tuple(table.columns) == HEAD_COLUMNS
    assert (table["head"] == "mean").all() and (table["layer"] == 1).all()
    q, k = table["query"].to_numpy(), table["key"].to_numpy()
    heads = [analysis.exact_pattern(1, h).astype(np.float64) for h in range(analysis.n_head)]
    expected = sum(heads) / analysis.n_head
    np.testing.assert_allclose(table["weight"], expected[q, k], rtol=1e-15, atol=0)  # float64 in full
    assert not np.allclose(expected, heads[0])  # not head 0 under another name
    np.testing.assert_allclose(table.groupby("query")["weight"].sum(), 1.0, atol=1e-6)
    assert list(table["key_token"]) == [token_texts(analysis.tokenizer, analysis.token_ids)[j] for j in k]
    assert file_stem("attention", 1, 2, mean=True) == "attention-L1-mean"
    assert file_stem("report", 1, 2, 5, mean=True) == "report-L1-mean-q5"


def test_csv_tokens_are_the_exact_text_beside_the_display_and_read_back_exactly(tiny) -> None:
    tricky = analyze(tiny, TRICKY)
    raw = [token_bytes(tricky.tokenizer, int(i)) for i in tricky.token_ids]
    whole = [b.decode("utf-8", "replace") for b in raw]
    table = read_csv(head_csv(tricky, 0, 1))
    last = table[table["query"] == tricky.n_pos - 1]
    assert list(last["key_token"]) == whole
    assert list(last["key_display"]) == list(tricky.tokens)
    assert " cat" in whole and "␣cat" in list(last["key_display"])  # the text, and the form shown
    cut = [i for i, b in enumerate(raw) if b.decode("utf-8", "replace") != b.decode("utf-8", "ignore")]
    assert cut and all(whole[i] == "\ufffd" and tricky.tokens[i].startswith("\\x") for i in cut)
    joined = "".join(t for i, t in enumerate(whole) if i not in cut)
    assert joined == TRICKY.replace("🙂", "").replace("ï", "")  # the whole tokens are the prompt's text
    np.testing.assert_array_equal(last["key_token_id"], tricky.token_ids)


def test_no_csv_cell_starts_a_spreadsheet_formula(tiny) -> None:
    import csv

    tricky = analyze(tiny, TRICKY)
    gen = GenerationSession(tiny, "x")
    for text in ("=", "@", "\t", "-", "+"):
        gen.force(text)
    files = [head_csv(tricky, 0, 0), breakdown_csv(breakdown(tricky, 0, 0, tricky.n_pos - 1), tricky)]
    files.append(history_csv(gen.history, tiny.tokenizer))
    starts = set()
    for data in files:
        for row in csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")):
            starts |= {row[c][:1] for c in TEXT_COLUMNS if c in row}
    assert "'" in starts  # "=", "@", "-", "+" and the tab were neutralised …
    assert not starts & set("=+-@\t\r")  # … and no text cell starts a formula


def test_spreadsheet_safe_cells_read_back_exactly() -> None:
    texts = ["=", "=1+1", "+", "-", "-2", "@x", "\t", "\r\n", "'", "'s", "'=", "''=x", "cat", " =", "", "nan"]
    cells = [spreadsheet_safe(t) for t in texts]
    assert [cell_text(c) for c in cells] == texts
    assert all(not c[:1] or c[0] not in "=+-@\t\r" for c in cells)
    assert cells[texts.index("'s")] == "'s" and cells[texts.index(" =")] == " ="  # untouched


def test_npz_holds_every_heads_pattern_and_the_tokens(analysis) -> None:
    with np.load(io.BytesIO(attention_npz(analysis)), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["pattern"], analysis.pattern)
        assert npz["pattern"].dtype == np.float32
        assert npz["pattern"].shape == (analysis.n_layer, analysis.n_head, analysis.n_pos, analysis.n_pos)
        np.testing.assert_array_equal(npz["token_ids"], analysis.token_ids)
        assert list(npz["tokens"]) == list(analysis.tokens)
        assert str(npz["text"]) == analysis.text
        assert str(npz["model_name"]) == analysis.model_name


def test_the_npz_goes_out_a_layer_at_a_time(analysis, tmp_path: Path) -> None:
    """The square of every head is never made whole (#5: 604 MB for gpt2 at 1024 tokens, on top
    of the server's 1.9 GB): numpy's allocations, as tracemalloc sees them, stay a few layers' worth."""
    import dataclasses
    import tracemalloc

    from explorer.export import write_attention_npz
    from explorer.model.pattern import CausalPattern

    # 8 layers × 8 heads × 384²: 38 MB as the square, 4.7 MB a layer.
    square = np.random.default_rng(0).random((8, 8, 384, 384), dtype=np.float32)
    big = dataclasses.replace(analysis, pattern=CausalPattern.from_square(square))
    expected = np.asarray(big.pattern)
    del square
    path = tmp_path / "attention.npz"
    tracemalloc.start()
    try:
        write_attention_npz(big, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < expected.nbytes / 2, (peak, expected.nbytes)  # measured: ~3 layers
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["pattern"], expected)
        assert sorted(npz.files) == ["model_name", "pattern", "text", "token_ids", "tokens"]


def test_breakdown_csv_is_the_attention_row(analysis) -> None:
    bd = breakdown(analysis, 1, 3, 9)
    table = read_csv(breakdown_csv(bd, analysis))
    assert tuple(table.columns) == BREAKDOWN_COLUMNS
    assert list(table["key"]) == list(range(10))
    assert list(table["token"]) == list(token_texts(analysis.tokenizer, analysis.token_ids[:10]))
    assert list(table["display"]) == list(analysis.tokens[:10])
    np.testing.assert_array_equal(table["token_id"], analysis.token_ids[:10])
    for column, values in (("score", bd.scores), ("scaled", bd.scaled), ("weight", bd.pattern)):
        np.testing.assert_array_equal(table[column].to_numpy().astype(np.float32), values[:10])


def test_breakdown_json_names_every_step_and_masks_as_null(analysis, tiny) -> None:
    bd = breakdown(analysis, 0, 1, 4)
    data = json.loads(breakdown_json(bd, analysis))
    assert (data["layer"], data["head"], data["query"]) == (0, 1, 4)
    assert tuple(data["steps"]) == STEP_NAMES
    steps = data["steps"]
    np.testing.assert_array_equal(np.asarray(steps["q"], dtype=np.float32), bd.q)
    np.testing.assert_array_equal(np.asarray(steps["k"], dtype=np.float32), bd.k)
    assert steps["masked"][5:] == [None] * (analysis.n_pos - 5)  # −∞ has no JSON form
    np.testing.assert_array_equal(np.asarray(steps["masked"][:5], dtype=np.float32), bd.masked[:5])
    assert [row["token_id"] for row in steps["logits"]] == list(bd.logits["token_id"])
    assert [row["display"] for row in steps["logits"]] == list(bd.logits["token"])
    top_texts = token_texts(analysis.tokenizer, bd.logits["token_id"])
    assert [row["token"] for row in steps["logits"]] == list(top_texts)
    assert data["deviation"]["q"] == pytest.approx(bd.deviation["q"])
    assert data["tokens"] == list(token_texts(analysis.tokenizer, analysis.token_ids))
    assert "".join(data["tokens"]) == TEXT  # the exact text, where the display has "␣"
    assert data["displays"] == list(analysis.tokens)
    assert data["token_ids"] == analysis.token_ids.tolist()
    with pytest.raises(ValueError, match="not made from this analysis"):
        breakdown_json(breakdown(analyze(tiny, "Other words"), 0, 0, 0), analysis)


def test_history_csv_and_json_are_the_steps(history, tiny) -> None:
    table = read_csv(history_csv(history, tiny.tokenizer))
    assert tuple(table.columns) == HISTORY_COLUMNS
    assert list(table["token_id"]) == [h.token_id for h in history]
    texts = list(token_texts(tiny.tokenizer, [h.token_id for h in history]))
    assert list(table["token"]) == texts and texts[-1] == " the"  # forced " the", shown "␣the"
    assert list(table["display"]) == [h.display for h in history]
    assert list(table["forced"]) == [False, False, False, True]
    np.testing.assert_allclose(table["prob"], [h.prob for h in history], rtol=1e-12)
    settings = {"temperature": 0.8, "top_k": 20}
    data = json.loads(history_json(history, tiny.tokenizer, prompt=TEXT, settings=settings))
    assert data["prompt"] == TEXT and data["settings"] == {"temperature": 0.8, "top_k": 20}
    assert [s["token_id"] for s in data["steps"]] == [h.token_id for h in history]
    assert [s["position"] for s in data["steps"]] == [h.position for h in history]
    assert [s["token"] for s in data["steps"]] == texts
    assert [s["display"] for s in data["steps"]] == [h.display for h in history]


def test_file_stems_say_what_a_file_holds() -> None:
    assert file_stem("attention", 2, 3) == "attention-L2-H3"
    assert file_stem("breakdown", 0, 1, 7) == "breakdown-L0-H1-q7"


def without_plotlyjs(page: str) -> str:
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()) == 1  # inlined once, the only script library
    return page.replace(get_plotlyjs(), "")


def test_report_is_self_contained_and_names_the_selection(analysis, history, tmp_path) -> None:
    path = export_report(
        analysis, tmp_path / "sub" / "report.html", layer=1, head=2, query=9, history=history
    )
    page = path.read_text(encoding="utf-8")
    rest = without_plotlyjs(page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", rest)  # nothing to fetch
    assert rest.count('class="plotly-graph-div"') == 4  # overview, head, scores, timeline
    assert "Layer 1, head 2" in rest and "query 9" in rest
    assert rest.count('class="ae-step"') == len(STEP_NAMES)
    assert "Generation: 4 tokens" in rest
    assert '"filename": "attention-L1-H2"' in rest  # the report's own download buttons
    assert "mean over heads" not in rest


def test_report_of_the_mean_shows_the_mean_and_the_heads_steps(analysis, tmp_path) -> None:
    page = export_report(analysis, tmp_path / "mean.html", layer=1, head=2, query=9, mean=True)
    rest = without_plotlyjs(page.read_text(encoding="utf-8"))
    assert "Layer 1, mean over heads" in rest and "Layer 1, head 2<" not in rest
    assert '"filename": "attention-L1-mean"' in rest and '"attention-L1-H' not in rest
    assert "layer 1, head 2, query 9" in rest  # the Q/K/V steps are one head's, and say so
    assert "a mean over heads has no steps of its own" in rest


def test_report_escapes_every_piece_of_user_text(tiny, tmp_path) -> None:
    xss = analyze(tiny, XSS)
    rest = without_plotlyjs(export_report(xss, tmp_path / "x.html").read_text(encoding="utf-8"))
    assert "<img" not in rest
    assert "alert(2)</script>" not in rest
    assert "&lt;img src=x onerror=alert&#40;1&#41;&gt;" in rest  # the prompt, shown as text
    assert rest.count("<script") == rest.count("</script>")  # no script left open or injected


# --- through the app -------------------------------------------------------------------------


def test_the_apps_export_buttons_write_the_sessions_numbers(tiny, tiny_path) -> None:
    pytest.importorskip("gradio_client")
    from browser_util import serve
    from gradio_client import Client

    prompt = "When Mary and John went to the store, John gave a drink to"
    expected = analyze(tiny, prompt)
    with serve(str(tiny_path)) as (_, url):
        client = Client(url, verbose=False)
        status, _ = client.predict(0, 0, 0, api_name="/export_head_csv")
        assert "Analyze a prompt first" in status  # nothing to export yet: a message, no file
        client.predict(prompt, 0, 0, False, api_name="/analyze")
        _, head_path = client.predict(1, 2, 3, api_name="/export_head_csv")
        _, npz_path = client.predict(1, 2, 3, api_name="/export_attention_npz")
        _, report_path = client.predict(1, 2, 3, api_name="/export_report")
        status, _ = client.predict(1, 2, 3, api_name="/export_history_json")
        _, mean_path = client.predict(1, 2, 3, True, api_name="/export_head_csv")
        _, mean_report = client.predict(1, 2, 3, True, api_name="/export_report")
        _, steps_path = client.predict(1, 2, 3, True, api_name="/export_breakdown_csv")
    assert head_path.endswith("attention-L1-H2.csv")
    table = read_csv(Path(head_path).read_bytes())
    np.testing.assert_allclose(
        table["weight"], expected.pattern[1, 2][table["query"], table["key"]], atol=1e-6
    )
    assert mean_path.endswith("attention-L1-mean.csv")
    mean = read_csv(Path(mean_path).read_bytes())
    assert (mean["head"] == "mean").all()
    np.testing.assert_allclose(
        mean["weight"],
        expected.exact_pattern(1).mean(0, dtype=np.float64)[mean["query"], mean["key"]],
        atol=1e-6,
    )
    assert Path(mean_report).name == "report-L1-mean-q3.html"
    assert "Layer 1, mean over heads" in Path(mean_report).read_text(encoding="utf-8")
    assert Path(steps_path).name == "breakdown-L1-H2-q3.csv"  # the Q/K/V tab's head, as it shows
    with np.load(npz_path, allow_pickle=False) as npz:
        np.testing.assert_allclose(npz["pattern"], expected.pattern, atol=1e-6)
    report = Path(report_path).read_text(encoding="utf-8")
    assert "Layer 1, head 2" in report and "query 3" in report
    assert "generate some tokens first" in status


def test_app_export_folders_are_pruned_and_live_under_one_root() -> None:
    from explorer.ui import export_tab as app

    folders = [Path(app.export_folder()) for _ in range(app.EXPORTS_KEPT + 8)]
    root = folders[0].parent
    assert all(f.parent == root for f in folders)
    assert len(list(root.iterdir())) <= app.EXPORTS_KEPT
    assert folders[-1].is_dir() and not folders[0].exists()
