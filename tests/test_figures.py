"""Figure builders: layout numbers, payload size and dtypes, and escaping of user text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from explorer.figures import (
    HEAD_SCORES,
    attention_row_figure,
    difference_figure,
    distribution_figure,
    downsample,
    head_figure,
    head_types_figure,
    logit_lens_figure,
    overview_cell_to_head,
    overview_figure,
    overview_tile,
    scores_figure,
    timeline_figure,
    vector_figure,
)

EVIL = "<img src=x onerror=alert(1)>"
EVIL_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
TOKENS = ["The", " cat", EVIL, " sat", ' "on"', " it's", " &", " mat"]


def causal_pattern(n_layer: int, n_head: int, n_pos: int, seed: int = 0) -> np.ndarray:
    """Softmax of seeded random scores with the causal mask: [layer, head, query, key]."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_layer, n_head, n_pos, n_pos)).astype(np.float32)
    scores[..., np.triu(np.ones((n_pos, n_pos), dtype=bool), k=1)] = -np.inf
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def distributions() -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = pd.DataFrame(
        {
            "token": [" the", EVIL, " a", " cat"],
            "token_id": [262, 50000, 257, 3797],
            "prob": [0.4, 0.3, 0.2, 0.1],
        }
    )
    warped = pd.DataFrame(
        {"token": [" the", EVIL, " dog"], "token_id": [262, 50000, 3290], "prob": [0.5, 0.35, 0.15]}
    )
    return raw, warped


def head_types_df() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    labels = ["previous_token", "induction", "other", EVIL]
    rows = [
        {"layer": layer, "head": head, "label": labels[(layer * 3 + head) % len(labels)]}
        | {name: float(rng.random()) for name in HEAD_SCORES}
        for layer in range(3)
        for head in range(4)
    ]
    return pd.DataFrame(rows)


def all_figures() -> dict[str, go.Figure]:
    """Every builder on small inputs, with the hostile token in every text slot."""
    pattern = causal_pattern(2, 3, len(TOKENS))
    raw, warped = distributions()
    n = len(TOKENS)
    rng = np.random.default_rng(1)
    scores = rng.normal(size=n).astype(np.float32)
    scores[5:] = -np.inf
    return {
        "overview": overview_figure(pattern),
        "head": head_figure(pattern[1, 2], TOKENS, 1, 2, query=4),
        "mean": head_figure(pattern[1].mean(0), TOKENS, 1, None, title=f"mean {EVIL}"),
        "row": attention_row_figure(pattern[0, 0, 4], TOKENS, 4),
        "vector": vector_figure(rng.normal(size=(3, 16)), ["Q_2", EVIL, "V_1"], f"Q/K/V {EVIL}"),
        "scores": scores_figure(
            {"scores": scores, "scaled": scores / 4, "pattern": pattern[0, 0, 4]}, TOKENS, 4
        ),
        "distribution": distribution_figure(raw, warped, EVIL, title=f"after {EVIL}"),
        "timeline": timeline_figure([0.5, 0.9, 0.2], [2.0, 0.5, 3.1], [EVIL, " a", " b"]),
        "lens": logit_lens_figure([[EVIL] * n for _ in range(3)], rng.random((3, n)), TOKENS),
        "types": head_types_df().pipe(head_types_figure),
        "difference": difference_figure(pattern[0, 0] - pattern[0, 1], TOKENS, f"diff {EVIL}"),
    }


def strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from strings(value)


def trace_arrays(fig: go.Figure) -> Iterator[tuple[str, Any]]:
    """Numeric per-point arrays of every trace as serialised (typed-array dicts or lists)."""
    for trace in json.loads(fig.to_json())["data"]:
        for key in ("x", "y", "z", "customdata"):
            if key in trace:
                yield f"{trace['type']}.{key}", trace[key]


# --- downsample ---------------------------------------------------------------------------


def test_downsample_is_block_max_with_uneven_blocks() -> None:
    rng = np.random.default_rng(0)
    mat = rng.random((2, 10, 7)).astype(np.float32)
    mat[1, 8, 2] = 5.0
    out = downsample(mat, 4)
    assert out.shape == (2, 4, 4) and out.dtype == np.float32
    rows = np.arange(5) * 10 // 4  # block edges: 10 queries and 7 keys into 4 blocks each
    cols = np.arange(5) * 7 // 4
    for b in range(2):
        for i in range(4):
            for j in range(4):
                block = mat[b, rows[i] : rows[i + 1], cols[j] : cols[j + 1]]
                assert out[b, i, j] == block.max()
    assert out[1].max() == 5.0


