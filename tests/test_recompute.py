"""Large-model analyses (#20): what is kept, what is computed again, the weights' dtype and the
overview at gpt2-xl's 48 × 25 heads, on the tiny seeded model (forced onto the same code paths)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from explorer.analysis.arithmetic import breakdown
from explorer.analysis.attribution import attribute
from explorer.analysis.heads import head_scores
from explorer.figures import analysis_overview, head_detail, overview_cell_to_head, overview_figure
from explorer.model.capture import analyze, keep_plan
from explorer.model.pattern import CausalPattern, LayerPattern
from explorer.model.recompute import LayerStack

TEXT = "The cat sat on the mat because the mat was warm, and the cat was cold."
LAZY = ("q", "k", "v", "context", "attn_out", "resid_mid")


@pytest.fixture(scope="module")
def kept(tiny):
    return analyze(tiny, TEXT)


@pytest.fixture(scope="module")
def again(tiny):
    """The same prompt with nothing kept beyond the stream: every layer is computed again."""
    return analyze(tiny, TEXT, keep_bytes=0)


def test_the_plan_keeps_everything_while_it_fits_then_the_pattern_ever_smaller() -> None:
    assert keep_plan(12, 12, 768, 1024) == (True, np.float32)  # gpt2: as before
    assert keep_plan(24, 16, 1024, 128) == (True, np.float32)  # gpt2-medium, a short prompt
    assert keep_plan(24, 16, 1024, 768) == (False, np.uint16)  # 227 MB instead of 906 MB
    assert keep_plan(24, 16, 1024, 1024) == (False, np.uint8)  # 201 MB instead of 1.5 GB
    assert keep_plan(48, 25, 1600, 1024) == (False, np.uint8)  # 630 MB instead of 4.7 GB
    assert keep_plan(12, 12, 768, 1024, keep_bytes=0) == (False, np.uint8)


def test_recomputed_layers_equal_the_captured_ones(kept, again) -> None:
    assert kept.keeps_all and kept.recompute is None and not again.keeps_all
    for name in LAZY:
        assert (
            isinstance(getattr(again, name), LayerStack)
            and getattr(again, name).shape == getattr(kept, name).shape
        )
        np.testing.assert_allclose(np.asarray(getattr(again, name)), getattr(kept, name), atol=1e-6, rtol=0)
    for layer in range(kept.n_layer):
        np.testing.assert_allclose(again.exact_pattern(layer), kept.pattern[layer], atol=1e-6, rtol=0)
        np.testing.assert_allclose(again.pattern_row(layer, 7), kept.pattern[layer, :, 7], atol=1e-6, rtol=0)
    # Indexed as the arrays were: one head, one position, a range of layers.
    np.testing.assert_allclose(again.q[1, 2], kept.q[1, 2], atol=1e-6, rtol=0)
    np.testing.assert_allclose(again.context[:, :, 5], kept.context[:, :, 5], atol=1e-6, rtol=0)
    np.testing.assert_allclose(again.resid_mid[-1, 3], kept.resid_mid[-1, 3], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(again.resid, kept.resid)


def test_the_kept_pattern_is_quantized_within_half_a_step(kept, again) -> None:
    # uint8 (gpt2-xl at 1,024 tokens) here; uint16 (gpt2-medium) below, from the same square.
    assert isinstance(again.pattern, CausalPattern) and not again.pattern.exact
    assert again.pattern.packed.dtype == np.uint8 and again.pattern.step == pytest.approx(0.5 / 255)
    assert np.abs(np.asarray(again.pattern) - np.asarray(kept.pattern)).max() <= again.pattern.step + 1e-7
    square = np.asarray(kept.pattern)
    p16 = CausalPattern.from_square(square)
    p16 = CausalPattern(np.rint(p16.packed * 65535).astype(np.uint16), kept.n_pos)
    assert np.abs(np.asarray(p16) - square).max() <= 0.5 / 65535 + 1e-7


def test_a_recomputed_layer_keeps_its_exact_pattern_as_a_triangle(kept, again) -> None:
    for layer in range(kept.n_layer):
        arrays = again.layer(layer)
        assert isinstance(arrays.pattern, LayerPattern)
        np.testing.assert_allclose(np.asarray(arrays.pattern), kept.pattern[layer], atol=1e-6, rtol=0)
        np.testing.assert_allclose(arrays.pattern[2, 7], kept.pattern[layer, 2, 7], atol=1e-6, rtol=0)
        # The triangle and one head's square are what it holds of the pattern, not every square.
        triangle = kept.n_head * kept.n_pos * (kept.n_pos + 1) // 2
        assert arrays.pattern.nbytes == 4 * triangle
        assert arrays.nbytes < arrays.q.nbytes * 4 + arrays.attn_out.nbytes * 2 + 4 * triangle + 1


def test_only_a_few_layers_are_kept_and_counted(tiny) -> None:
    a = analyze(tiny, TEXT, keep_bytes=0)
    assert a.recompute is not None
    base = a.nbytes
    assert base == a.resid.nbytes + a.pattern.nbytes + a.token_ids.nbytes + a.last_logits.nbytes
    a.q[0, 0], a.k[1, 0]  # noqa: B018 - two layers computed
    assert a.recompute.computed == 2 and a.nbytes == base + a.recompute.nbytes > base
    a.v[0, 1], a.context[1, 2]  # noqa: B018 - kept: computed again only when dropped
    assert a.recompute.computed == 2
    with pytest.raises(ValueError, match="read-only"):
        a.q[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        a.layer(0).q[0, 0, 0] = 1.0


def test_the_breakdown_is_within_1e_5_of_the_model_when_recomputed(again) -> None:
    for layer, head, query in [(0, 0, 0), (0, 3, 9), (1, 2, len(again.tokens) - 1)]:
        b = breakdown(again, layer, head, query)
        checked = {k: v for k, v in b.deviation.items() if v is not None}
        assert checked and max(checked.values()) <= 1e-5, checked
        assert b.dtype == "float32"


def test_attribution_reads_the_recomputed_layers_exactly(kept, again) -> None:
    a, b = attribute(kept), attribute(again)
    np.testing.assert_allclose(b.parts["contribution"], a.parts["contribution"], atol=1e-5)
    np.testing.assert_allclose(b.sources, a.sources, atol=1e-6)
    assert b.deviation <= 1e-3


def test_attribution_computes_each_layer_again_once_and_says_so(tiny, again) -> None:
    fresh = analyze(tiny, TEXT, keep_bytes=0)
    heard: list[tuple[float, str]] = []
    attribute(fresh, 3, progress=lambda f, m: heard.append((f, m)))
    assert fresh.recompute.computed == tiny.n_layer  # not twice: only the last few layers are kept
    assert [f for f, _ in heard] == [layer / tiny.n_layer for layer in range(tiny.n_layer)]
    assert heard[-1][1] == f"Layer {tiny.n_layer - 1} of {tiny.n_layer} computed again …"


def test_the_walkthrough_of_a_recomputed_analysis_leaves_the_attribution_to_its_tab(
    tiny, kept, again
) -> None:
    from explorer import walkthrough
    from explorer.analysis.arithmetic import breakdown

    fresh = analyze(tiny, TEXT, keep_bytes=0)
    whole = walkthrough.walkthrough_html(kept, breakdown(kept, 1, 2, 5))
    short = walkthrough.walkthrough_html(fresh, breakdown(fresh, 1, 2, 5))
    assert "the logit of the top guess" in whole and "the logit of the top guess" not in short
    assert fresh.recompute.computed == 1  # the breakdown's layer only
    assert short.count("<section") == whole.count("<section")  # every stage is still there


def test_figures_head_types_and_windows_work_on_a_recomputed_analysis(tiny, kept, again) -> None:
    fig, _ = head_detail(again, 1, 2, 5)
    np.testing.assert_allclose(np.nan_to_num(fig.data[0].z), kept.pattern[1, 2], atol=1e-6)
    scores, exact = head_scores(tiny, again), head_scores(tiny, kept)
    np.testing.assert_allclose(scores["previous_token"], exact["previous_token"], atol=2 / 255)
    window = dataclasses.replace(again, resid=again.resid[:, 2:6], tokens=again.tokens[2:6])
    assert window.resid.shape[1] == 4


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_half_precision_model_reports_its_deviations_in_its_dtype(tiny_path, dtype) -> None:
    from explorer import load_model

    half = load_model(str(tiny_path), device="cpu", dtype=dtype)
    assert half.dtype == dtype and str(next(half.model.parameters()).dtype) == f"torch.{dtype}"
    assert dtype in half.reason
    for keep in (None, 0):
        a = analyze(half, TEXT) if keep is None else analyze(half, TEXT, keep_bytes=keep)
        assert a.dtype == dtype and a.resid.dtype == np.float32
        b = breakdown(a, 1, 2, 9)
        devs = {k: v for k, v in b.deviation.items() if v is not None}
        # Our float64 arithmetic against the model's half-precision numbers: close, not equal.
        assert b.dtype == dtype and 1e-5 < max(devs.values()) < 0.5, devs
    assert a.recompute is not None and np.isfinite(np.asarray(a.q)).all()


def test_a_bad_dtype_is_refused(tiny_path) -> None:
    from explorer import load_model
    from explorer.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="float32, bfloat16, float16"):
        load_model(str(tiny_path), device="cpu", dtype="int8")


def _xl_pattern(n_pos: int) -> CausalPattern:
    """A synthetic pattern of gpt2-xl's shape (48 layers × 25 heads), kept as uint8 as it would be."""
    rng = np.random.default_rng(0)
    square = np.tril(rng.random((25, n_pos, n_pos), dtype=np.float32))
    square /= square.sum(-1, keepdims=True)
    pattern = CausalPattern.empty(48, 25, n_pos, np.uint8)
    for layer in range(48):
        pattern.set_layer(layer, np.roll(square, layer, axis=0))  # each layer's heads in another order
    return pattern


