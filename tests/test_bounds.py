"""What no client can grow: the analyses all sessions hold (a budget, shared, read-only, recomputed
when dropped), the disk (downloads kept in Gradio's cache, uploads refused), and readable replies
to values a page could never send."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from browser_util import serve

from explorer import analyze
from explorer.ui.common import RECOMPUTED
from explorer.ui.state import AnalysisKey, AnalysisStore, Session, analysis_bytes
from explorer.views import esc

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

PROMPTS = [f"Student {i} asks about the {w} and the {w}s" for i, w in enumerate(["cat", "dog", "owl", "elk"])]


def context_of(demo: Any) -> Any:
    """The app's Context, from the analyze handler's closure."""
    fn = next(f.fn for f in demo.fns.values() if f.api_name == "analyze")
    return inspect.getclosurevars(inspect.unwrap(fn)).nonlocals["ctx"]


# --- the store on its own -----------------------------------------------------------------


def test_the_store_drops_the_least_recently_used_beyond_its_budget(tiny) -> None:
    analyses = [analyze(tiny, p) for p in PROMPTS]
    size = max(analysis_bytes(a) for a in analyses)
    store = AnalysisStore(budget=int(2.5 * size))
    keys = [AnalysisKey("tiny", p, None) for p in PROMPTS]
    for key, analysis in zip(keys[:3], analyses[:3], strict=True):
        store.put(key, analysis)
    assert len(store) == 2 and store.nbytes <= store.budget
    assert store.get(keys[0]) is None and store.get(keys[1]) is analyses[1]  # 1 is now the newest
    store.put(keys[3], analyses[3])
    assert store.get(keys[2]) is None and store.get(keys[1]) is analyses[1]
    tiny_store = AnalysisStore(budget=1)  # the newest stays even over the budget
    tiny_store.put(keys[0], analyses[0])
    assert tiny_store.get(keys[0]) is analyses[0]


def test_a_shared_analysis_figure_is_made_once_and_leaves_with_its_analysis(tiny) -> None:
    analyses = [analyze(tiny, p) for p in PROMPTS[:3]]
    size = max(analysis_bytes(a) for a in analyses)
    store = AnalysisStore(budget=int(2.5 * size))
    keys = [AnalysisKey("tiny", p, None) for p in PROMPTS[:3]]
    store.put(keys[0], analyses[0])
    made: list[int] = []

    def make() -> tuple[str, int]:
        made.append(1)
        return "figure-json", 1000

    assert store.figure(keys[0], "overview", make) == store.figure(keys[0], "overview", make) == "figure-json"
    assert len(made) == 1 and store.figures_made == 1  # the second session got the same one
    assert store.nbytes == analysis_bytes(analyses[0]) + 1000  # figures count against the budget
    assert store.figure(None, "overview", make) == "figure-json" and len(made) == 2  # no key: not kept
    store.put(keys[1], analyses[1])
    store.put(keys[2], analyses[2])  # over the budget: key 0 leaves, and its figures with it
    assert store.get(keys[0]) is None
    assert store.nbytes == analysis_bytes(analyses[1]) + analysis_bytes(analyses[2])
    store.figure(keys[0], "overview", make)
    assert len(made) == 3 and store.nbytes <= store.budget  # made again, not kept for a dropped analysis


def test_sessions_of_one_example_are_sent_the_same_figures(tiny_path: Path) -> None:
    """Two pages analyzing the same prompt: the overview and the head are made once."""
    with serve(str(tiny_path)) as (demo, url):
        ctx = context_of(demo)
        a, b = Client(url, verbose=False), Client(url, verbose=False)
        first = a.predict(PROMPTS[0], 1, 0, False, api_name="/analyze")
        made = ctx.analyses.figures_made
        second = b.predict(PROMPTS[0], 1, 0, False, api_name="/analyze")
        assert ctx.analyses.figures_made == made  # nothing made again
        assert ctx.analyses.computed == 1
        assert [str(x)[:2000] for x in first] == [str(x)[:2000] for x in second]


def test_a_shared_analysis_is_computed_once_and_cannot_be_written(tiny) -> None:
    store = AnalysisStore(budget=1 << 30)
    key = AnalysisKey("tiny", PROMPTS[0], None)
    runs: list[int] = []
    barrier = threading.Barrier(4)

    def ask() -> Any:
        barrier.wait(timeout=30)
        return store.compute(key, lambda: runs.append(1) or analyze(tiny, PROMPTS[0]))

    results: list[Any] = []
    threads = []
    for _ in range(4):
        t = threading.Thread(target=lambda: results.append(ask()))
        threads.append(t)
        t.start()
    for t in threads:
        t.join(60)
    assert len(runs) == 1 and len(results) == 4 and all(r is results[0] for r in results)
    shared = results[0]
    with pytest.raises(ValueError, match="read-only"):
        shared.q[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        shared.pattern.packed[0, 0, 0] = 1.0


# --- through the app ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_budget_app(tiny_path: Path, tiny):
    one = analysis_bytes(analyze(tiny, PROMPTS[0]))
    with serve(str(tiny_path), analysis_budget=int(1.5 * one)) as (demo, url):
        yield demo, url


def test_a_dropped_analysis_is_recomputed_and_the_status_says_so(small_budget_app) -> None:
    demo, url = small_budget_app
    ctx = context_of(demo)
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    assert "Analyzed" in a.predict(PROMPTS[0], 1, 0, False, api_name="/analyze")[0]
    before = ctx.analyses.computed
    assert "Analyzed" in b.predict(PROMPTS[1], 0, 0, False, api_name="/analyze")[0]  # drops a's
    assert len(ctx.analyses) == 1 and ctx.analyses.nbytes <= ctx.analyses.budget
    out = a.predict(0, 1, 3, False, api_name="/breakdown")  # a's selection: layer 0, head 1, query 3
    assert esc(RECOMPUTED) in out[0]
    assert ctx.analyses.computed == before + 2  # b's, then a's again
    assert "query token 3" in str(out)  # a's own prompt and selection, not b's
    again = a.predict(0, 1, 2, False, api_name="/breakdown")
    assert esc(RECOMPUTED) not in again[0]  # said once


def test_students_analyzing_the_same_example_share_one_analysis(app) -> None:
    demo, url = app
    ctx = context_of(demo)
    text = "Every student in the hall analyzes this same example prompt"
    before = ctx.analyses.computed
    for _ in range(3):
        assert "Analyzed" in Client(url, verbose=False).predict(text, 0, 0, False, api_name="/analyze")[0]
    assert ctx.analyses.computed == before + 1


def test_uploads_are_refused(app) -> None:
    _, url = app
    files = {"files": ("big.bin", b"\0" * (1 << 20), "application/octet-stream")}
    reply = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files=files, timeout=30)
    assert reply.status_code == 413


def test_downloads_are_served_from_where_they_are_written_and_stay_bounded(app) -> None:
    from explorer.ui import export_tab

    demo, url = app
    client = Client(url, verbose=False)
    client.predict(PROMPTS[2], 0, 0, False, api_name="/analyze")
    root = Path(export_tab.export_folder()).parent
    for _ in range(export_tab.EXPORTS_KEPT + 6):
        status, path = client.predict(0, 0, 3, api_name="/export_head_csv")
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) <= export_tab.EXPORTS_KEPT
    file = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "ae-export-file")
    assert all(Path(f).is_relative_to(root) for f in file.temp_files)  # no copy in Gradio's cache
    assert len(file.temp_files) <= export_tab.EXPORTS_KEPT + 1


def test_overview_clicks_a_page_cannot_make_change_nothing(app, tiny) -> None:
    """An overview click with a NaN, infinite, fractional or missing tile (only a hand-made request
    sends one) is ignored, not an error."""
    demo, _ = app
    ctx = context_of(demo)
    open_head = next(
        d.fn
        for d in demo.fns.values()
        if getattr(d.fn, "__name__", "") == "open_head" and d.fn.__module__ == "explorer.ui.heads_tab"
    )
    session = Session(model=ctx.session.value.model)
    analysis = analyze(tiny, PROMPTS[3])  # held here: the session keeps only a weak reference
    session.analysis = analysis
    for layer, head in ((float("nan"), 0), (0, float("inf")), (0.5, 1), ("1", 1), (True, 0), (None, 0)):
        out = open_head(session, 0, SimpleNamespace(layer=layer, head=head))
        assert not isinstance(out, dict) or ctx.status not in out, (layer, head)
    out = open_head(session, 0, SimpleNamespace(layer=1, head=2))
    assert out[ctx.layer] == 1 and out[ctx.head] == 2


def test_the_command_line_passes_the_budget_on(monkeypatch) -> None:
    import explorer.ui as ui
    from explorer import cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ui, "build_app", lambda **kwargs: seen.update(kwargs) or "demo")
    monkeypatch.setattr(ui, "launch", lambda demo, **kwargs: None)
    assert cli.main(["--analysis-budget-mb", "64"]) == 0
    assert seen["analysis_budget"] == 64 * 2**20


def call(url: str, api: str, data: list[Any]) -> str:
    """One plain-HTTP call, the way Gradio's API page documents it (no session, no heartbeat)."""
    base = url.rstrip("/")
    event = httpx.post(f"{base}/gradio_api/call/{api}", json={"data": data}, timeout=60).json()["event_id"]
    return httpx.get(f"{base}/gradio_api/call/{api}/{event}", timeout=120).text