def test_downsample_keeps_a_one_token_diagonal() -> None:
    out = downsample(np.eye(1000, dtype=np.float32), 48)
    assert out.shape == (48, 48)
    np.testing.assert_array_equal(np.diag(out), 1.0)


def test_downsample_leaves_small_axes_alone() -> None:
    mat = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = downsample(mat, 8)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, mat)


# --- overview -----------------------------------------------------------------------------


def constant_heads(n_layer: int, n_head: int, n_pos: int) -> np.ndarray:
    """Head (l, h) is lower-triangular with the value (l * n_head + h + 1) / 100."""
    values = (np.arange(n_layer * n_head, dtype=np.float32) + 1).reshape(n_layer, n_head) / 100
    return values[:, :, None, None] * np.tri(n_pos, dtype=np.float32)


def overview_cells(fig: go.Figure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    heat = fig.data[0]
    z = np.asarray(heat.z)
    ys = heat.y0 + heat.dy * np.arange(z.shape[0])
    xs = heat.x0 + heat.dx * np.arange(z.shape[1])
    return z, xs, ys


def test_overview_tiles_map_back_to_their_head() -> None:
    n_layer, n_head, n_pos = 3, 4, 8
    fig = overview_figure(constant_heads(n_layer, n_head, n_pos))
    z, xs, ys = overview_cells(fig)
    tile = fig.data[0].meta["tile"]
    assert tile == [8, 8]
    assert z.shape == (n_layer * 9 - 1, n_head * 9 - 1)
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            where = overview_cell_to_head(x, y, n_layer, n_head, tile)
            if np.isnan(z[r, c]):
                assert where is None
            else:
                assert where is not None
                layer, head = where
                assert (layer, head) == (r // 9, c // 9)
                i, j = r % 9, c % 9  # query and key inside the tile
                expected = (layer * n_head + head + 1) / 100 if j <= i else 0.0
                assert z[r, c] == pytest.approx(expected)
    assert overview_cell_to_head(-0.6, 0, n_layer, n_head, 8) is None
    assert overview_cell_to_head(0, n_layer - 0.4, n_layer, n_head, 8) is None
    assert overview_cell_to_head(2.3, 1.1, n_layer, n_head, 8) == (1, 2)


def test_overview_has_one_cell_nan_gaps_only_between_tiles() -> None:
    z, _, _ = overview_cells(overview_figure(constant_heads(3, 4, 8)))
    gap_rows, gap_cols = [8, 17], [8, 17, 26]
    assert np.isnan(z[gap_rows]).all() and np.isnan(z[:, gap_cols]).all()
    inside = np.delete(np.delete(z, gap_rows, axis=0), gap_cols, axis=1)
    assert not np.isnan(inside).any()


def test_overview_axes_name_heads_and_layers_layer_zero_on_top() -> None:
    fig = overview_figure(causal_pattern(2, 3, 5))
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]
    assert list(fig.layout.xaxis.ticktext) == ["H0", "H1", "H2"]
    assert list(fig.layout.yaxis.ticktext) == ["L0", "L1"]
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]
    assert fig.layout.meta == "attention-overview"


def test_overview_of_gpt2_small_at_1024_tokens_is_small() -> None:
    # How fast it is built is measured by `python -m bench`, not asserted here.
    rng = np.random.default_rng(0)
    pattern = rng.random((12, 12, 1024, 1024), dtype=np.float32)
    pattern *= np.tri(1024, dtype=np.float32)
    pattern /= pattern.sum(-1, keepdims=True)
    for shape_name, p in {"12x12": pattern, "48 heads": pattern[:4]}.items():
        payload = overview_figure(p).to_json()
        assert len(payload) < 1_000_000, (shape_name, len(payload))
        assert json.loads(payload)["data"][0]["z"]["dtype"] == "f4"
    assert overview_tile(1024, 12, 12) < overview_tile(1024, 4, 12) <= 48  # more heads, smaller tiles


def test_overview_payload_stays_small_for_values_near_one() -> None:
    # Floats near 1 base64-encode to many '/', which Plotly escapes to six characters each.
    rng = np.random.default_rng(0)
    pattern = rng.uniform(0.9, 1.0, size=(12, 12, 64, 64)).astype(np.float32)
    assert len(overview_figure(pattern).to_json()) < 1_000_000


# --- payload and escaping for every figure ------------------------------------------------


def test_no_figure_ships_float64_or_plain_number_lists() -> None:
    for name, fig in all_figures().items():
        for where, array in trace_arrays(fig):
            assert isinstance(array, dict), (name, where, "sent as a JSON list")
            assert array["dtype"] in {"f4", "u1", "i1", "u2", "i2", "u4", "i4"}, (name, where)


