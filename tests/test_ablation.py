"""Ablation through hooks: checked against the captured arrays, one head at a time, and batched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import explorer.analysis.ablation as ablation
from explorer import analyze
from explorer.analysis.ablation import (
    ablate,
    ablated_logits,
    head_importance,
    head_importance_steps,
    summarise,
)
from explorer.analysis.arithmetic import decode, gelu, layer_norm, softmax
from explorer.errors import ExplorerError

IOI = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def analysis(tiny):
    return analyze(tiny, IOI)


def c_proj_pre_hooks(loaded) -> int:
    """Hooks left on the model (ablation puts them on each block and its c_proj)."""
    blocks = loaded.model.transformer.h
    return sum(len(b._forward_pre_hooks) + len(b.attn.c_proj._forward_pre_hooks) for b in blocks)


def last_layer_without(analysis, head: int, replacement: np.ndarray) -> np.ndarray:
    """Next-token probabilities with one last-layer head's context replaced, from the captured arrays."""
    w = analysis.weights
    layer = analysis.n_layer - 1
    lw = w.layers[layer]
    dh = w.d_head
    context = analysis.context[layer, :, -1].astype(np.float64).copy()  # [head, d_head]
    context[head] = replacement
    attn_out = context.reshape(-1) @ lw.c_proj_w + lw.c_proj_b
    resid_mid = analysis.resid[layer, -1].astype(np.float64) + attn_out
    hidden = layer_norm(resid_mid, lw.ln_2_w, lw.ln_2_b, w.eps) @ lw.fc_w + lw.fc_b
    block_out = resid_mid + gelu(hidden, w.activation) @ lw.fc_proj_w + lw.fc_proj_b
    assert dh * analysis.n_head == len(attn_out)
    return softmax(decode(analysis, block_out)[1])


def test_removing_nothing_changes_nothing(tiny):
    result = ablate(tiny, IOI, heads=[])
    pd.testing.assert_frame_equal(result.before, result.after)
    assert result.prob_after == result.prob_before and result.delta == 0
    assert result.summary.startswith("No heads were removed")
    keep = np.ones((3, tiny.n_layer, tiny.n_head), dtype=bool)
    ids = tiny.tokenizer(IOI)["input_ids"]
    logits = ablated_logits(tiny, ids, keep, np.full((tiny.n_layer, tiny.n_head, 8), 7.0, np.float32))
    assert (logits == logits[0]).all()
    # A batch of three is not bitwise a batch of one (other matmul kernels), but close.
    np.testing.assert_allclose(logits[0], ablation._clean_run(tiny, ids)[0], atol=1e-5)


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize("head", [0, 3])
def test_hook_matches_the_arithmetic_on_captured_arrays(tiny, analysis, mode, head):
    layer = tiny.n_layer - 1
    replacement = (
        np.zeros(analysis.weights.d_head) if mode == "zero" else analysis.context[layer, head].mean(0)
    )
    expected = last_layer_without(analysis, head, replacement)
    result = ablate(tiny, IOI, heads=[(layer, head)], mode=mode, top_k=20)
    np.testing.assert_allclose(result.after["prob"], expected[result.after["token_id"]], atol=1e-5)
    assert result.prob_after == pytest.approx(expected[result.target_id], abs=1e-5)
    assert result.prob_before == pytest.approx(
        softmax(analysis.logits[-1].astype(np.float64))[result.target_id], abs=1e-6
    )
    assert result.target_id == int(np.argmax(analysis.logits[-1]))
    assert c_proj_pre_hooks(tiny) == 0


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_batched_importance_equals_one_head_at_a_time(tiny, mode, monkeypatch):
    table = head_importance(tiny, IOI, target=" Mary", mode=mode)
    mary = tiny.tokenizer(" Mary")["input_ids"][0]
    assert len(table) == tiny.n_layer * tiny.n_head
    assert sorted(zip(table["layer"], table["head"], strict=True)) == [
        (a, b) for a in range(tiny.n_layer) for b in range(tiny.n_head)
    ]
    assert (table["target_id"] == mary).all()
    assert (np.diff(np.abs(table["delta"].to_numpy())) <= 0).all()  # ranked by |change|
    for row in table.itertuples():
        single = ablate(tiny, IOI, heads=[(row.layer, row.head)], mode=mode, target=mary)
        assert row.prob_after == pytest.approx(single.prob_after, rel=1e-5, abs=1e-9)
        assert row.delta == pytest.approx(np.log(single.prob_after) - np.log(single.prob_before), abs=1e-5)
        assert row.name == f"L{row.layer}H{row.head}"
    assert np.abs(table["delta"]).max() > 1e-3  # some head matters
    # Smaller passes give the same numbers: one head a pass, and one layer a pass (the second
    # of which runs block 0 once and copies the stream for each row at block 1).
    for rows in (1, tiny.n_head):
        monkeypatch.setattr(ablation, "rows_per_pass", lambda *shape, rows=rows: rows)
        chunked = head_importance(tiny, IOI, target=" Mary", mode=mode)
        by_head = chunked.set_index(["layer", "head"]).loc[table.set_index(["layer", "head"]).index]
        np.testing.assert_allclose(by_head["delta"], table["delta"], atol=1e-5)
    assert c_proj_pre_hooks(tiny) == 0


