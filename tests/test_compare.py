"""Two prompts side by side: the names swapped in the IOI sentence, identical and unequal prompts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from explorer import analyze
from explorer.analysis.arithmetic import softmax
from explorer.analysis.comparison import compare
from explorer.errors import ExplorerError
from explorer.figures import difference_figure

IOI_A = "When Mary and John went to the store, John gave a drink to"
IOI_B = "When Mary and John went to the store, Mary gave a drink to"


@pytest.fixture(scope="module")
def pair(tiny):
    return analyze(tiny, IOI_A), analyze(tiny, IOI_B)


def test_swapped_names(tiny, pair):
    a, b = pair
    c = compare(a, b)
    assert c.same_length and c.n_aligned == a.n_pos == b.n_pos
    assert "position by position" in c.alignment
    swap = a.tokens.index("␣John", 4)  # the second John
    assert c.differing == (swap,)
    assert c.labels[swap] == "␣John → ␣Mary" and c.labels[:swap] == a.tokens[:swap]
    assert c.diff.shape == a.pattern.shape and c.diff.dtype == np.float32
    np.testing.assert_array_equal(c.diff, np.asarray(b.pattern) - np.asarray(a.pattern))
    # Attention is causal: rows before the swap see identical tokens, so nothing differs there.
    assert np.abs(c.diff[:, :, :swap]).max() == 0
    assert np.abs(c.diff[:, :, swap:]).max() > 1e-3

    heads = c.heads
    assert len(heads) == a.n_layer * a.n_head
    assert (np.diff(heads["total_variation"].to_numpy()) <= 0).all()
    top = heads.iloc[0]
    d = c.diff[int(top["layer"]), int(top["head"])].astype(np.float64)
    assert top["total_variation"] == pytest.approx(0.5 * np.abs(d).sum(-1).mean(), rel=1e-5)
    assert top["max_abs"] == pytest.approx(np.abs(d).max())
    assert 0 < heads["total_variation"].max() <= 1

    table = c.next_tokens.set_index("token")
    pa, pb = softmax(a.logits[-1].astype(np.float64)), softmax(b.logits[-1].astype(np.float64))
    for name in ("␣Mary", "␣John"):
        token_id = int(table.loc[name, "token_id"])
        assert table.loc[name, "prob_a"] == pytest.approx(pa[token_id], abs=1e-7)
        assert table.loc[name, "prob_b"] == pytest.approx(pb[token_id], abs=1e-7)
    np.testing.assert_allclose(
        c.next_tokens["delta"], c.next_tokens["prob_b"] - c.next_tokens["prob_a"], atol=1e-7
    )
    assert (np.diff(np.abs(c.next_tokens["delta"].to_numpy())) <= 1e-9).all()
    assert set(np.argsort(-pa)[:10]) <= set(c.next_tokens["token_id"])
    fig = difference_figure(c.diff[int(top["layer"]), int(top["head"])], list(c.labels), "B − A")
    assert np.asarray(fig.data[0].z).shape == (c.n_aligned, c.n_aligned)


def test_a_prompt_against_itself(pair):
    a, _ = pair
    c = compare(a, a)
    assert c.differing == () and not c.diff.any()
    assert (c.heads["total_variation"] == 0).all() and (c.next_tokens["delta"] == 0).all()


def test_unequal_lengths_align_on_the_shorter(tiny, pair):
    a, _ = pair
    short = analyze(tiny, "When Mary and John went")
    c = compare(a, short)
    n = short.n_pos
    assert not c.same_length and c.n_aligned == n < a.n_pos
    assert f"first {n} positions" in c.alignment and "of A have no partner" in c.alignment
    assert c.diff.shape == (a.n_layer, a.n_head, n, n)
    # The short prompt is a prefix of the long one: the same attention, up to float rounding
    # (a longer sequence runs through other matmul kernels).
    assert np.abs(c.diff).max() < 1e-6
    assert c.differing == ()
    pb = softmax(short.logits[-1].astype(np.float64))
    assert c.next_tokens.iloc[0]["prob_b"] >= 0 and int(np.argmax(pb)) in set(c.next_tokens["token_id"])
    assert "of B have no partner" in compare(short, a).alignment


def test_different_models_are_refused(pair):
    a, b = pair
    fewer_heads = dataclasses.replace(b, pattern=b.pattern[:, :2])
    with pytest.raises(ExplorerError, match="different models"):
        compare(a, fewer_heads)


@pytest.mark.xfail(
    reason="the demo model is not trained far enough for indirect-object identification", strict=False
)
def test_bundled_model_prefers_the_other_name(bundled):
    c = compare(analyze(bundled, IOI_A), analyze(bundled, IOI_B))
    table = c.next_tokens.set_index("token")
    # IOI: the indirect object is the name that did not give: Mary in A, John in B.
    assert table.loc["␣Mary", "prob_a"] > table.loc["␣John", "prob_a"]
    assert table.loc["␣John", "prob_b"] > table.loc["␣Mary", "prob_b"]
    assert table.loc["␣Mary", "delta"] < 0 < table.loc["␣John", "delta"]