@pytest.mark.parametrize(("n_pos", "goal"), [(256, 1e6), (1024, 2e6)])
def test_the_overview_shows_all_1200_heads_within_the_byte_goal(n_pos, goal) -> None:
    fig = overview_figure(_xl_pattern(n_pos))
    assert len(fig.to_json().encode()) <= goal
    meta = fig.data[0].meta
    tile_q, tile_k = meta["tile"]
    assert (meta["n_layer"], meta["n_head"]) == (48, 25) and min(tile_q, tile_k) >= 8
    z, dx, dy = np.asarray(fig.data[0].z, dtype=float), fig.data[0].dx, fig.data[0].dy
    for layer in range(48):
        for head in range(25):
            # Every head is a tile of its own, and a click on it opens it.
            x, y = (
                head + (np.arange(tile_k) - (tile_k - 1) / 2) * dx,
                layer + (np.arange(tile_q) - (tile_q - 1) / 2) * dy,
            )
            assert overview_cell_to_head(x[0], y[-1], 48, 25, meta["tile"]) == (layer, head)
            assert overview_cell_to_head(head + 0.5, layer, 48, 25, meta["tile"]) is None  # the gap
            rows, cols = layer * (tile_q + 1), head * (tile_k + 1)
            assert np.isfinite(z[rows : rows + tile_q, cols : cols + tile_k]).all()


def test_zooming_into_layers_draws_them_larger_and_clicks_still_name_the_layer() -> None:
    pattern = _xl_pattern(64)
    whole, zoomed = overview_figure(pattern), overview_figure(pattern, layers=range(12, 24))
    meta = zoomed.data[0].meta
    assert meta["n_layer"] == 12 and meta["first_layer"] == 12
    assert meta["tile"][0] > whole.data[0].meta["tile"][0]
    assert list(zoomed.layout.yaxis.tickvals) == list(range(12, 24))
    assert overview_cell_to_head(3, 15, 12, 25, meta["tile"], first_layer=12) == (15, 3)
    assert overview_cell_to_head(3, 15, 48, 25, meta["tile"]) == (15, 3)  # as the app's click reads it
    assert overview_cell_to_head(3, 5, 12, 25, meta["tile"], first_layer=12) is None
    assert json.loads(zoomed.to_json())["data"][0]["meta"]["first_layer"] == 12


def test_the_analysis_overview_of_a_recomputed_analysis(again) -> None:
    fig = analysis_overview(again, layers=range(1, 2))
    assert fig.data[0].meta["n_layer"] == 1 and fig.layout.height >= 380