def test_one_shot_http_calls_hold_no_analysis_of_their_own(small_budget_app) -> None:
    """Each plain-HTTP call is a session of its own that never closes: what it leaves behind must
    not include its analysis, which only the store (within its budget) may keep."""
    import gc

    from explorer.model.capture import Analysis

    demo, url = small_budget_app
    ctx = context_of(demo)
    for i in range(8):
        assert "Analyzed" in call(
            url, "analyze", [f"One-shot caller {i} sends the {i}th prompt", 0, 0, False]
        )
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, Analysis) and o.text.startswith("One-shot")]
    assert len(ctx.analyses) <= 2 and len(alive) <= len(ctx.analyses)


@pytest.mark.parametrize("text", ["\ud800 lone \udfff " * 120, "🙂a" * 200, "naïve café " * 60])
def test_a_cut_prompt_reads_back_within_the_limit(tiny, text: str) -> None:
    """Hosted limits hold after re-tokenization: the cut text the generation tokenizes again is
    never longer than the limit (a cut inside a character once read back as 258 of 256)."""
    from explorer.model.capture import clean_text
    from explorer.ui.generate_events import cut_prompt

    cut, dropped = cut_prompt(tiny, text, 256)
    ids = tiny.tokenizer(clean_text(cut))["input_ids"]
    assert len(ids) <= 256 and dropped >= len(tiny.tokenizer(clean_text(text))["input_ids"]) - 256


def test_a_run_length_that_is_no_number_is_refused_readably() -> None:
    from explorer.errors import ExplorerError
    from explorer.ui.generate_events import run_length

    assert run_length(None, 32) == 1 and run_length(500, 32) == 32 and run_length("3", 32) == 3
    for bad in (float("nan"), float("inf"), "many"):
        with pytest.raises(ExplorerError, match="run length must be a whole number"):
            run_length(bad, 32)