def test_user_text_reaches_every_figure_only_escaped() -> None:
    for name, fig in all_figures().items():
        payload = fig.to_json()
        texts = list(strings(json.loads(payload)))
        assert not any("<img" in t for t in texts), name
        assert "\\u003cimg" not in payload, name
        if name != "overview":  # the overview shows no tokens
            assert any(EVIL_ESCAPED in t for t in texts), name


def test_quotes_use_entities_plotly_decodes() -> None:
    fig = head_figure(causal_pattern(1, 1, len(TOKENS))[0, 0], TOKENS, 0, 0)
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks[4] == " &#34;on&#34;" and ticks[5] == " it&#39;s" and ticks[6] == " &amp;"
    assert "&quot;" not in fig.to_json()


def test_every_figure_has_a_download_slug() -> None:
    for name, fig in all_figures().items():
        assert fig.layout.meta and fig.layout.meta.replace("-", "").isalnum(), name
        assert fig.layout.template.layout.paper_bgcolor == "white", name


def test_many_tokens_get_every_nth_tick_label() -> None:
    tokens = [f"t{i}" for i in range(200)]
    fig = head_figure(causal_pattern(1, 1, 200)[0, 0], tokens, 0, 0)
    vals = list(fig.layout.xaxis.tickvals)
    assert len(vals) <= 60 and vals[:3] == [0, 4, 8]
    assert list(fig.layout.xaxis.ticktext)[:2] == ["t0", "t4"]


# --- token heatmaps ------------------------------------------------------------------------


def test_head_figure_blanks_the_masked_triangle_and_scales_to_the_max() -> None:
    pattern = causal_pattern(2, 3, len(TOKENS))[1, 2]
    fig = head_figure(pattern, TOKENS, 1, 2, query=4)
    z = np.asarray(fig.data[0].z)
    upper = np.triu(np.ones_like(z, dtype=bool), k=1)
    assert np.isnan(z[upper]).all()
    np.testing.assert_array_equal(z[~upper], pattern[~upper])
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == pytest.approx(pattern.max())
    assert fig.data[0].hovertext[3][1] == "query 3 ' sat' → key 1 ' cat'"
    assert fig.data[0].hovertext[1][3] == ""
    (box,) = fig.layout.shapes
    assert (box.y0, box.y1, box.x0, box.x1) == (3.5, 4.5, -0.5, 4.5)
    assert fig.layout.meta == "attention-L1-H2"
    assert fig.layout.yaxis.autorange == "reversed"


def test_mean_over_heads_gets_its_own_slug_and_title() -> None:
    fig = head_figure(np.tri(3) / 3, ["a", "b", "c"], 0, None, title="Mean of layer 0")
    assert fig.layout.meta == "attention-L0-mean"
    assert fig.layout.title.text == "Mean of layer 0"


def test_difference_is_diverging_around_zero_with_the_mask_blank() -> None:
    p = causal_pattern(1, 2, 6)
    fig = difference_figure(p[0, 0] - p[0, 1], [str(i) for i in range(6)], "H0 minus H1")
    heat = fig.data[0]
    assert heat.zmid == 0 and heat.zmin is None
    assert np.isnan(np.asarray(heat.z)[0, 1])
    assert fig.layout.meta == "h0-minus-h1"


def test_attention_row_shows_keys_up_to_the_query() -> None:
    row = causal_pattern(1, 1, len(TOKENS))[0, 0, 5]
    fig = attention_row_figure(row, TOKENS, 5)
    np.testing.assert_array_equal(np.asarray(fig.data[0].x), np.arange(6))
    np.testing.assert_array_equal(np.asarray(fig.data[0].y), row[:6])
    assert list(fig.layout.xaxis.ticktext)[:2] == ["The", " cat"]


def test_vector_figure_is_centred_on_zero() -> None:
    fig = vector_figure(np.array([[1.0, -2.0], [0.5, 3.0]]), ["Q_1", "K_0"], "q and k")
    heat = fig.data[0]
    assert heat.zmid == 0 and heat.zmin is None and heat.zmax is None
    assert np.asarray(heat.z).dtype == np.float32
    assert list(fig.layout.yaxis.ticktext) == ["Q_1", "K_0"]