def test_the_ranking_grows_pass_by_pass_and_leaves_the_model_free_between(tiny, monkeypatch):
    monkeypatch.setattr(ablation, "rows_per_pass", lambda *shape: 3)  # 8 heads: passes of 3, 3, 2
    whole = head_importance(tiny, IOI, target=" Mary", mode="mean")
    heard: list[float] = []
    steps = []
    for step in head_importance_steps(tiny, IOI, target=" Mary", mode="mean"):
        assert c_proj_pre_hooks(tiny) == 0  # another request may use the model here
        steps.append(step)
    assert [s.measured for s in steps] == [3, 6, 8] and {s.total for s in steps} == {8}
    shares = [s.share for s in steps]
    assert shares == sorted(shares) and shares[-1] == pytest.approx(1.0)
    assert 3 / 8 <= shares[0] < 1  # the first pass runs every block for its rows: more than its share
    for step in steps:  # the heads measured so far, in layer order, ranked
        names = [f"L{a}H{b}" for a in range(tiny.n_layer) for b in range(tiny.n_head)][: step.measured]
        assert sorted(step.ranked["name"]) == sorted(names)
        assert (np.diff(np.abs(step.ranked["delta"].to_numpy())) <= 0).all()
    pd.testing.assert_frame_equal(steps[-1].ranked, whole)
    head_importance(tiny, IOI, target=" Mary", progress=lambda f, m: heard.append(f))
    assert heard[-1] == pytest.approx(1.0) and len(heard) == 3


def test_a_pass_holds_at_most_one_layer_so_every_layer_is_heard(tiny):
    # However many rows memory allows (all 8 here), the caller hears of each layer as it ends.
    d_model = tiny.model.config.n_embd
    assert ablation.rows_per_pass(tiny.n_head, 16, d_model) >= tiny.n_layer * tiny.n_head
    steps = list(head_importance_steps(tiny, IOI, target=" Mary"))
    assert [s.measured for s in steps] == [tiny.n_head * (layer + 1) for layer in range(tiny.n_layer)]


def test_a_layer_is_all_its_heads(tiny):
    by_layer = ablate(tiny, IOI, layer=0, mode="mean")
    by_heads = ablate(tiny, IOI, heads=[(0, h) for h in range(tiny.n_head)], mode="mean")
    assert by_layer.heads == by_heads.heads == tuple((0, h) for h in range(tiny.n_head))
    pd.testing.assert_frame_equal(by_layer.after, by_heads.after)
    assert f"all {tiny.n_head} heads of layer 0" in by_layer.summary
    both = ablate(tiny, IOI, heads=[(0, 1), [0, 1], "L0H1"], layer=1)
    assert both.heads == ((0, 1), *((1, h) for h in range(tiny.n_head)))


def test_hooks_are_removed_when_the_run_fails(tiny):
    ids = tiny.tokenizer(IOI)["input_ids"]
    bad_fill = np.zeros((tiny.n_layer, tiny.n_head, 3), np.float32)  # wrong d_head
    with pytest.raises(RuntimeError):
        ablated_logits(tiny, ids, np.zeros((1, tiny.n_layer, tiny.n_head), bool), bad_fill)
    assert c_proj_pre_hooks(tiny) == 0


def test_targets_and_bad_input(tiny):
    mary = tiny.tokenizer(" Mary")["input_ids"][0]
    assert ablate(tiny, IOI, heads=[(0, 0)], target=" Mary").target_id == mary
    assert ablate(tiny, IOI, heads=[(0, 0)], target="␣Mary").target == "␣Mary"  # the table's display form
    assert ablate(tiny, IOI, heads=[(0, 0)], target=mary).target_id == mary
    with pytest.raises(ExplorerError, match="tokens, not one"):
        ablate(tiny, IOI, heads=[(0, 0)], target=" Mary and John")
    with pytest.raises(ExplorerError, match="no head L9H0"):
        ablate(tiny, IOI, heads=[(9, 0)])
    with pytest.raises(ExplorerError):
        ablate(tiny, IOI, heads=[(0,)])
    with pytest.raises(ExplorerError):
        ablate(tiny, IOI, layer=5)
    with pytest.raises(ExplorerError, match="mode"):
        head_importance(tiny, IOI, mode="resample")
    with pytest.raises(ExplorerError):
        ablate(tiny, IOI, heads=[(0, 0)], target=10**9)


def test_summary_in_plain_words(tiny):
    mary = tiny.tokenizer(" Mary")["input_ids"][0]
    john = tiny.tokenizer(" John")["input_ids"][0]
    assert summarise(tiny, ((1, 3),), mary, 0.412, 0.035, mary, 0.035) == (
        "Removing L1H3 drops ' Mary' from 41.2% to 3.5%."
    )
    assert summarise(tiny, ((0, 2), (1, 3)), mary, 0.1, 0.3, john, 0.4) == (
        "Removing L0H2 and L1H3 raises ' Mary' from 10.0% to 30.0%. The top prediction becomes ' John' (40.0%)."
    )
    assert (
        summarise(tiny, ((1, 3),), mary, 0.2001, 0.2003, mary, 0.2003)
        == "Removing L1H3 leaves ' Mary' at 20.0%."
    )
    assert "0.0012%" in summarise(tiny, ((1, 3),), mary, 0.2, 0.000012, john, 0.5)
