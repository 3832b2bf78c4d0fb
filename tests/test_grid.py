"""The heads tab's canvas payloads (figures/grid.py): the cells the page draws are the model's own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.figures import grid
from explorer.figures.heads import DETAIL_MAX_CELLS, overview_figure
from explorer.model.capture import analyze
from explorer.ui.analysis import sent

PROMPT = "The cat sat on the mat. The cat sat on the"


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, PROMPT)


def test_the_overview_sends_each_tiles_block_max_within_a_level(analysis) -> None:
    payload = grid.analysis_overview_grid(analysis)
    cells = grid.decode(payload)
    n_layer, n_head, n = analysis.n_layer, analysis.n_head, analysis.n_pos
    assert cells.shape == (n_layer, n_head, n, n)  # short prompts: one cell per token pair
    exact = np.stack([analysis.exact_pattern(layer) for layer in range(n_layer)])
    assert np.abs(cells - exact).max() <= 0.5 / grid.OVERVIEW_LEVELS + 1e-7
    json.dumps(payload)  # plain JSON: what Gradio sends


def test_the_overview_pools_as_the_plotly_overview_did(analysis) -> None:
    """The same tiles as overview_figure (block max), at most 48 cells a side and within the cell budget."""
    pattern = np.random.default_rng(0).random((3, 4, 200, 200)).astype(np.float32)
    payload = grid.overview_grid(pattern)
    cells = grid.decode(payload)
    tile = payload["shape"][2]
    assert tile <= 48 and cells.shape == (3, 4, tile, tile)
    z = np.asarray(overview_figure(pattern).data[0].z)
    assert np.allclose(
        cells[1, 2], z[(tile + 1) : (tile + 1) + tile, 2 * (tile + 1) : 2 * (tile + 1) + tile], atol=1e-5
    )
    zoomed = grid.overview_grid(pattern, layers=range(1, 3))
    assert zoomed["first_layer"] == 1 and zoomed["shape"][0] == 2 and zoomed["n_layer_all"] == 3


def test_the_head_detail_sends_the_models_float32_with_future_keys_blank(analysis) -> None:
    payload, note = grid.head_detail_grid(analysis, 1, 2, 5)
    cells = grid.decode(payload)
    n = analysis.n_pos
    assert note == "" and cells.shape == (n, n)
    exact = analysis.exact_pattern(1, 2)
    lower = np.tril(np.ones((n, n), dtype=bool))
    assert np.array_equal(cells[lower], exact[lower].astype(np.float32))  # bit for bit
    assert np.isnan(cells[~lower]).all()
    assert payload["title"] == "Layer 1, head 2" and payload["query"] == 5
    assert payload["tokens"] == list(analysis.tokens)
    assert f"query 5 '{analysis.tokens[5]}' outlined" in payload["subtitle"]
    mean, _ = grid.head_detail_grid(analysis, 1, None, 5)
    assert mean["title"] == "Layer 1, mean over heads" and mean["meta"] == "attention-L1-mean"
    assert np.allclose(grid.decode(mean)[lower], analysis.exact_pattern(1).mean(0)[lower], atol=1e-7)


def test_a_long_prompt_shows_a_window_of_rows_around_the_query() -> None:
    n = 400
    pattern = np.tril(np.random.default_rng(1).random((n, n))).astype(np.float32)
    rows = max(48, DETAIL_MAX_CELLS // n)
    lo = 200 - rows // 2
    payload = grid.head_grid(
        pattern[lo : lo + rows, : lo + rows], [f"t{i}" for i in range(n)], 0, 0, 200, row_offset=lo
    )
    cells = grid.decode(payload)
    assert cells.shape == (rows, lo + rows) and payload["row_offset"] == lo
    assert np.isnan(cells[0, lo + 1]) and cells[0, lo] == pattern[lo, lo]  # row lo sees keys 0..lo
    with pytest.raises(ValueError):
        grid.head_grid(pattern[:10, :20], ["t"] * 20, 0, 0, row_offset=0)


def test_token_text_is_sent_as_text(analysis) -> None:
    """Titles and tokens are plain strings the page writes with textContent and fillText: no
    escaping to undo, and nothing in them is markup."""
    payload = grid.head_grid(np.ones((2, 2), np.float32) / 2, ["<b>x</b>", "&amp;"], 0, 0, 1)
    assert payload["tokens"] == ["<b>x</b>", "&amp;"]
    assert "'&amp;' outlined" in payload["subtitle"]


def test_what_a_payload_costs_the_figure_budget(analysis) -> None:
    payload = grid.analysis_overview_grid(analysis)
    (kept,), size = sent(payload)
    assert kept is payload and len(json.dumps(payload)) <= size <= len(json.dumps(payload)) + 2048


def test_a_deep_model_offers_ranges_of_twelve_layers() -> None:
    from explorer.ui.heads_tab import layer_range

    pattern = np.random.default_rng(2).random((30, 2, 8, 8)).astype(np.float32)
    payload = grid.overview_grid(pattern)
    assert payload["ranges"] == [[0, 12], [12, 24], [24, 30]]
    assert grid.overview_grid(pattern[:12])["ranges"] == []  # twelve layers or fewer: one view
    zoomed = grid.overview_grid(pattern, layers=range(24, 30))
    assert zoomed["first_layer"] == 24 and zoomed["shape"][0] == 6
    assert layer_range([24, 30], 30) == range(24, 30)
    for bad in ([0, 31], [5, 5], [-1, 3], [0.5, 3], "0,3", [0], None, [float("nan"), 2]):
        assert layer_range(bad, 30) is None, bad