def test_scores_figure_skips_masked_keys_and_puts_pattern_below() -> None:
    scores = np.array([1.0, 2.0, np.nan, -np.inf], dtype=np.float32)
    pattern = np.array([0.25, 0.75, 0.0, 0.0], dtype=np.float32)
    fig = scores_figure({"scores": scores, "pattern": pattern}, ["a", "b", "c", "d"], 1)
    by_name = {trace.name: trace for trace in fig.data}
    np.testing.assert_array_equal(np.asarray(by_name["scores"].x), [0, 1])
    np.testing.assert_array_equal(np.asarray(by_name["pattern"].x), [0, 1, 2, 3])
    assert by_name["scores"].yaxis == "y" and by_name["pattern"].yaxis == "y2"
    assert fig.layout.barmode == "group"


# --- generation ----------------------------------------------------------------------------


def test_distribution_marks_the_chosen_token_and_carries_ids() -> None:
    raw, warped = distributions()
    fig = distribution_figure(raw, warped, 262)
    model, after = fig.data
    np.testing.assert_array_equal(np.asarray(model.customdata), raw["token_id"])
    np.testing.assert_array_equal(np.asarray(after.customdata), warped["token_id"])
    # Rows follow the raw order, tokens only in the warped list come after.
    np.testing.assert_array_equal(np.asarray(model.y), [0, 1, 2, 3])
    np.testing.assert_array_equal(np.asarray(after.y), [0, 1, 4])
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # largest at top
    for trace in (model, after):
        widths = np.asarray(trace.marker.line.width)
        assert widths[0] > 0 and not widths[1:].any()
        assert trace.marker.pattern.shape[0] == "/"
    (note,) = fig.layout.annotations
    assert note.y == 0 and note.x == pytest.approx(0.5) and "chosen ' the'" in note.text


def test_distribution_finds_the_chosen_token_by_display_string() -> None:
    raw, _ = distributions()
    fig = distribution_figure(raw, None, " a")
    (model,) = fig.data
    assert np.asarray(model.marker.line.width).nonzero()[0].tolist() == [2]


def test_distribution_says_when_the_chosen_token_is_not_shown() -> None:
    raw, _ = distributions()
    fig = distribution_figure(raw, None, 999)
    assert not fig.layout.annotations and "not among these bars" in fig.layout.title.text


def test_timeline_puts_entropy_on_the_right_axis() -> None:
    fig = timeline_figure([0.5, 0.9], [2.0, 0.5], [" a", " b"])
    prob, entropy = fig.data
    assert prob.yaxis is None or prob.yaxis == "y"
    assert entropy.yaxis == "y2" and fig.layout.yaxis2.side == "right"
    assert list(fig.layout.xaxis.ticktext) == [" a", " b"]
    with pytest.raises(ValueError):
        timeline_figure([0.5], [2.0, 0.5], [" a", " b"])


# --- analysis summaries --------------------------------------------------------------------


def test_logit_lens_rows_start_with_the_embedding() -> None:
    fig = logit_lens_figure([["x", "y"], ["z", EVIL], ["u", "v"]], np.full((3, 2), 0.5), ["a", "b"])
    assert list(fig.layout.yaxis.ticktext) == ["embed", "L0", "L1"]
    assert fig.data[0].text[1][1] == EVIL_ESCAPED and fig.data[0].texttemplate == "%{text}"
    assert np.asarray(fig.data[0].z).dtype == np.float32


def test_head_types_colour_each_label_and_keep_scores_for_hover() -> None:
    df = head_types_df()
    fig = head_types_figure(df)
    heat = fig.data[0]
    z = np.asarray(heat.z)
    assert z.shape == (3, 4)
    stops = heat.colorscale
    k = len(stops) // 2
    for row in df.itertuples():
        code = int(z[row.layer, row.head])
        colour = stops[2 * code][1]
        assert colour == stops[2 * code + 1][1]  # stepped: one flat colour per label
        shown = {"previous_token": "previous token"}.get(row.label, row.label)  # the name people read
        assert shown.replace("<", "&lt;").replace(">", "&gt;") == heat.hovertext[row.layer][row.head]
        scores = np.asarray(heat.customdata)[row.layer, row.head]
        np.testing.assert_allclose(scores, [getattr(row, s) for s in HEAD_SCORES], rtol=1e-6)
    assert heat.zmin == -0.5 and heat.zmax == k - 0.5
    other = df[df.label == "other"].iloc[0]
    assert (
        stops[2 * int(z[int(other["layer"]), int(other["head"])])][1] == "#BBBBBB"
    )  # unlabelled heads are grey
    (legend,) = fig.layout.annotations
    assert all(label in legend.text for label in ["previous token", "induction", "other"])
    assert "previous_token" not in legend.text and "_token" not in heat.hovertemplate  # people's names
    assert "<br>previous token: %{customdata[0]:.2f}" in heat.hovertemplate
